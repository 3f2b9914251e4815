"""Collector actions and the audit log on the command line: dispute, promise, plan, note, write-off, move,
approve (and `approvals`, the invoices waiting for one); `audit verify` and `audit export`.

Every action is recorded under `--actor NAME`, else `$DUNNING_ACTOR`, else the configuration's `actor`,
else "system". The daemon honours an action at its next sweep.
"""

from __future__ import annotations

import json
import sys
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from engine.actions import ActionRefused, Collector, parse_installments
from engine.audit_state import StateReport, verify_state
from engine.cli.credit import ReasonCode, check_reason_code, record_reason_code
from engine.cli.shared import Json, app, emit_json, err, guarded, instant, out, state
from engine.currencies import in_minor_units
from engine.errors import DunningError
from engine.spreadsheet import SafeDictWriter
from engine.store import queries
from engine.store.events import EXPORT_COLUMNS, ExportFilter

audit_app = typer.Typer(help="The tamper-evident event log: verify its hash chain, export it.")
app.add_typer(audit_app, name="audit")

ACTOR_ENV = "DUNNING_ACTOR"

Actor = Annotated[
    str | None,
    typer.Option(
        "--actor", envvar=ACTOR_ENV, help="Who is acting (recorded in the log); default: config `actor`, else system."
    ),
]
At = Annotated[
    str | None,
    typer.Option("--at", help="When it happened (ISO date or datetime; default now)."),
]


def _collector(actor: str | None) -> tuple[Collector, Any]:
    dunning = state.dunning()
    name = actor or dunning.settings.actor or "system"
    return Collector(dunning, actor=name), dunning


def _when(text: str | None, dunning: Any) -> datetime | None:
    return instant(text, dunning.settings)


def _date(text: str, what: str) -> date:
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise ActionRefused(f"{what} {text!r} is not an ISO date; write e.g. 2026-12-01") from None


def _amount(text: str, what: str) -> Decimal:
    try:
        return Decimal(text.strip())
    except InvalidOperation:
        raise ActionRefused(f"{what} {text!r} is not an amount; write e.g. 5000 or 1234.50") from None


# -- collector actions -------------------------------------------------------------------------------


@app.command()
def dispute(
    number: str,
    reason: Annotated[str | None, typer.Option("--reason", help="Why the customer disputes the invoice.")] = None,
    resolve: Annotated[bool, typer.Option("--resolve", help="The dispute is settled: resume escalation.")] = False,
    note: Annotated[str | None, typer.Option("--note", help="With --resolve: how it was settled.")] = None,
    actor: Actor = None,
    at: At = None,
    reason_code: ReasonCode = None,
) -> None:
    """Pause an invoice (no escalation, no notices) while disputed; --resolve resumes it, paused days not counted."""

    def action() -> None:
        check_reason_code(reason_code)
        collector, dunning = _collector(actor)
        if resolve:
            collector.resolve_dispute(number, note or reason, at=_when(at, dunning))
            out.print(f"{number}: dispute resolved; escalation resumes at the next sweep", markup=False)
        else:
            if not reason:
                raise ActionRefused("a dispute needs --reason TEXT (or --resolve to end one)")
            collector.dispute(number, reason, at=_when(at, dunning))
            record_reason_code(reason_code, "dispute", number=number, actor=actor)
            out.print(
                f"{number}: disputed; its clock is paused until `dunning dispute {number} --resolve`", markup=False
            )

    guarded(action)


@app.command()
def promise(
    number: str,
    amount: Annotated[str, typer.Option("--amount", help="The amount promised.")],
    by: Annotated[str, typer.Option("--by", help="The date it is promised by (ISO).")],
    note: Annotated[str | None, typer.Option("--note", help="Anything worth keeping about the promise.")] = None,
    actor: Actor = None,
    at: At = None,
    reason_code: ReasonCode = None,
) -> None:
    """Record a promise to pay: escalation waits until --by plus the policy's grace_days; broken = escalate at once."""

    def action() -> None:
        check_reason_code(reason_code)
        collector, dunning = _collector(actor)
        collector.promise(number, _amount(amount, "--amount"), _date(by, "--by"), note, at=_when(at, dunning))
        record_reason_code(reason_code, "promise", number=number, actor=actor)
        out.print(f"{number}: promise of {amount} by {by} recorded", markup=False)

    guarded(action)


