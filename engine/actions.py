"""Collector actions: what a person does to one invoice between sweeps.

Every action goes through the invoice's state machine (an illegal move raises IllegalTransition and changes
nothing), runs in one write transaction, and records its event — with the actor and the reason — through
`engine.store.events.append_events`. Where an invoice stops being chased (dispute, promise, plan, write-off) its
queued notifications are cancelled. The daemon picks the changes up at its next sweep: a changed invoice's
`next_action_on` is reset, so even incremental sweeps look at it again.

    Collector(app, actor="alice").dispute("INV-1", "goods not delivered")
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

from engine.charging import Charging, StageEntry, stage_fee_events
from engine.clock import iso, local_day
from engine.commitments import cancel_open, grace_until, paused_for, resume_target
from engine.currencies import money_text
from engine.errors import ActionRefused, DunningError, IllegalTransition, NotFound
from engine.policy.decide import stage_rule
from engine.policy.machine import Case, machine_for_invoice
from engine.policy.model import CLOSED_STATES, CURRENT, DISPUTED, LIFECYCLE_STATES, PROMISED, WRITTEN_OFF, Policy
from engine.store import commitments as commitment_rows
from engine.store import invoices, outbox, sweeps
from engine.store.bulk import update_invoices
from engine.store.database import Connection
from engine.store.events import append_events, new_event
from engine.sweep import customer_facts, invoice_facts

if TYPE_CHECKING:
    from engine.app import Dunning

ZERO = Decimal(0)


def parse_installments(text: str) -> list[tuple[date, Decimal]]:
    """`"2026-12-01:5000,2027-01-01:5000"` → [(date, amount), ...]; errors say which item is wrong."""
    items: list[tuple[date, Decimal]] = []
    for position, item in enumerate(filter(None, (part.strip() for part in text.split(","))), start=1):
        day, sep, amount = item.partition(":")
        try:
            if not sep:
                raise ValueError
            items.append((date.fromisoformat(day.strip()), Decimal(amount.strip())))
        except (ValueError, InvalidOperation):
            raise ActionRefused(
                f'installment {position} ({item!r}) is not DATE:AMOUNT; write e.g. "2026-12-01:5000,2027-01-01:5000"'
            ) from None
    if not items:
        raise ActionRefused('no installments given; write e.g. --installments "2026-12-01:5000,2027-01-01:5000"')
    return items


def refuse_before_latest_sweep(conn: Connection, at: datetime, subject: str) -> None:
    """An action may not be dated before the latest sweep: that sweep already acted on the book as it stood
    (escalated, notified, counted days overdue), and an action slipped in behind it would make a history
    that is out of order ("promised since 12-03", then a notice on 12-01 sent while it was promised)."""
    latest = sweeps.latest_as_of(conn)
    if latest is not None and at < latest:
        raise ActionRefused(
            f"{subject}: the action is dated {iso(at)}, before the latest sweep ({iso(latest)}), which already "
            f"acted on the book as it stood then; record it as of {iso(latest)} or later (--at, or leave --at "
            "out for now) and give the real date in its note or reason"
        )


class Collector:
    """Collector actions on single invoices, recorded under `actor` (a person, or "system")."""

    def __init__(self, dunning: Dunning, actor: str = "system"):
        if not actor or not actor.strip():
            raise ActionRefused("the actor must be a name; pass --actor NAME or set $DUNNING_ACTOR")
        self.app = dunning
        self.actor = actor.strip()

    # -- pauses ----------------------------------------------------------------------------------

    def dispute(self, number: str, reason: str, *, at: datetime | None = None) -> None:
        """Stop chasing the invoice until the dispute is resolved: no escalation, no notifications."""
        reason = _required(reason, "a dispute needs a reason (--reason TEXT)")
        with self._invoice(number, at) as act:
            row = act.row
            was = row["stage"]
            act.fire("dispute")
            change: dict[str, Any] = {"stage": DISPUTED, "awaiting_stage": None, "escalate_now": False}
            if was == PROMISED:
                # The promise (or plan) is superseded; the pause simply goes on, back to the same stage later.
                cancel_open(act.conn, row["id"], act.at)
            else:
                change.update(resume_stage=was, paused_since=act.at)
            act.change(change)
            act.cancel_notices("invoice disputed")
            act.event("dispute", {"reason": reason, "from": was})
            act.transition(was, DISPUTED, f"dispute: {reason}", reason=reason)

    def resolve_dispute(self, number: str, note: str | None = None, *, at: datetime | None = None) -> None:
        """End a dispute: escalation resumes from the stage the invoice was in, paused days not counted."""
        with self._invoice(number, at) as act:
            row = act.row
            if row["stage"] != DISPUTED:
                raise ActionRefused(f"invoice {number} is {row['stage']!r}, not disputed; nothing to resolve")
            target = resume_target(act.policy, row["resume_stage"])
            act.fire(f"resume_to_{target}", machine_stage=target)
            paused = paused_for(act.policy, row["paused_since"], act.at, self.app.settings.zone)
            act.change(
                {
                    "stage": target,
                    "resume_stage": None,
                    "paused_since": None,
                    "paused_days": (row["paused_days"] or 0) + paused,
                }
            )
            act.event("dispute_resolved", {"note": note, "to": target, "paused_days": paused})
            act.transition(
                DISPUTED, target, "dispute resolved" + (f": {note}" if note else ""), reason=note, paused_days=paused
            )

    def promise(
        self, number: str, amount: Decimal, by: date, note: str | None = None, *, at: datetime | None = None
    ) -> None:
        """The customer promises `amount` by `by`: escalation waits until then plus the policy's grace days."""
        amount = _positive(amount, "the promised amount")
        with self._invoice(number, at) as act:
            row = act.row
            today = local_day(act.at, self.app.settings.zone)
            if by < today:
                raise ActionRefused(f"the promise date {by} is before today ({today}); give a date from today on")
            if amount > row["open_amount"]:
                raise ActionRefused(
                    f"the promised {amount} exceeds the open amount {money_text(row['open_amount'], row['currency'])} of "
                    f"invoice {number}; promise at most that much"
                )
            was = row["stage"]
            act.fire("promise")
            grace = grace_until(act.policy, by)
            commitment_rows.add_promise(
                act.conn,
                invoice_id=row["id"],
                amount=amount,
                since_on=today,
                due_on=by,
                grace_until=grace,
                at=act.at,
                actor=self.actor,
            )
            act.change(
                {
                    "stage": PROMISED,
                    "resume_stage": was,
                    "paused_since": act.at,
                    "awaiting_stage": None,
                    "escalate_now": False,
                }
            )
            act.cancel_notices("payment promised")
            act.event(
                "promise",
                {
                    "amount": str(amount),
                    "currency": row["currency"],
                    "by": by.isoformat(),
                    "grace_until": grace.isoformat(),
                    "note": note,
                    "from": was,
                },
            )
            act.transition(was, PROMISED, f"promise to pay {amount} by {by}", reason=note)

    def plan(self, number: str, installments: Sequence[tuple[date, Decimal]], *, at: datetime | None = None) -> None:
        """Agree a payment plan: escalation waits while each installment arrives by its date plus grace."""
        if not installments:
            raise ActionRefused("a plan needs at least one installment (DATE:AMOUNT)")
        with self._invoice(number, at) as act:
            row = act.row
            today = local_day(act.at, self.app.settings.zone)
            days = [day for day, _ in installments]
            if days != sorted(set(days)):
                raise ActionRefused("installment dates must be distinct and in order; sort them by date")
            if days[0] < today:
                raise ActionRefused(f"the first installment ({days[0]}) is before today ({today})")
            amounts = [_positive(amount, f"installment {i}") for i, (_, amount) in enumerate(installments, 1)]
            total = sum(amounts, ZERO)
            if total > row["open_amount"]:
                raise ActionRefused(
                    f"the installments total {total}, more than the open amount "
                    f"{money_text(row['open_amount'], row['currency'])} of invoice {number}; lower them"
                )
            was = row["stage"]
            act.fire("promise")
            plan_id = commitment_rows.add_plan(
                act.conn,
                invoice_id=row["id"],
                since_on=today,
                at=act.at,
                actor=self.actor,
                installments=[
                    (day, amount, grace_until(act.policy, day)) for day, amount in zip(days, amounts, strict=True)
                ],
            )
            act.change(
                {
                    "stage": PROMISED,
                    "resume_stage": was,
                    "paused_since": act.at,
                    "awaiting_stage": None,
                    "escalate_now": False,
                }
            )
            act.cancel_notices("payment plan agreed")
            act.event(
                "plan",
                {
                    "plan": plan_id,
                    "currency": row["currency"],
                    "total": str(total),
                    "installments": [
                        {"due_on": d.isoformat(), "amount": str(a)} for d, a in zip(days, amounts, strict=True)
                    ],
                    "from": was,
                },
            )
            act.transition(was, PROMISED, f"payment plan: {len(days)} installment(s), {total} in total")

    # -- records and overrides -------------------------------------------------------------------

    def note(self, number: str, text: str, *, at: datetime | None = None) -> None:
        """A free-text note in the invoice's history (changes nothing else)."""
        text = _required(text, "the note is empty; write what happened")
        with self._invoice(number, at, changing=False) as act:
            act.event("note", {"text": text, "stage": act.row["stage"]})

    def write_off(self, number: str, reason: str, *, at: datetime | None = None) -> None:
        """Stop collecting: the open amount becomes bad debt, recorded with the reason and the approver."""
        reason = _required(reason, "a write-off needs a reason (--reason TEXT)")
        with self._invoice(number, at) as act:
            row = act.row
            was = row["stage"]
            act.fire("write_off")
            cancel_open(act.conn, row["id"], act.at)
            act.change(invoices.closed(WRITTEN_OFF, act.at))
            act.cancel_notices("invoice written off")
            act.event(
                "write_off",
                {
                    "reason": reason,
                    "amount": money_text(row["open_amount"], row["currency"]),
                    "currency": row["currency"],
                    "from": was,
                    "approver": self.actor,
                },
            )
            act.transition(was, WRITTEN_OFF, f"written off: {reason}", reason=reason)

    def move(self, number: str, to: str, reason: str, *, at: datetime | None = None) -> None:
        """Manual override: put the invoice in stage `to` (or `current`) and send that stage's notices."""
        reason = _required(reason, "a manual move needs a reason (--reason TEXT)")
        with self._invoice(number, at) as act:
            row = act.row
            was = row["stage"]
            if to in LIFECYCLE_STATES:
                raise ActionRefused(
                    f"{to!r} is not a stage to move to; use dunning dispute, promise or write-off for that"
                )
            if to != CURRENT and (act.policy is None or not act.policy.has_stage(to)):
                known = ", ".join([CURRENT, *(s.name for s in act.policy.stages)]) if act.policy else CURRENT
                raise ActionRefused(
                    f"policy {row['policy'] or '(none yet)'} has no stage {to!r}; choose one of {known}"
                )
            change: dict[str, Any] = {
                **invoices.entered_stage(to, act.at, notified=False),
                "awaiting_stage": None,
                "escalate_now": False,
            }
            if was in (DISPUTED, PROMISED):
                act.fire(f"resume_to_{to}")
                cancel_open(act.conn, row["id"], act.at)
                paused = paused_for(act.policy, row["paused_since"], act.at, self.app.settings.zone)
                change.update(resume_stage=None, paused_since=None, paused_days=(row["paused_days"] or 0) + paused)
            else:
                act.fire(f"move_to_{to}")
            rule = f"manual move: {reason}"
            notifies = to != CURRENT and act.policy is not None and bool(act.policy.stage(to).channels)
            if notifies:
                change["last_notice_at"] = act.at
            act.change(change)
            act.event("override", {"from": was, "to": to, "reason": reason})
            act.transition(was, to, rule, reason=reason)
            act.charge_stage_fee(to)
            if notifies:
                act.notify(to, rule)

    def approve(self, number: str, *, at: datetime | None = None) -> None:
        """Let an invoice awaiting approval enter its stage now; that stage's notifications go out."""
        with self._invoice(number, at) as act:
            row = act.row
            target = row["awaiting_stage"]
            if not target:
                raise ActionRefused(f"invoice {number} is not awaiting approval (it is {row['stage']!r})")
            if act.policy is None or not act.policy.has_stage(target):
                raise ActionRefused(
                    f"stage {target!r} is no longer in policy {row['policy']}; the next sweep re-decides this invoice"
                )
            was = row["stage"]
            act.fire(f"escalate_to_{target}")
            rule = f"{stage_rule(act.policy.stage(target))}; approved by {self.actor}"
            act.change(
                {**invoices.entered_stage(target, act.at, notified=True), "awaiting_stage": None, "escalate_now": False}
            )
            act.event("approval", {"stage": target, "from": was, "approver": self.actor})
            act.transition(was, target, rule, approved_by=self.actor)
            act.charge_stage_fee(target)
            act.notify(target, rule)

    # -- plumbing --------------------------------------------------------------------------------

    def _invoice(self, number: str, at: datetime | None, *, changing: bool = True) -> _Action:
        return _Action(self, number, at or self.app.clock.now(), changing)


