"""Everyday book commands: import, policy check/schema, run, dispatch, status, history, outbox, demo."""

from __future__ import annotations

from datetime import datetime, tzinfo
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from engine.app import Dunning
from engine.charging import charges_due
from engine.cli.shared import (
    AllowFuture,
    AsOf,
    Json,
    Progress,
    app,
    emit_json,
    err,
    guarded,
    import_app,
    instant,
    out,
    policy_app,
    state,
    sweep_instant,
)
from engine.clock import iso
from engine.config import load_settings
from engine.currencies import in_minor_units
from engine.errors import DunningError

# -- import ----------------------------------------------------------------------------------------


def _import(kind: str, file: Path, progress: bool | None = None) -> None:
    def action() -> None:
        from engine.progress import import_progress

        app_ = state.dunning()
        with import_progress(err, f"importing {kind}", enabled=progress) as advance:
            report = app_.importer().import_file(kind, file, progress=advance)
        out.print(
            f"{kind}: {report.created} new, {report.updated} updated, {report.unchanged} unchanged"
            + (f", {report.closed} invoice(s) paid in full" if kind == "payments" else ""),
            markup=False,
        )

    guarded(action)


@import_app.command("customers")
def import_customers(file: Path, progress: Progress = None) -> None:
    """Columns: id,name,email,phone,address,credit_grade,segment,owner,language,timezone,tags."""
    _import("customers", file, progress)


@import_app.command("invoices")
def import_invoices(file: Path, progress: Progress = None) -> None:
    """Columns: number,customer_id,currency,amount,issued_on,due_on,tags."""
    _import("invoices", file, progress)


@import_app.command("payments")
def import_payments(file: Path, progress: Progress = None) -> None:
    """Columns: invoice,amount,paid_on,reference."""
    _import("payments", file, progress)


# -- policy ----------------------------------------------------------------------------------------


@policy_app.command("check")
def policy_check(
    path: Annotated[
        Path | None, typer.Argument(help="A policy file or folder (default: the configured rules folder).")
    ] = None,
    format: Annotated[str, typer.Option("--format", help="text or json")] = "text",
) -> None:
    """Validate policies: exit 0 when valid, else print FILE:LINE:COLUMN: message for each problem."""
    from engine.credit.rules import check_rule_files
    from engine.policy.loader import check_policies

    def action() -> None:
        settings = state.settings()
        target = path or settings.rules_path
        problems = check_policies(target, known_channels=settings.channel_settings().keys())
        # credit.yaml, warnings.yaml, incentives.yaml, reasons.yaml: each against its own schema
        problems = sorted(problems + check_rule_files(target, known_channels=settings.channel_settings().keys()))
        errors = [p for p in problems if p.severity == "error"]
        if format == "json":
            emit_json(
                [
                    {"file": p.file, "line": p.line, "column": p.column, "severity": p.severity, "message": p.message}
                    for p in problems
                ]
            )
        else:
            for problem in problems:
                (err if problem.severity == "error" else out).print(str(problem), markup=False)
            if not errors:
                out.print(f"{target}: policies are valid", markup=False)
        if errors:
            raise typer.Exit(1)

    guarded(action)


@policy_app.command("schema")
def policy_schema() -> None:
    """Print the JSON Schema of a policy file (for editor completion and validation)."""
    from engine.policy.loader import policy_json_schema

    emit_json(policy_json_schema())


# -- run / dispatch --------------------------------------------------------------------------------


