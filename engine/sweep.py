"""One sweep: every open invoice evaluated at one instant, in one transaction.

Invoices are read in id-ordered chunks (bounded memory however large the book); each chunk's decisions are
written with set-based statements — invoice updates, events and outbox rows — in the sweep's transaction,
so a sweep is all-or-nothing and the notifications it fires exist exactly when its transitions do.

A chunk takes the hot path (`_HotPath`: rows by position, decisions remembered per situation, moves checked
against the Machine's verdicts, rows written as tuples in storage form) unless the policies charge or group
notices per customer; the reference path (`Sweeper._sweep_chunk`: every invoice through `decide` and the
Machine) is the plain statement of the same rules. tests/integration/test_sweep_fast_path.py holds the two
to the same rows.
"""

from __future__ import annotations

import hashlib
import json
import logging
from bisect import insort
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timezone, tzinfo
from decimal import Decimal
from typing import Any

from engine.charging import Charging, StageEntry, stage_fee_events
from engine.clock import Clock, SystemClock, iso, local_day
from engine.commitments import settle_commitments
from engine.errors import EvaluationError, SweepBusy, SweepRefused
from engine.policy.calendar import CALENDAR_DAYS, DayCounter, day_counter
from engine.policy.decide import Decision, decide, held, is_volatile, map_stage
from engine.policy.facts import CREDIT_FIELDS, customer_facts, invoice_facts, invoice_facts_of
from engine.policy.machine import Case, machine_for
from engine.policy.model import CURRENT, Expression, Policy, PolicySet
from engine.store import outbox, sweeps
from engine.store.bulk import StorageForm, invoice_storage, update_invoices
from engine.store.database import Connection, Repository
from engine.store.events import DataTemplate, append_events, append_system_events, encode_data, new_event
from engine.store.invoices import SWEEP_ROW_INDEX, customer_totals, entered_stage, sweep_chunk, sweep_rows