class _Action:
    """One action's transaction: the invoice row (locked on PostgreSQL), its policy, and what to write."""

    def __init__(self, collector: Collector, number: str, at: datetime, changing: bool):
        if at.tzinfo is None:
            raise ActionRefused("the action instant must carry a time zone")
        self.collector = collector
        self.app = collector.app
        self.number = number
        self.at = at
        self.changing = changing
        self._changes: dict[str, Any] = {}
        self._events: list[dict[str, Any]] = []
        self._notices: list[dict[str, Any]] = []

    def __enter__(self) -> _Action:
        self._session_cm = self.app.repo.write()
        session = self._session_cm.__enter__()
        try:
            self.conn: Connection = session.connection()
            row = invoices.for_action(self.conn, self.number)
            if row is None:
                raise NotFound(f"no invoice numbered {self.number!r}; `dunning status --json` lists the open ones")
            self.row: Mapping[str, Any] = row
            refuse_before_latest_sweep(self.conn, self.at, f"invoice {self.number}")
            self.policy = self._policy(row)
            self.recorded_at = self.app.clock.now()
        except BaseException as exc:
            self._session_cm.__exit__(type(exc), exc, exc.__traceback__)
            raise
        return self

    def __exit__(self, kind: Any, exc: Any, tb: Any) -> bool | None:
        if kind is None:
            try:
                if self._changes:
                    update_invoices(
                        self.conn,
                        [
                            {
                                **self._changes,
                                "id": self.row["id"],
                                "next_action_on": None,
                                "updated_at": self.recorded_at,
                            }
                        ],
                    )
                if self._notices:
                    outbox.queue(self.conn, self._notices)
                    zone = self.app.settings.zone
                    # the interest each notice claims, as a sweep's notices record it
                    Charging(self.app.policies_if_valid(), zone).price_notices(
                        self.conn, self._events, local_day(self.at, zone)
                    )
                append_events(self.conn, self._events)
            except BaseException as error:
                # Roll back, then raise: the context manager's __exit__ returns False for an exception it
                # re-raised, which would swallow it (the caller would report an action nothing recorded).
                self._session_cm.__exit__(type(error), error, error.__traceback__)
                raise
        return self._session_cm.__exit__(kind, exc, tb)

    def _policy(self, row: Mapping[str, Any]) -> Policy | None:
        try:
            policies = self.app.policies
        except DunningError:
            return None
        stored = policies.by_name(row["policy"]) if row["policy"] else None
        if stored is not None:
            return stored
        # Never swept yet: the policy that would govern it now.
        today = local_day(self.at, self.app.settings.zone)
        facts = {**customer_facts(row, None), **invoice_facts(row, (today - row["due_on"]).days)}
        return policies.governing(facts)

    def fire(self, trigger: str, *, machine_stage: str | None = None) -> None:
        stage = self.row["stage"]
        if stage in CLOSED_STATES and trigger not in ("write_off",):
            state = "paid" if stage != WRITTEN_OFF else "written off"
            raise IllegalTransition(f"invoice {self.number} is already {state}; nothing was changed")
        machine_for_invoice(self.policy, machine_stage or stage).fire(Case(self.number, stage), trigger)

    def change(self, values: dict[str, Any]) -> None:
        self._changes.update(values)

    def event(self, kind: str, data: dict[str, Any]) -> None:
        row = self.row
        self._events.append(
            new_event(
                kind,
                at=self.at,
                recorded_at=self.recorded_at,
                invoice_id=row["id"],
                customer_id=row["customer_id"],
                actor=self.collector.actor,
                number=self.number,
                data={k: v for k, v in data.items() if v is not None},
            )
        )

    def transition(self, source: str, dest: str, rule: str, **extra: Any) -> None:
        policy = self.policy
        self.event(
            "transition",
            {
                "from": source,
                "to": dest,
                "rule": rule,
                "policy": self.row["policy"] or (policy.name if policy else None),
                "policy_hash": policy.hash if policy is not None else None,
                **extra,
            },
        )

    def charge_stage_fee(self, stage: str) -> None:
        """The stage's fee (charges.fees), charged as a sweep entering it would: once per invoice and stage."""
        if self.policy is None or self.policy.charges is None:
            return
        row = self.row
        entry = StageEntry(
            row["id"],
            row["customer_id"],
            self.number,
            row["currency"],
            self.policy.charges,
            stage,
            self.at,
            self.recorded_at,
            self.collector.actor,
        )
        self._events.extend(stage_fee_events(self.conn, [entry]))

    def cancel_notices(self, reason: str) -> None:
        """Queued notices must not go out once the invoice is no longer being chased."""
        outbox.cancel_pending(self.conn, [self.row["id"]], reason)

    def notify(self, stage: str, rule: str) -> None:
        """Queue `stage`'s notifications now, exactly as a sweep entering it would."""
        assert self.policy is not None
        row = self.row
        today = local_day(self.at, self.app.settings.zone)
        days_overdue = (today - row["due_on"]).days - (row["paused_days"] or 0)
        recipients = self.app.recipients
        spec = self.policy.stage(stage)
        for channel in spec.channels:
            field_name = recipients.get(channel, "email")
            recipient = outbox.recipient_of(row, field_name)
            key = outbox.notification_key(self.number, stage, self.at, 0, channel)
            self._notices.append(
                outbox.notification(
                    key=key,
                    invoice_id=row["id"],
                    customer_id=row["customer_id"],
                    policy=self.policy.name,
                    stage=stage,
                    channel=channel,
                    repeat_no=0,
                    recipient=recipient,
                    recipient_field=field_name,
                    created_at=self.at,
                    fallback=spec.fallback_for(channel),
                )
            )
            self.event(
                "notification",
                {
                    "key": key,
                    "channel": channel,
                    "recipient": recipient,
                    "stage": stage,
                    "repeat": 0,
                    "policy": self.policy.name,
                    "policy_hash": self.policy.hash,
                    "rule": rule,
                    "days_overdue": days_overdue,
                },
            )


def _required(text: str | None, message: str) -> str:
    if text is None or not str(text).strip():
        raise ActionRefused(message)
    return str(text).strip()


def _positive(amount: Any, what: str) -> Decimal:
    try:
        value = Decimal(str(amount))
    except InvalidOperation:
        raise ActionRefused(f"{what} {amount!r} is not a number; write e.g. 5000 or 1234.50") from None
    if not value.is_finite() or value <= 0:
        raise ActionRefused(f"{what} must be a positive amount, got {amount}")
    return value
