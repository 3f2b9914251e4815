"""The tamper-evident event log: every writer chains its events; edits, deletions and reordering are caught."""

from __future__ import annotations

import sqlite3
import threading
from datetime import datetime, timezone
from decimal import Decimal

import pytest

from engine.actions import Collector
from engine.store.events import GENESIS, ExportFilter, append_events, export_events, verify_chain
from tests.conftest import Book, at


def verify(book: Book, expect_head: str | None = None):  # type: ignore[no-untyped-def]
    with book.app.repo.read() as session:
        return verify_chain(session.connection(), expect_head)


@pytest.fixture
def book(make_book) -> Book:  # type: ignore[no-untyped-def]
    book = make_book()
    book.customers(
        {"id": "C1", "name": "Acme", "credit_grade": "A", "owner": "alice"},
        {"id": "C2", "name": "Bolt", "credit_grade": "B"},
    )
    book.invoice("INV-1", "C1", "20000.00", due_on="2026-03-01")
    book.invoice("INV-2", "C2", "500.00", due_on="2026-03-01")
    book.run("2026-03-04")
    book.pay("INV-2", "500.00", "2026-03-05")
    Collector(book.app, actor="alice").dispute("INV-1", "wrong quantity", at=at("2026-03-06"))
    book.run("2026-03-16")
    return book


def test_every_writer_chains_its_events(book: Book) -> None:
    report = verify(book)
    assert report.ok and report.events >= 10
    with book.app.repo.read() as session:
        rows = session.connection().exec_driver_sql("SELECT kind, prev_hash, hash FROM events ORDER BY id").all()
    assert {"import", "transition", "notification", "delivery", "payment", "dispute"} <= {r[0] for r in rows}
    assert rows[0][1] == GENESIS and all(r[2] and len(r[2]) == 64 for r in rows)
    assert all(rows[i][1] == rows[i - 1][2] for i in range(1, len(rows)))
    assert verify(book, expect_head=report.head).ok


def _sqlite(book: Book) -> sqlite3.Connection:
    if not book.app.repo.url.startswith("sqlite"):
        pytest.skip("tampers with the SQLite file directly")
    book.app.repo.dispose()
    return sqlite3.connect(book.app.repo.url.removeprefix("sqlite:///"), isolation_level=None)


def test_an_edited_amount_is_detected(book: Book) -> None:
    db = _sqlite(book)
    [(event_id, data)] = db.execute("SELECT id, data FROM events WHERE kind = 'payment'").fetchall()
    assert '"500.00"' in data
    db.execute("UPDATE events SET data = ? WHERE id = ?", (data.replace('"500.00"', '"50.00"'), event_id))
    report = verify(book)
    assert not report.ok and report.problem.event_id == event_id
    assert "altered" in report.problem.reason


def test_a_deleted_event_is_detected(book: Book) -> None:
    db = _sqlite(book)
    ids = [r[0] for r in db.execute("SELECT id FROM events ORDER BY id")]
    db.execute("DELETE FROM events WHERE id = ?", (ids[4],))
    report = verify(book)
    assert not report.ok and report.problem.event_id == ids[5] and "deleted" in report.problem.reason


def test_reordered_events_are_detected(book: Book) -> None:
    db = _sqlite(book)
    ids = [r[0] for r in db.execute("SELECT id FROM events ORDER BY id")]
    a, b = ids[2], ids[3]
    db.execute("UPDATE events SET id = -1 WHERE id = ?", (a,))
    db.execute("UPDATE events SET id = ? WHERE id = ?", (a, b))
    db.execute("UPDATE events SET id = ? WHERE id = -1", (b,))
    report = verify(book)
    assert not report.ok and report.problem.event_id == a


def test_a_deleted_last_event_is_caught_against_the_noted_head(book: Book) -> None:
    head = verify(book).head
    db = _sqlite(book)
    db.execute("DELETE FROM events WHERE id = (SELECT max(id) FROM events)")
    assert verify(book).ok  # the chain itself is still whole ...
    assert not verify(book, expect_head=head).ok  # ... but it no longer ends where it did


def test_concurrent_appenders_keep_one_chain(book: Book) -> None:
    def writer(name: str) -> None:
        for i in range(15):
            with book.app.repo.write() as session:
                now = datetime.now(timezone.utc)
                append_events(
                    session.connection(),
                    [
                        {
                            "at": now,
                            "recorded_at": now,
                            "kind": "note",
                            "invoice_id": None,
                            "customer_id": "C1",
                            "actor": name,
                            "data": {"text": f"{name} {i}", "n": i, "amount": str(Decimal("1.50"))},
                        },
                        {
                            "at": now,
                            "recorded_at": now,
                            "kind": "note",
                            "invoice_id": None,
                            "customer_id": "C1",
                            "actor": name,
                            "data": {"text": "second"},
                        },
                    ],
                )

    threads = [threading.Thread(target=writer, args=(f"w{n}",)) for n in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    report = verify(book)
    assert report.ok, report.problem


def test_export_filters(book: Book) -> None:
    with book.app.repo.read() as session:
        conn = session.connection()
        by_alice = list(export_events(conn, ExportFilter(actor="alice"), book.settings.zone))
        reminders = list(export_events(conn, ExportFilter(stage="reminder", kind="notification"), book.settings.zone))
        march_5 = list(
            export_events(
                conn,
                ExportFilter(since=datetime(2026, 3, 5).date(), until=datetime(2026, 3, 5).date()),
                book.settings.zone,
            )
        )
        c2 = list(export_events(conn, ExportFilter(customer="C2", channel="email"), book.settings.zone))
    assert {r["kind"] for r in by_alice} == {"dispute", "transition"}
    assert all(r["reason"] == "wrong quantity" for r in by_alice if r["kind"] == "dispute")
    assert {r["invoice"] for r in reminders} == {"INV-1", "INV-2"}
    assert [r["kind"] for r in march_5] == ["payment", "transition"]
    assert c2 and all(r["customer_id"] == "C2" and r["channel"] == "email" for r in c2)