ZERO = Decimal(0)
logger = logging.getLogger("dunning.sweep")
#: The facts only `customer_totals` fills: a sweep under policies that never read them skips that query.
TOTALS_FIELDS = frozenset({"customer.total_open", "customer.total_overdue", "customer.overdue_count"})
#: Bounds on what a sweep remembers (decisions, event templates), far above what a book needs.
MEMO_LIMIT = 200_000
#: How many held invoices a sweep report names (all are counted).
HELD_LISTED = 20


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
    #: Invoices held because a value could not be computed (their policy's `applies_to` or a stage's `when`),
    #: and the first `HELD_LISTED` of their numbers in order: where to look (each one's warning names the rule).
    held: int = 0
    held_invoices: list[str] = field(default_factory=list)

    def count_held(self, number: str) -> None:
        self.held += 1
        listed = self.held_invoices
        # chunks come in id order, not number order: keep the smallest numbers seen so far, a few at most
        if len(listed) < HELD_LISTED:
            insort(listed, number)
        elif number < listed[-1]:
            insort(listed, number)
            listed.pop()

    @property
    def transitions(self) -> int:
        return sum(self.entered.values())

    def held_summary(self) -> str:
        """The held invoices in one line for an operator (`dunning run`, the daemon's log)."""
        named = ", ".join(self.held_invoices)
        if self.held > len(self.held_invoices):
            named += f", … ({len(self.held_invoices)} of {self.held} named)"
        return f"{self.held} invoice(s) held: a rule could not be computed on their values (see the warnings): {named}"

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
            "held": self.held,
            "held_invoices": list(self.held_invoices),
        }


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
        fast: bool = True,
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
        #: Every field the policies' expressions read: facts nobody reads are not worked out.
        self.fields_read = frozenset(
            name
            for p in policies.policies
            for expression in (p.applies_to, *(s.when for s in p.stages))
            if expression is not None
            for name in expression.fields
        )
        self.needs_totals = not self.fields_read.isdisjoint(TOTALS_FIELDS)
        if self.fields_read.isdisjoint(CREDIT_FIELDS):
            self.extra_facts = None  # the credit desk's facts: read per chunk only when a policy reads one
        #: The hot path (`_sweep_chunk_fast`: rows as tuples, decisions remembered, moves checked against
        #: the machine's table); False, or policies it does not cover (charges, notices grouped per customer),
        #: take the reference path (`_sweep_chunk`: each invoice through `decide` and the Machine). Both
        #: write the same rows (tests/integration/test_sweep_fast_path.py).
        self.fast = fast and all(p.charges is None and p.group_by != "customer" for p in policies.policies)

    def run(self, as_of: datetime) -> SweepReport:
        if as_of.tzinfo is None:
            raise SweepRefused("the sweep instant must carry a time zone")
        report = SweepReport(as_of=as_of)
        started = self.clock.now()
        with self.repo.write() as session:
            conn = session.connection()
            _claim_sweep(conn)  # one sweep at a time cluster-wide (several daemons on PostgreSQL)
            latest = sweeps.latest_as_of(conn)
            if latest is not None and as_of < latest:
                raise SweepRefused(
                    f"refusing to sweep as of {iso(as_of)}: the latest sweep ran as of {iso(latest)}, and sweeps "
                    "never go back in time (that would re-decide what was already sent). "
                    "Run with a later --as-of, or without one for now. If that latest sweep's date was a typo, "
                    'restore the database from the backup taken before it (README: "A sweep dated in the future").'
                )
            if latest is not None and as_of == latest:
                report.already_swept = True
                return report
            self._record_policy_versions(conn, as_of)
            today = local_day(as_of, self.zone)
            settle_commitments(
                conn, as_of=as_of, today=today, zone=self.zone, policies=self.policies, recorded_at=self.clock.now()
            )
            previous = sweeps.last_sweep(conn)
            selective = self.incremental and previous is not None and previous.policy_fingerprint == self.fingerprint
            # A full sweep reads every customer: one pass. A selective one needs only the customers it reads,
            # fetched chunk by chunk (nothing a sweep writes changes a customer's totals).
            totals = {} if selective or not self.needs_totals else customer_totals(conn, today)
            last_id = 0
            self._groups: dict[str, dict[str, Any]] = {}  # grouped notifications (group_by: customer) of this sweep
            hot = _HotPath(self, conn, as_of, today) if self.fast else None
            # selective: only what is due today, plus (safety net) anything written since the last sweep
            due_by = today if selective else None
            changed_since = previous.finished_at if selective and previous is not None else None
            with sweeps.roomy_cache(conn):
                while True:
                    if hot is not None:
                        rows = sweep_rows(
                            conn, after_id=last_id, limit=self.chunk_size, due_by=due_by, changed_since=changed_since
                        )
                        customer_ids = {row[_CUSTOMER] for row in rows}
                        last_id = rows[-1][_ID] if rows else last_id
                    else:
                        mappings = sweep_chunk(
                            conn, after_id=last_id, limit=self.chunk_size, due_by=due_by, changed_since=changed_since
                        )
                        customer_ids = {row["customer_id"] for row in mappings}
                        last_id = mappings[-1]["id"] if mappings else last_id
                    if not customer_ids:
                        break
                    if selective and self.needs_totals:
                        unseen = customer_ids - totals.keys()
                        if unseen:
                            totals.update(customer_totals(conn, today, unseen))
                    if hot is not None:
                        hot.sweep_chunk(rows, customer_ids, totals, report)
                    else:
                        self._sweep_chunk(conn, mappings, as_of, today, totals, report)
            # a customer's invoices may span chunks: grouped notifications are written once all are seen
            outbox.queue(conn, list(self._groups.values()))
            report.sweep_id = sweeps.record_sweep(
                conn,
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
        if self.after_sweep is not None:
            self.after_sweep(as_of)
        return report

    def _record_policy_versions(self, conn: Connection, as_of: datetime) -> None:
        sweeps.record_policy_versions(
            conn,
            (
                {
                    "name": p.name,
                    "sha256": p.hash,
                    "path": p.source.path if p.source else "",
                    "text": p.source.text if p.source else "",
                    "first_used_at": as_of,
                }
                for p in self.policies.policies
            ),
        )

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
        entries: list[StageEntry] = []  # stages entered, for their fees (charges.fees)
        customers: dict[str, dict[str, Any]] = {}
        policies = self.policies
        extra = self.extra_facts(conn, today, {r["customer_id"] for r in rows}) if self.extra_facts else {}

        for row in rows:
            report.invoices_seen += 1
            customer_id = row["customer_id"]
            cfacts = customers.get(customer_id)
            if cfacts is None:
                cfacts = customers[customer_id] = {
                    **customer_facts(row, totals.get(customer_id)),
                    **extra.get(customer_id, {}),
                }
            calendar_days = (today - row["due_on"]).days
            facts = {**cfacts, **invoice_facts(row, calendar_days)}
            try:
                policy = policies.governing(facts)
            except EvaluationError as error:  # an applies_to that cannot be computed on this invoice's values
                _skipped(report, row["number"], error)
                continue
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
                        _event(
                            as_of,
                            recorded_at,
                            "policy_changed",
                            row,
                            {
                                "from_policy": stored_policy,
                                "to_policy": policy.name,
                                "policy_hash": policy.hash,
                                "from": stage,
                                "to": landed,
                            },
                        )
                    )
                change["policy"] = policy.name
                if landed != stage:
                    stage = landed
                    change.update(entered_stage(stage, as_of, notified=False))
                    entered_at, last_notice_at = as_of, None
                facts["invoice.stage"] = stage

            entered_on = local_day(entered_at, self.zone) if entered_at else None
            last_notice_on = local_day(last_notice_at, self.zone) if last_notice_at else None
            repeats_done = row["stage_repeats"] if "stage_repeats" not in change else 0
            try:
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
                    hold=False,
                )
            except EvaluationError as error:  # a stage's condition that cannot be computed on these values
                decision = held(policy, facts, error, today)
                report.count_held(row["number"])
            if row["escalate_now"]:
                change["escalate_now"] = False

            if decision.action == "escalate" and policy.stage(decision.target or "").approval_required:
                # Record the decision; the invoice waits, silent, until someone approves (engine.actions).
                change["awaiting_stage"] = decision.target
                events.append(
                    _event(
                        as_of,
                        recorded_at,
                        "approval_requested",
                        row,
                        {
                            "from": stage,
                            "to": decision.target,
                            "rule": decision.rule,
                            "policy": policy.name,
                            "policy_hash": policy.hash,
                            "days_overdue": days_overdue,
                        },
                    )
                )
            elif decision.action == "escalate":
                target = decision.target
                assert target is not None
                machine_for(policy).fire(Case(row["number"], stage), f"escalate_to_{target}")
                change.update(entered_stage(target, as_of, notified=True))
                report.entered[target] += 1
                events.append(
                    _event(
                        as_of,
                        recorded_at,
                        "transition",
                        row,
                        {
                            "from": stage,
                            "to": target,
                            "rule": decision.rule,
                            "policy": policy.name,
                            "policy_hash": policy.hash,
                            "days_overdue": days_overdue,
                            "skipped": [{"stage": s.stage, "reason": s.reason} for s in decision.skipped],
                        },
                    )
                )
                if policy.charges is not None:
                    entries.append(
                        StageEntry(
                            row["id"],
                            customer_id,
                            row["number"],
                            row["currency"],
                            policy.charges,
                            target,
                            as_of,
                            recorded_at,
                        )
                    )
                self._notify(
                    policy.stage(target).channels,
                    row,
                    policy,
                    target,
                    as_of,
                    0,
                    as_of,
                    recorded_at,
                    days_overdue,
                    decision.rule,
                    events,
                    notices,
                    report,
                )
                stage, entered_on, last_notice_on, repeats_done = target, today, today, 0
                facts["invoice.stage"] = stage
            elif decision.action == "repeat":
                target = decision.target
                assert target is not None and entered_at is not None
                machine_for(policy).fire(Case(row["number"], stage), "repeat")
                change.update(stage_repeats=decision.repeat_no, last_notice_at=as_of)
                report.repeats[target] += 1
                self._notify(
                    policy.stage(target).channels,
                    row,
                    policy,
                    target,
                    entered_at,
                    decision.repeat_no,
                    as_of,
                    recorded_at,
                    days_overdue,
                    decision.rule,
                    events,
                    notices,
                    report,
                )
                last_notice_on, repeats_done = today, decision.repeat_no

            wake = decision.next_on  # the day to look again, found by decide's one walk up the ladder
            if wake != row["next_action_on"]:
                change["next_action_on"] = wake

            if change:
                change["id"] = row["id"]
                change["updated_at"] = recorded_at
                updates.append(change)

        update_invoices(conn, updates)
        events = _after_their_transitions(events, stage_fee_events(conn, entries))
        Charging(self.policies, self.zone).price_notices(conn, events, today)  # the interest each notice claims
        append_events(conn, events)
        outbox.queue(conn, notices)

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
        grouped = policy.group_by == "customer"
        spec = policy.stage(stage)
        for channel in channels:
            field_name = self.recipients.get(channel, "email")
            recipient = outbox.recipient_of(row, field_name)
            key = outbox.notification_key(row["number"], stage, entered_at, repeat_no, channel)
            group = None
            if grouped:
                # one message per (customer, stage, repeat, channel) in this sweep, listing every invoice
                key = outbox.group_notification_key(row["customer_id"], stage, as_of, repeat_no, channel)
                group = self._groups.get(key)
            data = {
                "key": key,
                "channel": channel,
                "recipient": recipient,
                "stage": stage,
                "repeat": repeat_no,
                "policy": policy.name,
                "policy_hash": policy.hash,
                "rule": rule,
                "days_overdue": days_overdue,
                **({"group": True} if grouped else {}),
            }
            if group is not None:  # the customer's message exists already: this invoice joins it
                group["invoice_ids"].append(row["id"])
                events.append(_event(as_of, recorded_at, "notification", row, data))
                continue
            notice = outbox.notification(
                key=key,
                invoice_id=None if grouped else row["id"],
                invoice_ids=[row["id"]] if grouped else None,
                customer_id=row["customer_id"],
                policy=policy.name,
                stage=stage,
                channel=channel,
                repeat_no=repeat_no,
                recipient=recipient,
                recipient_field=field_name,
                created_at=as_of,
                fallback=spec.fallback_for(channel),
            )
            if not recipient:
                report.unaddressed += 1
            if grouped:
                self._groups[key] = notice
            else:
                notices.append(notice)
            events.append(_event(as_of, recorded_at, "notification", row, data))
            report.notifications[channel] += 1


