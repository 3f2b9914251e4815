"""Twelve-month trends: DSO, CEI, overdue share and collected per calendar month, per currency.

Each month's figures are the report figures themselves — `figures.kpis` over that month as the period, and
the aging report's overdue share at its last day (open amount due before that day ÷ all open, from the same
`InvoiceFacts.open_at` and `ratio` the aging report uses; the full aging with its four breakdowns is not
needed for one number) — computed on one book read once: the book's rows already carry every issue, payment
and write-off date, so moving its `as_of` back to a month's end gives that month exactly as a report "as of"
that day would (the current month ends at the book's own `as_of`).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from engine.reports.figures import Book, kpis, ratio

MONTHS = 12


def month_starts(as_of: date, months: int = MONTHS) -> list[date]:
    """The first days of the last `months` calendar months, oldest first, ending with `as_of`'s month."""
    starts = []
    year, month = as_of.year, as_of.month
    for _ in range(months):
        starts.append(date(year, month, 1))
        year, month = (year, month - 1) if month > 1 else (year - 1, 12)
    return starts[::-1]


def _month_end(start: date) -> date:
    following = date(start.year + start.month // 12, start.month % 12 + 1, 1)
    return following - timedelta(days=1)


def monthly_trends(book: Book, months: int = MONTHS) -> dict[str, Any]:
    """`{as_of, months: ["2026-01", …], sections: [{currency, dso: [...], cei: [...], overdue_share: [...],
    collected: [...]}]}` — one value per month (None where a figure is undefined, e.g. no sales)."""
    starts = month_starts(book.as_of, months)
    currencies = sorted({i.currency for i in book.invoices})
    rows: dict[str, dict[str, list[Any]]] = {
        c: {"dso": [], "cei": [], "overdue_share": [], "collected": []} for c in currencies
    }
    for start in starts:
        end = min(_month_end(start), book.as_of)
        moment = replace(book, as_of=end)
        period = {s["currency"]: s for s in kpis(moment, start)["sections"]}
        total = dict.fromkeys(currencies, Decimal(0))
        overdue = dict.fromkeys(currencies, Decimal(0))
        for invoice in book.invoices:
            open_amount = invoice.open_at(end)
            if open_amount > 0:
                total[invoice.currency] += open_amount
                if invoice.due_on < end:
                    overdue[invoice.currency] += open_amount
        for currency in currencies:
            figures = period.get(currency, {})
            row = rows[currency]
            row["dso"].append(figures.get("dso"))
            row["cei"].append(figures.get("cei"))
            row["collected"].append(figures.get("collected"))
            row["overdue_share"].append(ratio(overdue[currency], total[currency]))
    return {
        "as_of": book.as_of,
        "months": [f"{s:%Y-%m}" for s in starts],
        "sections": [{"currency": c, **rows[c]} for c in currencies],
    }
