"""Promises to pay and payment plans: what each sweep settles before it escalates anything.

A promise or an installment is *kept* once the payments dated from its start (`since_on`) up to its grace
day reach what it committed to (for installments: cumulatively, the plan's installments so far); it is
*broken* (a promise) or *missed* (an installment) at the first sweep whose local day is past its grace day
(`due_on` + the policy's `grace_days`) without that. Then:

- a kept promise (or a completed plan) resumes the invoice where it was, if it is still open;
- a broken promise resumes it and flags it to move on to its next stage in this very sweep;
- a missed installment resumes normal escalation and cancels the plan's later installments.

Days spent paused never count toward `after_days` (they are added to the invoice's `paused_days`).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta, tzinfo
from decimal import Decimal
from typing import Any

from engine.clock import local_day
from engine.policy.calendar import day_counter
from engine.policy.machine import Case, machine_for_invoice
from engine.policy.model import CLOSED_STATES, CURRENT, PAID, PROMISED, Policy, PolicySet
from engine.store import commitments as rows_of
from engine.store.bulk import update_invoices
from engine.store.commitments import BROKEN, CANCELLED, KEPT, MISSED, OPEN
from engine.store.database import Connection
from engine.store.events import append_events, new_event

ZERO = Decimal(0)

__all__ = [
    "BROKEN",
    "CANCELLED",
    "KEPT",
    "MISSED",
    "OPEN",
    "SettleReport",
    "cancel_open",
    "grace_until",
    "paused_for",
    "resume_target",
    "settle_commitments",
]


@dataclass
class SettleReport:
    kept: int = 0
    broken: int = 0
    missed: int = 0
    resumed: int = 0


def paused_for(policy: Policy | None, since: datetime | None, until: datetime, zone: tzinfo) -> int:
    """Days paused between two instants, counted the way the policy counts days (0 without a start)."""
    if since is None:
        return 0
    start, end = local_day(since, zone), local_day(until, zone)
    counter = day_counter(policy) if policy is not None else None
    days = counter.between(start, end) if counter is not None else (end - start).days
    return max(days, 0)


def resume_target(policy: Policy | None, resume_stage: str | None) -> str:
    """Where a paused invoice goes back to: the stage it left (current if that is unknown)."""
    return resume_stage or CURRENT


def cancel_open(conn: Connection, invoice_id: int, at: datetime, reason_status: str = CANCELLED) -> int:
    """Close an invoice's open commitments (a dispute, write-off or manual move supersedes them)."""
    return rows_of.cancel_open(conn, invoice_id, at, reason_status)


def grace_until(policy: Policy | None, due_on: date) -> date:
    return due_on + timedelta(days=policy.grace_days if policy is not None else 3)