def _claim_sweep(conn: Connection) -> None:
    """Take the sweep lock (engine.store.sweeps) or refuse with `SweepBusy`: another daemon is sweeping, and
    its sweep is the one that counts. SQLite needs nothing: `BEGIN IMMEDIATE` already admits one writer."""
    if not sweeps.claim_sweep(conn):
        raise SweepBusy(
            "another process is sweeping this database right now; its sweep covers this instant "
            "(try again when it has finished)"
        )


def _event(
    at: datetime, recorded_at: datetime, kind: str, row: Mapping[str, Any], data: dict[str, Any]
) -> dict[str, Any]:
    return new_event(
        kind,
        at=at,
        recorded_at=recorded_at,
        invoice_id=row["id"],
        customer_id=row["customer_id"],
        number=row["number"],
        data=data,
    )


def _after_their_transitions(events: list[dict[str, Any]], fees: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The events with each fee's `charge` event right after the transition into its stage (history reads
    transition, charge, notification)."""
    if not fees:
        return events
    by_entry = {(fee["data"]["invoice"], fee["data"]["stage"]): fee for fee in fees}
    ordered: list[dict[str, Any]] = []
    for event in events:
        ordered.append(event)
        if event["kind"] == "transition":
            fee = by_entry.pop((event["data"].get("invoice"), event["data"].get("to")), None)
            if fee is not None:
                ordered.append(fee)
    return ordered + list(by_entry.values())


def _skipped(report: SweepReport, number: str, error: EvaluationError) -> None:
    """An invoice whose policy's `applies_to` cannot be computed on its values: warned about, counted as held."""
    logger.warning("invoice %s: %s; skipped by this sweep until the value or the policy is fixed", number, error)
    report.count_held(number)


