"""The daemon waits for new mail in IMAP IDLE (issue 16): against a real dovecot, a message appended while the
daemon idles is read within seconds, not at the next poll; IDLE is issued again after `idle_seconds`; a server
without IDLE is polled instead; SIGTERM ends the IDLE and the daemon exits 0."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration import inbound_corpus as corpus
from tests.integration.daemon_harness import Book, wait_for
from tests.integration.imap_server import PASSWORD, USER, ImapServer, dovecot

pytestmark = [pytest.mark.timeout(180), pytest.mark.slow]

#: The schedule's poll comes only once an hour here: whatever is read sooner came through IDLE.
HOURLY = 3600


def imap_book(root: Path, server: ImapServer, *, every_seconds: float, idle_seconds: float = 2) -> Book:
    imap = {
        "host": "127.0.0.1",
        "port": server.port,
        "security": "starttls",
        "ca_file": str(server.ca_file),
        "move_to": "Processed",
        "idle_seconds": idle_seconds,
    }
    root.mkdir()
    book = Book(root, inbound={"imap": imap, "every_seconds": every_seconds})
    book.env.update(DUNNING_IMAP_USER=USER, DUNNING_IMAP_PASSWORD=PASSWORD)
    book.customers("C1,Acme GmbH,ap@acme.example,,1 Main St,A,,,en,Europe/Berlin,")
    book.invoices("INV-1,C1,EUR,100.00,2026-02-01,2026-03-01,", "INV-2,C1,EUR,200.00,2026-02-01,2026-03-01,")
    return book


def read_messages(book: Book) -> list[tuple[str, str]]:
    return book.query("SELECT message_id, kind FROM inbound_messages ORDER BY id")  # type: ignore[return-value]


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ImapServer]:
    with dovecot(tmp_path / "dovecot") as imap:
        yield imap


def test_mail_appended_while_the_daemon_idles_is_read_within_seconds(tmp_path: Path, server: ImapServer) -> None:
    book = imap_book(tmp_path / "book", server, every_seconds=HOURLY)
    try:
        daemon = book.start("2026-03-05T10:00", 1)
        daemon.wait_log("waiting for new mail in IMAP IDLE", timeout=60)
        time.sleep(0.5)  # the first poll (at start) is done and the IDLE is open
        started = time.monotonic()
        server.append(corpus.reply("ap@acme.example", "Re: INV-1", "We will pay on 20 March.", mid="<i1@acme>"))
        wait_for(lambda: len(read_messages(book)) == 1, 30, "the first message read", proc=daemon.proc)
        first_delay = time.monotonic() - started
        # Past idle_seconds (2 s) the IDLE has been issued again, and still hears the next message.
        time.sleep(5)
        started = time.monotonic()
        server.append(corpus.reply("ap@acme.example", "Re: INV-2", "Paid yesterday.", mid="<i2@acme>"))
        wait_for(lambda: len(read_messages(book)) == 2, 30, "the second message read", proc=daemon.proc)
        second_delay = time.monotonic() - started
        stopping = time.monotonic()
        assert daemon.stop(signal.SIGTERM) == 0
        assert time.monotonic() - stopping < 10
    finally:
        book.cleanup()
    assert [mid for mid, _ in read_messages(book)] == ["<i1@acme>", "<i2@acme>"]
    print(f"IMAP IDLE: read {first_delay:.2f} s and {second_delay:.2f} s after the append")
    assert first_delay < 30 and second_delay < 30  # an hourly poll would have taken an hour
    assert server.count("Processed") == 2 and server.count("INBOX") == 0
    log = daemon.log()
    assert "stopped cleanly" in log and "Traceback" not in log
    assert "IMAP IDLE:" not in log  # no lost connection, no retry


def test_a_server_without_idle_is_polled(tmp_path: Path) -> None:
    # dovecot advertises what `imap_capability` lists: here everything but IDLE.
    with dovecot(tmp_path / "dovecot", extra="imap_capability = IMAP4rev1 SASL-IR LITERAL+ UIDPLUS MOVE\n") as server:
        book = imap_book(tmp_path / "book", server, every_seconds=1)
        try:
            daemon = book.start("2026-03-05T10:00", 1)
            daemon.wait_log("does not offer IDLE: new mail is read by polling every 1s", timeout=60)
            server.append(corpus.reply("ap@acme.example", "Re: INV-1", "We will pay on 20 March.", mid="<p1@acme>"))
            wait_for(lambda: len(read_messages(book)) == 1, 30, "the message read by polling", proc=daemon.proc)
            assert daemon.stop(signal.SIGTERM) == 0
        finally:
            book.cleanup()
        assert "waiting for new mail in IMAP IDLE" not in daemon.log()