@app.command()
def plan(
    number: str,
    installments: Annotated[
        str, typer.Option("--installments", help='DATE:AMOUNT,... e.g. "2026-12-01:5000,2027-01-01:5000"')
    ],
    actor: Actor = None,
    at: At = None,
) -> None:
    """Agree a payment plan; each installment is tracked and a missed one resumes escalation."""

    def action() -> None:
        collector, dunning = _collector(actor)
        items = parse_installments(installments)
        collector.plan(number, items, at=_when(at, dunning))
        out.print(f"{number}: payment plan of {len(items)} installment(s) recorded", markup=False)

    guarded(action)


@app.command()
def note(number: str, text: str, actor: Actor = None, at: At = None, reason_code: ReasonCode = None) -> None:
    """Add a note to an invoice's history."""

    def action() -> None:
        check_reason_code(reason_code)
        collector, dunning = _collector(actor)
        collector.note(number, text, at=_when(at, dunning))
        record_reason_code(reason_code, "note", number=number, actor=actor)
        out.print(f"{number}: note recorded", markup=False)

    guarded(action)


@app.command("write-off")
def write_off(
    number: str,
    reason: Annotated[str, typer.Option("--reason", help="Why the debt is written off.")],
    actor: Actor = None,
    at: At = None,
    reason_code: ReasonCode = None,
) -> None:
    """Write the open amount off as bad debt (recorded with the reason and you as the approver)."""

    def action() -> None:
        check_reason_code(reason_code)
        collector, dunning = _collector(actor)
        record_reason_code(reason_code, "write_off", number=number, actor=actor)  # the open amount before it
        collector.write_off(number, reason, at=_when(at, dunning))
        out.print(f"{number}: written off", markup=False)

    guarded(action)


@app.command()
def move(
    number: str,
    to: Annotated[str, typer.Option("--to", help="The stage to put the invoice in (or current).")],
    reason: Annotated[str, typer.Option("--reason", help="Why (a manual override is always audited).")],
    actor: Actor = None,
    at: At = None,
) -> None:
    """Manual override: move an invoice to a stage of its policy now; that stage's notices are queued."""

    def action() -> None:
        collector, dunning = _collector(actor)
        collector.move(number, to, reason, at=_when(at, dunning))
        out.print(f"{number}: moved to {to}", markup=False)

    guarded(action)


@app.command()
def approve(number: str, actor: Actor = None, at: At = None) -> None:
    """Let an invoice awaiting approval enter its stage (recorded with you as the approver)."""

    def action() -> None:
        collector, dunning = _collector(actor)
        collector.approve(number, at=_when(at, dunning))
        out.print(f"{number}: approved", markup=False)

    guarded(action)


@app.command()
def approvals(
    json_out: Json = False,
    limit: Annotated[int, typer.Option("--limit", min=1, help="List at most this many (oldest request first).")] = 500,
) -> None:
    """The invoices waiting for an approval to enter an `approval: required` stage, oldest request first."""

    def action() -> None:
        dunning = state.reader()
        rows = dunning.awaiting_approval(limit=limit)
        if json_out:
            emit_json(rows)
            return
        waiting = dunning.approvals_waiting()
        shown = f" ({len(rows)} shown, oldest first; --limit shows more)" if waiting > len(rows) else ""
        table = Table(title=f"{waiting} invoice(s) awaiting approval{shown}")
        for column in ("invoice", "customer", "open amount", "stage", "awaiting", "since", "policy", "owner"):
            table.add_column(column, justify="right" if column == "open amount" else "left")
        for row in rows:
            table.add_row(
                row["number"],
                f"{row['customer_name']} ({row['customer_id']})",
                f"{in_minor_units(row['open_amount'], row['currency']):,} {row['currency']}",
                row["stage"],
                row["awaiting_stage"],
                (row["waiting_since"] or "-")[:10],
                row["policy"] or "-",
                row["owner"] or "-",
            )
        out.print(table)
        if rows:
            out.print("`dunning approve NUMBER` lets an invoice in (recorded with you as the approver).", markup=False)

    guarded(action)


# -- audit ---------------------------------------------------------------------------------------------


