"""`dunning statement CUSTOMER`: the statement of account (对账单) on screen, as JSON or as a PDF;
`dunning statements queue`: this month's statements for every customer with open items."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from engine.cli.shared import AsOf, Json, app, emit_json, guarded, instant, out, state
from engine.errors import DunningError
from engine.statement import queue_statements, statement_of_account
from engine.templates import money


@app.command()
def statement(
    customer: Annotated[str, typer.Argument(help="The customer id.")],
    as_of: AsOf = None,
    since: Annotated[
        str | None,
        typer.Option(
            "--from",
            help="First day of the period for payments and credits (ISO date; default: the first day of the --as-of month).",
        ),
    ] = None,
    pdf: Annotated[Path | None, typer.Option("--pdf", help="Also write the statement as a PDF to this file.")] = None,
    json_out: Json = False,
) -> None:
    """Every open invoice of the customer per currency, with charges, aging, payments in the period, total due."""

    def action() -> None:
        dunning = state.dunning()
        first = _day(since) if since else None
        found = statement_of_account(dunning, customer, instant(as_of, dunning.settings), first)
        if pdf is not None:
            from channels.pdf import statement_document  # reportlab loads only when a PDF is asked for

            data = statement_document(
                found.as_dict(), dunning.settings.company.model_dump(), found.customer.get("language")
            )
            try:
                pdf.write_bytes(data)
            except OSError as exc:
                raise DunningError(f"cannot write {pdf}: {exc.strerror or exc}; check the path") from None
        if json_out:
            emit_json(found.as_dict())
            return
        out.print(
            f"Statement of account: {found.customer['name']} ({customer}) as of {found.as_of.isoformat()}", markup=False
        )
        for section in found.sections:
            table = Table(title=f"{section.currency}: open invoices")
            for column in ("invoice", "due", "days overdue", "open", "charges", "total due"):
                table.add_column(column, justify="left" if column in ("invoice", "due") else "right")
            for inv in section.invoices:
                charges = inv["interest"] + inv["compensation"] + inv["fees"]
                table.add_row(
                    inv["number"],
                    inv["due_on"].isoformat(),
                    str(inv["days_overdue"]),
                    money(inv["open_amount"], section.currency),
                    money(charges, section.currency),
                    money(inv["total_due"], section.currency),
                )
            out.print(table)
            aging = ", ".join(f"{name}: {money(amount, section.currency)}" for name, amount in section.aging.items())
            out.print(f"aging: {aging}", markup=False)
            for payment in section.payments:
                out.print(
                    f"paid {payment['paid_on'].isoformat()} on {payment['invoice']}: "
                    f"{money(payment['amount'], section.currency)}",
                    markup=False,
                )
            for credit in section.credits:
                out.print(
                    f"credit {credit['on'].isoformat()} on {credit['invoice']}: "
                    f"{money(credit['amount'], section.currency)} (amount {money(credit['amount_before'], section.currency)}"
                    f" -> {money(credit['amount_after'], section.currency)})",
                    markup=False,
                )
            out.print(f"total due: {money(section.total_due, section.currency)}", markup=False)
        if pdf is not None:
            out.print(f"wrote {pdf}", markup=False)

    guarded(action)


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise DunningError(f"--from must be a date such as 2026-03-01, got {text!r}") from None


statements_app = typer.Typer(help="Statements of account for every customer with open items (config `statements:`).")
app.add_typer(statements_app, name="statements")


@statements_app.command("queue")
def statements_queue(as_of: AsOf = None) -> None:
    """Queue this month's statement for every customer with open items on `statements.channel`; `dunning
    dispatch` (or the daemon) sends them. Queuing the same month again adds nothing."""

    def action() -> None:
        dunning = state.dunning()
        queued = queue_statements(dunning, instant(as_of, dunning.settings) or dunning.clock.now())
        out.print(f"queued {queued} statement(s) on {dunning.settings.statements.channel}", markup=False)

    guarded(action)
