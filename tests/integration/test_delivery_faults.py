"""Delivery guarantees under SMTP faults: 421 / 451 / 550 / dropped connections / no server at all.

Each customer's address makes the real aiosmtpd answer one way (see tests/integration/smtp_server.py); the
outcome of each notification must be right, a failing server must not hold up other channels, the
stage's fallback must be queued for a permanent failure, and once the server behaves every retried
notification must arrive: nothing is lost.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from channels.memory import MemoryChannel
from tests.conftest import DEFAULT_POLICY, at
from tests.integration.smtp_server import SMTPServer, free_port

POLICY = """\
name: standard
applies_to: "customer.credit_grade in ['A', 'B']"
stages:
  - name: reminder
    after_days: 3
    channels: [email, phone]
    fallback: {email: letter}
  - name: final
    after_days: 30
    channels: [letter]
"""

FAULTS = {
    "C-OK": "ok@example.com",
    "C-421": "closing@example.com",
    "C-451": "busy@example.com",
    "C-550": "reject@example.com",
    "C-DROP": "drop@example.com",
}


def email_channels(port: int) -> dict[str, Any]:
    return {
        "email": {
            "type": "email",
            "recipient": "email",
            "host": "127.0.0.1",
            "port": port,
            "security": "none",
            "from": "ar@acme.example",
            "timeout": 5,
        },
        "phone": {"type": "memory", "recipient": "phone"},
        "letter": {"type": "memory", "recipient": "address"},
        "visit": {"type": "memory", "recipient": "address"},
        "legal": {"type": "memory", "recipient": "address"},
    }


def setup(make_book, port: int):  # type: ignore[no-untyped-def]
    book = make_book(
        {"10-standard.yaml": POLICY, "90-default.yaml": DEFAULT_POLICY},
        channels=email_channels(port),
        dispatch={"backoff_seconds": 60, "max_attempts": 5},
    )
    book.customers(
        *({"id": cid, "name": cid, "credit_grade": "A", "email": address} for cid, address in FAULTS.items())
    )
    for cid in FAULTS:
        book.invoice(f"INV-{cid}", cid, "1000.00", "2026-03-01")
    return book


def by_invoice(book) -> dict[str, dict[str, Any]]:  # type: ignore[no-untyped-def]
    return {(r["invoice"], r["channel"]): r for r in book.app.outbox()}  # type: ignore[misc]


def test_each_smtp_fault_gets_the_right_outcome_and_nothing_is_lost(make_book) -> None:  # type: ignore[no-untyped-def]
    with SMTPServer() as server:
        book = setup(make_book, server.port)
        report = book.run("2026-03-04")
        rows = by_invoice(book)
        assert rows[("INV-C-OK", "email")]["status"] == "sent"
        for cid in ("C-421", "C-451", "C-DROP"):  # temporary: back to pending, retry later
            row = rows[(f"INV-{cid}", "email")]
            assert row["status"] == "pending", (cid, row)
            assert row["error"] and "TransientDeliveryError" in row["error"]
        assert "421" in rows[("INV-C-421", "email")]["error"]
        assert "451" in rows[("INV-C-451", "email")]["error"]
        failed = rows[("INV-C-550", "email")]
        assert failed["status"] == "failed" and "550 5.1.1" in failed["error"]  # the server's own reply
        # the bounced email fell back to a letter, queued and sent in the same dispatch run
        letter = rows[("INV-C-550", "letter")]
        assert letter["status"] == "sent" and letter["key"] == failed["key"] + ">letter"
        assert [m.invoices[0]["number"] for m in MemoryChannel.sent if m.channel == "letter"] == ["INV-C-550"]
        # the failing email server held up no other channel
        assert report.dispatch.sent["phone"] == 5
        assert report.dispatch.retrying["email"] == 3 and report.dispatch.failed["email"] == 1
        history = [e for e in book.app.history("INV-C-550") if e["kind"] == "notification"]
        assert [(e["channel"], e["status"]) for e in history] == [
            ("email", "failed"),
            ("phone", "sent"),
            ("letter", "sent"),
        ]

        # nothing is sent again before its retry time
        book.app.dispatch(at("2026-03-04") + timedelta(seconds=30))
        assert len(server.to("ok@example.com")) == 1

        # the customers' mailboxes recover; the retries go out once their time has come
        server_fixed_addresses(book)
        book.app.dispatch(at("2026-03-04") + timedelta(seconds=61))
    rows = by_invoice(book)
    assert {r["status"] for k, r in rows.items() if k[1] == "email" and k[0] != "INV-C-550"} == {"sent"}
    assert sum(server.ids.values()) == 4 and max(server.ids.values()) == 1  # each delivered once


def server_fixed_addresses(book) -> None:  # type: ignore[no-untyped-def]
    """The recipients' mailboxes recover: the test server decides by address, so point the retried rows
    at addresses it accepts."""
    from sqlalchemy import update

    from engine.store.models import Notification

    table = Notification.__table__  # type: ignore[attr-defined]
    with book.app.repo.write() as session:
        for old in ("closing", "busy", "drop"):
            session.connection().execute(
                update(table)
                .where(table.c.recipient == f"{old}@example.com")
                .values(recipient=f"fixed-{old}@example.com")
            )


def test_no_server_at_all_retries_with_backoff_and_then_delivers(make_book) -> None:  # type: ignore[no-untyped-def]
    port = free_port()
    book = setup(make_book, port)
    first = book.run("2026-03-04")
    assert first.dispatch.retrying["email"] == 5 and first.dispatch.sent["phone"] == 5
    rows = by_invoice(book)
    assert all("connection" in rows[(f"INV-{c}", "email")]["error"].lower() for c in FAULTS)
    # backoff doubles: attempt 2 fails at +60 s, attempt 3 is not due before +180 s
    second = book.app.dispatch(at("2026-03-04") + timedelta(seconds=60))
    assert second.retrying["email"] == 5
    assert book.app.dispatch(at("2026-03-04") + timedelta(seconds=150)).retrying["email"] == 0
    server = SMTPServer()
    server.port = port
    # the server comes up on the configured port
    import asyncio

    server._thread.start()
    future = asyncio.run_coroutine_threadsafe(
        server.loop.create_server(server._protocol, "127.0.0.1", port), server.loop
    )
    server._server = future.result(10)
    try:
        third = book.app.dispatch(at("2026-03-04") + timedelta(seconds=181))
    finally:
        server.stop()
    assert third.sent["email"] == 1  # ok@ is delivered; the others meet their own faults now
    assert third.failed["email"] == 1 and third.retrying["email"] == 3
    assert len(server.to("ok@example.com")) == 1


def test_max_attempts_then_failed_with_the_last_reason(make_book) -> None:  # type: ignore[no-untyped-def]
    with SMTPServer() as server:
        book = make_book(
            {"10-standard.yaml": POLICY, "90-default.yaml": DEFAULT_POLICY},
            channels=email_channels(server.port),
            dispatch={"backoff_seconds": 1, "max_attempts": 3},
        )
        book.customers({"id": "C1", "name": "C1", "credit_grade": "A", "email": "busy@example.com"})
        book.invoice("INV-1", "C1", "10.00", "2026-03-01")
        book.run("2026-03-04")
        for seconds in (10, 100):
            book.app.dispatch(at("2026-03-04") + timedelta(seconds=seconds))
    row = by_invoice(book)[("INV-1", "email")]
    assert row["status"] == "failed" and row["attempts"] == 3
    assert row["error"].startswith("gave up after 3 attempts") and "451" in row["error"]
    # giving up after temporary failures is a failure for good too: the fallback letter goes out
    assert by_invoice(book)[("INV-1", "letter")]["status"] == "sent"


@pytest.mark.parametrize("mode", ["421", "451", "550"])
def test_data_phase_replies_are_classified(make_book, mode: str) -> None:  # type: ignore[no-untyped-def]
    with SMTPServer() as server:
        server.mode = mode
        book = make_book(
            {"10-standard.yaml": POLICY, "90-default.yaml": DEFAULT_POLICY}, channels=email_channels(server.port)
        )
        book.customers({"id": "C1", "name": "C1", "credit_grade": "A", "email": "ok@example.com"})
        book.invoice("INV-1", "C1", "10.00", "2026-03-01")
        book.run("2026-03-04")
    row = by_invoice(book)[("INV-1", "email")]
    assert row["status"] == ("failed" if mode == "550" else "pending")
    assert mode in row["error"]
