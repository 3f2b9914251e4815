"""Inbound mail from a real IMAP server (dovecot, STARTTLS, started by the test): a corpus of DSNs,
auto-replies and English and Chinese replies is matched and applied; processed mail is moved, never deleted;
a `dunning inbound fetch` killed with SIGKILL in the middle of a batch loses no message and processes none twice.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import func, select

from engine.config import ImapSettings, InboundSettings
from engine.replies import Mailroom
from engine.store.models import Event, InboundMessage
from tests.conftest import MEMORY_CHANNELS, at
from tests.integration import inbound_corpus as corpus
from tests.integration.imap_server import PASSWORD, USER, ImapServer, dovecot

ROOT = Path(__file__).resolve().parents[2]
POLICY = """\
name: standard
stages:
  - name: reminder
    after_days: 3
    channels: [email]
    fallback: {email: letter}
"""
CUSTOMERS = [(f"C{n}", f"ap@c{n}.example", owner) for n, owner in enumerate(["ann", "ann", "bo", "bo", "cy", "cy"], 1)]


@pytest.fixture
def imap(tmp_path: Path) -> Any:
    with dovecot(tmp_path / "dovecot") as server:
        yield server


def _book(make_book: Any, server: ImapServer, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("DUNNING_IMAP_USER", USER)
    monkeypatch.setenv("DUNNING_IMAP_PASSWORD", PASSWORD)
    imap = ImapSettings(
        host="127.0.0.1", port=server.port, security="starttls", ca_file=server.ca_file, move_to="Processed"
    )
    book = make_book({"10-standard.yaml": POLICY}, inbound=InboundSettings(imap=imap))
    book.customers(
        *({"id": cid, "name": f"Customer {cid}", "email": email, "owner": owner} for cid, email, owner in CUSTOMERS)
    )
    for n, (cid, _, _) in enumerate(CUSTOMERS, 1):
        book.invoice(f"INV-{n}00{n}", cid, f"{n}000.00", "2026-11-20")
    book.run("2026-11-30")
    book.clock.at = at("2026-12-01", 10)
    return book


def _corpus(book: Any) -> list[tuple[bytes, str, str | None, str | None]]:
    """(message, expected kind, expected match_by or None for unmatched, expected first intent)."""
    key = {r["invoice"]: r["key"] for r in book.app.outbox() if r["channel"] == "email"}
    ref = {number: corpus.our_id(k) for number, k in key.items()}
    return [
        (corpus.dsn("ap@c1.example", ref["INV-1001"], mid="<b1@mx>"), "bounce", "reference", None),
        (
            corpus.dsn("ap@c2.example", ref["INV-2002"], mid="<b2@mx>", status="4.4.1", action="delayed"),
            "bounce",
            "reference",
            None,
        ),
        (corpus.plain_bounce("ap@c3.example", "<lost@elsewhere>", mid="<b3@mx>"), "bounce", "recipient", None),
        (
            corpus.auto_reply(
                "ap@c4.example",
                mid="<a1@c4>",
                in_reply_to=ref["INV-4004"],
                body="I am out of the office until 7 December.",
            ),
            "auto_reply",
            "reference",
            None,
        ),
        (
            corpus.auto_reply(
                "ap@c5.example",
                mid="<a2@c5>",
                in_reply_to=None,
                header=False,
                subject="自动回复：付款提醒",
                body="您好，我正在休假，12月10日返回。",
            ),
            "auto_reply",
            "sender",
            None,
        ),
        (
            corpus.auto_reply("robot@nowhere.example", mid="<a3@x>", in_reply_to=None, body="Thanks for your mail."),
            "auto_reply",
            None,
            None,
        ),
        (
            corpus.reply(
                "ap@c2.example",
                "Re: Payment reminder",
                "We will pay 2000 EUR on 15 December.",
                mid="<r1@c2>",
                in_reply_to=ref["INV-2002"],
                quoted="if you have already paid",
            ),
            "reply",
            "reference",
            "promise",
        ),
        (
            corpus.reply(
                "someone@c6-other.example",
                "INV-6006 goods never arrived",
                "The goods were never received, please check.",
                mid="<r2@x>",
            ),
            "reply",
            "invoice_number",
            "dispute",
        ),
        (
            corpus.reply(
                "ap@c6.example",
                "Payment",
                "We have already paid last Friday; remittance advice attached.",
                mid="<r3@c6>",
            ),
            "reply",
            "sender",
            "payment_claim",
        ),
        (
            corpus.reply(
                "财务 <cw@cn-other.example>", "回复：发票 INV-3003", "您好，我们将于12月15日付款3000元。", mid="<z1@cn>"
            ),
            "reply",
            "invoice_number",
            "promise",
        ),
        (
            corpus.reply(
                "ap@c4.example",
                "回复：付款提醒",
                "这批货有质量问题，请联系我们。",
                mid="<z2@cn>",
                in_reply_to=ref["INV-4004"],
            ),
            "reply",
            "reference",
            "dispute",
        ),
        (
            corpus.reply("ap@c5.example", "付款", "此发票已付款，付款凭证见附件。", mid="<z3@cn>"),
            "reply",
            "sender",
            "payment_claim",
        ),
        (corpus.reply("stranger@unknown.example", "Hello", "Who are you?", mid="<u1@x>"), "reply", None, None),
        (_references_only(ref["INV-5005"]), "reply", "reference", "promise"),
        (_html_only(), "reply", "invoice_number", "dispute"),
    ]


def _references_only(our: str) -> bytes:
    raw = corpus.reply("ap@c5-alt.example", "Re: reminder", "We'll settle it by 2026-12-18.", mid="<r4@x>")
    return raw.replace(b"Subject:", f"References: <older@x> {our}\nSubject:".encode(), 1)


def _html_only() -> bytes:
    return (
        b"From: ap@other.example\r\nSubject: Invoice INV-1001\r\nMessage-ID: <h1@x>\r\nMIME-Version: 1.0\r\n"
        b"Content-Type: text/html; charset=utf-8\r\n\r\n<html><body><p>The invoice amount is <b>wrong "
        b"amount</b>.</p></body></html>\r\n"
    )


def test_imap_corpus_is_matched_applied_and_moved(make_book, imap, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    book = _book(make_book, imap, monkeypatch)
    cases = _corpus(book)
    imap.append(*(raw for raw, *_ in cases))
    report = Mailroom(book.app).fetch()
    assert report.processed == len(cases) and report.duplicates == 0
    by_id = {m["message_id"]: m for m in report.messages}
    matched = intents_right = 0
    for raw, kind, match_by, intent in cases:
        message_id = raw.split(b"Message-ID: ", 1)[1].split(b"\r\n", 1)[0].split(b"\n", 1)[0].decode().strip()
        got = by_id[message_id]
        assert (got["kind"], got["match_by"]) == (kind, match_by), (message_id, got)
        matched += got["status"] == "matched"
        first = got["intents"][0]["kind"] if got["intents"] else None
        assert first == intent, (message_id, got["intents"])
        intents_right += first == intent
    rate = matched / len(cases)
    print(
        f"\ninbound corpus: {len(cases)} messages, {matched} matched ({rate:.0%}), "
        f"{intents_right}/{len(cases)} first intents as expected"
    )
    assert matched == len(cases) - 2  # the robot's auto-reply and the stranger match nothing
    assert imap.count("INBOX") == 0 and imap.count("Processed") == len(cases)  # moved, none deleted
    assert Mailroom(book.app).fetch().processed == 0
    outbox = {r["invoice"]: r for r in book.app.outbox() if r["channel"] == "email"}
    assert outbox["INV-1001"]["status"] == "failed" and outbox["INV-2002"]["status"] == "sent"  # 4.4.1 is soft
    assert outbox["INV-3003"]["status"] == "failed"  # the qmail bounce, by its failed recipient


def _config(tmp_path: Path, url: str, server: ImapServer) -> Path:
    config = tmp_path / "config.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "database": url,
                "rules": str(tmp_path / "rules"),
                "channels": MEMORY_CHANNELS,
                "inbound": {
                    "imap": {
                        "host": "127.0.0.1",
                        "port": server.port,
                        "security": "starttls",
                        "ca_file": str(server.ca_file),
                        "move_to": "Processed",
                    }
                },
            }
        ),
        encoding="utf-8",
    )
    return config


def _fetch(config: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "DUNNING_IMAP_USER": USER, "DUNNING_IMAP_PASSWORD": PASSWORD}
    return subprocess.Popen(
        [sys.executable, "-m", "engine.cli.main", "--config", str(config), "inbound", "fetch", "--json"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_sigkill_in_the_middle_of_a_batch_loses_nothing_and_repeats_nothing(
    make_book, imap, monkeypatch, database_url, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    book = _book(make_book, imap, monkeypatch)
    total = 40
    imap.append(
        *(
            corpus.reply(
                f"ap@c{n % 6 + 1}.example",
                f"Re: INV-{n % 6 + 1}00{n % 6 + 1}",
                f"We will pay on 15 December. (message {n})",
                mid=f"<crash{n}@x>",
            )
            for n in range(total)
        )
    )
    config = _config(tmp_path, database_url, imap)
    table = InboundMessage.__table__  # type: ignore[attr-defined]

    def processed() -> int:
        with book.app.repo.read() as session:
            return int(session.connection().execute(select(func.count()).select_from(table)).scalar() or 0)

    kills = 0
    for threshold in (3, 15):
        child = _fetch(config)
        deadline = time.monotonic() + 60
        while processed() < threshold and child.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        if child.poll() is None:
            child.send_signal(signal.SIGKILL)
            kills += 1
        child.wait()
    assert kills >= 1, "fetch finished before it could be killed; the test proves nothing"
    assert 0 < processed() < total
    finish = _fetch(config)
    output, errors = finish.communicate(timeout=120)
    assert finish.returncode == 0, errors
    assert json.loads(output)["processed"] + 0 >= 0
    events = Event.__table__  # type: ignore[attr-defined]
    with book.app.repo.read() as session:
        conn = session.connection()
        ids = conn.execute(select(table.c.message_id)).scalars().all()
        replies = conn.execute(select(func.count()).select_from(events).where(events.c.kind == "reply")).scalar()
    assert sorted(ids) == sorted(f"<crash{n}@x>" for n in range(total))  # every one, once
    assert replies == total  # each matched one invoice: one reply event per message, none twice
    assert imap.count("INBOX") == 0 and imap.count("Processed") == total