@app.command()
def run(
    as_of: AsOf = None,
    json_out: Json = False,
    no_dispatch: Annotated[bool, typer.Option("--no-dispatch", help="Only sweep; leave the outbox for later.")] = False,
    allow_future: AllowFuture = False,
) -> None:
    """One sweep at --as-of (default now): apply due transitions, queue their notifications, send them."""

    def action() -> None:
        dunning = state.dunning()
        report = dunning.run(sweep_instant(as_of, dunning, allow_future=allow_future), dispatch=not no_dispatch)
        if json_out:
            emit_json(report.as_dict())
            return
        sweep = report.sweep
        if sweep.already_swept:
            out.print(f"already swept as of {iso(sweep.as_of)}: nothing changed", markup=False)
        else:
            out.print(
                f"swept {sweep.invoices_seen} open invoice(s) as of {iso(sweep.as_of)}: "
                f"{sweep.transitions} transition(s), {sum(sweep.repeats.values())} repeat(s), "
                f"{sum(sweep.notifications.values())} notification(s) queued",
                markup=False,
            )
            for stage, count in sweep.entered.items():
                out.print(f"  entered {stage}: {count}", markup=False)
            if sweep.policy_changes:
                out.print(f"  policy changes: {sweep.policy_changes}", markup=False)
            if sweep.held:
                out.print(f"  {sweep.held_summary()}", markup=False)
        if report.dispatch:
            d = report.dispatch
            # Notices with no address failed as they were queued; they count here too, so the line adds up.
            failed = sum(d.failed.values()) + (0 if sweep.already_swept else sweep.unaddressed)
            out.print(
                f"dispatched: {sum(d.sent.values())} sent, {failed} failed, {sum(d.retrying.values())} to retry",
                markup=False,
            )
            if sweep.unaddressed and not sweep.already_swept:
                out.print(
                    f"  {sweep.unaddressed} of the failed had no address for their channel; see "
                    "`dunning outbox --status failed`",
                    markup=False,
                )

    guarded(action)


@app.command()
def dispatch(as_of: AsOf = None, json_out: Json = False) -> None:
    """Send what is due in the outbox (retries included) without sweeping."""

    def action() -> None:
        dunning = state.dunning()
        report = dunning.dispatch(instant(as_of, dunning.settings))
        if json_out:
            emit_json(report.as_dict())
        else:
            out.print(
                f"dispatched: {sum(report.sent.values())} sent, {sum(report.failed.values())} failed, "
                f"{sum(report.retrying.values())} to retry"
                + (
                    f" ({report.recovered} put back that a killed sender had left mid-send)" if report.recovered else ""
                ),
                markup=False,
            )

    guarded(action)


# -- status / history / outbox ---------------------------------------------------------------------


@app.command()
def status(as_of: AsOf = None, json_out: Json = False) -> None:
    """Per stage: invoice count and open amount. --json lists every open invoice."""

    def action() -> None:
        dunning = state.reader()
        invoices = dunning.open_invoices(instant(as_of, dunning.settings))
        if json_out:
            due = charges_due(
                dunning, instant(as_of, dunning.settings) or dunning.latest_sweep() or dunning.clock.now()
            )
            emit_json(
                [
                    {
                        **{
                            k: i[k]
                            for k in (
                                "number",
                                "customer_id",
                                "stage",
                                "open_amount",
                                "currency",
                                "policy",
                                "days_overdue",
                            )
                        },
                        "charges_due": due.get(i["number"], 0),
                    }
                    for i in invoices
                ]
            )
            return
        table = Table(title=f"{len(invoices)} open invoice(s)")
        table.add_column("stage")
        table.add_column("invoices", justify="right")
        table.add_column("open amount", justify="right")
        for row in dunning.stage_summary(invoices):
            amounts = ", ".join(
                f"{in_minor_units(amount, currency):,} {currency}"
                for currency, amount in sorted(row["open_amount"].items())
            )
            table.add_row(row["stage"], str(row["invoices"]), amounts)
        out.print(table)

    guarded(action)


@app.command()
def history(
    number: Annotated[str | None, typer.Argument(help="The invoice number (or use --customer).")] = None,
    json_out: Json = False,
    customer: Annotated[
        str | None, typer.Option("--customer", help="All events of this customer and its invoices.")
    ] = None,
    local: Annotated[
        bool,
        typer.Option("--local", help="Times in the company's time zone (the config's `timezone`), not UTC."),
    ] = False,
) -> None:
    """One invoice's events in order (or a customer's): imports, transitions, notifications, payments, actions."""

    def action() -> None:
        if (number is None) == (customer is None):
            raise DunningError("name an invoice number or --customer ID (one of the two)")
        dunning = state.reader()
        events = dunning.history(number, customer=customer, local=local)
        if json_out:
            emit_json(events)
            return
        for event in events:
            details = {k: v for k, v in event.items() if k not in ("kind", "at", "invoice", "actor")}
            summary = _event_summary(event["kind"], details)
            subject = f"{event.get('invoice') or '-':<12} " if customer else ""
            at = _local_time(event["at"], dunning.settings.zone) if local else event["at"]
            out.print(f"{at}  {subject}{event['kind']:<14} {summary}", markup=False)

    guarded(action)


