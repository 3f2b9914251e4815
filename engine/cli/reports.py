"""`dunning report NAME`: aging, kpis, effectiveness, owners, forecast — as text, JSON, CSV or an HTML page."""

from __future__ import annotations

import sys
from datetime import date
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from engine.cli.credit import CREDIT_REPORTS, credit_report  # report incentives, report credit
from engine.cli.shared import app, emit_json, guarded, out, state
from engine.clock import local_day
from engine.reports.charges import charges_report
from engine.reports.dimensions import by_dimension
from engine.reports.figures import REPORTS, ReportError, build, flatten, load_book, parse_buckets
from engine.reports.html import render
from engine.reports.trends import monthly_trends
from engine.spreadsheet import SafeDictWriter

CHARGES = "charges"  # engine.reports.charges: read from the charges of every invoice, not from the report book
ALL_REPORTS = (*REPORTS, CHARGES, *CREDIT_REPORTS)


def _day(text: str, option: str) -> date:
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise ReportError(f"{option} {text!r} is not an ISO date; write e.g. 2026-03-31") from None


@app.command()
def report(
    name: Annotated[str, typer.Argument(help=f"One of: {', '.join(ALL_REPORTS)}.")],
    as_of: Annotated[str | None, typer.Option("--as-of", help="The day the report describes (default: today).")] = None,
    since: Annotated[
        str | None,
        typer.Option(
            "--from",
            help="kpis/owners: first day of the period (default: 90 days up to --as-of); charges: default the 1st "
            "of the month of --to.",
        ),
    ] = None,
    buckets: Annotated[
        str | None, typer.Option("--buckets", help="aging: upper bounds in days, e.g. 30,60,90,180.")
    ] = None,
    weeks: Annotated[int, typer.Option("--weeks", help="forecast: how many weeks ahead.", min=1, max=52)] = 8,
    until: Annotated[
        str | None, typer.Option("--to", help="incentives/charges: last day of the period (default: --as-of).")
    ] = None,
    by: Annotated[
        str | None, typer.Option("--by", help="The report per segment, industry, region, owner or credit_grade.")
    ] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print every figure as JSON.")] = False,
    csv_out: Annotated[
        bool, typer.Option("--csv", help="Print every figure as CSV: currency,section,key,figure,value.")
    ] = False,
    html_file: Annotated[
        Path | None, typer.Option("--html", help="Also write a self-contained HTML page with charts.")
    ] = None,
) -> None:
    """Receivables reports; every figure is defined in the README (section Reports)."""

    def action() -> None:
        if name in CREDIT_REPORTS:
            return credit_report(
                name, as_of=as_of, since=since, until=until, json_out=json_out, csv_out=csv_out, html_file=html_file
            )
        if name not in REPORTS and name != CHARGES:
            raise ReportError(f"unknown report {name!r}; choose one of {', '.join(ALL_REPORTS)}")
        dunning = state.reader()
        day = _day(as_of, "--as-of") if as_of else local_day(dunning.clock.now(), dunning.settings.zone)
        if name == CHARGES:
            if by is not None:
                raise ReportError("--by is not supported for the charges report; it lists every invoice already")
            last = _day(until, "--to") if until else day
            first = _day(since, "--from") if since else last.replace(day=1)
            charges = charges_report(dunning.repo, dunning.policies, dunning.settings.zone, first, last)
            return _emit(
                charges,
                name,
                last,
                json_out=json_out,
                csv_out=csv_out,
                html_file=html_file,
                company=dunning.settings.company.name,
            )
        book = load_book(dunning.repo, dunning.settings.zone, day, dunning.stage_order())

        def one(part: Any) -> dict[str, Any]:
            return build(
                name, part, since=_day(since, "--from") if since else None, buckets=parse_buckets(buckets), weeks=weeks
            )

        if by is not None:  # engine.reports.dimensions: the report once per group of customers
            return _by_dimension(
                by_dimension(book, by, one), json_out=json_out, csv_out=csv_out, html=html_file is not None
            )
        result = one(book)
        trends = monthly_trends(book) if name == "kpis" and html_file is not None else None  # the kpis page ends
        _emit(
            result,
            name,
            day,
            json_out=json_out,
            csv_out=csv_out,
            html_file=html_file,
            company=dunning.settings.company.name,
            trends=trends,
        )

    guarded(action)


def _emit(
    result: dict[str, Any],
    name: str,
    day: date,
    *,
    json_out: bool,
    csv_out: bool,
    html_file: Path | None,
    company: str,
    trends: dict[str, Any] | None = None,
) -> None:
    """A report as JSON, CSV or a table, and its HTML page with --html."""
    if html_file is not None:
        html_file.write_text(render(result, company=company, trends=trends), encoding="utf-8")
    if json_out:
        emit_json(result)
    elif csv_out:
        writer = SafeDictWriter(sys.stdout, fieldnames=["currency", "section", "key", "figure", "value"])
        writer.writeheader()
        for row in flatten(result):
            writer.writerow({**row, "value": "" if row["value"] is None else row["value"]})
    else:
        rows = [
            r
            for r in flatten(result)
            if r["section"] in ("summary", "totals", "stages", "rates", "weeks", "buckets", "owners")
        ]
        table = Table(title=f"{name} as of {day}")
        for column in ("currency", "section", "key", "figure", "value"):
            table.add_column(column, justify="right" if column == "value" else "left")
        for row in rows:
            table.add_row(
                *("" if row[c] is None else str(row[c]) for c in ("currency", "section", "key", "figure", "value"))
            )
        out.print(table)
        if html_file is not None:
            out.print(f"HTML report written to {html_file}", markup=False)


def _by_dimension(result: dict[str, Any], *, json_out: bool, csv_out: bool, html: bool) -> None:
    if html:
        raise ReportError("--html with --by is not supported; write one page per report without --by")
    if json_out:
        emit_json(result)
        return
    fields = [result["by"], "currency", "section", "key", "figure", "value"]
    if csv_out:
        writer = SafeDictWriter(sys.stdout, fieldnames=fields)
        writer.writeheader()
        for group in result["groups"]:
            for row in flatten(group["report"]):
                writer.writerow(
                    {result["by"]: group["key"], **row, "value": "" if row["value"] is None else row["value"]}
                )
        return
    table = Table(title=f"by {result['by']}")
    for column in fields:
        table.add_column(column, justify="right" if column == "value" else "left")
    for group in result["groups"]:
        for row in flatten(group["report"]):
            if row["section"] in ("summary", "totals", "owners"):
                table.add_row(group["key"], *("" if row[c] is None else str(row[c]) for c in fields[1:]))
    out.print(table)
