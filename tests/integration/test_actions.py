"""Collector actions through the engine API on a real database (SQLite and PostgreSQL): disputes, promises,
plans, approvals, write-offs and manual moves, and what the following sweeps do with them."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import pytest

from channels.memory import MemoryChannel
from engine.actions import ActionRefused, Collector, parse_installments
from engine.errors import IllegalTransition
from tests.conftest import Book, at


def daily(book: Book, first: str, last: str) -> None:
    day = date.fromisoformat(first)
    while day <= date.fromisoformat(last):
        book.run(day)
        day += timedelta(days=1)


def on(book: Book, *days: str) -> None:
    """Sweeps on a few days only (where nothing can happen in between, that is what daily sweeps do)."""
    for day in days:
        book.run(day)


def kinds(book: Book, number: str) -> list[str]:
    return [e["kind"] for e in book.app.history(number)]


def events(book: Book, number: str, kind: str) -> list[dict]:
    return [e for e in book.app.history(number) if e["kind"] == kind]


@pytest.fixture
def book(make_book) -> Book:  # type: ignore[no-untyped-def]
    book = make_book()
    book.customers({"id": "C1", "name": "Acme", "credit_grade": "A"})
    return book


def test_dispute_pauses_the_clock_and_resolving_does_not_count_the_paused_days(book: Book) -> None:
    book.invoice("INV-1", "C1", "20000.00", due_on="2026-03-01")
    daily(book, "2026-03-01", "2026-03-03")
    book.app.sweeper().run(at("2026-03-04"))  # the reminder is queued, not yet sent
    alice = Collector(book.app, actor="alice")
    alice.dispute("INV-1", "goods not delivered", at=at("2026-03-04", 10))
    assert [n["status"] for n in book.app.outbox()] == ["cancelled"]

    on(book, "2026-03-05", "2026-03-11", "2026-03-16", "2026-03-24")  # a repeat and phone would be due
    assert book.stage("INV-1") == "disputed"
    assert book.notifications("INV-1") == [("2026-03-04", "reminder", "email", 0)]
    alice.resolve_dispute("INV-1", "delivered on 03-23", at=at("2026-03-24", 10))  # 20 days paused
    daily(book, "2026-03-25", "2026-04-06")

    assert book.transitions("INV-1") == [
        ("2026-03-04", "current", "reminder"),
        ("2026-03-04", "reminder", "disputed"),
        ("2026-03-24", "disputed", "reminder"),
        ("2026-04-05", "reminder", "phone"),  # 35 calendar days overdue - 20 paused = 15
    ]
    assert book.notifications("INV-1")[1:] == [
        ("2026-03-25", "reminder", "email", 1),
        ("2026-04-01", "reminder", "email", 2),
        ("2026-04-05", "phone", "phone", 0),
    ]
    [disputed] = events(book, "INV-1", "dispute")
    assert disputed["actor"] == "alice" and disputed["reason"] == "goods not delivered"
    [resolved] = events(book, "INV-1", "dispute_resolved")
    assert resolved["paused_days"] == 20 and resolved["actor"] == "alice"
    assert len(MemoryChannel.sent) == 3  # the cancelled reminder never went out


def test_a_kept_promise_is_recorded_and_escalation_resumes_for_the_rest(book: Book) -> None:
    book.invoice("INV-1", "C1", "1000.00", due_on="2026-03-01")
    book.invoice("INV-2", "C1", "1000.00", due_on="2026-03-01")
    daily(book, "2026-03-01", "2026-03-04")
    collector = Collector(book.app, actor="bob")
    collector.promise("INV-1", Decimal("1000"), date(2026, 3, 10), "will pay Monday", at=at("2026-03-05", 10))
    collector.promise("INV-2", Decimal("400"), date(2026, 3, 10), at=at("2026-03-05", 10))
    daily(book, "2026-03-05", "2026-03-07")
    book.pay("INV-2", "400.00", "2026-03-08")
    book.run("2026-03-08")
    book.pay("INV-1", "1000.00", "2026-03-09")
    daily(book, "2026-03-09", "2026-03-12")

    [kept] = events(book, "INV-1", "promise_kept")
    assert kept["at"].startswith("2026-03-09") and kept["paid_on"] == "2026-03-09"
    assert book.stage("INV-1") == "paid"
    [kept2] = events(book, "INV-2", "promise_kept")
    assert kept2["at"].startswith("2026-03-08")
    assert book.transitions("INV-2")[-1] == ("2026-03-08", "promised", "reminder")
    assert [e["kind"] for e in book.app.history("INV-1")].count("promise") == 1
    assert events(book, "INV-1", "promise")[0]["actor"] == "bob"


def test_a_broken_promise_moves_on_to_the_next_stage_at_once(book: Book) -> None:
    book.invoice("INV-1", "C1", "20000.00", due_on="2026-03-01")
    daily(book, "2026-03-01", "2026-03-04")
    Collector(book.app, actor="bob").promise("INV-1", Decimal("20000"), date(2026, 3, 10), at=at("2026-03-05", 10))
    daily(book, "2026-03-05", "2026-03-13")  # grace: 3 days after 03-10
    assert book.stage("INV-1") == "promised"
    book.run("2026-03-14")

    assert book.transitions("INV-1") == [
        ("2026-03-04", "current", "reminder"),
        ("2026-03-05", "reminder", "promised"),
        ("2026-03-14", "promised", "reminder"),
        ("2026-03-14", "reminder", "phone"),  # at once: not after_days 15, not the 5 days' spacing
    ]
    [broken] = events(book, "INV-1", "promise_broken")
    assert broken["due_on"] == "2026-03-10" and broken["grace_until"] == "2026-03-13"
    assert book.notifications("INV-1") == [("2026-03-04", "reminder", "email", 0), ("2026-03-14", "phone", "phone", 0)]
    # from there the ladder goes on as usual: 30 days overdue not counting the 9 paused days
    on(book, "2026-04-08")
    assert book.transitions("INV-1")[-1] == ("2026-03-14", "reminder", "phone")
    on(book, "2026-04-09")
    assert book.transitions("INV-1")[-1] == ("2026-04-09", "phone", "letter")


def test_payment_plans_track_each_installment(book: Book) -> None:
    book.invoice("KEPT", "C1", "10000.00", due_on="2026-03-01")
    book.invoice("MISSED", "C1", "10000.00", due_on="2026-03-01")
    daily(book, "2026-03-01", "2026-03-04")
    collector = Collector(book.app, actor="carol")
    for number in ("KEPT", "MISSED"):
        collector.plan(number, parse_installments("2026-03-15:5000,2026-04-15:5000"), at=at("2026-03-05", 10))
    on(book, "2026-03-05", "2026-03-13")
    book.pay("KEPT", "5000.00", "2026-03-14")
    book.pay("MISSED", "5000.00", "2026-03-14")
    on(book, "2026-03-14", "2026-04-13")
    book.pay("KEPT", "5000.00", "2026-04-14")
    on(book, "2026-04-14", "2026-04-18")
    assert book.stage("MISSED") == "promised"
    book.run("2026-04-19")

    assert [(e["installment"], e["at"][:10]) for e in events(book, "KEPT", "installment_kept")] == [
        (1, "2026-03-14"),
        (2, "2026-04-14"),
    ]
    assert len(events(book, "KEPT", "plan_completed")) == 1 and book.stage("KEPT") == "paid"
    assert [e["installment"] for e in events(book, "MISSED", "installment_kept")] == [1]
    [missed] = events(book, "MISSED", "installment_missed")
    assert missed["installment"] == 2 and missed["at"].startswith("2026-04-19")
    assert book.transitions("MISSED")[-1] == ("2026-04-19", "promised", "reminder")
    # escalation resumed: 49 days overdue minus 45 paused; the reminder repeats, phone comes at "15"
    on(book, "2026-04-29")
    assert book.transitions("MISSED")[-1] == ("2026-04-19", "promised", "reminder")
    on(book, "2026-04-30")
    assert book.transitions("MISSED")[-1] == ("2026-04-30", "reminder", "phone")
    [plan] = events(book, "MISSED", "plan")
    assert plan["installments"] == [
        {"due_on": "2026-03-15", "amount": "5000"},
        {"due_on": "2026-04-15", "amount": "5000"},
    ]


def test_an_approval_stage_waits_silently_until_approved(make_book) -> None:  # type: ignore[no-untyped-def]
    policy = """\
    name: approvals
    stages:
      - {name: reminder, after_days: 1, channels: [email]}
      - {name: legal, after_days: 10, channels: [legal], approval: required}
    """
    book = make_book({"p.yaml": policy})
    book.customers({"id": "C1", "name": "Acme"})
    book.invoice("L", "C1", "5000.00", due_on="2026-03-01")
    daily(book, "2026-03-01", "2026-03-15")
    [requested] = events(book, "L", "approval_requested")
    assert requested["at"].startswith("2026-03-11") and requested["to"] == "legal"
    assert book.stage("L") == "reminder"
    assert [n[1] for n in book.notifications("L")] == ["reminder"]

    Collector(book.app, actor="carol").approve("L", at=at("2026-03-15", 10))
    book.app.dispatch(at("2026-03-15", 11))
    assert book.stage("L") == "legal"
    [approval] = events(book, "L", "approval")
    assert approval["actor"] == "carol" and approval["approver"] == "carol"
    assert book.transitions("L")[-1] == ("2026-03-15", "reminder", "legal")
    assert [m.channel for m in MemoryChannel.sent] == ["email", "legal"]
    with pytest.raises(ActionRefused, match="not awaiting approval"):
        Collector(book.app, actor="carol").approve("L")


def test_write_off_stops_collection_and_cancels_queued_notices(book: Book) -> None:
    book.invoice("W", "C1", "700.00", due_on="2026-03-01")
    book.app.sweeper().run(at("2026-03-04"))
    Collector(book.app, actor="cfo").write_off("W", "customer insolvent", at=at("2026-03-04", 12))
    assert [n["status"] for n in book.app.outbox()] == ["cancelled"]
    on(book, "2026-03-05", "2026-04-30")
    assert book.stage("W") == "written_off"
    [entry] = events(book, "W", "write_off")
    assert entry["amount"] == "700.00" and entry["approver"] == "cfo" and entry["reason"] == "customer insolvent"
    assert MemoryChannel.sent == []
    with pytest.raises(IllegalTransition):
        Collector(book.app).dispute("W", "too late")


def test_manual_move_is_audited_and_queues_the_stage_notices(book: Book) -> None:
    book.invoice("M", "C1", "20000.00", due_on="2026-03-01")
    daily(book, "2026-03-01", "2026-03-05")
    collector = Collector(book.app, actor="dave")
    collector.move("M", "letter", "customer unreachable by phone", at=at("2026-03-05", 12))
    [override] = events(book, "M", "override")
    assert override["actor"] == "dave" and (override["from"], override["to"]) == ("reminder", "letter")
    assert book.transitions("M")[-1] == ("2026-03-05", "reminder", "letter")
    assert [(n[1], n[2]) for n in book.notifications("M")][-2:] == [("letter", "letter"), ("letter", "email")]
    with pytest.raises(ActionRefused, match="has no stage 'lawyer'"):
        collector.move("M", "lawyer", "typo")
    with pytest.raises(IllegalTransition):
        collector.move("M", "letter", "again")
    before = book.app.history("M")
    with pytest.raises(ActionRefused):
        collector.resolve_dispute("M")
    with pytest.raises(ActionRefused, match="reason"):
        collector.write_off("M", " ")
    assert book.app.history("M") == before
    collector.note("M", "spoke to their CFO")
    assert events(book, "M", "note")[0]["text"] == "spoke to their CFO"
    # escalation continues from the new stage: legal at 90 days overdue
    on(book, "2026-05-29")
    assert book.transitions("M")[-1] == ("2026-03-05", "reminder", "letter")
    on(book, "2026-05-30")
    assert book.transitions("M")[-1] == ("2026-05-30", "letter", "legal")


def test_promise_on_a_disputed_invoice_is_illegal_and_changes_nothing(book: Book) -> None:
    book.invoice("D", "C1", "500.00", due_on="2026-03-01")
    collector = Collector(book.app, actor="eve")
    collector.dispute("D", "wrong price", at=at("2026-03-02"))
    before = book.app.history("D")
    with pytest.raises(IllegalTransition, match="not allowed"):
        collector.promise("D", Decimal("500"), date(2026, 3, 20), at=at("2026-03-03"))
    assert book.app.history("D") == before
    with pytest.raises(ActionRefused, match="not DATE:AMOUNT"):
        parse_installments("2026-03-01=5")


FALLBACK_POLICY = """\
name: approvals
stages:
  - {name: reminder, after_days: 1, channels: [letter]}
  - {name: final, after_days: 10, channels: [email], fallback: {email: letter}, approval: required}
