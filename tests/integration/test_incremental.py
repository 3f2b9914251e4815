"""Incremental sweeps (only invoices whose next action day has come) decide exactly what full sweeps do."""

from __future__ import annotations

import random
from datetime import date, timedelta
from pathlib import Path

import pytest

from tests.conftest import Book

POLICIES = {
    "10-standard.yaml": """\
        name: standard
        applies_to: "customer.credit_grade in ['A', 'B']"
        min_days_between_stages: 4
        stages:
          - {name: courtesy, after_days: -3, channels: [email]}
          - {name: reminder, after_days: 2, channels: [email], repeat: {every_days: 3, max: 2}}
          - {name: phone, after_days: 12, channels: [phone]}
          - {name: letter, after_days: 20, channels: [letter], when: "invoice.open_amount >= 300"}
          - {name: legal, after_days: 40, channels: [legal], when: "customer.total_overdue >= 2000"}
        """,
    "20-jumpy.yaml": """\
        name: jumpy
        applies_to: "customer.credit_grade == 'C'"
        catch_up: jump
        days: business
        calendar: {country: DE}
        min_days_between_stages: 2
        stages:
          - {name: reminder, after_days: 1, channels: [email], repeat: {every_days: 2, max: 3}}
          - {name: letter, after_days: 8, channels: [letter]}
          - {name: legal, after_days: 15, channels: [legal], when: "invoice.open_amount >= 500"}
        """,
    "30-volatile.yaml": """\
        name: volatile
        applies_to: "customer.overdue_count >= 3"
        stages:
          - {name: reminder, after_days: 1, channels: [email]}
          - {name: final, after_days: 10, channels: [letter]}
        """,
    "90-default.yaml": """\
        name: default
        stages:
          - {name: reminder, after_days: 5, channels: [email]}
          - {name: letter, after_days: 25, channels: [letter], when: "invoice.days_overdue >= 30"}
        """,
}


def _history(book: Book, numbers: list[str]) -> list[tuple]:
    rows = []
    for number in numbers:
        for event in book.app.history(number):
            rows.append(
                (
                    number,
                    event["kind"],
                    event["at"],
                    event.get("from"),
                    event.get("to"),
                    event.get("stage"),
                    event.get("channel"),
                    event.get("repeat"),
                    event.get("policy"),
                )
            )
    return rows


@pytest.mark.parametrize("volatile_choice", [False, True], ids=["static-applies-to", "volatile-applies-to"])
def test_incremental_sweeps_match_full_evaluation(tmp_path: Path, database_url: str, volatile_choice: bool) -> None:
    rng = random.Random(20261122)
    policies = {name: text for name, text in POLICIES.items() if volatile_choice or name != "30-volatile.yaml"}
    incremental = Book(tmp_path / "incremental", database_url.replace("dunning.db", "incremental.db"), policies)
    # one PostgreSQL schema serves one book, so the full-evaluation twin always runs on SQLite
    full = Book(tmp_path / "full", f"sqlite:///{tmp_path / 'full.db'}", policies)
    full.app.incremental = False

    customers = [
        {"id": f"C{i}", "name": f"Customer {i}", "credit_grade": rng.choice(["A", "B", "C", None])} for i in range(12)
    ]
    start = date(2026, 3, 2)
    invoices = []
    for i in range(60):
        due = start + timedelta(days=rng.randint(-40, 30))
        invoices.append((f"I{i}", rng.choice(customers)["id"], f"{rng.randint(50, 3000)}.00", due.isoformat()))
    for book in (incremental, full):
        book.customers(*[{k: v for k, v in c.items() if v is not None} for c in customers])
        for number, customer, amount, due in invoices:
            book.invoice(number, customer, amount, due_on=due)

    seen = {"incremental": 0, "full": 0}
    day = start
    for _ in range(70):
        payments = []
        for number, _customer, amount, _due in invoices:
            if rng.random() < 0.01:
                payments.append((number, str(round(float(amount) * rng.choice([0.3, 1.0]), 2))))
        regrade = rng.random() < 0.1 and rng.choice(customers)
        for book in (incremental, full):
            open_amounts = {i["number"]: i["open_amount"] for i in book.app.open_invoices()}
            for number, amount in payments:
                if number in open_amounts:
                    paid = min(open_amounts[number], type(open_amounts[number])(amount))
                    book.pay(number, str(paid), day.isoformat(), reference=f"{number}-{day}")
            if regrade:
                book.customers({"id": regrade["id"], "name": regrade["name"], "credit_grade": "C"})
            report = book.run(day)
            seen["incremental" if book is incremental else "full"] += report.sweep.invoices_seen
        day += timedelta(days=1)

    numbers = [number for number, *_ in invoices]
    expected = _history(full, numbers)
    assert len([e for e in expected if e[1] == "transition"]) > 60  # the book really escalated
    assert _history(incremental, numbers) == expected
    if not volatile_choice:
        assert seen["incremental"] < seen["full"] / 3, seen
