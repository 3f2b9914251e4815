"""The sweep's hot path writes exactly the rows of the reference path (each invoice through `decide` and the
Machine): seeded random books and policies, swept day by day by both, must end with the same invoices, the
same events (so the same chain head), the same outbox rows and the same sweep rows."""

from __future__ import annotations

import random
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from engine.store import bulk, chain
from engine.store.models import Event, Invoice, Notification, Sweep
from engine.sweep import Sweeper
from tests.conftest import Book, at


def _policies(rng: random.Random) -> dict[str, str]:
    """Four policies between them using what the hot path treats specially: tags (decoded only when read),
    customer totals (queried only when read), a condition on the stage (decisions not remembered), an
    invoice-level applies_to (policy chosen per invoice), approval, repeats, jump and business days."""

    def days(low: int, high: int) -> int:
        return rng.randint(low, high)

    return {
        "10-tagged.yaml": f"""\
            name: tagged
            applies_to: "'vip' in customer.tags"
            min_days_between_stages: {days(0, 4)}
            stages:
              - {{name: courtesy, after_days: -{days(1, 5)}, channels: [email]}}
              - {{name: reminder, after_days: {days(1, 4)}, channels: [email, sms],
                  repeat: {{every_days: {days(1, 3)}, max: {days(1, 3)}}}}}
              - {{name: letter, after_days: {days(8, 14)}, channels: [letter], when: "'urgent' in invoice.tags"}}
              - {{name: legal, after_days: {days(15, 25)}, channels: [legal], approval: required}}
            """,
        "20-strict.yaml": f"""\
            name: strict
            applies_to: "customer.credit_grade in ['C', 'D']"
            catch_up: jump
            days: business
            calendar: {{country: DE}}
            min_days_between_stages: {days(0, 3)}
            stages:
              - {{name: reminder, after_days: {days(0, 3)}, channels: [email], repeat: {{every_days: 2, max: 2}}}}
              - {{name: phone, after_days: {days(4, 8)}, channels: [phone], when: "invoice.open_amount >= {days(100, 900)}"}}
              - {{name: letter, after_days: {days(9, 14)}, channels: [letter, email]}}
              - {{name: legal, after_days: {days(15, 30)}, channels: [legal],
                  when: "customer.total_overdue >= {days(500, 3000)}"}}
            """,
        "30-large.yaml": f"""\
            name: large
            applies_to: "invoice.amount >= 2500"
            min_days_between_stages: {days(1, 5)}
            stages:
              - {{name: reminder, after_days: {days(1, 5)}, channels: [email]}}
              - {{name: call, after_days: {days(6, 12)}, channels: [phone],
                  when: "invoice.stage == 'reminder' and invoice.open_amount >= {days(500, 2000)}"}}
              - {{name: letter, after_days: {days(13, 20)}, channels: [letter]}}
            """,
        "90-default.yaml": f"""\
            name: default
            min_days_between_stages: {days(0, 4)}
            stages:
              - {{name: courtesy, after_days: -{days(1, 4)}, channels: [email]}}
              - {{name: reminder, after_days: {days(1, 5)}, channels: [email], repeat: {{every_days: 3, max: 1}}}}
              - {{name: letter, after_days: {days(10, 20)}, channels: [letter], when: "invoice.open_amount >= 300"}}
            """,
    }


CHANNELS = {name: {"type": "memory"} for name in ("email", "sms", "phone", "letter", "legal")}
CHANNELS["sms"]["recipient"] = "phone"


#: Invoices a sweep reads at a time here: several chunks per sweep, so a customer's invoices span them.
CHUNK = 7


