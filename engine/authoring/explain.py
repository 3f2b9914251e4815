"""`dunning explain NUMBER`: why one invoice is where it is, and what happens next, in plain words.

Nothing here decides anything on its own. The facts are built the way the sweep builds them (the same
`customer_facts` / `invoice_facts` / `customer_totals` helpers of engine.sweep), the policy is chosen by
`PolicySet.governing`, conditions are worded by `CompiledExpression.explain`, and "what happens next" is
found by asking `engine.policy.decide.decide` — the one implementation of the rules — on the next possible
action day it names (`Decision.next_on`), hop by hop, until it answers something other than "stay",
assuming nothing about the invoice changes meanwhile.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from engine.charging import invoice_charges
from engine.clock import iso, local_day
from engine.currencies import in_minor_units
from engine.errors import ChargesError, NotFound
from engine.policy.calendar import CALENDAR_DAYS, DayCounter, day_counter
from engine.policy.decide import Decision, decide, map_stage
from engine.policy.decide import stage_rule as target_rule
from engine.policy.model import CLOSED_STATES, CURRENT, DISPUTED, PAID, PAUSED_STATES, PROMISED, Policy
from engine.store.inbound import hold_reasons_for
from engine.store.invoices import customer_totals
from engine.store.queries import explain_record
from engine.sweep import customer_facts, invoice_facts

if TYPE_CHECKING:
    from engine.app import Dunning

#: How far ahead `explain` looks for the next action before saying "nothing more will happen".
LOOKAHEAD_DAYS = 3 * 366
#: `explain` assumes nothing about the invoice or the customer changes: only the days overdue move.
ONLY_TIME_MOVES = frozenset({"invoice.days_overdue"})
#: Events that start a pause, as written by the collector actions (engine.actions).
PAUSE_EVENTS = ("dispute", "promise", "plan")
CENTS = Decimal("0.01")
#: Who may let an invoice into an `approval: required` stage.
APPROVERS = "`dunning approve {}`, or a manager in the web workspace"


@dataclass
class Explanation:
    """Everything `explain` found out, as data (`as_dict`) and as plain sentences (`lines`)."""

    number: str
    customer_id: str
    customer_name: str
    currency: str
    amount: Any
    open_amount: Any
    due_on: date
    as_of: datetime
    today: date
    days_overdue: int
    day_count: str
    state: str  # "open", "paused" or "closed"
    stage: str
    policy: str | None
    policy_reason: str
    policies_not_matching: list[str] = field(default_factory=list)
    stored_policy: str | None = None
    policy_change: str | None = None
    stage_since: date | None = None
    stage_rule: str | None = None
    stage_rule_at: date | None = None
    next_action: dict[str, Any] | None = None
    holding: list[str] = field(default_factory=list)
    paused: str | None = None
    closed: str | None = None
    #: what the invoice owes under its policy's `charges:` (None without them): principal_open, interest,
    #: compensation, fees, total_due, basis — or {"error": …} when a reference rate is missing
    charges: dict[str, Any] | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "number": self.number,
            "customer_id": self.customer_id,
            "customer_name": self.customer_name,
            "currency": self.currency,
            "amount": self.amount,
            "open_amount": self.open_amount,
            "due_on": self.due_on,
            "as_of": iso(self.as_of),
            "days_overdue": self.days_overdue,
            "day_count": self.day_count,
            "state": self.state,
            "stage": self.stage,
            "stage_since": self.stage_since,
            "stage_rule": self.stage_rule,
            "stage_rule_at": self.stage_rule_at,
            "policy": self.policy,
            "policy_reason": self.policy_reason,
            "policies_not_matching": self.policies_not_matching,
            "stored_policy": self.stored_policy,
            "policy_change": self.policy_change,
            "next": self.next_action,
            "holding": self.holding,
            "paused": self.paused,
            "closed": self.closed,
            "charges": self.charges,
        }

    def lines(self) -> list[str]:
        out = [
            f"Invoice {self.number} of {self.customer_name} ({self.customer_id}): "
            f"{_money(self.open_amount, self.currency)} {self.currency} open of {_money(self.amount, self.currency)}, "
            f"due {self.due_on}; "
            f"{_overdue(self.days_overdue, self.day_count)} on {self.today}.",
        ]
        if self.closed:
            out.append(self.closed)
            return out
        if self.charges is not None:
            out.append(_charges_line(self.charges, self.currency))
        if self.policy:
            out.append(f"Policy: {self.policy} — {self.policy_reason}.")
        for reason in self.policies_not_matching:
            out.append(f"  (not {reason})")
        if self.policy_change:
            out.append(self.policy_change)
        if self.stage == CURRENT:
            out.append("Stage: current — not in any stage of the ladder yet.")
        else:
            since = f" since {self.stage_since}" if self.stage_since else ""
            days = f" ({(self.today - self.stage_since).days} day(s))" if self.stage_since else ""
            rule = f', put there by the rule "{self.stage_rule}"' if self.stage_rule else ""
            on = f" on {self.stage_rule_at}" if self.stage_rule and self.stage_rule_at else ""
            out.append(f"Stage: {self.stage}{since}{days}{rule}{on}.")
        if self.paused:
            out.append(f"Paused: {self.paused}.")
        if self.next_action:
            n = self.next_action
            approval = n.get("approval")
            then = f"; once approved it enters {n['stage']}, notified by {', '.join(n['channels'])}."
            if approval and approval["waiting_since"]:
                out.append(
                    f"Next: waiting since {approval['waiting_since']} for an approval to enter {n['stage']} "
                    f"({n['rule']}): nothing happens until someone approves it ({APPROVERS.format(self.number)})" + then
                )
            elif approval:
                out.append(
                    f"Next: due for {n['stage']} on {n['on']} ({n['rule']}), a stage that needs an approval: "
                    f"from then it waits, silent, until someone approves it ({APPROVERS.format(self.number)})" + then
                )
            elif n["action"] == "escalate":
                out.append(
                    f"Next: enters {n['stage']} on {n['on']} ({n['rule']}), notified by {', '.join(n['channels'])}."
                )
            else:
                out.append(
                    f"Next: {n['stage']} is sent again (repeat {n['repeat']}) on {n['on']} by "
                    f"{', '.join(n['channels'])}."
                )
        elif not self.paused:
            out.append(
                "Next: nothing more will happen by itself under this policy (only a payment, an import or "
                "a collector's action changes it)."
            )
        if self.holding:
            out.append("Held back:")
            out.extend(f"  - {reason}" for reason in self.holding)
        return out


def explain_invoice(dunning: Dunning, number: str, as_of: datetime | None = None) -> Explanation:
    """Explain invoice `number` as of `as_of` (default: the latest sweep, else now)."""
    zone = dunning.settings.zone
    latest = dunning.latest_sweep()
    instant = as_of or latest or dunning.clock.now()
    today = local_day(instant, zone)
    record = explain_record(dunning.repo, number, today, customer_totals)
    if record is None:
        raise NotFound(f"no invoice numbered {number!r}; `dunning status --json` lists the open ones")
    row, totals, events = record
    inbound_holds = hold_reasons_for(dunning.repo, row["customer_id"], row["id"], row["c_email"], instant)

    policies = dunning.policies
    calendar_days = (today - row["due_on"]).days
    facts = {**customer_facts(row, totals), **invoice_facts(row, calendar_days)}
    policy = policies.governing(facts)
    counter = day_counter(policy)
    days_overdue = _days_overdue(counter, row, today)
    facts["invoice.days_overdue"] = days_overdue
    stage = row["stage"]
    found = Explanation(
        number=number,
        customer_id=row["customer_id"],
        customer_name=row["c_name"],
        currency=row["currency"],
        amount=row["amount"],
        open_amount=row["open_amount"],
        due_on=row["due_on"],
        as_of=instant,
        today=today,
        days_overdue=days_overdue,
        day_count=policy.days.value,
        state="open",
        stage=stage,
        policy=policy.name,
        policy_reason="",
        stored_policy=row["policy"],
    )

    transitions = [(local_day(at, zone), data or {}) for kind, at, data in events if kind == "transition"]
    into = [t for t in transitions if t[1].get("to") == stage]
    if into:
        found.stage_rule_at, found.stage_rule = into[-1][0], into[-1][1].get("rule")
    entered_at = row["stage_entered_at"]
    found.stage_since = local_day(entered_at, zone) if entered_at else (into[-1][0] if into else None)

    if stage in CLOSED_STATES:
        found.state = "closed"
        closed = local_day(row["closed_at"], zone) if row.get("closed_at") else found.stage_since
        how = "paid in full" if stage == PAID else "written off"
        found.closed = f"Closed: {how}{f' on {closed}' if closed else ''}; nothing more will happen to it."
        found.policy = row["policy"]
        return found

    found.holding.extend(inbound_holds)  # a bounced address, a reply being read (engine.replies)
    found.charges = _charges(dunning, number, instant, policies.by_name(row["policy"] or "") or policy)

    # Which policy, and why.
    for candidate in policies.policies:
        if candidate is policy:
            break
        if candidate.applies_to is not None:
            found.policies_not_matching.append(
                f'{candidate.name}: its applies_to "{candidate.applies_to.source}" does not hold — '
                f"{candidate.applies_to.explain(_display_facts(facts))}"
            )
    if policy.applies_to is not None:
        found.policy_reason = (
            f'its applies_to "{policy.applies_to.source}" holds: {policy.applies_to.explain(_display_facts(facts))}'
        )
    else:
        found.policy_reason = "the default policy: no other policy's applies_to holds for this invoice"

    if stage in PAUSED_STATES:
        found.state = "paused"
        found.paused = _pause_reason(stage, events, zone, row)
        found.holding.append(f"paused: {found.paused}")
        return found

    # A policy taking over (or a stage it lacks) is settled by the next sweep before anything else.
    ladder_stage = stage
    if row["policy"] != policy.name or (stage != CURRENT and not policy.has_stage(stage)):
        ladder_stage = map_stage(policies.by_name(row["policy"] or ""), policy, stage, days_overdue)
        if row["policy"] is not None:
            found.policy_change = (
                f"Policy change: it was under {row['policy']} in {stage}; the next sweep moves it to {policy.name}"
                + (f", landing in {ladder_stage} without notifying." if ladder_stage != stage else ".")
            )
        facts["invoice.stage"] = ladder_stage
    moved = ladder_stage != stage
    entered_on = None if moved else found.stage_since
    last_notice_on = None if moved else (local_day(row["last_notice_at"], zone) if row["last_notice_at"] else None)
    repeats_done = 0 if moved else row["stage_repeats"]
    awaiting = row.get("awaiting_stage")
    if awaiting:
        requested = [(at, data or {}) for kind, at, data in events if kind == "approval_requested"]
        since = local_day(requested[-1][0], zone) if requested else None
        rule = requested[-1][1].get("rule") if requested else None
        found.holding.append(
            f"waiting for approval to enter {awaiting}{f' since {since}' if since else ''} ({APPROVERS.format(number)})"
        )

    # What happens next: ask the rules, day by day, from the next sweep on.
    first = today + timedelta(days=1) if latest is not None and local_day(latest, zone) >= today else today
    # The reasons are given as of `today`, the day the user asked about; the walk starts at the next sweep.
    now_decision = _decide(
        policy, ladder_stage, row, today, counter, facts, entered_on, last_notice_on, repeats_done, explain=True
    )
    shown = _display_facts(facts)
    for skip in now_decision.skipped:
        found.holding.append(_skip_reason(policy, skip.stage, skip.reason, shown))
    found.holding.extend(now_decision.waiting)
    decision, on = (
        _decide(policy, ladder_stage, row, first, counter, facts, entered_on, last_notice_on, repeats_done),
        first,
    )
    if awaiting:
        decision = Decision("stay")  # the sweep leaves it alone until someone approves
        if policy.has_stage(awaiting):
            target = policy.stage(awaiting)
            found.next_action = {
                "action": "escalate",
                "stage": target.name,
                "on": since,
                "rule": rule or target_rule(target),
                "repeat": 0,
                "channels": list(target.channels),
                "skipped": [],
                "approval": {"required": True, "waiting_since": since, "approve": f"dunning approve {number}"},
            }
    horizon = first + timedelta(days=LOOKAHEAD_DAYS)
    while decision.action == "stay" and not awaiting:
        # Hop to the next day the rules could act (decide's next_on); a broken promise's forced move
        # (escalate_now) may come any day, so then day by day.
        hop = on + timedelta(days=1) if row.get("escalate_now") else decision.next_on
        if hop > horizon:
            break
        on = hop
        decision = _decide(policy, ladder_stage, row, on, counter, facts, entered_on, last_notice_on, repeats_done)
    if decision.action != "stay" and decision.target is not None:
        target = policy.stage(decision.target)
        found.next_action = {
            "action": decision.action,
            "stage": target.name,
            "on": on,
            "rule": decision.rule,
            "repeat": decision.repeat_no,
            "channels": list(target.channels),
            "skipped": [{"stage": s.stage, "reason": s.reason} for s in decision.skipped],
            # An `approval: required` stage is not entered on that day: the sweep asks for the approval.
            "approval": (
                {"required": True, "waiting_since": None, "approve": f"dunning approve {number}"}
                if decision.action == "escalate" and target.approval_required
                else None
            ),
        }
    # Conditions further up the ladder that currently keep a stage out of reach.
    position = policy.stage_index(ladder_stage)
    reported = {s.stage for s in now_decision.skipped}
    for later in policy.stages[position + 1 :]:
        if later.name in reported or later.when is None or later.when.evaluate(facts):
            continue
        found.holding.append(
            f"{later.name} (at {later.after_days} days overdue) will be skipped as things stand: "
            f"{later.when.explain(shown)} (needs {later.when.source})"
        )
    return found


def _display_facts(facts: dict[str, Any]) -> dict[str, Any]:
    """The facts with amounts shown to the cent (stored with 4 places: 12,000.00 reads better than
    12,000.0000); quantizing exact amounts changes no comparison, so the verdicts stay the same."""
    shown = dict(facts)
    for name, value in facts.items():
        if isinstance(value, Decimal) and value == value.quantize(CENTS):
            shown[name] = value.quantize(CENTS)
    return shown


def _days_overdue(counter: DayCounter, row: Any, today: date) -> int:
    """As the sweep counts them: in the policy's days, less the days spent paused (disputed, promised)."""
    calendar_days = (today - row["due_on"]).days
    counted = calendar_days if counter is CALENDAR_DAYS else counter.between(row["due_on"], today)
    return counted - (row.get("paused_days") or 0)


