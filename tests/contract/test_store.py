"""The store's contract, the same on SQLite and on PostgreSQL (through tests/conftest.py's `database_url`).

What every use case relies on engine.store for: the event chain appends and verifies, the outbox builds,
claims and records notifications (their fallback included), closing an invoice writes one shape, and the
locks serialise what must be singleton work.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import select, update

from engine.store import locks, outbox
from engine.store.bulk import insert_customers, update_invoices
from engine.store.database import Repository
from engine.store.events import EVENTS, GENESIS, append_events, iter_events, new_event, verify_chain
from engine.store.imports import add_invoices
from engine.store.invoices import INVOICES, closed, entered_stage, wake
from engine.store.models import NotificationStatus
from tests.conftest import postgres_schema

NOW = datetime(2026, 3, 10, 9, tzinfo=timezone.utc)


@pytest.fixture
def repo(database_url: str) -> Iterator[Repository]:
    repo = Repository.open(database_url)
    yield repo
    repo.dispose()


@pytest.fixture
def invoice_id(repo: Repository) -> int:
    """One customer (with an email, no phone) and one open invoice of theirs, in `reminder`."""
    with repo.write() as session:
        conn = session.connection()
        insert_customers(
            conn,
            [
                {
                    "id": "C1",
                    "name": "Acme",
                    "email": "ap@acme.example",
                    "phone": None,
                    "address": "1 Main St",
                    "credit_grade": "A",
                    "segment": None,
                    "owner": "alice",
                    "language": "en",
                    "timezone": None,
                    "tags": [],
                }
            ],
        )
        ids = add_invoices(
            conn,
            [
                {
                    "number": "INV-1",
                    "customer_id": "C1",
                    "currency": "EUR",
                    "amount": Decimal("900"),
                    "open_amount": Decimal("900"),
                    "issued_on": date(2026, 2, 1),
                    "due_on": date(2026, 3, 1),
                    "tags": [],
                    "stage": "reminder",
                    "policy": "standard",
                    "stage_repeats": 2,
                    "paused_days": 0,
                    "escalate_now": True,
                    "updated_at": NOW,
                    "stage_entered_at": NOW - timedelta(days=5),
                    "last_notice_at": NOW,
                    "resume_stage": "reminder",
                    "paused_since": NOW,
                    "awaiting_stage": "legal",
                    "next_action_on": date(2026, 3, 20),
                }
            ],
        )
    return ids["INV-1"]


def invoice(repo: Repository, invoice_id: int) -> dict[str, Any]:
    with repo.read() as session:
        row = session.connection().execute(select(INVOICES).where(INVOICES.c.id == invoice_id)).mappings().one()
    return dict(row)


# -- the event chain -------------------------------------------------------------------------------------------


def note(number: str, text_: str, at: datetime, invoice_id: int | None = None) -> dict[str, Any]:
    return new_event(
        "note",
        at=at,
        recorded_at=at,
        invoice_id=invoice_id,
        customer_id="C1",
        actor="alice",
        number=number,
        data={"text": text_, "amount": Decimal("1.50"), "on": date(2026, 3, 1)},
    )


def test_events_are_chained_across_transactions_and_verify(repo: Repository, invoice_id: int) -> None:
    with repo.write() as session:
        append_events(session.connection(), [note("INV-1", "first", NOW, invoice_id), note("INV-1", "second", NOW)])
    with repo.write() as session:
        append_events(session.connection(), [note("INV-1", "third", NOW + timedelta(seconds=1))])
    with repo.read() as session:
        conn = session.connection()
        rows = list(iter_events(conn))
        report = verify_chain(conn)
    assert [r["data"]["text"] for r in rows] == ["first", "second", "third"]
    assert rows[0]["prev_hash"] == GENESIS
    assert [r["prev_hash"] for r in rows[1:]] == [r["hash"] for r in rows[:-1]]
    assert rows[0]["data"] == {"invoice": "INV-1", "text": "first", "amount": "1.50", "on": "2026-03-01"}
    assert rows[0]["actor"] == "alice" and rows[1]["invoice_id"] is None
    assert report.ok and report.events == 3 and report.head == rows[-1]["hash"]
    with repo.read() as session:
        assert not verify_chain(session.connection(), expect_head=rows[0]["hash"]).ok


def test_an_altered_event_breaks_the_chain_where_it_was_altered(repo: Repository, invoice_id: int) -> None:
    with repo.write() as session:
        append_events(session.connection(), [note("INV-1", t, NOW, invoice_id) for t in ("a", "b", "c")])
    with repo.write() as session:
        conn = session.connection()
        second = conn.execute(select(EVENTS.c.id).order_by(EVENTS.c.id).offset(1).limit(1)).scalar_one()
        conn.execute(update(EVENTS).where(EVENTS.c.id == second).values(actor="mallory"))
    with repo.read() as session:
        report = verify_chain(session.connection())
    assert report.problem is not None and report.problem.event_id == second and report.problem.position == 2


def test_the_builder_leads_data_with_the_invoice_number_only_when_given() -> None:
    event = new_event("pause", at=NOW, recorded_at=NOW, data={"why": "x"})
    assert event == {
        "at": NOW,
        "recorded_at": NOW,
        "kind": "pause",
        "invoice_id": None,
        "customer_id": None,
        "actor": "system",
        "data": {"why": "x"},
    }
    assert new_event("note", at=NOW, recorded_at=NOW, number="N", data={"a": 1})["data"] == {"invoice": "N", "a": 1}


# -- the outbox ------------------------------------------------------------------------------------------------


def email(
    invoice_id: int,
    *,
    key: str = "INV-1/reminder/0/email",
    fallback: str | None = "letter",
    recipient: str | None = "ap@acme.example",
    due_at: datetime | None = None,
) -> dict[str, Any]:
    return outbox.notification(
        key=key,
        invoice_id=invoice_id,
        customer_id="C1",
        policy="standard",
        stage="reminder",
        channel="email",
        repeat_no=0,
        recipient=recipient,
        recipient_field="email",
        created_at=NOW,
        fallback=fallback,
        due_at=due_at,
    )


def test_a_notification_is_built_with_every_field_and_fails_at_birth_without_an_address(invoice_id: int) -> None:
    row = email(invoice_id)
    assert row["status"] == NotificationStatus.PENDING and row["error"] is None
    assert row["fallback"] == "letter" and row["due_at"] == NOW and row["attempts"] == 0
    unaddressed = email(invoice_id, recipient=None)
    assert unaddressed["status"] == NotificationStatus.FAILED
    assert unaddressed["error"] == (
        "customer C1 has no email; add it (dunning import customers) so the email channel can reach them"
    )
    stand_in = outbox.notification(
        key=outbox.fallback_key(row["key"], "phone"),
        invoice_id=invoice_id,
        customer_id="C1",
        policy="standard",
        stage="reminder",
        channel="phone",
        repeat_no=0,
        recipient=None,
        recipient_field="phone",
        created_at=NOW,
        fallback=None,
        fallback_of=1,
    )
    assert stand_in["key"] == "INV-1/reminder/0/email>phone"
    assert stand_in["error"] == "customer C1 has no phone for the fallback channel phone"
    assert set(row) == set(unaddressed) == set(stand_in)  # one shape: one bulk statement


def test_claim_leases_due_rows_with_their_invoice_and_customer(repo: Repository, invoice_id: int) -> None:
    with repo.write() as session:
        outbox.queue(
            session.connection(), [email(invoice_id), email(invoice_id, key="later", due_at=NOW + timedelta(days=1))]
        )
    lease = NOW + timedelta(minutes=5)
    with repo.write() as session:
        [claimed] = outbox.claim(session.connection(), NOW, 10, lease)
    assert claimed["status"] == NotificationStatus.SENDING and claimed["attempts"] == 1
    assert (
        claimed["fallback"] == "letter" and claimed["i_number"] == "INV-1" and claimed["c_email"] == "ap@acme.example"
    )
    assert outbox.recipient_of(claimed, "email") == "ap@acme.example" and outbox.recipient_of(claimed, "id") == "C1"
    with repo.write() as session:
        assert outbox.claim(session.connection(), NOW, 10, lease) == []  # leased: nobody else takes it
    with repo.write() as session:  # the lease ran out (the dispatcher died): the next claim takes it over
        [again] = outbox.claim(session.connection(), lease + timedelta(seconds=1), 10, lease + timedelta(minutes=5))
    assert again["id"] == claimed["id"] and again["attempts"] == 2


def test_recording_settles_only_rows_still_being_sent(repo: Repository, invoice_id: int) -> None:
    with repo.write() as session:
        outbox.queue(session.connection(), [email(invoice_id)])
    with repo.write() as session:
        [claimed] = outbox.claim(session.connection(), NOW, 10, NOW + timedelta(minutes=5))
    values = {"status": NotificationStatus.FAILED, "claimed_until": None, "error": "550 rejected"}
    with repo.write() as session:
        assert outbox.record_outcome(session.connection(), claimed["id"], values)
    with repo.write() as session:
        assert not outbox.record_outcome(session.connection(), claimed["id"], values)  # settled already
    stand_in = outbox.notification(
        key=outbox.fallback_key(claimed["key"], "letter"),
        invoice_id=invoice_id,
        customer_id="C1",
        policy="standard",
        stage="reminder",
        channel="letter",
        repeat_no=0,
        recipient="1 Main St",
        recipient_field="address",
        created_at=NOW,
        fallback=None,
        fallback_of=claimed["id"],
    )
    with repo.write() as session:
        assert outbox.queue_once(session.connection(), stand_in)
        assert not outbox.queue_once(session.connection(), stand_in)  # one fallback per failure
    with repo.write() as session:
        [letter] = outbox.claim(session.connection(), NOW, 10, NOW + timedelta(minutes=5))
    assert letter["channel"] == "letter" and letter["fallback_of"] == claimed["id"] and letter["fallback"] is None


def test_held_rows_go_back_due_later_without_counting_an_attempt(repo: Repository, invoice_id: int) -> None:
    with repo.write() as session:
        outbox.queue(session.connection(), [email(invoice_id)])
    with repo.write() as session:
        conn = session.connection()
        [claimed] = outbox.claim(conn, NOW, 10, NOW + timedelta(minutes=5))
        outbox.hold_back(conn, claimed["id"], NOW + timedelta(hours=12))
    with repo.write() as session:
        conn = session.connection()
        assert outbox.claim(conn, NOW + timedelta(hours=11), 10, NOW + timedelta(hours=12)) == []
        [released] = outbox.claim(conn, NOW + timedelta(hours=12), 10, NOW + timedelta(hours=13))
    assert released["attempts"] == 1


def test_pending_notices_of_closed_invoices_are_cancelled(repo: Repository, invoice_id: int) -> None:
    with repo.write() as session:
        conn = session.connection()
        outbox.queue(conn, [email(invoice_id)])
        outbox.cancel_pending(conn, [invoice_id], "invoice paid before sending")
    with repo.write() as session:
        assert outbox.claim(session.connection(), NOW, 10, NOW + timedelta(minutes=5)) == []


# -- invoices --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("stage", ["paid", "written_off"])
def test_closing_writes_one_shape(repo: Repository, invoice_id: int, stage: str) -> None:
    at = NOW + timedelta(hours=1)
    with repo.write() as session:
        update_invoices(session.connection(), [{"id": invoice_id, **closed(stage, at), "updated_at": at}])
    row = invoice(repo, invoice_id)
    assert {name: row[name] for name in closed(stage, at)} == {
        "stage": stage,
        "stage_entered_at": at,
        "stage_repeats": 0,
        "last_notice_at": None,
        "closed_at": at,
        "resume_stage": None,
        "paused_since": None,
        "awaiting_stage": None,
        "escalate_now": False,
        "next_action_on": None,
    }


def test_entering_a_stage_and_waking(repo: Repository, invoice_id: int) -> None:
    with repo.write() as session:
        conn = session.connection()
        update_invoices(conn, [{"id": invoice_id, **entered_stage("letter", NOW, notified=True)}])
        wake(conn, customer_ids=["C1"])
    row = invoice(repo, invoice_id)
    assert (row["stage"], row["stage_repeats"], row["last_notice_at"], row["next_action_on"]) == (
        "letter",
        0,
        NOW,
        None,
    )
    assert entered_stage("letter", NOW, notified=False)["last_notice_at"] is None


# -- locks -----------------------------------------------------------------------------------------------------


def test_advisory_keys_are_distinct() -> None:
    assert len(set(locks.ADVISORY_KEYS.values())) == len(locks.ADVISORY_KEYS)


def test_an_advisory_lock_admits_one_transaction_at_a_time(repo: Repository) -> None:
    # Advisory keys are database-wide: a key of this test's own, so that sweeps of other schemas don't interfere.
    key, free = (int.from_bytes(uuid.uuid4().bytes[:7], "big") for _ in range(2))
    other = Repository(repo.url)
    try:
        with repo.write() as session:
            assert locks.try_take(session.connection(), key)
            if repo.dialect == "postgresql":  # SQLite: BEGIN IMMEDIATE already kept the second writer out
                with other.engine.connect() as conn, conn.begin():
                    assert not locks.try_take(conn, key)
                    locks.wait_for(conn, free)  # another key is not held up
        with other.engine.connect() as conn, conn.begin():
            assert locks.try_take(conn, key)  # released at commit
    finally:
        other.dispose()


def test_for_update_locks_only_where_rows_can_be_locked(repo: Repository) -> None:
    query = select(INVOICES.c.id)
    with repo.read() as session:
        locked = locks.for_update(session.connection(), query, of=INVOICES, skip_locked=True)
    assert (locked is query) == (repo.dialect == "sqlite")


@pytest.mark.postgres
def test_advisory_locks_are_per_installation(postgres_reason: str | None) -> None:
    """Two installations (schemas) in one database: one's sweep does not hold up the other's."""
    first, second = postgres_schema(postgres_reason), postgres_schema(postgres_reason)
    mine, theirs = Repository.open(next(first)), Repository.open(next(second))
    try:
        with mine.write() as session, theirs.engine.connect() as conn, conn.begin():
            assert locks.try_take(session.connection(), locks.SWEEP_LOCK_KEY)
            assert locks.try_take(conn, locks.SWEEP_LOCK_KEY)
    finally:
        mine.dispose()
        theirs.dispose()
        for schema in (first, second):
            next(schema, None)  # drop it
