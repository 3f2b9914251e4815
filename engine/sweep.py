"""One sweep: every open invoice evaluated at one instant, in one transaction.

Invoices are read in id-ordered chunks (bounded memory however large the book); each chunk's decisions are
written with set-based statements — invoice updates, events and outbox rows — in the sweep's transaction,
so a sweep is all-or-nothing and the notifications it fires exist exactly when its transitions do.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from functools import lru_cache
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timezone, tzinfo
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, case, func, insert, or_, select, text, type_coerce, update

from engine.charging import Charging, fee_event_data
from engine.store.events import append_events
from engine.policy.calendar import CALENDAR_DAYS, day_counter
from engine.clock import Clock, SystemClock, iso, local_day
from engine.commitments import settle_commitments
from engine.policy.decide import decide, is_volatile, map_stage
from engine.errors import SweepBusy, SweepRefused
from engine.policy.facts import customer_facts, invoice_facts  # noqa: F401  (explain and actions import them from here)
from engine.policy.machine import Case, machine_for
from engine.store.models import Customer, Event, Invoice, Money, Notification, NotificationStatus, PolicyVersion, Sweep
from engine.policy.model import CLOSED_STATES, CURRENT, PAUSED_STATES, Policy, PolicySet
from engine.store.database import BulkWriter, Repository

INVOICES = Invoice.__table__  # type: ignore[attr-defined]
CUSTOMERS = Customer.__table__  # type: ignore[attr-defined]
EVENTS = Event.__table__  # type: ignore[attr-defined]
NOTIFICATIONS = Notification.__table__  # type: ignore[attr-defined]
SWEEPS = Sweep.__table__  # type: ignore[attr-defined]
ZERO = Decimal(0)


@dataclass
class SweepReport:
    as_of: datetime
    sweep_id: int | None = None
    already_swept: bool = False
    invoices_seen: int = 0
    entered: Counter[str] = field(default_factory=Counter)
    repeats: Counter[str] = field(default_factory=Counter)
    notifications: Counter[str] = field(default_factory=Counter)
    unaddressed: int = 0
    policy_changes: int = 0

    @property
    def transitions(self) -> int:
        return sum(self.entered.values())

    def as_dict(self) -> dict[str, Any]:
        return {
            "as_of": iso(self.as_of),
            "already_swept": self.already_swept,
            "invoices_seen": self.invoices_seen,
            "transitions": self.transitions,
            "entered": dict(self.entered),
            "repeats": dict(self.repeats),
            "notifications": dict(self.notifications),
            "unaddressed": self.unaddressed,
            "policy_changes": self.policy_changes,
        }


def notification_key(number: str, stage: str, entered_at: datetime, repeat_no: int, channel: str) -> str:
    """Unique per (invoice, stage entry, repeat number, channel): the idempotency key of a notification."""
    return f"{number}/{stage}@{_compact(entered_at)}/{repeat_no}/{channel}"


@lru_cache(maxsize=4096)
def _compact(instant: datetime) -> str:
    return instant.astimezone(timezone.utc).strftime("%Y%m%dT%H%M%SZ")


def group_notification_key(customer_id: str, stage: str, as_of: datetime, repeat_no: int, channel: str) -> str:
    """Unique per (customer, stage, sweep, repeat number, channel): the key of a grouped notification."""
    swept = as_of.astimezone(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    return f"customer:{customer_id}/{stage}@{swept}/{repeat_no}/{channel}"


SWEEP_COLUMNS = (
    INVOICES.c.id,
    INVOICES.c.number,
    INVOICES.c.customer_id,
    INVOICES.c.currency,
    INVOICES.c.amount,
    INVOICES.c.open_amount,
    INVOICES.c.issued_on,
    INVOICES.c.due_on,
    INVOICES.c.tags,
    INVOICES.c.stage,
    INVOICES.c.policy,
    INVOICES.c.stage_entered_at,
    INVOICES.c.stage_repeats,
    INVOICES.c.last_notice_at,
    INVOICES.c.next_action_on,
    INVOICES.c.paused_days,
    INVOICES.c.escalate_now,
    CUSTOMERS.c.name.label("c_name"),
    CUSTOMERS.c.email.label("c_email"),
    CUSTOMERS.c.phone.label("c_phone"),
    CUSTOMERS.c.address.label("c_address"),
    CUSTOMERS.c.credit_grade.label("c_credit_grade"),
    CUSTOMERS.c.segment.label("c_segment"),
    CUSTOMERS.c.owner.label("c_owner"),
    CUSTOMERS.c.language.label("c_language"),
    CUSTOMERS.c.timezone.label("c_timezone"),
    CUSTOMERS.c.tags.label("c_tags"),
)


class Sweeper:
    """Runs sweeps against one repository under one set of policies."""

    def __init__(
        self,
        repo: Repository,
        policies: PolicySet,
        *,
        zone: tzinfo,
        recipients: Mapping[str, str],
        clock: Clock | None = None,
        chunk_size: int = 5000,
        incremental: bool = True,
        extra_facts: Callable[[Connection, date, Collection[str]], Mapping[str, Mapping[str, Any]]] | None = None,
        after_sweep: Callable[[datetime], None] | None = None,
    ):
        #: More customer facts (the credit desk's), per chunk of customers; and work after each new sweep.
        self.extra_facts, self.after_sweep = extra_facts, after_sweep
        self.repo = repo
        self.policies = policies
        #: Skip invoices whose next action day has not come (False: evaluate every open invoice).
        self.incremental = incremental
        self.fingerprint = hashlib.sha256(
            "\n".join(sorted(f"{p.name}:{p.hash}" for p in policies.policies)).encode()
        ).hexdigest()
        self.volatile_choice = any(is_volatile(p.applies_to) for p in policies.policies)
        self.zone = zone
        #: channel name -> customer field it is addressed to
        self.recipients = recipients
        self.clock = clock or SystemClock()
        self.chunk_size = chunk_size

    def run(self, as_of: datetime) -> SweepReport:
        if as_of.tzinfo is None:
            raise SweepRefused("the sweep instant must carry a time zone")
        report = SweepReport(as_of=as_of)
        started = self.clock.now()
        with self.repo.write() as session:
            conn = session.connection()
            _claim_sweep(conn)  # one sweep at a time cluster-wide (several daemons on PostgreSQL)
            latest = conn.execute(select(func.max(SWEEPS.c.as_of))).scalar()
            latest = _aware(latest)
            if latest is not None and as_of < latest:
                raise SweepRefused(
                    f"refusing to sweep as of {iso(as_of)}: the latest sweep ran as of {iso(latest)}, and sweeps "
                    "never go back in time (that would re-decide what was already sent). "
                    "Run with a later --as-of, or without one for now. If that latest sweep's date was a typo, "
                    "restore the database from the backup taken before it (README: \"A sweep dated in the future\")."
                )
            if latest is not None and as_of == latest:
                report.already_swept = True
                return report
            self._record_policy_versions(conn, as_of)
            today = local_day(as_of, self.zone)
            settle_commitments(conn, as_of=as_of, today=today, zone=self.zone, policies=self.policies,
                               recorded_at=self.clock.now())
            previous = conn.execute(
                select(SWEEPS.c.policy_fingerprint, SWEEPS.c.finished_at).order_by(SWEEPS.c.as_of.desc()).limit(1)
            ).first()
            selective = self.incremental and previous is not None and previous[0] == self.fingerprint
            # A full sweep reads every customer: one pass. A selective one needs only the customers it reads,
            # fetched chunk by chunk (nothing a sweep writes changes a customer's totals).
            totals = {} if selective else customer_totals(conn, today)
            last_id = 0
            self._groups: dict[str, dict[str, Any]] = {}  # grouped notifications (group_by: customer) of this sweep
            while True:
                query = (
                    select(*SWEEP_COLUMNS)
                    .join(CUSTOMERS, CUSTOMERS.c.id == INVOICES.c.customer_id)
                    .where(INVOICES.c.stage.not_in(CLOSED_STATES | PAUSED_STATES), INVOICES.c.id > last_id)
                    .where(INVOICES.c.awaiting_stage.is_(None))  # waits for `dunning approve`
                    .order_by(INVOICES.c.id)
                    .limit(self.chunk_size)
                )
                if selective:
                    query = query.where(
                        or_(
                            INVOICES.c.next_action_on.is_(None),
                            INVOICES.c.next_action_on <= today,
                            # safety net: anything written since the last sweep is looked at again
                            INVOICES.c.updated_at >= previous[1],
                        )
                    )
                rows = conn.execute(query).mappings().all()
                if not rows:
                    break
                last_id = rows[-1]["id"]
                if selective:
                    unseen = {row["customer_id"] for row in rows} - totals.keys()
                    if unseen:
                        totals.update(customer_totals(conn, today, unseen))
                self._sweep_chunk(conn, rows, as_of, today, totals, report)
            # a customer's invoices may span chunks: grouped notifications are written once all are seen
            BulkWriter(conn, NOTIFICATIONS).insert(list(self._groups.values()))
            result = conn.execute(
                insert(SWEEPS),
                {
                    "as_of": as_of,
                    "started_at": started,
                    "finished_at": self.clock.now(),
                    "invoices_seen": report.invoices_seen,
                    "transitions": report.transitions,
                    "notifications": sum(report.notifications.values()),
                    "policy_fingerprint": self.fingerprint,
                },
            )
            report.sweep_id = result.inserted_primary_key[0] if result.inserted_primary_key else None
        if self.after_sweep is not None:
            self.after_sweep(as_of)
        return report

    def _record_policy_versions(self, conn: Connection, as_of: datetime) -> None:
        table = PolicyVersion.__table__  # type: ignore[attr-defined]
        known = {tuple(row) for row in conn.execute(select(table.c.name, table.c.sha256))}
        fresh = [
            {
                "name": p.name,
                "sha256": p.hash,
                "path": p.source.path if p.source else "",
                "text": p.source.text if p.source else "",
                "first_used_at": as_of,
            }
            for p in self.policies.policies
            if (p.name, p.hash) not in known
        ]
        if fresh:
            conn.execute(insert(table), fresh)

    def _sweep_chunk(
        self,
        conn: Connection,
        rows: Iterable[Mapping[str, Any]],
        as_of: datetime,
        today: date,
        totals: Mapping[str, tuple[Decimal, Decimal, int]],
        report: SweepReport,
    ) -> None:
        recorded_at = self.clock.now()
        updates: list[dict[str, Any]] = []
        events: list[dict[str, Any]] = []
        notices: list[dict[str, Any]] = []
        customers: dict[str, dict[str, Any]] = {}
        policies = self.policies
        extra = self.extra_facts(conn, today, {r["customer_id"] for r in rows}) if self.extra_facts else {}

        for row in rows:
            report.invoices_seen += 1
            customer_id = row["customer_id"]
            cfacts = customers.get(customer_id)
            if cfacts is None:
                cfacts = customers[customer_id] = {**customer_facts(row, totals.get(customer_id)),
                                                   **extra.get(customer_id, {})}
            calendar_days = (today - row["due_on"]).days
            facts = {**cfacts, **invoice_facts(row, calendar_days)}
            policy = policies.governing(facts)
            counter = day_counter(policy)
            days_overdue = calendar_days if counter is CALENDAR_DAYS else counter.between(row["due_on"], today)
            days_overdue -= row["paused_days"] or 0  # days disputed or promised don't count toward after_days
            facts["invoice.days_overdue"] = days_overdue
            stage = row["stage"]
            stored_policy = row["policy"]
            entered_at = _aware(row["stage_entered_at"])
            last_notice_at = _aware(row["last_notice_at"])
            change: dict[str, Any] = {}

            if stored_policy != policy.name or (stage != CURRENT and not policy.has_stage(stage)):
                landed = map_stage(policies.by_name(stored_policy or ""), policy, stage, days_overdue)
                if stored_policy is not None:
                    report.policy_changes += 1
                    events.append(
                        _event(as_of, recorded_at, "policy_changed", row, {
                            "from_policy": stored_policy, "to_policy": policy.name, "policy_hash": policy.hash,
                            "from": stage, "to": landed,
                        })
                    )
                change["policy"] = policy.name
                if landed != stage:
                    stage = landed
                    change.update(stage=stage, stage_entered_at=as_of, stage_repeats=0, last_notice_at=None)
                    entered_at, last_notice_at = as_of, None
                facts["invoice.stage"] = stage

            entered_on = local_day(entered_at, self.zone) if entered_at else None
            last_notice_on = local_day(last_notice_at, self.zone) if last_notice_at else None
            repeats_done = row["stage_repeats"] if "stage_repeats" not in change else 0
            decision = decide(
                policy,
                stage=stage,
                days_overdue=days_overdue,
                entered_on=entered_on,
                last_notice_on=last_notice_on,
                repeats_done=repeats_done,
                today=today,
                counter=counter,
                facts=facts,
                force_next=bool(row["escalate_now"]),
                volatile_policy_choice=self.volatile_choice,
            )
            if row["escalate_now"]:
                change["escalate_now"] = False

            if decision.action == "escalate" and policy.stage(decision.target or "").approval_required:
                # Record the decision; the invoice waits, silent, until someone approves (engine.actions).
                change["awaiting_stage"] = decision.target
                events.append(
                    _event(as_of, recorded_at, "approval_requested", row, {
                        "from": stage, "to": decision.target, "rule": decision.rule, "policy": policy.name,
                        "policy_hash": policy.hash, "days_overdue": days_overdue,
                    })
                )
            elif decision.action == "escalate":
                target = decision.target
                assert target is not None
                machine_for(policy).fire(Case(row["number"], stage), f"escalate_to_{target}")
                change.update(stage=target, stage_entered_at=as_of, stage_repeats=0, last_notice_at=as_of)
                report.entered[target] += 1
                events.append(
                    _event(as_of, recorded_at, "transition", row, {
                        "from": stage, "to": target, "rule": decision.rule, "policy": policy.name,
                        "policy_hash": policy.hash, "days_overdue": days_overdue,
                        "skipped": [{"stage": s.stage, "reason": s.reason} for s in decision.skipped],
                    })
                )
                fee = fee_event_data(policy.charges, target, row["currency"])  # a stage fee (charges.fees)
                if fee is not None:
                    events.append(_event(as_of, recorded_at, "charge", row, fee))
                self._notify(policy.stage(target).channels, row, policy, target, as_of, 0, as_of,
                             recorded_at, days_overdue, decision.rule, events, notices, report)
                stage, entered_on, last_notice_on, repeats_done = target, today, today, 0
                facts["invoice.stage"] = stage
            elif decision.action == "repeat":
                target = decision.target
                assert target is not None and entered_at is not None
                machine_for(policy).fire(Case(row["number"], stage), "repeat")
                change.update(stage_repeats=decision.repeat_no, last_notice_at=as_of)
                report.repeats[target] += 1
                self._notify(policy.stage(target).channels, row, policy, target, entered_at, decision.repeat_no,
                             as_of, recorded_at, days_overdue, decision.rule, events, notices, report)
                last_notice_on, repeats_done = today, decision.repeat_no

            wake = decision.next_on  # the day to look again, found by decide's one walk up the ladder
            if wake != row["next_action_on"]:
                change["next_action_on"] = wake

            if change:
                change["id"] = row["id"]
                change["updated_at"] = recorded_at
                updates.append(change)

        BulkWriter(conn, INVOICES).update(updates)
        Charging(self.policies, self.zone).price_notices(conn, events, today)  # the interest each notice claims
        append_events(conn, events)
        BulkWriter(conn, NOTIFICATIONS).insert(notices)

    def _notify(
        self,
        channels: Iterable[str],
        row: Mapping[str, Any],
        policy: Policy,
        stage: str,
        entered_at: datetime,
        repeat_no: int,
        as_of: datetime,
        recorded_at: datetime,
        days_overdue: int,
        rule: str,
        events: list[dict[str, Any]],
        notices: list[dict[str, Any]],
        report: SweepReport,
    ) -> None:
        grouped = getattr(policy, "group_by", "invoice") == "customer"
        spec = policy.stage(stage)
        for channel in channels:
            field_name = self.recipients.get(channel, "email")
            recipient = row["customer_id"] if field_name == "id" else row[f"c_{field_name}"]
            key = notification_key(row["number"], stage, entered_at, repeat_no, channel)
            if grouped:
                # one message per (customer, stage, repeat, channel) in this sweep, listing every invoice
                key = group_notification_key(row["customer_id"], stage, as_of, repeat_no, channel)
                group = self._groups.get(key)
                if group is not None:
                    group["invoice_ids"].append(row["id"])
                    events.append(_event(as_of, recorded_at, "notification", row, {
                        "key": key, "channel": channel, "recipient": recipient, "stage": stage,
                        "repeat": repeat_no, "policy": policy.name, "policy_hash": policy.hash, "rule": rule,
                        "days_overdue": days_overdue, "group": True,
                    }))
                    continue
            status, error = NotificationStatus.PENDING, None
            if not recipient:
                status = NotificationStatus.FAILED
                error = (
                    f"customer {row['customer_id']} has no {field_name}; add it (dunning import customers) "
                    f"so the {channel} channel can reach them"
                )
                report.unaddressed += 1
            notice = {
                "key": key, "invoice_id": None if grouped else row["id"], "customer_id": row["customer_id"],
                "policy": policy.name, "stage": stage, "channel": channel, "repeat_no": repeat_no,
                "recipient": recipient, "status": status, "attempts": 0, "created_at": as_of, "due_at": as_of,
                "error": error, "invoice_ids": [row["id"]] if grouped else None,
                "fallback": spec.fallback_for(channel) if hasattr(spec, "fallback_for") else None,
            }
            if grouped:
                self._groups[key] = notice
            else:
                notices.append(notice)
            events.append(
                _event(as_of, recorded_at, "notification", row, {
                    "key": key, "channel": channel, "recipient": recipient, "stage": stage, "repeat": repeat_no,
                    "policy": policy.name, "policy_hash": policy.hash, "rule": rule, "days_overdue": days_overdue,
                    **({"group": True} if grouped else {}),
                })
            )
            report.notifications[channel] += 1


#: pg_try_advisory_xact_lock key: the sweep is cluster-wide singleton work (ASCII "dunSWEEP").
SWEEP_LOCK_KEY = 0x64756E5357454550


def _claim_sweep(conn: Connection) -> None:
    """On PostgreSQL, take the sweep lock for this transaction or refuse with `SweepBusy` (another daemon is
    sweeping; its sweep is the one that counts). Transaction-scoped, so a daemon killed mid-sweep releases
    it with its connection. SQLite needs nothing: `BEGIN IMMEDIATE` already admits one writer."""
    if conn.dialect.name != "postgresql":
        return
    # Advisory locks are database-wide: the key is mixed with the schema so that books kept in different
    # schemas of one database (tenants, tests) never wait for each other.
    claimed = conn.execute(text("SELECT pg_try_advisory_xact_lock(:key # hashtext(current_schema())::bigint)"),
                           {"key": SWEEP_LOCK_KEY}).scalar()
    if not claimed:
        raise SweepBusy("another process is sweeping this database right now; its sweep covers this instant "
                        "(try again when it has finished)")


def wake(conn: Connection, *, invoice_ids: Iterable[int] = (), customer_ids: Iterable[str] = ()) -> None:
    """Make the next sweep look at these invoices (or all invoices of these customers) again.

    Call it in the same transaction as any change that could alter a decision: amounts, due dates, tags,
    customer fields, stage moves made outside the sweep.
    """
    invoice_ids, customer_ids = list(invoice_ids), list(customer_ids)
    if invoice_ids:
        conn.execute(update(INVOICES).where(INVOICES.c.id.in_(invoice_ids)).values(next_action_on=None))
    if customer_ids:
        conn.execute(update(INVOICES).where(INVOICES.c.customer_id.in_(customer_ids)).values(next_action_on=None))


def customer_totals(
    conn: Connection, today: date, customer_ids: Collection[str] | None = None
) -> dict[str, tuple[Decimal, Decimal, int]]:
    """Per customer (every one, or just `customer_ids`): open amount, overdue open amount and overdue invoice
    count on `today` — the customer.total_open / total_overdue / overdue_count facts. Shared with explain."""
    overdue = INVOICES.c.due_on < today
    query = (
        select(
            INVOICES.c.customer_id,
            type_coerce(func.sum(INVOICES.c.open_amount), Money()),
            type_coerce(func.sum(case((overdue, INVOICES.c.open_amount), else_=0)), Money()),
            func.sum(case((overdue, 1), else_=0)),
        )
        .where(INVOICES.c.stage.not_in(CLOSED_STATES))
        .group_by(INVOICES.c.customer_id)
    )
    if customer_ids is not None:
        query = query.where(INVOICES.c.customer_id.in_(list(customer_ids)))
    return {row[0]: (row[1] or ZERO, row[2] or ZERO, int(row[3] or 0)) for row in conn.execute(query)}


def _event(at: datetime, recorded_at: datetime, kind: str, row: Mapping[str, Any], data: dict[str, Any]) -> dict[str, Any]:
    return {
        "at": at,
        "recorded_at": recorded_at,
        "kind": kind,
        "invoice_id": row["id"],
        "customer_id": row["customer_id"],
        "actor": "system",
        "data": {"invoice": row["number"], **data},
    }


def _aware(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)
