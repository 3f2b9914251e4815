"""`audit verify --state`: the tables are replayed from the event log, and every edit made beside the log is named.

The tampering goes through the database itself (plain SQL on SQLite and PostgreSQL), as someone with write
access would do it; each of these passed `dunning audit verify` before (commit 21c05f0).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import date
from decimal import Decimal
from typing import Any

import pytest

from engine.actions import Collector
from engine.audit_state import verify_state
from engine.errors import AuditKeyMissing
from engine.store.chain import KEY_ENV
from engine.store.events import verify_chain
from tests.conftest import CANONICAL_POLICY, DEFAULT_POLICY, Book, at

GROUPED = """\
name: grouped
applies_to: "customer.segment == 'group'"
group_by: customer
min_days_between_stages: 0
stages:
  - {name: reminder, after_days: 1, channels: [email], fallback: {email: letter}}
  - {name: legal, after_days: 30, channels: [legal], approval: required}
"""


@pytest.fixture
def book(make_book) -> Book:  # type: ignore[no-untyped-def]
    """Every way the product changes an invoice or a notification, on record."""
    book = make_book(
        {"05-grouped.yaml": GROUPED, "10-standard.yaml": CANONICAL_POLICY, "90-default.yaml": DEFAULT_POLICY}
    )
    book.customers(
        {"id": "C1", "name": "Acme", "credit_grade": "A", "owner": "alice"},
        {"id": "C2", "name": "Bolt", "credit_grade": "B"},
        {"id": "C3", "name": "Cord", "segment": "group"},
        {"id": "C4", "name": "Dune", "email": ""},
    )
    for number, customer, amount in (
        ("INV-1", "C1", "20000.00"),
        ("INV-2", "C2", "500.00"),
        ("INV-3", "C1", "60000.00"),
        ("G-1", "C3", "100.00"),
        ("G-2", "C3", "200.00"),
        ("N-1", "C4", "300.00"),
        ("W-1", "C2", "700.00"),
        ("A-1", "C2", "900.00"),
    ):
        book.invoice(number, customer, amount, due_on="2026-03-01")
    book.run("2026-03-04")
    book.pay("INV-2", "500.00", "2026-03-05")  # paid in full
    book.pay("INV-3", "1000.00", "2026-03-05")  # in part
    book.invoice("A-1", "C2", "1200.00", due_on="2026-03-01")  # amount raised
    alice = Collector(book.app, actor="alice")
    alice.dispute("INV-1", "wrong quantity", at=at("2026-03-06"))
    alice.promise("INV-3", Decimal("100"), by=date(2026, 3, 10), at=at("2026-03-06"))
    alice.write_off("W-1", "insolvent", at=at("2026-03-06"))
    book.run("2026-03-16")  # INV-3's promise is broken: it resumes and moves on
    alice.resolve_dispute("INV-1", "credit note", at=at("2026-03-17"))
    alice.move("A-1", "letter", "second copy ignored", at=at("2026-03-18"))
    book.run("2026-04-05")  # G-1 and G-2 wait for approval of legal
    alice.approve("G-1", at=at("2026-04-05", 10))
    book.run("2026-04-06")
    book.invoice("W-2", "C1", "800.00", due_on="2026-03-01")
    book.app.sweeper().run(at("2026-04-07"))  # queued, not sent...
    alice.write_off("W-2", "duplicate billing", at=at("2026-04-07", 12))  # ...and cancelled without an event each
    return book


def sql(book: Book, statement: str, **params: Any) -> None:
    from sqlalchemy import text

    with book.app.repo.write() as session:
        session.connection().execute(text(statement), params)


def first(book: Book, statement: str, **params: Any) -> Any:
    from sqlalchemy import text

    with book.app.repo.read() as session:
        return session.connection().execute(text(statement), params).first()


def mismatches(book: Book) -> list[tuple[str, str, str]]:
    report = verify_state(book.app.repo)
    return [(m.kind, m.id, m.field) for m in report.mismatches]


def test_a_book_the_product_wrote_agrees_with_its_log(book: Book) -> None:
    report = verify_state(book.app.repo)
    assert report.ok, [str(m) for m in report.mismatches]
    assert report.invoices_checked == 9 and report.notifications_checked >= 10
    kinds = {row[0] for row in all_rows(book, "SELECT DISTINCT kind FROM events")}
    assert {
        "import",
        "update",
        "payment",
        "transition",
        "notification",
        "delivery",
        "dispute",
        "dispute_resolved",
        "promise",
        "promise_broken",
        "write_off",
        "override",
        "approval_requested",
        "approval",
    } <= kinds
    statuses = {row[0] for row in all_rows(book, "SELECT DISTINCT status FROM notifications")}
    assert {"sent", "failed", "cancelled"} <= statuses
    grouped = all_rows(book, "SELECT key FROM notifications WHERE invoice_id IS NULL")
    assert grouped  # a grouped notice, about several invoices


def all_rows(book: Book, statement: str) -> list[Any]:
    from sqlalchemy import text

    with book.app.repo.read() as session:
        return list(session.connection().execute(text(statement)).all())


def test_an_invoice_marked_paid_in_sql_is_named(book: Book) -> None:
    sql(book, "UPDATE invoices SET open_amount = 0, stage = 'paid' WHERE number = 'INV-3'")
    assert sorted(mismatches(book)) == [("invoice", "INV-3", "open_amount"), ("invoice", "INV-3", "stage")]
    [stage] = [m for m in verify_state(book.app.repo).mismatches if m.field == "stage"]
    assert stage.table == "paid" and stage.replayed != "paid"
    # the log itself is intact: only the replay sees it
    with book.app.repo.read() as session:
        assert verify_chain(session.connection()).ok


def test_a_deleted_notification_is_named(book: Book) -> None:
    key = first(book, "SELECT key FROM notifications WHERE status = 'sent' ORDER BY id")[0]
    sql(book, "DELETE FROM tasks WHERE key = :key", key=key)
    sql(book, "DELETE FROM notifications WHERE key = :key", key=key)
    assert mismatches(book) == [("notification", key, "exists")]
    [found] = verify_state(book.app.repo).mismatches
    assert (found.table, found.replayed) == ("absent", "present")


def test_a_sent_notification_put_back_to_pending_is_named(book: Book) -> None:
    key = first(book, "SELECT key FROM notifications WHERE status = 'sent' ORDER BY id")[0]
    sql(book, "UPDATE notifications SET status = 'pending', sent_at = NULL WHERE key = :key", key=key)
    [found] = verify_state(book.app.repo).mismatches
    assert (found.kind, found.id, found.field, found.table, found.replayed) == (
        "notification",
        key,
        "status",
        "pending",
        "sent",
    )


def test_a_notification_inserted_without_its_event_is_named(book: Book) -> None:
    sql(book, "UPDATE notifications SET key = 'forged/1' WHERE id = (SELECT MIN(id) FROM notifications)")
    found = mismatches(book)
    assert ("notification", "forged/1", "exists") in found and len(found) == 2


def test_a_renumbered_event_is_caught(book: Book) -> None:
    # Order kept, so the links still fit: only the hash covering the id can tell.
    last = first(book, "SELECT MAX(id) FROM events")[0]
    sql(book, "UPDATE events SET id = :new WHERE id = :old", new=last + 10, old=last)
    report = verify_state(book.app.repo)
    assert not report.ok and report.chain.problem is not None
    assert report.chain.problem.event_id == last + 10 and "id were altered" in report.chain.problem.reason


def test_verify_state_on_the_command_line(book: Book) -> None:
    book.app.repo.dispose()
    env = {**os.environ, "DUNNING_DATABASE_URL": book.app.repo.url, "DUNNING_RULES": str(book.root / "rules")}
    env.pop("DUNNING_CONFIG", None)

    def verify(*extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "engine.cli.main", "audit", "verify", "--state", *extra],
            cwd=book.root,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )

    clean = verify()
    assert clean.returncode == 0 and "the tables agree" in clean.stdout and "9 invoice(s)" in clean.stdout
    sql(book, "UPDATE invoices SET open_amount = 0, stage = 'paid' WHERE number = 'INV-3'")
    broken = verify()
    assert broken.returncode == 1 and "Traceback" not in broken.stderr
    assert "invoice INV-3: stage is 'paid' in the table" in broken.stderr
    shown = json.loads(verify("--json").stdout)
    assert shown["ok"] is False and shown["invoices_checked"] == 9 and len(shown["head"]) == 64
    assert {
        "kind": "invoice",
        "id": "INV-3",
        "field": "open_amount",
        "table": "0.0000",
        "replayed": "59000.00",
    } in shown["mismatches"]
    assert set(shown) == {
        "ok",
        "head",
        "events",
        "first_bad_event",
        "position",
        "reason",
        "invoices_checked",
        "notifications_checked",
        "mismatches",
    }


def test_a_keyed_chain_cannot_be_recomputed_without_the_key(book: Book, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_ENV, "correct horse battery staple")
    with book.app.repo.read() as session:
        unkeyed = verify_chain(session.connection())
    assert not unkeyed.ok and "no event is keyed" in unkeyed.problem.reason  # type: ignore[union-attr]
    book.run("2026-04-20")  # the existing chain continues, keyed from here on
    assert verify_state(book.app.repo).ok
    # Someone without the key edits a keyed event and recomputes its hash the only way they can: unkeyed.
    import hashlib

    from engine.store.events import canonical

    row = first(book, "SELECT id FROM events ORDER BY id DESC")
    with book.app.repo.read() as session:
        from sqlalchemy import select

        from engine.store.events import EVENTS

        event = dict(session.connection().execute(select(EVENTS).where(EVENTS.c.id == row[0])).mappings().one())
    forged = hashlib.sha256(('{"id":' + str(event["id"]) + "," + canonical(event)[1:]).encode()).hexdigest()
    sql(book, "UPDATE events SET hash = :hash WHERE id = :id", hash=forged, id=event["id"])
    with book.app.repo.read() as session:
        report = verify_chain(session.connection())
    assert not report.ok and report.problem.event_id == event["id"]  # type: ignore[union-attr]
    assert "weaker 'ided' format" in report.problem.reason  # type: ignore[union-attr]
    sql(book, "UPDATE events SET hash = :hash WHERE id = :id", hash=event["hash"], id=event["id"])
    # Without the key, the chain can be neither verified nor continued.
    monkeypatch.delenv(KEY_ENV)
    with book.app.repo.read() as session:
        assert "DUNNING_AUDIT_KEY" in verify_chain(session.connection()).problem.reason  # type: ignore[union-attr]
    with pytest.raises(AuditKeyMissing, match="DUNNING_AUDIT_KEY"):
        Collector(book.app, actor="bob").note("INV-1", "called")
