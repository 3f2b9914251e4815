"""`explain` on a real database (SQLite and PostgreSQL): plain words that agree with what the sweep does."""

from __future__ import annotations

from datetime import date

import pytest

from engine.authoring.explain import explain_invoice
from engine.errors import NotFound
from tests.conftest import Book, at


@pytest.fixture
def book(make_book) -> Book:  # type: ignore[no-untyped-def]
    book = make_book()
    book.customers({"id": "C1", "name": "Acme", "credit_grade": "A"}, {"id": "C2", "name": "New Co"})
    book.invoice("INV-1", "C1", "12000.00", due_on="2026-03-01")
    return book


def test_explains_policy_stage_rule_next_step_and_what_holds_it_back(book: Book) -> None:
    book.daily("2026-03-01", "2026-04-05")
    found = explain_invoice(book.app, "INV-1")
    assert found.policy == "standard"
    assert "customer.credit_grade is 'A'" in found.policy_reason
    assert found.stage == "letter" and found.stage_since == date(2026, 3, 31)
    assert found.stage_rule == "letter: after_days 30"
    assert found.next_action is not None
    assert (found.next_action["stage"], found.next_action["on"]) == ("legal", date(2026, 5, 30))
    assert found.next_action["channels"] == ["legal"]
    # the visit at day 60 is out of reach: 12,000 < 50,000
    assert any(
        h.startswith("visit (at 60 days overdue) will be skipped") and "12,000.00" in h and "50000" in h
        for h in found.holding
    ), found.holding
    text = "\n".join(found.lines())
    assert "Policy: standard" in text and "Stage: letter since 2026-03-31" in text
    assert "Next: enters legal on 2026-05-30" in text

    # ... and the sweep agrees: legal on exactly that day, visit skipped with that reason
    book.daily("2026-04-06", "2026-05-30")
    assert book.transitions("INV-1")[-1] == ("2026-05-30", "letter", "legal")
    found = explain_invoice(book.app, "INV-1")
    assert found.stage_rule == "legal: after_days 90 and invoice.open_amount >= 10000"
    assert found.next_action is None
    assert "nothing more will happen" in "\n".join(found.lines())


def test_next_repeat_and_spacing_are_dated(book: Book) -> None:
    book.run("2026-03-04")
    found = explain_invoice(book.app, "INV-1")
    assert found.stage == "reminder"
    assert found.next_action == {
        "action": "repeat",
        "stage": "reminder",
        "on": date(2026, 3, 11),
        "rule": found.next_action["rule"],
        "repeat": 1,
        "channels": ["email"],
        "skipped": [],
        "approval": None,
    }
    # explain as of a later day, when the phone stage is due: the date is that day
    found = explain_invoice(book.app, "INV-1", at("2026-03-20", 12))
    assert found.next_action["stage"] == "phone" and found.next_action["on"] == date(2026, 3, 20)


def test_default_policy_and_current_stage(book: Book) -> None:
    book.invoice("N-1", "C2", "50.00", due_on="2026-05-01")
    found = explain_invoice(book.app, "N-1", at("2026-04-01"))
    assert found.policy == "fallback" and "default policy" in found.policy_reason
    assert any("standard" in reason and "unknown" in reason for reason in found.policies_not_matching)
    assert found.stage == "current"
    assert found.next_action["stage"] == "reminder" and found.next_action["on"] == date(2026, 5, 2)


def test_paid_invoice_is_closed(book: Book) -> None:
    book.pay("INV-1", "12000.00", "2026-03-02")
    found = explain_invoice(book.app, "INV-1", at("2026-03-05"))
    assert found.state == "closed"
    assert found.lines()[-1] == "Closed: paid in full on 2026-03-02; nothing more will happen to it."


def test_disputed_invoice_says_since_when_and_why(book: Book) -> None:
    actions = pytest.importorskip("engine.actions", reason="collector actions not available yet")
    book.run("2026-03-04")
    book.clock.at = at("2026-03-06", 10)
    actions.Collector(book.app, actor="alice").dispute("INV-1", "goods damaged", at=at("2026-03-06", 10))
    found = explain_invoice(book.app, "INV-1", at("2026-03-07"))
    assert found.state == "paused"
    assert found.paused == "disputed since 2026-03-06 (goods damaged)"
    assert "Paused: disputed since 2026-03-06 (goods damaged)." in found.lines()


def test_unknown_invoice_says_what_to_do(book: Book) -> None:
    with pytest.raises(NotFound, match="dunning status"):
        explain_invoice(book.app, "NOPE")


def test_the_first_line_shows_the_currencys_minor_units(book: Book) -> None:
    book.invoice("JPY-1", "C1", "500000", due_on="2026-03-01", currency="JPY")
    book.invoice("KWD-1", "C1", "1234.567", due_on="2026-03-01", currency="KWD")
    assert "500,000 JPY open of 500,000, due 2026-03-01" in explain_invoice(book.app, "JPY-1").lines()[0]
    assert "1,234.567 KWD open of 1,234.567" in explain_invoice(book.app, "KWD-1").lines()[0]