@audit_app.command("verify")
def audit_verify(
    expect_head: Annotated[
        str | None, typer.Option("--expect-head", help="The head hash noted earlier: also catches deleted tail events.")
    ] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    check_state: Annotated[
        bool, typer.Option("--state", help="Also replay the log and compare every invoice and notification with it.")
    ] = False,
) -> None:
    """Recompute the hash chain; exit 1 naming the first event that was altered, deleted or moved."""

    def action() -> None:
        dunning = state.reader()
        if check_state:
            _print_state(verify_state(dunning.repo, expect_head), json_out)
            return
        report = queries.audit_verify(dunning.repo, expect_head)
        problem = report.problem
        if json_out:
            emit_json(
                {
                    "ok": report.ok,
                    "events": report.events,
                    "head": report.head,
                    "first_bad_event": problem.event_id if problem else None,
                    "position": problem.position if problem else None,
                    "reason": problem.reason if problem else None,
                }
            )
        elif problem is None:
            out.print(f"audit log intact: {report.events} event(s), head {report.head}", markup=False)
        else:
            err.print(
                f"audit log broken at event {problem.event_id} (position {problem.position}): {problem.reason}. "
                "Restore the database from a backup and compare.",
                markup=False,
            )
        if problem is not None:
            raise typer.Exit(1)

    guarded(action)


def _print_state(report: StateReport, json_out: bool) -> None:
    problem = report.chain.problem
    if json_out:
        emit_json(report.as_dict())
    else:
        if problem is not None:
            err.print(
                f"audit log broken at event {problem.event_id} (position {problem.position}): {problem.reason}.",
                markup=False,
            )
        for mismatch in report.mismatches:
            err.print(str(mismatch), markup=False)
        summary = (
            f"{report.events} event(s) replayed, {report.invoices_checked} invoice(s) and "
            f"{report.notifications_checked} notification(s) checked, head {report.chain.head}"
        )
        if report.ok:
            out.print(f"audit log intact and the tables agree with it: {summary}", markup=False)
        else:
            err.print(
                f"{len(report.mismatches)} mismatch(es) between the tables and the event log; {summary}. "
                "Restore the database from a backup and compare.",
                markup=False,
            )
    if not report.ok:
        raise typer.Exit(1)


@audit_app.command("export")
def audit_export(
    format: Annotated[str, typer.Option("--format", help="csv or jsonl")] = "jsonl",
    output: Annotated[Path | None, typer.Option("--output", "-o", help="File to write (default: stdout).")] = None,
    since: Annotated[str | None, typer.Option("--from", help="First day (ISO date, company time zone).")] = None,
    until: Annotated[str | None, typer.Option("--to", help="Last day (ISO date, included).")] = None,
    customer: Annotated[str | None, typer.Option("--customer", help="Only this customer's events.")] = None,
    stage: Annotated[str | None, typer.Option("--stage", help="Only events about this stage.")] = None,
    channel: Annotated[str | None, typer.Option("--channel", help="Only events on this channel.")] = None,
    actor: Annotated[str | None, typer.Option("--actor", help="Only events by this actor.")] = None,
    kind: Annotated[str | None, typer.Option("--kind", help="Only events of this kind.")] = None,
) -> None:
    """Export the event log (with its hashes) as CSV or JSON Lines; columns are listed in the README."""

    def action() -> None:
        if format not in ("csv", "jsonl"):
            raise DunningError(f"unknown format {format!r}; use --format csv or --format jsonl")
        dunning = state.reader()
        filters = ExportFilter(
            since=_date(since, "--from") if since else None,
            until=_date(until, "--to") if until else None,
            customer=customer,
            stage=stage,
            channel=channel,
            actor=actor,
            kind=kind,
        )
        handle = output.open("w", encoding="utf-8", newline="") if output else sys.stdout
        count = 0
        try:
            writer = SafeDictWriter(handle, fieldnames=EXPORT_COLUMNS) if format == "csv" else None
            if writer is not None:
                writer.writeheader()
            with queries.audit_events(dunning.repo, filters, dunning.settings.zone) as records:
                for record in records:
                    count += 1
                    if writer is not None:
                        writer.writerow(record)
                    else:
                        handle.write(json.dumps(record, ensure_ascii=False) + "\n")
        finally:
            if output:
                handle.close()
        if output:
            out.print(f"{count} event(s) written to {output}", markup=False)

    guarded(action)
