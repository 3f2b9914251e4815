"""Inbound mail read back into the book: bounces fail notices and flag addresses, replies record events,
tasks and pauses, auto-replies are recorded; every message is processed once. Drop-folder source, real
databases (SQLite and PostgreSQL)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update

from engine.config import InboundSettings
from engine.errors import InboundError
from engine.replies import Mailroom
from engine.store.models import Customer, Task
from engine.tasks import TaskBook
from tests.conftest import at
from tests.integration import inbound_corpus as corpus

POLICY = """\
name: standard
stages:
  - name: reminder
    after_days: 3
    channels: [email]
    fallback: {email: letter}
  - name: final
    after_days: 30
    channels: [email]
"""


def _book(make_book: Any, tmp_path: Path, **inbound: Any) -> Any:
    drop = tmp_path / "drop"
    drop.mkdir(exist_ok=True)
    book = make_book({"10-standard.yaml": POLICY}, inbound=InboundSettings(folder=drop, **inbound))
    book.customers(
        {"id": "C1", "name": "Alpha GmbH", "email": "ap@alpha.example", "owner": "alice"},
        {"id": "C2", "name": "北京贸易有限公司", "email": "cw@beijing.example", "owner": "bob"},
        {"id": "C3", "name": "Gamma Ltd", "email": "ap@gamma.example", "owner": "carol"},
    )
    book.invoice("INV-1001", "C1", "1200.50", "2026-11-20")
    book.invoice("INV-2002", "C2", "5000.00", "2026-11-20", currency="CNY")
    book.invoice("INV-3003", "C3", "800.00", "2026-11-20")
    book.run("2026-11-30")  # the reminders go out
    book.clock.at = at("2026-12-01", 10)
    book.drop = drop
    return book


def _key(book: Any, invoice: str, channel: str = "email") -> str:
    return next(r["key"] for r in book.app.outbox() if r["invoice"] == invoice and r["channel"] == channel)


def _drop(book: Any, name: str, raw: bytes) -> None:
    (book.drop / name).write_bytes(raw)


def test_hard_bounce_fails_the_notice_queues_the_fallback_and_holds_the_address(make_book, tmp_path) -> None:  # type: ignore[no-untyped-def]
    book = _book(make_book, tmp_path)
    key = _key(book, "INV-1001")
    _drop(book, "01.eml", corpus.dsn("ap@alpha.example", corpus.our_id(key), mid="<dsn1@mx.example>"))
    report = Mailroom(book.app).fetch()
    assert report.by_kind == {"bounce": 1} and report.unmatched == 0
    (message,) = report.messages
    assert message["match_by"] == "reference" and message["bounce"]["status"] == "5.1.1"
    assert message["bounce"]["permanent"] and message["bounce"]["standard"]
    outbox = {r["key"]: r for r in book.app.outbox()}
    assert outbox[key]["status"] == "failed" and "hard bounce 5.1.1" in outbox[key]["error"]
    fallback = outbox[f"{key}>letter"]
    assert fallback["status"] == "pending" and fallback["channel"] == "letter"
    kinds = [e["kind"] for e in book.app.history("INV-1001")]
    assert "bounce" in kinds and kinds.count("notification") == 2
    # A later email notice to the same address is held with the reason, until the address changes.
    book.run("2026-12-20")
    held = [r for r in book.app.outbox() if r["invoice"] == "INV-1001" and r["stage"] == "final"]
    assert (
        held and held[0]["status"] == "pending" and held[0]["error"].startswith("held: ap@alpha.example hard-bounced")
    )
    book.customers({"id": "C1", "name": "Alpha GmbH", "email": "new@alpha.example", "owner": "alice"})
    book.clock.at = at("2026-12-21", 9)
    book.app.dispatch(at("2026-12-21", 9))
    final = next(r for r in book.app.outbox() if r["id"] == held[0]["id"])
    assert final["status"] == "sent" and final["recipient"] == "new@alpha.example"


def test_soft_and_non_standard_bounces(make_book, tmp_path) -> None:  # type: ignore[no-untyped-def]
    book = _book(make_book, tmp_path)
    key = _key(book, "INV-3003")
    _drop(
        book,
        "01.eml",
        corpus.dsn("ap@gamma.example", corpus.our_id(key), mid="<dsn2@mx>", status="4.2.2", action="delayed"),
    )
    _drop(book, "02.eml", corpus.plain_bounce("ap@gamma.example", "<unknown@elsewhere>", mid="<q1@mx>"))
    report = Mailroom(book.app).fetch()
    soft, qmail = sorted(report.messages, key=lambda m: m["id"])
    assert soft["bounce"]["status"] == "4.2.2" and not soft["bounce"]["permanent"]
    assert qmail["bounce"]["status"] == "5.7.1" and qmail["bounce"]["permanent"] and not qmail["bounce"]["standard"]
    assert qmail["match_by"] == "recipient"  # no Message-ID of ours: the failed recipient's latest notice
    outbox = {r["key"]: r for r in book.app.outbox()}
    assert outbox[key]["status"] == "failed"  # only by the hard one


def test_reply_records_event_task_and_pause_and_confirm_makes_the_promise(make_book, tmp_path) -> None:  # type: ignore[no-untyped-def]
    book = _book(make_book, tmp_path)
    key = _key(book, "INV-1001")
    raw = corpus.reply(
        "Anna <ap@alpha.example>",
        "Re: Payment reminder INV-1001",
        "Hello,\nwe will pay EUR 1,200.50 on 15 December.\nRegards, Anna",
        mid="<r1@alpha.example>",
        in_reply_to=corpus.our_id(key),
        quoted="If you have already paid, please ignore this message.",
    )
    _drop(book, "01.eml", raw)
    (message,) = Mailroom(book.app).fetch().messages
    assert message["kind"] == "reply" and message["match_by"] == "reference"
    assert message["intents"] == [
        {
            "kind": "promise",
            "phrase": "we will pay EUR 1,200.50 on 15 December.",
            "amount": "1200.50",
            "currency": "EUR",
            "on": "2026-12-15",
        }
    ]
    event = next(e for e in book.app.history("INV-1001") if e["kind"] == "reply")
    assert event["sender"] == "ap@alpha.example" and event["first_lines"].startswith("Hello,")
    assert len(event["content_hash"]) == 64 and "already paid" not in event["first_lines"]
    assert Mailroom(book.app).raw(message["id"]) == raw
    (task,) = [t for t in TaskBook(book.app).list(owner="alice") if t["kind"] == "reply"]
    assert task["invoices"] == [{"number": "INV-1001"}]
    # The pause: a notice due meanwhile waits 3 business days (Tue 1 Dec -> Fri 4 Dec).
    from engine.actions import Collector

    Collector(book.app, actor="alice").note("INV-1001", "read")
    with book.app.repo.write() as session:
        conn = session.connection()
        notifications = __import__("engine.store.models", fromlist=["Notification"]).Notification.__table__
        conn.execute(update(notifications).where(notifications.c.key == key).values(status="pending", attempts=0))
    book.app.dispatch(at("2026-12-02", 9))
    row = next(r for r in book.app.outbox() if r["key"] == key)
    assert row["status"] == "pending" and "is being read (paused until 2026-12-04)" in row["error"]
    confirmed = Mailroom(book.app).confirm(message["id"], actor="alice")
    assert confirmed["status"] == "confirmed" and confirmed["confirmed_by"] == "alice"
    promise = next(e for e in book.app.history("INV-1001") if e["kind"] == "promise")
    assert promise["amount"] == "1200.50" and promise["by"] == "2026-12-15" and promise["actor"] == "alice"
    with pytest.raises(InboundError, match="confirmed already"):
        Mailroom(book.app).confirm(message["id"], actor="alice")


def test_chinese_reply_by_invoice_number_and_dispute(make_book, tmp_path) -> None:  # type: ignore[no-untyped-def]
    book = _book(make_book, tmp_path)
    _drop(
        book,
        "01.eml",
        corpus.reply(
            "王经理 <wang@other.example>", "回复：发票 INV-2002", "您好，我们将于12月15日付款5000元。", mid="<zh1@cn>"
        ),
    )
    _drop(
        book, "02.eml", corpus.reply("cw@beijing.example", "关于货款", "货物有质量问题，我们暂不付款。", mid="<zh2@cn>")
    )
    promise, dispute = sorted(Mailroom(book.app).fetch().messages, key=lambda m: m["id"])
    assert promise["match_by"] == "invoice_number" and [i["number"] for i in promise["invoices"]] == ["INV-2002"]
    assert promise["intents"][0] == {
        "kind": "promise",
        "phrase": "您好，我们将于12月15日付款5000元。",
        "amount": "5000",
        "currency": "CNY",
        "on": "2026-12-15",
    }
    assert dispute["match_by"] == "sender" and dispute["intents"][0]["kind"] == "dispute"
    Mailroom(book.app).confirm(dispute["id"], actor="bob")
    assert book.stage("INV-2002") == "disputed"


def test_auto_replies_are_recorded_and_may_hold_until_the_return_date(make_book, tmp_path) -> None:  # type: ignore[no-untyped-def]
    book = _book(make_book, tmp_path, hold_until_return=True)
    key = _key(book, "INV-3003")
    _drop(
        book,
        "01.eml",
        corpus.auto_reply(
            "ap@gamma.example",
            mid="<ooo1@gamma>",
            in_reply_to=corpus.our_id(key),
            body="I am out of the office and will be back on 14 December 2026.",
        ),
    )
    _drop(
        book,
        "02.eml",
        corpus.auto_reply(
            "cw@beijing.example",
            mid="<ooo2@cn>",
            in_reply_to=None,
            header=False,
            subject="自动回复: 付款提醒",
            body="您好，我正在休假，12月10日返回。",
        ),
    )
    first, second = sorted(Mailroom(book.app).fetch().messages, key=lambda m: m["id"])
    assert first["kind"] == "auto_reply" and first["returns_on"] == "2026-12-14"
    assert second["kind"] == "auto_reply" and second["returns_on"] == "2026-12-10" and second["match_by"] == "sender"
    assert [e["kind"] for e in book.app.history("INV-3003")].count("auto_reply") == 1
    assert not [t for t in TaskBook(book.app).list() if t["kind"] == "reply"]
    book.run("2026-12-20")  # final is due; the out-of-office ended on the 14th: it goes out
    final = next(r for r in book.app.outbox() if r["invoice"] == "INV-3003" and r["stage"] == "final")
    assert final["status"] == "sent"


def test_each_message_is_processed_once_and_unmatched_ones_can_be_assigned(make_book, tmp_path) -> None:  # type: ignore[no-untyped-def]
    book = _book(make_book, tmp_path)
    raw = corpus.reply(
        "someone@unknown.example", "Question", "Already paid last week, see remittance advice.", mid="<u1@unknown>"
    )
    _drop(book, "01.eml", raw)
    _drop(book, "copy.eml", raw)  # the same Message-ID twice (a second copy, another reader)
    room = Mailroom(book.app)
    first = room.fetch()
    assert first.processed == 1 and first.duplicates == 1 and first.unmatched == 1
    assert room.fetch().processed == 0
    (unmatched,) = room.list(unmatched=True)
    assert unmatched["intents"][0]["kind"] == "payment_claim"
    assigned = room.assign(unmatched["id"], "INV-3003", actor="carol")
    assert assigned["status"] == "assigned" and [i["number"] for i in assigned["invoices"]] == ["INV-3003"]
    assert room.list(unmatched=True) == []
    assert any(e["kind"] == "reply" for e in book.app.history("INV-3003"))
    room.confirm(unmatched["id"], actor="carol")
    note = [e for e in book.app.history("INV-3003") if e["kind"] == "note"]
    assert note and "payment claimed by reply" in note[0]["text"] and note[0]["actor"] == "carol"
    with book.app.repo.read() as session:
        tasks = session.connection().execute(select(Task.__table__.c.kind)).scalars().all()
    assert tasks.count("reply") == 1
    _ = Customer


def test_hostile_messages_are_recorded_safely(make_book, tmp_path) -> None:  # type: ignore[no-untyped-def]
    book = _book(make_book, tmp_path)
    nul = (
        b"From: evil@x.example\r\nSubject: INV-1001\x00 =?utf-8?q?bad?=\r\nMessage-ID: <nul\x00@x>\r\n"
        b"Content-Type: text/plain; charset=utf-8\r\n\r\nhello\x00 world, not received\r\n"
    )
    _drop(book, "01.eml", nul)
    _drop(book, "02.eml", b"\xff\xfe\x00 binary junk")
    _drop(book, "03.eml", b"From: a@b\r\nSubject: " + b"x" * 5000 + b"\r\n\r\n" + b"INV-" * 100_000)
    report = Mailroom(book.app).fetch()
    assert report.processed == 3
    first = next(m for m in report.messages if m["sender"] == "evil@x.example")
    assert "\x00" not in first["subject"] and first["intents"][0]["kind"] == "dispute"
    assert first["invoices"][0]["number"] == "INV-1001"  # by the number in its subject
    assert all(len(m["subject"]) <= 500 for m in report.messages)


def test_explain_names_the_inbound_holds(make_book, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from engine.authoring.explain import explain_invoice

    book = _book(make_book, tmp_path)
    key = _key(book, "INV-1001")
    _drop(book, "01.eml", corpus.dsn("ap@alpha.example", corpus.our_id(key), mid="<dsn9@mx>"))
    _drop(book, "02.eml", corpus.reply("ap@alpha.example", "Re: INV-1001", "Already paid.", mid="<p9@alpha>"))
    Mailroom(book.app).fetch()
    holding = explain_invoice(book.app, "INV-1001", as_of=at("2026-12-01", 12)).holding
    assert any(h.startswith("email notices held: ap@alpha.example hard-bounced (5.1.1") for h in holding)
    assert any(h.startswith("notices held: reply") and "paused until 2026-12-04" in h for h in holding)
