"""Twelve-month trends are the report figures of each month, from one book read (the book of test_reports)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from engine.reports.figures import aging, kpis, load_book
from engine.reports.html import render
from engine.reports.trends import month_starts, monthly_trends
from tests.conftest import Book
from tests.integration.test_reports import AS_OF, book, report  # noqa: F401  (the fixture)


def test_month_starts_cross_the_year() -> None:
    starts = month_starts(date(2026, 3, 31), 4)
    assert starts == [date(2025, 12, 1), date(2026, 1, 1), date(2026, 2, 1), date(2026, 3, 1)]


def test_each_month_is_that_month_as_a_report_would_give_it(book: Book) -> None:  # noqa: F811
    data = load_book(book.app.repo, book.settings.zone, AS_OF, {"reminder": 0, "letter": 1})
    trends = monthly_trends(data)
    assert trends["months"][-3:] == ["2026-01", "2026-02", "2026-03"] and len(trends["months"]) == 12
    eur = next(s for s in trends["sections"] if s["currency"] == "EUR")
    # collected: Feb P1 1000 + P2 2000; Mar A1 1000 + A2 500
    assert eur["collected"][-3:] == [Decimal(0), Decimal(3000), Decimal(1500)]
    # February read back as if the book had been loaded at its last day
    february = load_book(book.app.repo, book.settings.zone, date(2026, 2, 28), {"reminder": 0, "letter": 1})
    feb_kpis = next(s for s in kpis(february, date(2026, 2, 1))["sections"] if s["currency"] == "EUR")
    feb_aging = next(s for s in aging(february)["sections"] if s["currency"] == "EUR")
    assert eur["dso"][-2] == feb_kpis["dso"] and eur["cei"][-2] == feb_kpis["cei"]
    assert eur["overdue_share"][-2] == feb_aging["overdue_share"] is not None
    assert eur["dso"][0] is None  # nothing was sold in April 2025


def test_the_kpis_page_ends_with_the_trend_charts(book: Book) -> None:  # noqa: F811
    data = load_book(book.app.repo, book.settings.zone, AS_OF, {"reminder": 0, "letter": 1})
    page = render(report(book, "kpis"), trends=monthly_trends(data))
    assert "Trends over the last 12 months" in page
    assert page.count('data-chart="line"') == 3 * 2  # DSO, CEI, overdue share for EUR and CNY
