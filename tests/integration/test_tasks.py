"""Phone and visit channels make tasks for the customer's owner; their outcomes feed the state machine."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from engine.tasks import TaskBook, TaskRefused
from tests.conftest import MEMORY_CHANNELS

CHANNELS = {
    **MEMORY_CHANNELS,
    "phone": {"type": "phone", "recipient": "phone"},
    "visit": {"type": "visit", "recipient": "address"},
}


@pytest.fixture
def book(make_book):  # type: ignore[no-untyped-def]
    book = make_book(channels=CHANNELS)
    book.customers(
        {"id": "C1", "name": "Alpha GmbH", "credit_grade": "A", "owner": "alice", "phone": "+49 30 1"},
        {"id": "C2", "name": "Beta Ltd", "credit_grade": "B", "owner": "bob"},
    )
    book.invoice("INV-1", "C1", "1000.00", "2026-03-01")
    book.invoice("INV-2", "C2", "2000.00", "2026-03-01")
    for day in ("2026-03-04", "2026-03-16"):  # reminder, then phone at day 15
        book.run(day)
    return book


def test_phone_stage_makes_one_task_per_customer_for_its_owner(book) -> None:  # type: ignore[no-untyped-def]
    tasks = TaskBook(book.app)
    (alice,) = tasks.list(owner="alice")
    assert alice["kind"] == "phone" and alice["customer_id"] == "C1" and alice["stage"] == "phone"
    assert alice["contact"]["phone"] == "+49 30 1" and alice["contact"]["name"] == "Alpha GmbH"
    assert alice["invoices"] == [
        {
            "number": "INV-1",
            "currency": "EUR",
            "amount": "1000.00",  # the currency's minor units, as the collector reads them
            "open_amount": "1000.00",
            "due_on": "2026-03-01",
            "days_overdue": 15,
        }
    ]
    assert any("reminder" in h["summary"] for h in alice["history"])
    assert sorted(t["owner"] for t in tasks.list()) == ["alice", "bob"]
    sent = [r for r in book.app.outbox() if r["channel"] == "phone"]
    assert {r["status"] for r in sent} == {"sent"}


def test_no_answer_and_wrong_contact_are_recorded(book) -> None:  # type: ignore[no-untyped-def]
    tasks = TaskBook(book.app)
    (alice,) = tasks.list(owner="alice")
    done = tasks.complete(alice["id"], "no_answer", note="voicemail")
    assert done["status"] == "done" and done["outcome"] == "no_answer" and done["done_by"] == "alice"
    assert tasks.list(owner="alice") == []
    outcome = [e for e in book.app.history("INV-1") if e["kind"] == "task_outcome"]
    assert outcome[0]["outcome"] == "no_answer" and outcome[0]["note"] == "voicemail" and outcome[0]["actor"] == "alice"
    with pytest.raises(TaskRefused, match="already completed"):
        tasks.complete(alice["id"], "paid")
    (bob,) = tasks.list(owner="bob")
    tasks.complete(bob["id"], "wrong_contact")
    from sqlalchemy import select

    from engine.store.models import Customer

    with book.app.repo.read() as session:
        tags = (
            session.connection()
            .execute(select(Customer.__table__.c.tags).where(Customer.__table__.c.id == "C2"))
            .scalar()
        )
    assert "wrong_contact" in tags


def test_promise_pauses_the_invoice(book) -> None:  # type: ignore[no-untyped-def]
    tasks = TaskBook(book.app)
    (alice,) = tasks.list(owner="alice")
    with pytest.raises(TaskRefused, match="--amount"):
        tasks.complete(alice["id"], "promised")
    done = tasks.complete(alice["id"], "promised", amount="1000", by=date(2026, 3, 31), note="CFO agreed")
    assert done["promised_amount"] == Decimal("1000") and done["promised_on"] == date(2026, 3, 31)
    assert book.stage("INV-1") == "promised"
    kinds = [e["kind"] for e in book.app.history("INV-1")]
    assert "promise" in kinds and kinds[-1] == "task_outcome"


def test_dispute_pauses_the_invoice(book) -> None:  # type: ignore[no-untyped-def]
    tasks = TaskBook(book.app)
    (bob,) = tasks.list(owner="bob")
    tasks.complete(bob["id"], "disputed", note="goods arrived damaged")
    assert book.stage("INV-2") == "disputed"
    dispute = [e for e in book.app.history("INV-2") if e["kind"] == "dispute"]
    assert dispute and dispute[0]["reason"] == "goods arrived damaged"


def test_unknown_outcome_is_refused(book) -> None:  # type: ignore[no-untyped-def]
    (alice,) = TaskBook(book.app).list(owner="alice")
    with pytest.raises(TaskRefused, match="unknown outcome"):
        TaskBook(book.app).complete(alice["id"], "maybe")


def test_a_task_is_made_once_per_notification(book) -> None:  # type: ignore[no-untyped-def]
    from sqlalchemy import update

    from engine.store.models import Notification

    app = book.app
    row = [r for r in app.outbox() if r["channel"] == "phone"][0]
    before = len(TaskBook(app).list(status=None))
    # hand the same notification over again, as after a dispatcher crashed between sending and recording
    table = Notification.__table__  # type: ignore[attr-defined]
    with app.repo.write() as session:
        session.connection().execute(update(table).where(table.c.id == row["id"]).values(status="pending"))
    report = app.dispatch(book.clock.at)
    assert report.sent["phone"] == 1
    assert len(TaskBook(app).list(status=None)) == before
