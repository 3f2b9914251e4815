"""`dunning charges NUMBER`: interest, compensation and fees an invoice owes, period by period."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from engine.charging import invoice_charges
from engine.cli.shared import AsOf, Json, app, emit_json, guarded, instant, out, state


@app.command()
def charges(
    number: Annotated[str, typer.Argument(help="The invoice number.")],
    as_of: AsOf = None,
    json_out: Json = False,
) -> None:
    """What the invoice owes on top of its principal: interest by periods, compensation, fees, total due.

    Interest counts every day from the day after the due date up to and including the --as-of day.
    """

    def action() -> None:
        dunning = state.reader()
        statement = invoice_charges(dunning, number, instant(as_of, dunning.settings))
        if json_out:
            emit_json(statement.as_dict())
            return
        table = Table(title=f"{statement.number}: charges as of {statement.as_of.isoformat()} ({statement.currency})")
        for column in ("from", "to", "days", "principal", "rate", "interest"):
            table.add_column(column, justify="left" if column in ("from", "to") else "right")
        for period in statement.periods:
            unit = "%/year" if period.unit.value == "percent_per_year" else "%/day"
            table.add_row(
                period.first.isoformat(),
                period.last.isoformat(),
                str(period.days),
                f"{period.principal:,.2f}",
                f"{period.rate.normalize():f} {unit}",
                f"{period.interest:,.6f}",
            )
        out.print(table)
        for label, value in (
            ("principal open", statement.principal_open),
            ("interest", statement.interest),
            ("compensation", statement.compensation),
            ("fees", statement.fees),
            ("total due", statement.total_due),
        ):
            out.print(f"{label:>15}: {value:,} {statement.currency}", markup=False)
        if statement.basis:
            out.print(f"{'basis':>15}: {statement.basis}", markup=False)

    guarded(action)