def _local_time(at: str, zone: tzinfo) -> str:
    """`2026-03-04 10:00 CET`: the wall-clock time finance reads, with the zone's abbreviation."""
    return datetime.fromisoformat(at).astimezone(zone).strftime("%Y-%m-%d %H:%M %Z")


def _event_summary(kind: str, details: dict[str, Any]) -> str:
    if kind == "transition":
        return f"{details.get('from')} -> {details.get('to')}  ({details.get('rule')}; policy {details.get('policy')})"
    if kind == "notification":
        return (
            f"{details.get('channel')} to {details.get('recipient')} for {details.get('stage')}"
            f" #{details.get('repeat', 0)}: {details.get('status')}"
        )
    if kind == "payment":
        return f"{details.get('amount')} paid on {details.get('paid_on')}; open {details.get('open_amount')}"
    return ", ".join(f"{k}={v}" for k, v in details.items())


OUTBOX_COLUMNS = ("invoice", "stage", "channel", "recipient", "status", "created_at", "sent_at", "next_attempt_at")


@app.command()
def outbox(
    json_out: Json = False,
    status_filter: Annotated[
        str | None, typer.Option("--status", help="pending, sending, sent, failed or cancelled")
    ] = None,
    invoice: Annotated[
        str | None, typer.Option("--invoice", help="Only the notifications about this invoice number.")
    ] = None,
) -> None:
    """The notifications: what was queued, sent, failed or cancelled; when a pending one is tried next and
    why it waits (held: quiet hours, the contact cap, a hard-bounced address)."""

    def action() -> None:
        rows = state.reader().outbox(status_filter, invoice=invoice)
        if json_out:
            emit_json(rows)
            return
        table = Table(title=f"{len(rows)} notification(s)" + (f" about {invoice}" if invoice else ""))
        for column in (*OUTBOX_COLUMNS, "why"):
            table.add_column("next attempt" if column == "next_attempt_at" else column)
        for row in rows:
            why = f"held: {row['held']}" if row["held"] else (row["error"] or "")
            table.add_row(*(str(row[c] or "") for c in OUTBOX_COLUMNS), why)
        out.print(table)

    guarded(action)


# -- demo ------------------------------------------------------------------------------------------


@app.command()
def demo(
    folder: Annotated[Path, typer.Option("--dir", help="Where the demo's database, CSVs and output go.")] = Path(
        "demo"
    ),
    days: Annotated[int, typer.Option(help="Simulated days to run forward.")] = 120,
    seed: Annotated[int, typer.Option(help="Random seed of the demo book.")] = 7,
    start: Annotated[str | None, typer.Option(help="First simulated day (default: today).")] = None,
) -> None:
    """Build a demo book (customers of every credit grade, a few hundred invoices) and run it forward
    day by day, with customers paying along the way, printing what happened each week."""
    from engine.demo import run_demo

    guarded(lambda: run_demo(folder, days=days, seed=seed, start=start, console=out))
    guarded(lambda: _offer_web_workspace(folder))


DEMO_ADMIN = "demo-admin"


def _offer_web_workspace(folder: Path) -> None:
    """The demo's last lines: how to open the web workspace on the demo book, with an admin account made for
    that book alone (a new password each run; real installations have no default account)."""
    import secrets

    from engine.store import users
    from engine.web.auth import hash_password

    config = folder.resolve() / "config.yaml"
    dunning = Dunning(load_settings(config))
    password = secrets.token_urlsafe(12)
    now = dunning.clock.now()
    if users.find_user(dunning.repo, DEMO_ADMIN) is None:
        users.add_user(dunning.repo, DEMO_ADMIN, "admin", hash_password(password), None, now)
    else:
        users.set_password(dunning.repo, DEMO_ADMIN, hash_password(password), now)
    out.print(
        f"\nWeb workspace: run `.venv/bin/dunning --config {config} serve` and open http://127.0.0.1:8080/\n"
        f"  log in as {DEMO_ADMIN} with password {password} (an account of this demo book only)",
        markup=False,
    )