def settle_commitments(
    conn: Connection,
    *,
    as_of: datetime,
    today: date,
    zone: tzinfo,
    policies: PolicySet,
    recorded_at: datetime,
) -> SettleReport:
    """Resolve every open commitment the payments (or the calendar) have decided, in the sweep's transaction."""
    report = SettleReport()
    rows = rows_of.open_commitments(conn)
    if not rows:
        return report
    by_invoice: dict[int, list[Mapping[str, Any]]] = defaultdict(list)
    for row in rows:
        by_invoice[row["invoice_id"]].append(row)
    earliest = min(row["since_on"] for row in rows)
    payments: dict[int, list[tuple[date, Decimal]]] = defaultdict(list)
    for invoice_id, paid_on, amount in rows_of.payments_since(conn, list(by_invoice), earliest):
        payments[invoice_id].append((paid_on, amount))

    statuses: list[dict[str, Any]] = []
    invoices: list[dict[str, Any]] = []
    events: list[dict[str, Any]] = []

    def event(row: Mapping[str, Any], kind: str, data: dict[str, Any]) -> None:
        events.append(
            new_event(
                kind,
                at=as_of,
                recorded_at=recorded_at,
                invoice_id=row["invoice_id"],
                customer_id=row["customer_id"],
                number=row["number"],
                data=data,
            )
        )

    for invoice_id, commitments in by_invoice.items():
        first = commitments[0]
        policy = policies.by_name(first["policy"] or "")
        outcome: str | None = None  # what happens to the invoice: "kept", "broken", "missed", "completed"
        for row in commitments:
            paid, reached_on = _paid_between(
                payments[invoice_id], row["since_on"], min(today, row["grace_until"]), row["cumulative"]
            )
            if row["stage"] == PAID and reached_on is None:
                reached_on = today  # paid in full (perhaps by a payment dated before the commitment)
            if reached_on is not None:
                status = KEPT
            elif row["stage"] in CLOSED_STATES:
                status = CANCELLED
            elif today > row["grace_until"]:
                status = BROKEN if row["kind"] == "promise" else MISSED
            else:
                break  # still open; later installments can't be settled before this one
            statuses.append({"id": row["id"], "status": status, "resolved_at": as_of, "resolved_on": reached_on})
            data = {
                "amount": str(row["amount"]),
                "due_on": row["due_on"].isoformat(),
                "grace_until": row["grace_until"].isoformat(),
                "paid": str(paid),
                "currency": row["currency"],
            }
            if row["kind"] == "promise":
                if status == KEPT:
                    report.kept += 1
                    event(row, "promise_kept", {**data, "paid_on": reached_on.isoformat() if reached_on else None})
                    outcome = "kept"
                elif status == BROKEN:
                    report.broken += 1
                    event(row, "promise_broken", data)
                    outcome = "broken"
                continue
            data.update(plan=row["plan_id"], installment=row["seq"], cumulative=str(row["cumulative"]))
            if status == KEPT:
                report.kept += 1
                event(row, "installment_kept", {**data, "paid_on": reached_on.isoformat() if reached_on else None})
                if row is commitments[-1] and rows_of.is_last_installment(conn, row["plan_id"], row["seq"]):
                    event(row, "plan_completed", {"plan": row["plan_id"]})
                    outcome = "completed"
            elif status == MISSED:
                report.missed += 1
                event(row, "installment_missed", data)
                outcome = "missed"
                for later in commitments[commitments.index(row) + 1 :]:
                    statuses.append({"id": later["id"], "status": CANCELLED, "resolved_at": as_of, "resolved_on": None})
                break
        if outcome is None or first["stage"] != PROMISED:
            continue
        target = resume_target(policy, first["resume_stage"])
        machine_for_invoice(policy, target).fire(Case(first["number"], PROMISED), f"resume_to_{target}")
        paused = paused_for(policy, first["paused_since"], as_of, zone)
        rule = {
            "kept": "promise kept: escalation resumes",
            "completed": "payment plan completed: escalation resumes",
            "broken": "promise broken: escalation resumes at once",
            "missed": "plan installment missed: escalation resumes",
        }[outcome]
        event(
            first,
            "transition",
            {
                "from": PROMISED,
                "to": target,
                "rule": rule,
                "policy": first["policy"],
                "policy_hash": policy.hash if policy is not None else None,
                "paused_days": paused,
            },
        )
        invoices.append(
            {
                "id": invoice_id,
                "stage": target,
                "resume_stage": None,
                "paused_since": None,
                "paused_days": (first["paused_days"] or 0) + paused,
                "escalate_now": outcome == "broken",
                "next_action_on": None,
                "updated_at": recorded_at,
            }
        )
        report.resumed += 1

    rows_of.resolve(conn, statuses)
    if invoices:
        update_invoices(conn, invoices)
    append_events(conn, events)
    return report


def _paid_between(
    payments: list[tuple[date, Decimal]], start: date, end: date, needed: Decimal
) -> tuple[Decimal, date | None]:
    """Total paid in [start, end], and the day the running total first reached `needed` (None if it didn't)."""
    total, reached = ZERO, None
    for paid_on, amount in payments:
        if paid_on < start or paid_on > end:
            continue
        total += amount
        if reached is None and total >= needed:
            reached = paid_on
    return total, reached