def _rows(book: Book) -> dict[str, list[dict[str, Any]]]:
    tables = {"invoices": Invoice, "events": Event, "notifications": Notification, "sweeps": Sweep}
    with book.app.repo.read() as session:
        conn = session.connection()
        return {
            name: [dict(row) for row in conn.execute(select(model.__table__).order_by(model.__table__.c.id)).mappings()]  # type: ignore[attr-defined]
            for name, model in tables.items()
        }


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_fast_path_writes_the_reference_rows(
    tmp_path: Path, database_url: str, seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(bulk, "COPY_FROM_ROWS", 2)  # PostgreSQL: COPY and UPDATE … FROM even for small chunks
    if seed == 3:  # a keyed chain: HMACs instead of plain hashes
        monkeypatch.setenv(chain.KEY_ENV, "the installation's audit key")
    rng = random.Random(seed)
    policies = _policies(rng)
    fast = Book(tmp_path / "fast", database_url.replace("dunning.db", "fast.db"), policies, channels=CHANNELS)
    # one PostgreSQL schema serves one book, so the reference always runs on SQLite
    reference = Book(tmp_path / "reference", f"sqlite:///{tmp_path / 'reference.db'}", policies, channels=CHANNELS)
    sweepers = {
        "fast": fast.sweeper(fast=True, chunk_size=CHUNK),
        "reference": reference.sweeper(fast=False, chunk_size=CHUNK),
    }
    assert sweepers["fast"].fast and not sweepers["reference"].fast

    customers = [
        {
            "id": f"C{i}",
            "name": f"Customer {i}",
            "credit_grade": rng.choice(["A", "C", "D", None]),
            "tags": rng.choice(["", "vip", "vip;key"]),
            "phone": rng.choice(["+1 555 0100", ""]),
        }
        for i in range(10)
    ]
    start = date(2026, 3, 2)

    def invoice_rows(first: int, count: int, around: date) -> list[tuple[str, str, str, str, str]]:
        return [
            (
                f"I{i}",
                rng.choice(customers)["id"],
                f"{rng.randint(50, 6000)}.00",
                (around + timedelta(days=rng.randint(-30, 20))).isoformat(),
                rng.choice(["", "urgent", "urgent;key"]),
            )
            for i in range(first, first + count)
        ]

    invoices = invoice_rows(0, 40, start)
    for book in (fast, reference):
        book.customers(*[{**c, "credit_grade": c["credit_grade"] or ""} for c in customers])
        _import(book, invoices)

    owed = {number: Decimal(amount) for number, _c, amount, *_ in invoices}
    day = start
    for step in range(22):
        payments = []
        for number, *_ in invoices:
            if rng.random() < 0.04 and owed[number] > 0:
                paid = owed[number] if rng.random() < 0.5 else (owed[number] * Decimal("0.4")).quantize(Decimal("0.01"))
                owed[number] -= paid
                payments.append((number, str(paid)))
        regrade = rng.random() < 0.5 and rng.choice(customers)
        grade, tags = rng.choice(["A", "C", None]), rng.choice(["", "vip"])
        arrivals = invoice_rows(len(invoices), rng.randint(0, 3), day) if step % 4 == 3 else []
        invoices += arrivals
        owed.update({number: Decimal(amount) for number, _c, amount, *_ in arrivals})
        for name, book in (("fast", fast), ("reference", reference)):
            for number, amount in payments:
                book.pay(number, amount, day.isoformat(), reference=f"{number}-{day}")
            if regrade:
                book.customers({**regrade, "credit_grade": grade or "", "tags": tags})
            _import(book, arrivals)
            book.clock.at = at(day)
            sweepers[name].run(at(day))
        day += timedelta(days=rng.choice([1, 1, 2, 3]))

    expected = _rows(reference)
    assert len([e for e in expected["events"] if e["kind"] == "transition"]) > 40  # the books really escalated
    assert {e["kind"] for e in expected["events"]} >= {"transition", "notification", "policy_changed"}
    assert any(i["awaiting_stage"] for i in expected["invoices"])  # an approval was asked for
    assert any(n["recipient"] is None for n in expected["notifications"])  # and an sms had no phone to go to
    actual = _rows(fast)
    for table in ("invoices", "events", "notifications", "sweeps"):
        assert actual[table] == expected[table], table
    assert actual["events"][-1]["hash"] == expected["events"][-1]["hash"]


def _import(book: Book, rows: list[tuple[str, str, str, str, str]]) -> None:
    if rows:
        book.app.importer().import_rows(
            "invoices",
            [
                {
                    "number": number,
                    "customer_id": customer,
                    "currency": "EUR",
                    "amount": amount,
                    "issued_on": due,
                    "due_on": due,
                    "tags": tags,
                }
                for number, customer, amount, due, tags in rows
            ],
        )


def test_notices_grouped_per_customer_take_the_reference_path(tmp_path: Path) -> None:
    book = Book(tmp_path, f"sqlite:///{tmp_path / 'd.db'}", _policies(random.Random(0)), channels=CHANNELS)
    sweeper = book.sweeper(fast=True, chunk_size=CHUNK)
    assert sweeper.fast
    charged = type(book.app.policies)(
        tuple(
            type(p)(**{**{f: getattr(p, f) for f in p.__dataclass_fields__ if f != "_index"}, "group_by": "customer"})
            if p.is_default
            else p
            for p in book.app.policies.policies
        )
    )
    assert not Sweeper(book.app.repo, charged, zone=book.settings.zone, recipients={}).fast
