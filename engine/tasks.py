"""Tasks for people: the call list and the visit list (the `phone` and `visit` channels).

A task is made when a phone or visit notification is "sent": it is assigned to the customer's `owner` (the
collector) and carries everything needed to act — contact, address, the invoices with amounts and days
overdue, and a summary of what has happened so far. Collectors list and complete tasks from the CLI
(`dunning tasks`, `dunning tasks done ID --outcome ...`). The outcome is recorded in each invoice's history
and feeds the state machine:

    promised        a promise to pay AMOUNT by DATE (engine.actions.Collector.promise): the clock pauses
    disputed        the customer disputes the invoice (Collector.dispute): chasing stops until resolved
    paid            the customer says it is paid: recorded only (payments arrive through imports)
    no_answer       nobody answered / nobody was there: recorded
    wrong_contact   the contact details are wrong: recorded, and the customer is tagged `wrong_contact`
                    (an action's tag: a re-import keeps it unless it changes the email, phone or address)
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

from engine.clock import iso
from engine.errors import NotFound, TaskRefused
from engine.policy.model import CLOSED_STATES
from engine.store import invoices as invoice_rows
from engine.store import tasks as task_rows
from engine.store.events import append_events, new_event
from engine.store.models import TaskStatus
from engine.store.tasks import WRONG_CONTACT_TAG

if TYPE_CHECKING:
    from engine.app import Dunning

OUTCOMES = ("promised", "disputed", "no_answer", "paid", "wrong_contact")


def _row(task: Mapping[str, Any]) -> dict[str, Any]:
    details = task["details"] or {}
    return {
        "id": task["id"],
        "kind": task["kind"],
        "status": task["status"],
        "owner": task["owner"],
        "customer_id": task["customer_id"],
        "stage": task["stage"],
        "created_at": iso(task["created_at"]),
        "contact": details.get("contact", {}),
        "invoices": details.get("invoices", []),
        "history": details.get("history", []),
        "outcome": task["outcome"],
        "note": task["note"],
        "promised_amount": task["promised_amount"],
        "promised_on": task["promised_on"],
        "done_at": iso(task["done_at"]),
        "done_by": task["done_by"],
        "key": task["key"],
    }


class TaskBook:
    """The call and visit lists of one installation."""

    def __init__(self, dunning: Dunning):
        self.app = dunning

    def list(
        self, *, owner: str | None = None, status: str | None = TaskStatus.OPEN, kind: str | None = None
    ) -> list[dict[str, Any]]:
        with self.app.repo.read() as session:
            return [_row(r) for r in task_rows.list_tasks(session.connection(), owner=owner, status=status, kind=kind)]

    def get(self, task_id: int) -> dict[str, Any]:
        with self.app.repo.read() as session:
            row = task_rows.get_task(session.connection(), task_id)
        if row is None:
            raise NotFound(f"no task {task_id}; `dunning tasks` lists the open ones")
        return _row(row)

    def complete(
        self,
        task_id: int,
        outcome: str,
        *,
        note: str | None = None,
        amount: Decimal | str | None = None,
        by: date | None = None,
        actor: str | None = None,
        at: datetime | None = None,
    ) -> dict[str, Any]:
        """Record the outcome of a call or visit (as of `at`, default now); `promised` needs `amount` and `by`.
        Like every collector action it may not be dated before the latest sweep."""
        from engine.actions import Collector, refuse_before_latest_sweep  # pauses go through the state machine

        if outcome not in OUTCOMES:
            raise TaskRefused(f"unknown outcome {outcome!r}; use one of: {', '.join(OUTCOMES)}")
        task = self.get(task_id)
        if task["status"] == TaskStatus.DONE:
            raise TaskRefused(f"task {task_id} was already completed ({task['outcome']}) at {task['done_at']}")
        who = actor or task["owner"] or "collector"
        numbers = [inv["number"] for inv in task["invoices"]]
        promised: Decimal | None = None
        if outcome == "promised":
            if amount is None or by is None:
                raise TaskRefused("a promise needs --amount AMOUNT and --by DATE (e.g. --amount 1200 --by 2026-04-30)")
            try:
                promised = Decimal(str(amount))
            except InvalidOperation:
                raise TaskRefused(f"--amount {amount!r} is not a number; write e.g. 1200.50") from None
            if promised <= 0:
                raise TaskRefused("the promised amount must be positive")
        collector = Collector(self.app, actor=who)
        now = self.app.clock.now()
        when = at or now
        if when.tzinfo is None:
            raise TaskRefused("the outcome's instant must carry a time zone")
        with self.app.repo.read() as session:
            refuse_before_latest_sweep(session.connection(), when, f"task {task_id}")
        still_open = self._open_numbers(numbers)
        if outcome == "promised":
            assert promised is not None and by is not None
            self._spread_promise(collector, still_open, promised, by, note, when)
        elif outcome == "disputed":
            for number in still_open:
                collector.dispute(number, note or f"disputed during {task['kind']}", at=when)
        with self.app.repo.write() as session:
            conn = session.connection()
            refuse_before_latest_sweep(conn, when, f"task {task_id}")  # a sweep may have run meanwhile
            done = task_rows.mark_done(
                conn,
                task_id,
                outcome=outcome,
                note=note,
                promised_amount=promised,
                promised_on=by if outcome == "promised" else None,
                done_at=when,
                done_by=who,
            )
            if not done:
                raise TaskRefused(f"task {task_id} was completed by someone else meanwhile")
            ids = invoice_rows.ids_by_number(conn, numbers)
            data: dict[str, Any] = {"task": task_id, "task_kind": task["kind"], "outcome": outcome, "note": note}
            if promised is not None:
                data.update(amount=str(promised), by=by.isoformat() if by else None)
            append_events(
                conn,
                [
                    new_event(
                        "task_outcome",
                        at=when,
                        recorded_at=now,
                        invoice_id=ids.get(number),
                        customer_id=task["customer_id"],
                        actor=who,
                        number=number,
                        data=data,
                    )
                    for number in numbers
                ],
            )
            if outcome == "wrong_contact":
                task_rows.tag_customer(conn, task["customer_id"], WRONG_CONTACT_TAG)
        return self.get(task_id)

    def _open_numbers(self, numbers: list[str]) -> list[str]:
        with self.app.repo.read() as session:
            stages = invoice_rows.stages_by_number(session.connection(), numbers)
        return [n for n in numbers if n in stages and stages[n] not in CLOSED_STATES]

    def _spread_promise(
        self, collector: Any, numbers: list[str], amount: Decimal, by: date, note: str | None, at: datetime
    ) -> None:
        """A promise covering several invoices is allocated to them oldest first, up to each open amount."""
        with self.app.repo.read() as session:
            rows = invoice_rows.open_amounts_by_due(session.connection(), numbers)
        if not rows:
            raise TaskRefused("every invoice of this task is already closed; record another outcome")
        remaining = amount
        parts: list[tuple[str, Decimal]] = []
        for number, open_amount in rows:
            if remaining <= 0:
                break
            part = min(remaining, open_amount)
            parts.append((number, part))
            remaining -= part
        if remaining > 0:
            raise TaskRefused(
                f"the promised {amount} exceeds the open amount of this task's invoices by "
                f"{remaining}; promise at most {amount - remaining}"
            )
        for number, part in parts:
            collector.promise(number, part, by, note, at=at)