def _aware(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


# -- the hot path ----------------------------------------------------------------------------------------------

_ID, _NUMBER, _CUSTOMER = SWEEP_ROW_INDEX["id"], SWEEP_ROW_INDEX["number"], SWEEP_ROW_INDEX["customer_id"]
_INVOICE_FIELDS = 17  # the invoice's own columns lead a `sweep_rows` row (see engine.store.invoices)
#: What `customer_facts` reads of a row: the customer's id and fields (`c_…`), with their positions.
_CUSTOMER_FIELDS = tuple(
    (name, position) for name, position in SWEEP_ROW_INDEX.items() if name == "customer_id" or name.startswith("c_")
)


@dataclass
class _PolicyPlan:
    """What the hot path works out once per policy and sweep."""

    policy: Policy
    counter: DayCounter
    calendar: bool
    #: the stages' `when` conditions, in ladder order: their verdicts are part of a remembered decision
    conditions: tuple[Expression, ...]
    #: decisions can be remembered: no condition reads the stage (which an escalation changes mid-walk)
    memoised: bool
    #: (state, trigger) -> whether the Machine allows it: asked of the Machine once per pair
    moves: dict[tuple[str, str], bool] = field(default_factory=dict)
    decisions: dict[tuple[Any, ...], Decision] = field(default_factory=dict)


class _HotPath:
    """One sweep's hot path: each chunk's rows read by position, decided once per distinct situation, and
    written as tuples in storage form. Writes the rows `Sweeper._sweep_chunk` writes (the reference)."""

    def __init__(self, sweeper: Sweeper, conn: Connection, as_of: datetime, today: date):
        self.sweeper, self.conn, self.as_of, self.today = sweeper, conn, as_of, today
        self.storage: StorageForm = invoice_storage(conn)
        self.instant = self.storage.converter("updated_at")
        self.day = self.storage.converter("next_action_on")
        self.stored = {
            name: self.storage.converter(name)
            for name in ("stage", "policy", "stage_entered_at", "stage_repeats", "last_notice_at", "escalate_now")
        }
        self.plans: dict[Policy, _PolicyPlan] = {}
        self.local_days: dict[datetime, date] = {}
        self.templates: dict[tuple[Any, ...], DataTemplate] = {}
        fields = sweeper.fields_read
        self.decode_tags = "invoice.tags" in fields
        self.decode_customer_tags = "customer.tags" in fields
        #: the governing policy depends on the customer alone: chosen once per customer
        self.policy_per_customer = all(
            name.startswith("customer.")
            for p in sweeper.policies.policies
            if p.applies_to is not None
            for name in p.applies_to.fields
        )
        # channel -> (customer field it is addressed to, its position in the row; None: not in the row)
        self.addresses: dict[str, tuple[str, int | None]] = {}
        self.fallbacks: dict[tuple[Policy, str, str], str | None] = {}

    def plan(self, policy: Policy) -> _PolicyPlan:
        plan = self.plans.get(policy)
        if plan is None:
            counter = day_counter(policy)
            conditions = tuple(s.when for s in policy.stages if s.when is not None)
            plan = self.plans[policy] = _PolicyPlan(
                policy=policy,
                counter=counter,
                calendar=counter is CALENDAR_DAYS,
                conditions=conditions,
                memoised=all("invoice.stage" not in c.fields for c in conditions),
            )
        return plan

    def check_move(self, plan: _PolicyPlan, number: str, stage: str, trigger: str) -> None:
        """The Machine's verdict on a move, asked once per (state, trigger); an illegal move goes to `fire`,
        which refuses it with the Machine's own words."""
        allowed = plan.moves.get((stage, trigger))
        if allowed is None:
            allowed = plan.moves[(stage, trigger)] = machine_for(plan.policy).can(stage, trigger)
        if not allowed:
            machine_for(plan.policy).fire(Case(number, stage), trigger)

    def local_day(self, instant: datetime | None) -> date | None:
        if instant is None:
            return None
        day = self.local_days.get(instant)
        if day is None:
            if len(self.local_days) > MEMO_LIMIT:
                self.local_days.clear()
            day = self.local_days[instant] = local_day(instant, self.sweeper.zone)
        return day

    def template(
        self, key: tuple[Any, ...], fixed: Callable[[], dict[str, Any]], slots: tuple[str, ...]
    ) -> DataTemplate:
        found = self.templates.get(key)
        if found is None:
            if len(self.templates) > MEMO_LIMIT:
                self.templates.clear()
            found = self.templates[key] = DataTemplate(fixed(), slots)
        return found

    def fallback(self, policy: Policy, stage: str, channel: str) -> str | None:
        key = (policy, stage, channel)
        try:
            return self.fallbacks[key]
        except KeyError:
            found = self.fallbacks[key] = policy.stage(stage).fallback_for(channel)
            return found

    def address(self, channel: str) -> tuple[str, int | None]:
        found = self.addresses.get(channel)
        if found is None:
            field_name = self.sweeper.recipients.get(channel, "email")
            found = self.addresses[channel] = (field_name, SWEEP_ROW_INDEX.get(f"c_{field_name}"))
        return found

    def customer(
        self,
        row: Any,
        totals: Mapping[str, tuple[Decimal, Decimal, int]],
        extra: Mapping[str, Mapping[str, Any]],
    ) -> tuple[dict[str, Any], Policy | None]:
        mapping = {name: row[position] for name, position in _CUSTOMER_FIELDS}
        mapping["c_tags"] = _decoded(mapping["c_tags"]) if self.decode_customer_tags else None
        customer_id = mapping["customer_id"]
        facts = {**customer_facts(mapping, totals.get(customer_id)), **extra.get(customer_id, {})}
        policy = None
        if self.policy_per_customer:
            try:
                policy = self.sweeper.policies.governing(facts)
            except EvaluationError:
                pass  # chosen (and refused) invoice by invoice, as the reference does
        return facts, policy

    def decide(
        self,
        plan: _PolicyPlan,
        stage: str,
        days_overdue: int,
        entered_on: date | None,
        last_notice_on: date | None,
        repeats_done: int,
        force_next: bool,
        facts: Mapping[str, Any],
    ) -> Decision:
        """`decide`, remembered per situation: the same policy, stage, days, repeats and condition verdicts
        give the same decision (decide is a pure function of them on one day)."""
        key: tuple[Any, ...] | None = None
        if plan.memoised:
            try:
                verdicts = [condition.evaluate(facts) for condition in plan.conditions]
            except EvaluationError:
                verdicts = None  # decided afresh: held (and said why) each time, if decide needs that verdict
            if verdicts is not None:
                key = (stage, days_overdue, entered_on, last_notice_on, repeats_done, force_next, *verdicts)
                decision = plan.decisions.get(key)
                if decision is not None:
                    return decision
        decision = decide(
            plan.policy,
            stage=stage,
            days_overdue=days_overdue,
            entered_on=entered_on,
            last_notice_on=last_notice_on,
            repeats_done=repeats_done,
            today=self.today,
            counter=plan.counter,
            facts=facts,
            force_next=force_next,
            volatile_policy_choice=self.sweeper.volatile_choice,
            hold=False,  # the caller holds it, and counts it
        )
        if key is not None:
            if len(plan.decisions) > MEMO_LIMIT:
                plan.decisions.clear()
            plan.decisions[key] = decision
        return decision

    def sweep_chunk(
        self,
        rows: Sequence[Any],
        customer_ids: Collection[str],
        totals: Mapping[str, tuple[Decimal, Decimal, int]],
        report: SweepReport,
    ) -> None:
        sweeper, conn, as_of, today = self.sweeper, self.conn, self.as_of, self.today
        recorded_at = sweeper.clock.now()
        stored = self.stored
        stored_now, stored_false = self.instant(recorded_at), stored["escalate_now"](False)
        updates: dict[tuple[str, ...], list[tuple[Any, ...]]] = {}
        events: list[tuple[str, int | None, str | None, str]] = []
        notices: list[dict[str, Any]] = []
        customers: dict[str, tuple[dict[str, Any], Policy | None]] = {}
        policies = sweeper.policies
        extra = sweeper.extra_facts(conn, today, customer_ids) if sweeper.extra_facts else {}
        decode_tags = self.decode_tags

        for row in rows:
            (
                invoice_id,
                number,
                customer_id,
                currency,
                amount,
                open_amount,
                issued_on,
                due_on,
                tags,
                stage,
                stored_policy,
                entered_at,
                stage_repeats,
                last_notice_at,
                next_action_on,
                paused_days,
                escalate_now,
            ) = row[:_INVOICE_FIELDS]
            report.invoices_seen += 1
            known = customers.get(customer_id)
            if known is None:
                known = customers[customer_id] = self.customer(row, totals, extra)
            cfacts, policy = known
            calendar_days = (today - due_on).days
            facts = {
                **cfacts,
                **invoice_facts_of(
                    number,
                    amount,
                    open_amount,
                    currency,
                    calendar_days,
                    issued_on,
                    due_on,
                    tuple(_decoded(tags)) if decode_tags else None,
                    stage,
                ),
            }
            if policy is None:
                try:
                    policy = policies.governing(facts)
                except EvaluationError as error:  # an applies_to that cannot be computed on this invoice's values
                    _skipped(report, number, error)
                    continue
            plan = self.plans.get(policy) or self.plan(policy)
            days_overdue = calendar_days if plan.calendar else plan.counter.between(due_on, today)
            days_overdue -= paused_days or 0  # days disputed or promised don't count toward after_days
            facts["invoice.days_overdue"] = days_overdue
            entered_at = _aware(entered_at)
            last_notice_at = _aware(last_notice_at)
            change: dict[str, Any] = {}

            if stored_policy != policy.name or (stage != CURRENT and not policy.has_stage(stage)):
                landed = map_stage(policies.by_name(stored_policy or ""), policy, stage, days_overdue)
                if stored_policy is not None:
                    report.policy_changes += 1
                    data = {
                        "from_policy": stored_policy,
                        "to_policy": policy.name,
                        "policy_hash": policy.hash,
                        "from": stage,
                        "to": landed,
                    }
                    events.append(("policy_changed", invoice_id, customer_id, encode_data({"invoice": number, **data})))
                change["policy"] = policy.name
                if landed != stage:
                    stage = landed
                    for name, value in entered_stage(stage, as_of, notified=False).items():
                        change[name] = stored[name](value)
                    entered_at, last_notice_at = as_of, None
                facts["invoice.stage"] = stage

            repeats_done = stage_repeats if "stage_repeats" not in change else 0
            try:
                decision = self.decide(
                    plan,
                    stage,
                    days_overdue,
                    self.local_day(entered_at),
                    self.local_day(last_notice_at),
                    repeats_done,
                    bool(escalate_now),
                    facts,
                )
            except EvaluationError as error:  # a stage's condition that cannot be computed on these values
                decision = held(policy, facts, error, today)
                report.count_held(number)
            if escalate_now:
                change["escalate_now"] = stored_false

            action = decision.action
            if action != "stay":
                target = decision.target
                assert target is not None
                spec = policy.stage(target)
                if action == "escalate" and spec.approval_required:
                    # Record the decision; the invoice waits, silent, until someone approves (engine.actions).
                    change["awaiting_stage"] = target
                    data = {
                        "from": stage,
                        "to": target,
                        "rule": decision.rule,
                        "policy": policy.name,
                        "policy_hash": policy.hash,
                        "days_overdue": days_overdue,
                    }
                    events.append(
                        ("approval_requested", invoice_id, customer_id, encode_data({"invoice": number, **data}))
                    )
                elif action == "escalate":
                    self.check_move(plan, number, stage, f"escalate_to_{target}")
                    for name, value in entered_stage(target, as_of, notified=True).items():
                        change[name] = stored[name](value)
                    report.entered[target] += 1
                    transition = self.template(
                        ("transition", policy, stage, target, decision.rule, days_overdue, decision.skipped),
                        lambda: {
                            "from": stage,  # noqa: B023  (called at once, within this iteration)
                            "to": target,  # noqa: B023
                            "rule": decision.rule,  # noqa: B023
                            "policy": policy.name,  # noqa: B023
                            "policy_hash": policy.hash,  # noqa: B023
                            "days_overdue": days_overdue,  # noqa: B023
                            "skipped": [{"stage": s.stage, "reason": s.reason} for s in decision.skipped],  # noqa: B023
                        },
                        ("invoice",),
                    )
                    events.append(("transition", invoice_id, customer_id, transition.render(number)))
                    self.notify(
                        row,
                        policy,
                        spec.channels,
                        target,
                        as_of,
                        0,
                        days_overdue,
                        decision.rule,
                        events,
                        notices,
                        report,
                    )
                else:  # repeat
                    assert entered_at is not None
                    self.check_move(plan, number, stage, "repeat")
                    change["stage_repeats"] = stored["stage_repeats"](decision.repeat_no)
                    change["last_notice_at"] = stored["last_notice_at"](as_of)
                    report.repeats[target] += 1
                    self.notify(
                        row,
                        policy,
                        spec.channels,
                        target,
                        entered_at,
                        decision.repeat_no,
                        days_overdue,
                        decision.rule,
                        events,
                        notices,
                        report,
                    )

            wake = decision.next_on  # the day to look again, found by decide's one walk up the ladder
            if wake != next_action_on:
                change["next_action_on"] = self.day(wake)
            if change:
                updates.setdefault((*change, "updated_at"), []).append((*change.values(), stored_now, invoice_id))

        for shape, values in updates.items():
            self.storage.update(shape, values)
        append_system_events(conn, as_of, recorded_at, events)
        outbox.queue(conn, notices, copy=True)

    def notify(
        self,
        row: Any,
        policy: Policy,
        channels: Iterable[str],
        stage: str,
        entered_at: datetime,
        repeat_no: int,
        days_overdue: int,
        rule: str,
        events: list[tuple[str, int | None, str | None, str]],
        notices: list[dict[str, Any]],
        report: SweepReport,
    ) -> None:
        """`Sweeper._notify` for notices per invoice: an outbox row and a `notification` event per channel."""
        invoice_id, number, customer_id = row[_ID], row[_NUMBER], row[_CUSTOMER]
        for channel in channels:
            field_name, position = self.address(channel)
            recipient = customer_id if field_name == "id" else (row[position] if position is not None else None)
            key = outbox.notification_key(number, stage, entered_at, repeat_no, channel)
            notices.append(
                outbox.notification(
                    key=key,
                    invoice_id=invoice_id,
                    customer_id=customer_id,
                    policy=policy.name,
                    stage=stage,
                    channel=channel,
                    repeat_no=repeat_no,
                    recipient=recipient,
                    recipient_field=field_name,
                    created_at=self.as_of,
                    fallback=self.fallback(policy, stage, channel),
                )
            )
            if not recipient:
                report.unaddressed += 1
            template = self.template(
                ("notification", policy, stage, channel, repeat_no, rule, days_overdue),
                lambda: {
                    "channel": channel,  # noqa: B023  (called at once, within this iteration)
                    "stage": stage,
                    "repeat": repeat_no,
                    "policy": policy.name,
                    "policy_hash": policy.hash,
                    "rule": rule,
                    "days_overdue": days_overdue,
                },
                ("invoice", "key", "recipient"),
            )
            events.append(("notification", invoice_id, customer_id, template.render(number, key, recipient)))
            report.notifications[channel] += 1


def _decoded(raw: Any) -> list[Any]:
    """A tag list as read by `sweep_rows`: its JSON text (or, from a driver that decodes JSON, the list)."""
    if isinstance(raw, str):
        return json.loads(raw) or []
    return list(raw or ())
