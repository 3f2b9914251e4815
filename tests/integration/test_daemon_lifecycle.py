"""Stopping the real daemon mid-dispatch: SIGTERM finishes the batch and exits 0; SIGKILL loses nothing."""

from __future__ import annotations

import asyncio
import signal
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.daemon_harness import Book, utc, wait_for

pytestmark = [pytest.mark.timeout(180), pytest.mark.slow]

INVOICES = 600
BATCH = 20


def big_book(root: Path, **config: Any) -> Book:
    book = Book(root, dispatch={"batch_size": BATCH, "concurrency": 1}, **config)
    book.customers(*(f"C{i},Customer {i},ap{i}@example.com,,{i} Main St,A,,,en,Europe/Berlin," for i in range(20)))
    book.invoices(*(f"INV-{n},C{n % 20},EUR,100.00,2026-02-01,2026-03-01," for n in range(INVOICES)))
    # Up to date as of Wednesday night, so the daemon's first sweep is Thursday 09:00 and queues them all.
    book.cli("run", "--as-of", "2026-03-01T08:00+01:00", "--no-dispatch")
    return book


@pytest.fixture
def book(tmp_path: Path) -> Iterator[Book]:
    b = big_book(tmp_path)
    yield b
    b.cleanup()


def test_sigterm_mid_dispatch_finishes_the_batch_commits_and_exits_0(book: Book) -> None:
    daemon = book.start("2026-03-05T08:59:59", 1)
    daemon.wait_log("dispatched:", timeout=60)
    assert daemon.stop(signal.SIGTERM) == 0
    assert "stopped cleanly" in daemon.log()
    statuses = book.statuses()
    assert "sending" not in statuses  # nothing left half-done
    assert statuses["sent"] + statuses.get("pending", 0) == INVOICES
    assert statuses.get("pending", 0) > 0, "the stop came after the whole outbox was sent; not mid-dispatch"
    # What the outbox says was sent is exactly what reached the channel, once each.
    sent = {key for key, row in book.outbox().items() if row["status"] == "sent"}
    logged = book.logged_keys()
    assert len(logged) == len(set(logged)) and set(logged) == sent


def test_sigkill_mid_dispatch_then_restart_loses_nothing(book: Book) -> None:
    daemon = book.start("2026-03-05T08:59:59", 1)
    daemon.wait_log("dispatched:", timeout=60)
    daemon.kill()  # SIGKILL: no handler, no cleanup, possibly mid-batch
    before = book.statuses()
    assert before.get("pending", 0) + before.get("sending", 0) > 0
    restarted = book.start("2026-03-05T09:30", 1)
    wait_for(
        lambda: book.statuses() == {"sent": INVOICES},
        90,
        lambda: f"all sent; have {book.statuses()}",
        proc=restarted.proc,
    )
    assert restarted.stop() == 0
    if before.get("sending"):
        assert f"recovered {before['sending']} notification(s)" in restarted.log()
    # The book's own sweep, the catch-up as of Wednesday 09:00, Thursday 09:00: none replayed by the restart.
    assert book.sweeps() == [utc("2026-03-01T07:00:00Z"), utc("2026-03-04T08:00:00Z"), utc("2026-03-05T08:00:00Z")]
    logged = Counter(book.logged_keys())
    assert set(logged) == set(book.outbox())  # every notification reached the channel
    duplicates = sum(count - 1 for count in logged.values())
    assert duplicates <= BATCH  # only messages in flight at the kill can go twice
    # A restarted daemon's lock is its own: the killed one's lock died with it.
    assert "already running" not in restarted.log()


# -- a real SMTP server ------------------------------------------------------------------------------


class SlowMailbox:
    """aiosmtpd on a free port in a thread; every message takes `delay` seconds to accept."""

    def __init__(self, delay: float = 0.02):
        from aiosmtpd.smtp import SMTP

        self.delay = delay
        self.messages: list[bytes] = []
        self.loop = asyncio.new_event_loop()
        mailbox = self

        class Handler:
            async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
                await asyncio.sleep(mailbox.delay)
                mailbox.messages.append(envelope.content)
                return "250 OK"

        self.server = self.loop.run_until_complete(self.loop.create_server(lambda: SMTP(Handler()), "127.0.0.1", 0))
        self.port = self.server.sockets[0].getsockname()[1]
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)


def email_channel_available() -> bool:
    from channels.registry import channel_types

    return "email" in channel_types()


@pytest.mark.skipif(not email_channel_available(), reason="the `email` channel type is not registered in this build")
def test_sigterm_and_restart_against_a_real_smtp_server(tmp_path: Path) -> None:
    mailbox = SlowMailbox()
    book = Book(
        tmp_path,
        dispatch={"batch_size": 20, "concurrency": 2},
        channels={
            "email": {
                "type": "email",
                "recipient": "email",
                "host": "127.0.0.1",
                "port": mailbox.port,
                "security": "none",
                "from": "ar@example.com",
            }
        },
    )
    try:
        book.customers(*(f"C{i},Customer {i},ap{i}@example.com,,{i} Main St,A,,,en,Europe/Berlin," for i in range(10)))
        book.invoices(*(f"INV-{n},C{n % 10},EUR,100.00,2026-02-01,2026-03-01," for n in range(100)))
        book.cli("run", "--as-of", "2026-03-01T08:00+01:00", "--no-dispatch")
        daemon = book.start("2026-03-05T08:59:59", 1)
        daemon.wait_log("dispatched:", timeout=60)
        assert daemon.stop(signal.SIGTERM) == 0
        statuses = book.statuses()
        assert "sending" not in statuses and statuses.get("pending", 0) > 0
        assert len(mailbox.messages) == statuses["sent"]
        again = book.start("2026-03-05T09:30", 1)
        wait_for(
            lambda: book.statuses() == {"sent": 100}, 60, lambda: f"all sent; have {book.statuses()}", proc=again.proc
        )
        assert again.stop() == 0
        assert len(mailbox.messages) == 100
    finally:
        book.cleanup()
        mailbox.close()
