"""`dunning tasks`: the call list and visit list collectors work through (the phone and visit channels).

dunning tasks [--owner X] [--kind phone|visit] [--all] [--json]
dunning tasks done ID --outcome promised --amount 1200 --by 2026-04-30 [--note TEXT]
dunning tasks done ID --outcome disputed|no_answer|paid|wrong_contact [--note TEXT] [--at DATETIME]
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Annotated

import typer

from engine.cli.credit import ReasonCode, check_reason_code, record_reason_code
from engine.cli.shared import app, emit_json, err, guarded, instant, out, state
from engine.currencies import in_minor_units
from engine.tasks import OUTCOMES, TaskBook, TaskRefused

tasks_app = typer.Typer(help="Calls and visits for collectors: list them, record how they went.")
app.add_typer(tasks_app, name="tasks")

OUTCOME_HELP = f"One of: {', '.join(OUTCOMES)}."


@tasks_app.callback(invoke_without_command=True)
def tasks_list(
    ctx: typer.Context,
    owner: Annotated[str | None, typer.Option("--owner", help="Only this collector's tasks.")] = None,
    kind: Annotated[str | None, typer.Option("--kind", help="Only phone or visit tasks.")] = None,
    show_all: Annotated[bool, typer.Option("--all", help="Completed tasks too.")] = False,
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON for scripts and integrations.")] = False,
) -> None:
    """List open tasks (oldest first) with contact, invoices and what happened so far."""
    if ctx.invoked_subcommand is not None:
        return

    def action() -> None:
        tasks = TaskBook(state.reader()).list(owner=owner, kind=kind, status=None if show_all else "open")
        if json_out:
            emit_json(tasks)
            return
        if not tasks:
            out.print("no open tasks" + (f" for {owner}" if owner else ""), markup=False)
            return
        for task in tasks:
            contact = task["contact"]
            reach = contact.get("phone") if task["kind"] == "phone" else contact.get("address")
            state_text = "open" if task["status"] == "open" else f"done: {task['outcome']}"
            out.print(
                f"#{task['id']} {task['kind']} · {task['owner'] or 'unassigned'} · {contact.get('name')} "
                f"({task['customer_id']}) · {reach or 'no contact on file'} · {state_text}",
                markup=False,
            )
            for inv in task["invoices"]:
                out.print(
                    f"    {inv['number']}: {in_minor_units(Decimal(str(inv['open_amount'])), inv['currency']):,} "
                    f"{inv['currency']} open, "
                    f"{inv['days_overdue']} days overdue (due {inv['due_on']})",
                    markup=False,
                )
            for entry in task["history"][-3:]:
                out.print(f"    {entry['at'][:10]} {entry['invoice'] or ''} {entry['summary']}", markup=False)

    guarded(action)


@tasks_app.command("done")
def tasks_done(
    task_id: Annotated[int, typer.Argument(help="The task's id (from `dunning tasks`).")],
    outcome: Annotated[str, typer.Option("--outcome", help=OUTCOME_HELP)],
    note: Annotated[str | None, typer.Option("--note", help="What was said or agreed.")] = None,
    amount: Annotated[str | None, typer.Option("--amount", help="For promised: the amount promised.")] = None,
    by: Annotated[str | None, typer.Option("--by", help="For promised: the date (YYYY-MM-DD).")] = None,
    actor: Annotated[
        str | None, typer.Option("--actor", envvar="DUNNING_ACTOR", help="Who records it (default: the task's owner).")
    ] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print the completed task as JSON.")] = False,
    reason_code: ReasonCode = None,
    at: Annotated[
        str | None,
        typer.Option("--at", help="When it happened (ISO date or datetime; default now; not before the latest sweep)."),
    ] = None,
) -> None:
    """Record how a call or visit went; promised and disputed pause the invoice's clock."""

    def action() -> None:
        check_reason_code(reason_code)
        day = None
        if by is not None:
            try:
                day = date.fromisoformat(by)
            except ValueError:
                raise TaskRefused(f"--by {by!r} is not a date; write YYYY-MM-DD") from None
        dunning = state.dunning()
        when = instant(at, dunning.settings)
        task = TaskBook(dunning).complete(task_id, outcome, note=note, amount=amount, by=day, actor=actor, at=when)
        record_reason_code(reason_code, f"task_{outcome}", task=task_id, actor=actor)
        if json_out:
            emit_json(task)
        else:
            out.print(f"task {task_id}: {outcome}" + (f" ({note})" if note else ""), markup=False)

    guarded(action)


__all__ = ["tasks_app", "err"]