def _decide(
    policy: Policy,
    stage: str,
    row: Any,
    today: date,
    counter: DayCounter,
    facts: dict[str, Any],
    entered_on: date | None,
    last_notice_on: date | None,
    repeats_done: int,
    explain: bool = False,
) -> Decision:
    days_overdue = _days_overdue(counter, row, today)
    facts = {**facts, "invoice.days_overdue": days_overdue}
    # A broken promise makes the next sweep move the invoice on at once (engine.commitments).
    force = {"force_next": True} if row.get("escalate_now") else {}
    return decide(
        policy,
        stage=stage,
        days_overdue=days_overdue,
        entered_on=entered_on,
        last_notice_on=last_notice_on,
        repeats_done=repeats_done,
        today=today,
        counter=counter,
        facts=facts,
        explain=explain,
        moving=ONLY_TIME_MOVES,
        **force,
    )


def _skip_reason(policy: Policy, stage: str, reason: str, facts: dict[str, Any]) -> str:
    candidate = policy.stage(stage) if policy.has_stage(stage) else None
    if candidate is not None and candidate.when is not None and reason.startswith("condition not met"):
        return f"{stage} skipped: {candidate.when.explain(facts)} (needs {candidate.when.source})"
    return f"{stage} skipped: {reason}"


def _pause_reason(stage: str, events: list[Any], zone: Any, row: Any) -> str:
    """ "disputed since 2026-11-02 (goods damaged)" from the latest event that started the pause."""
    started = [(kind, at, data or {}) for kind, at, data in events if kind in PAUSE_EVENTS]
    if not started:
        since = row.get("paused_since") or row["stage_entered_at"]
        return f"{stage}{f' since {local_day(since, zone)}' if since else ''}"
    kind, at, data = started[-1]
    since = local_day(at, zone)
    if stage == DISPUTED or kind == "dispute":
        reason = data.get("reason")
        return f"disputed since {since}" + (f" ({reason})" if reason else "")
    if kind == "plan":
        parts = data.get("installments") or []
        return (
            f"payment plan since {since}: {len(parts)} installment(s), {data.get('total')} "
            f"{data.get('currency', '')}".rstrip()
        )
    if stage == PROMISED or kind == "promise":
        grace = f"; escalation resumes after {data['grace_until']} if unpaid" if data.get("grace_until") else ""
        return f"promised since {since}: {data.get('amount')} {data.get('currency', '')} by {data.get('by')}{grace}"
    return f"{stage} since {since}"


