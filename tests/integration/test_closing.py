"""Every way an invoice closes leaves it in the same shape (SQLite and PostgreSQL).

An invoice closes when a payment settles its open amount, when a re-imported amount drops to what was
already paid, or when it is written off. Whichever it was, the collection state is reset the same way:
no repeats, no last notice, no pause to resume, no approval awaited, no escalation flagged, nothing for
the next sweep, `closed_at` = `stage_entered_at` = the closing instant, and its queued notices cancelled.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import select

from engine.actions import Collector
from engine.store.models import Invoice
from tests.conftest import Book, at

POLICY = """\
name: ladder
stages:
  - {name: reminder, after_days: 1, channels: [email], repeat: {every_days: 2, max: 3}}
  - {name: legal, after_days: 10, channels: [legal], approval: required}
"""

STATE = (
    "stage",
    "stage_repeats",
    "last_notice_at",
    "resume_stage",
    "paused_since",
    "awaiting_stage",
    "escalate_now",
    "next_action_on",
    "closed_at",
    "stage_entered_at",
    "open_amount",
)


def row(book: Book, number: str) -> dict[str, Any]:
    table = Invoice.__table__  # type: ignore[attr-defined]
    with book.app.repo.read() as session:
        found = session.connection().execute(select(table).where(table.c.number == number)).mappings().one()
    return {name: found[name] for name in STATE}


def awaiting_approval(book: Book) -> None:
    """In `reminder` with its three repeats sent, waiting for approval to enter `legal`."""
    book.daily("2026-03-01", "2026-03-12")


def promised(book: Book) -> None:
    """Paused by a promise to pay, after a reminder and a repeat."""
    book.daily("2026-03-01", "2026-03-05")
    Collector(book.app, actor="alice").promise("X", Decimal("400.00"), at("2026-03-20").date(), at=at("2026-03-05", 10))


def repeat_queued(book: Book) -> None:
    """In `reminder`, its first repeat queued by a sweep and not yet sent."""
    book.daily("2026-03-01", "2026-03-03")
    book.app.sweeper().run(at("2026-03-04"))
    assert [n["status"] for n in book.app.outbox()][-1] == "pending"


def pay_in_full(book: Book) -> None:
    book.clock.at = at("2026-03-13", 8)
    book.pay("X", "900.00", "2026-03-13")


def lower_amount_to_paid(book: Book) -> None:
    book.clock.at = at("2026-03-13", 7)
    book.pay("X", "500.00", "2026-03-12")
    book.clock.at = at("2026-03-13", 8)
    book.invoice("X", "C1", "500.00", due_on="2026-03-01")


def write_off(book: Book) -> None:
    Collector(book.app, actor="cfo").write_off("X", "insolvent", at=at("2026-03-13", 8))


CLOSERS: dict[str, tuple[Callable[[Book], None], str]] = {
    "payment": (pay_in_full, "paid"),
    "amount-lowered": (lower_amount_to_paid, "paid"),
    "write-off": (write_off, "written_off"),
}


@pytest.mark.parametrize(
    "before", [awaiting_approval, promised, repeat_queued], ids=["awaiting-approval", "promised", "repeat-queued"]
)
@pytest.mark.parametrize("how", list(CLOSERS))
def test_every_way_of_closing_resets_the_same_fields(make_book, how: str, before: Callable[[Book], None]) -> None:  # type: ignore[no-untyped-def]
    book = make_book({"p.yaml": POLICY})
    book.customers({"id": "C1", "name": "Acme"})
    book.invoice("X", "C1", "900.00", due_on="2026-03-01")
    before(book)
    assert row(book, "X")["last_notice_at"] is not None

    close, stage = CLOSERS[how]
    close(book)

    closed = row(book, "X")
    instant = closed.pop("closed_at")
    assert instant is not None and closed.pop("stage_entered_at") == instant
    open_amount = closed.pop("open_amount")
    assert closed == {
        "stage": stage,
        "stage_repeats": 0,
        "last_notice_at": None,
        "resume_stage": None,
        "paused_since": None,
        "awaiting_stage": None,
        "escalate_now": False,
        "next_action_on": None,
    }
    assert open_amount == (0 if stage == "paid" else 900)
    assert "pending" not in [n["status"] for n in book.app.outbox()]  # a queued repeat is cancelled