"""


@pytest.mark.parametrize("how", ["approve", "move"])
def test_notices_queued_by_approve_or_move_keep_the_stage_fallback(make_book, how: str) -> None:  # type: ignore[no-untyped-def]
    channels = {
        "email": {"type": "memory", "recipient": "email", "fail": "permanent"},
        "letter": {"type": "memory", "recipient": "address"},
    }
    book = make_book({"p.yaml": FALLBACK_POLICY}, channels=channels)
    book.customers({"id": "C1", "name": "Acme"})
    book.invoice("F", "C1", "900.00", due_on="2026-03-01")
    daily(book, "2026-03-01", "2026-03-12")  # reminder on 03-02; `final` awaits approval from 03-11
    assert book.stage("F") == "reminder"
    collector = Collector(book.app, actor="carol")
    if how == "approve":
        collector.approve("F", at=at("2026-03-12", 10))
    else:
        collector.move("F", "final", "customer stopped answering", at=at("2026-03-12", 10))
    book.app.dispatch(at("2026-03-12", 11))  # the email fails for good: the stage's fallback letter is queued
    book.app.dispatch(at("2026-03-12", 12))
    outbox = [(n["stage"], n["channel"], n["status"]) for n in book.app.outbox() if n["stage"] == "final"]
    assert outbox == [("final", "email", "failed"), ("final", "letter", "sent")]
    [fallback] = [e for e in events(book, "F", "notification") if e.get("fallback_for")]
    assert fallback["channel"] == "letter" and fallback["stage"] == "final"
    assert [(m.stage, m.channel) for m in MemoryChannel.sent] == [("reminder", "letter"), ("final", "letter")]


def test_refusals_name_amounts_in_the_currencys_minor_units(book: Book) -> None:
    book.invoice("P", "C1", "50000.00", due_on="2026-03-01")
    book.pay("P", "2503.07", "2026-03-02")
    collector = Collector(book.app, actor="bob")
    with pytest.raises(ActionRefused) as refused:
        collector.promise("P", Decimal("50000"), date(2026, 3, 20), at=at("2026-03-05", 10))
    assert "exceeds the open amount 47496.93 of invoice P" in str(refused.value)  # not 47496.9300
    with pytest.raises(ActionRefused) as refused:
        collector.plan("P", [(date(2026, 3, 20), Decimal("50000"))], at=at("2026-03-05", 10))
    assert "more than the open amount 47496.93 of invoice P" in str(refused.value)