def _charges(dunning: Dunning, number: str, instant: datetime, policy: Policy) -> dict[str, Any] | None:
    """The invoice's charges at the end of the day asked about, as `dunning charges` computes them."""
    if policy.charges is None:
        return None
    try:
        owed = invoice_charges(dunning, number, instant)
    except ChargesError as exc:
        return {"error": str(exc)}
    return {
        "principal_open": owed.principal_open,
        "interest": owed.interest,
        "compensation": owed.compensation,
        "fees": owed.fees,
        "total_due": owed.total_due,
        "basis": owed.basis,
    }


def _charges_line(charges: dict[str, Any], currency: str) -> str:
    """ "Charges: principal open 6,000.00 + interest 65.63 + compensation 40.00 + fees 0.00 = total due
    6,105.63 EUR (Directive 2011/7/EU …)." """
    if "error" in charges:
        return f"Charges: cannot be computed: {charges['error']}."
    parts = " + ".join(
        f"{label} {charges[key]:,}"  # rounded to the currency's minor unit already: JPY shows none
        for label, key in (
            ("principal open", "principal_open"),
            ("interest", "interest"),
            ("compensation", "compensation"),
            ("fees", "fees"),
        )
    )
    basis = f" ({charges['basis']})" if charges["basis"] else ""
    return f"Charges: {parts} = total due {charges['total_due']:,} {currency}{basis}."


def _money(value: Any, currency: str) -> str:
    """`12,000.00` for EUR, `5,000` for JPY: the currency's minor units, as a person reads the amount."""
    try:
        return f"{in_minor_units(Decimal(value), currency):,}"
    except (TypeError, ValueError, ArithmeticError):
        return str(value)


def _overdue(days: int, count: str) -> str:
    unit = "business day(s)" if count == "business" else "day(s)"
    if days > 0:
        return f"{days} {unit} overdue"
    if days == 0:
        return "due today"
    return f"due in {-days} {unit}"
