"""The escalation semantics, driven through the engine API on a real database (SQLite and PostgreSQL)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from channels.memory import MemoryChannel
from engine.errors import IllegalTransition, SweepRefused
from engine.policy.machine import Case, machine_for
from tests.conftest import CANONICAL_POLICY, DEFAULT_POLICY, Book, at


@pytest.fixture
def book(make_book) -> Book:  # type: ignore[no-untyped-def]
    book = make_book()
    book.customers({"id": "C1", "name": "Acme", "credit_grade": "A"})
    return book


def test_each_stage_entered_on_its_day_with_skip_and_repeat(book: Book) -> None:
    book.invoice("INV-1", "C1", "20000.00", due_on="2026-03-01")
    book.daily("2026-02-20", "2026-06-15")

    assert book.transitions("INV-1") == [
        ("2026-02-26", "current", "courtesy"),
        ("2026-03-04", "courtesy", "reminder"),
        ("2026-03-16", "reminder", "phone"),
        ("2026-03-31", "phone", "letter"),
        ("2026-05-30", "letter", "legal"),
    ]
    assert book.notifications("INV-1") == [
        ("2026-02-26", "courtesy", "email", 0),
        ("2026-03-04", "reminder", "email", 0),
        ("2026-03-11", "reminder", "email", 1),
        ("2026-03-16", "phone", "phone", 0),
        ("2026-03-31", "letter", "letter", 0),
        ("2026-03-31", "letter", "email", 0),
        ("2026-05-30", "legal", "legal", 0),
    ]
    legal = [e for e in book.app.history("INV-1") if e["kind"] == "transition"][-1]
    assert legal["skipped"] == [{"stage": "visit", "reason": "condition not met: invoice.open_amount >= 50000"}]
    assert legal["policy"] == "standard"
    assert legal["policy_hash"] == book.app.policies.by_name("standard").hash
    assert legal["rule"] == "legal: after_days 90 and invoice.open_amount >= 10000"
    # every notification went out through the memory channels
    assert len(MemoryChannel.sent) == 7
    assert all(e["status"] == "sent" for e in book.app.history("INV-1") if e["kind"] == "notification")


def test_small_invoice_never_reaches_visit_or_legal(book: Book) -> None:
    book.invoice("INV-2", "C1", "900.00", due_on="2026-03-01")
    book.daily("2026-03-01", "2026-07-01")
    assert [t[2] for t in book.transitions("INV-2")] == ["reminder", "phone", "letter"]
    assert book.stage("INV-2") == "letter"


def test_large_invoice_gets_a_visit_at_day_60(book: Book) -> None:
    book.invoice("INV-3", "C1", "75000.00", due_on="2026-03-01")
    book.daily("2026-03-02", "2026-05-05")
    assert book.transitions("INV-3")[-1] == ("2026-04-30", "letter", "visit")


def test_pre_due_stage_is_never_entered_once_due(book: Book) -> None:
    book.invoice("INV-4", "C1", "500.00", due_on="2026-03-01")
    book.daily("2026-03-01", "2026-03-05")
    assert book.transitions("INV-4") == [("2026-03-04", "current", "reminder")]
    assert [n[1] for n in book.notifications("INV-4")] == ["reminder"]


def test_step_catch_up_moves_one_stage_per_sweep_with_min_spacing(book: Book) -> None:
    book.invoice("LATE", "C1", "60000.00", due_on="2026-01-01")
    book.daily("2026-04-11", "2026-05-10")  # first sweep at 100 days overdue
    assert book.transitions("LATE") == [
        ("2026-04-11", "current", "reminder"),
        ("2026-04-16", "reminder", "phone"),
        ("2026-04-21", "phone", "letter"),
        ("2026-04-26", "letter", "visit"),
        ("2026-05-01", "visit", "legal"),
    ]
    # the courtesy stage was passed over, not notified
    first = [e for e in book.app.history("LATE") if e["kind"] == "transition"][0]
    assert first["skipped"] == [{"stage": "courtesy", "reason": "pre-due stage: the invoice is already due"}]


def test_jump_catch_up_goes_straight_to_the_highest_due_stage(make_book) -> None:  # type: ignore[no-untyped-def]
    book = make_book(
        {
            "10-standard.yaml": CANONICAL_POLICY.replace("catch_up: step", "catch_up: jump"),
            "90-default.yaml": DEFAULT_POLICY,
        }
    )
    book.customers({"id": "C1", "name": "Acme", "credit_grade": "B"})
    book.invoice("LATE", "C1", "20000.00", due_on="2026-01-01")
    book.run("2026-04-11")
    assert book.transitions("LATE") == [("2026-04-11", "current", "legal")]
    assert book.notifications("LATE") == [("2026-04-11", "legal", "legal", 0)]
    transition = [e for e in book.app.history("LATE") if e["kind"] == "transition"][0]
    assert [s["stage"] for s in transition["skipped"]] == ["courtesy", "reminder", "phone", "letter", "visit"]


def test_repeat_stops_at_max(make_book) -> None:  # type: ignore[no-untyped-def]
    policy = """\
    name: only
    stages:
      - name: reminder
        after_days: 1
        channels: [email]
        repeat: {every_days: 2, max: 3}
      - name: letter
        after_days: 40
        channels: [letter]
    """
    book = make_book({"only.yaml": policy})
    book.customers({"id": "C1", "name": "Acme"})
    book.invoice("R", "C1", "100.00", due_on="2026-03-01")
    book.daily("2026-03-01", "2026-03-20")
    assert book.notifications("R") == [
        ("2026-03-02", "reminder", "email", 0),
        ("2026-03-04", "reminder", "email", 1),
        ("2026-03-06", "reminder", "email", 2),
        ("2026-03-08", "reminder", "email", 3),
    ]


def test_min_spacing_delays_a_stage_that_is_already_due(make_book) -> None:  # type: ignore[no-untyped-def]
    policy = """\
    name: tight
    min_days_between_stages: 10
    stages:
      - {name: first, after_days: 1, channels: [email]}
      - {name: second, after_days: 3, channels: [email]}
    """
    book = make_book({"tight.yaml": policy})
    book.customers({"id": "C1", "name": "Acme"})
    book.invoice("S", "C1", "100.00", due_on="2026-03-01")
    book.daily("2026-03-01", "2026-03-15")
    assert book.transitions("S") == [("2026-03-02", "current", "first"), ("2026-03-12", "first", "second")]


def test_first_matching_policy_governs_and_default_catches_the_rest(book: Book) -> None:
    book.customers({"id": "C2", "name": "Bolt", "credit_grade": "D"}, {"id": "C3", "name": "New Co"})
    for number, customer in (("A1", "C1"), ("D1", "C2"), ("N1", "C3")):
        book.invoice(number, customer, "100.00", due_on="2026-03-01")
    book.run("2026-03-05")
    policies = {i["number"]: i["policy"] for i in book.app.open_invoices()}
    assert policies == {"A1": "standard", "D1": "fallback", "N1": "fallback"}


def test_rerun_at_the_same_instant_changes_and_sends_nothing(book: Book) -> None:
    book.invoice("INV-1", "C1", "20000.00", due_on="2026-03-01")
    first = book.run("2026-03-20")
    outbox = book.app.outbox()
    second = book.run("2026-03-20")
    assert first.sweep.transitions == 1 and not first.sweep.already_swept
    assert second.sweep.already_swept and second.sweep.transitions == 0
    assert sum(second.dispatch.sent.values()) == 0
    assert book.app.outbox() == outbox
    assert len(MemoryChannel.sent) == 1


def test_a_sweep_in_the_past_is_refused_and_changes_nothing(book: Book) -> None:
    book.invoice("INV-1", "C1", "20000.00", due_on="2026-03-01")
    book.run("2026-03-20")
    before = book.app.history("INV-1")
    with pytest.raises(SweepRefused, match="latest sweep ran as of 2026-03-20"):
        book.run("2026-03-19")
    assert book.app.history("INV-1") == before


def test_partial_payment_keeps_the_invoice_in_collection(book: Book) -> None:
    book.invoice("INV-1", "C1", "1000.00", due_on="2026-03-01")
    book.run("2026-03-05")
    book.pay("INV-1", "400.10", "2026-03-06")
    book.run("2026-03-07")
    invoice = next(i for i in book.app.open_invoices() if i["number"] == "INV-1")
    assert invoice["open_amount"] == Decimal("599.90")
    assert invoice["stage"] == "reminder"


def test_settling_payment_closes_the_invoice_and_cancels_queued_notices(book: Book) -> None:
    book.invoice("INV-1", "C1", "1000.00", due_on="2026-03-01")
    book.app.sweeper().run(at("2026-03-05"))  # swept, not yet dispatched: one email is queued
    assert [n["status"] for n in book.app.outbox()] == ["pending"]
    book.pay("INV-1", "600.00", "2026-03-06", "R1")
    book.pay("INV-1", "400.00", "2026-03-06", "R2")
    assert [n["status"] for n in book.app.outbox()] == ["cancelled"]
    assert all(i["number"] != "INV-1" for i in book.app.open_invoices())
    book.daily("2026-03-07", "2026-04-30")
    kinds = [(e["kind"], e.get("to")) for e in book.app.history("INV-1")]
    assert kinds[-1] == ("transition", "paid")
    assert ("payment", None) in kinds
    assert MemoryChannel.sent == []


def test_customer_without_address_fails_that_notice_only(book: Book) -> None:
    book.customers({"id": "C9", "name": "Nomail", "credit_grade": "A", "email": ""})
    book.invoice("X", "C9", "100.00", due_on="2026-03-01")
    book.run("2026-03-04")
    [notice] = book.app.outbox()
    assert notice["status"] == "failed"
    assert "has no email" in notice["error"]


def test_transient_failures_retry_and_do_not_block_other_channels(make_book) -> None:  # type: ignore[no-untyped-def]
    channels = {
        "email": {"type": "memory", "recipient": "email", "fail": "transient"},
        "letter": {"type": "memory", "recipient": "address"},
        "phone": {"type": "memory", "recipient": "phone", "fail": "permanent"},
        "visit": {"type": "memory", "recipient": "address"},
        "legal": {"type": "memory", "recipient": "address"},
    }
    policy = """\
    name: both
    stages:
      - {name: notice, after_days: 1, channels: [email, letter, phone]}
    """
    book = make_book({"p.yaml": policy}, channels=channels)
    book.customers({"id": "C1", "name": "Acme"})
    book.invoice("Y", "C1", "100.00", due_on="2026-03-01")
    report = book.run("2026-03-02")
    assert report.dispatch.sent == {"letter": 1}
    assert report.dispatch.retrying == {"email": 1}
    assert report.dispatch.failed == {"phone": 1}
    by_channel = {n["channel"]: n for n in book.app.outbox()}
    assert by_channel["email"]["status"] == "pending" and by_channel["email"]["attempts"] == 1
    assert by_channel["phone"]["status"] == "failed" and "550" in by_channel["phone"]["error"]
    # the retry waits for its backoff, then is attempted again
    assert sum(book.app.dispatch(at("2026-03-02", 9)).retrying.values()) == 0
    assert book.app.dispatch(at("2026-03-02", 10)).retrying == {"email": 1}


def test_business_days_skip_weekends_and_holidays(make_book) -> None:  # type: ignore[no-untyped-def]
    policy = """\
    name: biz
    days: business
    calendar: {country: DE}
    stages:
      - {name: reminder, after_days: 3, channels: [email]}
    """
    book = make_book({"biz.yaml": policy})
    book.customers({"id": "C1", "name": "Acme"})
    # due Thursday 2026-04-02; Good Friday (04-03) and Easter Monday (04-06) are German holidays
    book.invoice("B", "C1", "100.00", due_on="2026-04-02")
    book.daily("2026-04-02", "2026-04-12")
    assert book.transitions("B") == [("2026-04-09", "current", "reminder")]


def test_escalating_a_paid_invoice_is_illegal_and_changes_nothing(book: Book) -> None:
    machine = machine_for(book.app.policies.by_name("standard"))
    case = Case("INV-1", "paid")
    with pytest.raises(IllegalTransition, match="not allowed"):
        machine.fire(case, "escalate_to_letter")
    assert case.stage == "paid" and case.moves == []
