"""`report kpis` values a write-off at the open amount when it was written off: a payment dated on the
write-off day is collected, not written off too (issue 11, defect 14), so the figures add up."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from engine.actions import Collector
from engine.reports.figures import build, load_book
from tests.conftest import Book, at

POLICY = "name: simple\nstages:\n  - {name: reminder, after_days: 1, channels: [email]}\n"


def test_a_payment_on_the_write_off_day_is_not_counted_twice(make_book) -> None:  # type: ignore[no-untyped-def]
    book: Book = make_book({"simple.yaml": POLICY})
    book.customers({"id": "C1", "name": "Acme"})
    book.invoice("W", "C1", "1000", due_on="2026-02-01", issued_on="2026-01-01")
    book.invoice("K", "C1", "300", due_on="2026-02-01", issued_on="2026-01-01")
    book.app.sweeper().run(at("2026-02-10"))
    book.pay("W", "400", "2026-03-10")
    Collector(book.app, actor="alice").write_off("W", "insolvent", at=at("2026-03-10", 15))
    data = load_book(book.app.repo, book.settings.zone, date(2026, 3, 31), {"reminder": 0})
    eur = next(s for s in build("kpis", data, since=date(2026, 3, 1))["sections"] if s["currency"] == "EUR")
    assert (eur["collected"], eur["written_off"]) == (Decimal(400), Decimal(600))
    assert (
        eur["opening_receivables"] + eur["credit_sales"] - eur["collected"] - eur["written_off"]
        == (eur["closing_receivables"])
    )
