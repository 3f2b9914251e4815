"""Several senders on one SQLite file (issue 11, defect 3): a daemon or dispatcher starting up puts back the
claims of dead senders only, never those of a live `dunning dispatch` — real processes, a real SMTP server."""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from channels.email import message_id_for
from tests.integration.daemon_harness import DUNNING, Book, wait_for
from tests.integration.smtp_server import SMTPServer

pytestmark = [pytest.mark.timeout(180), pytest.mark.slow]

MESSAGES = 40


@pytest.fixture
def server() -> Iterator[SMTPServer]:
    with SMTPServer(parse=False, delay=0.25) as smtp:  # slow: a sender is caught with a batch claimed
        yield smtp


def queued_book(root: Path, server: SMTPServer, **dispatch: float) -> Book:
    book = Book(
        root,
        # No sweep is due before Monday 09:00: the daemons below only dispatch.
        dispatch={"batch_size": 5, "concurrency": 1, "backoff_seconds": 0.2, "max_backoff_seconds": 1, **dispatch},
        channels={
            "email": {
                "type": "email",
                "recipient": "email",
                "host": "127.0.0.1",
                "port": server.port,
                "security": "none",
                "from": "ar@acme.example",
            }
        },
    )
    book.customers(*(f"C{i},Customer {i},ap{i}@example.com,,{i} Main St,A,,,en,Europe/Berlin," for i in range(10)))
    book.invoices(*(f"INV-{n},C{n % 10},EUR,100.00,2026-02-01,2026-02-20," for n in range(MESSAGES)))
    book.cli("run", "--as-of", "2026-03-01T08:00+01:00", "--no-dispatch")
    assert book.statuses() == {"pending": MESSAGES}
    return book


def start_dispatch(book: Book) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [DUNNING, "dispatch"],
        cwd=book.root,
        env=book.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def expected_ids(book: Book) -> set[str]:
    return {message_id_for(key, "acme.example") for key in book.outbox()}


def test_a_daemon_starting_leaves_a_live_dispatchers_claims_alone(tmp_path: Path, server: SMTPServer) -> None:
    book = queued_book(tmp_path, server)
    dispatcher = start_dispatch(book)
    try:
        wait_for(lambda: sum(server.received().values()) >= 2, 60, "the dispatcher's first messages")
        daemon = book.start("2026-03-01T08:30+01:00", 1)
        daemon.wait_log("dunning daemon started", timeout=60)
        assert dispatcher.poll() is None, "the dispatcher finished before the daemon started: nothing was tested"
        assert "another process is sending on this database" in daemon.log()
        assert "recovered" not in daemon.log()
        out, _ = dispatcher.communicate(timeout=90)
        assert dispatcher.returncode == 0, out
        wait_for(lambda: book.statuses() == {"sent": MESSAGES}, 60, lambda: f"all sent; have {book.statuses()}")
        assert daemon.stop() == 0
    finally:
        if dispatcher.poll() is None:
            dispatcher.kill()
        book.cleanup()
    received = server.received()
    assert received.keys() == expected_ids(book)
    duplicates = {message_id: count for message_id, count in received.items() if count > 1}
    assert not duplicates, f"{len(duplicates)} sent twice with no crash at all"
    assert "put back" not in out


def test_a_batch_that_outlasts_its_lease_keeps_it(tmp_path: Path, server: SMTPServer) -> None:
    # A batch of 5 takes 1.25 s at this server's pace, twice the lease: without renewing its lease, the
    # first dispatcher would see the second take over and send again the rows it is still sending.
    book = queued_book(tmp_path, server, lease_seconds=0.6)
    first = start_dispatch(book)
    second = None
    try:
        wait_for(lambda: sum(server.received().values()) >= 1, 60, "the first dispatcher's first message")
        second = start_dispatch(book)
        for dispatcher in (first, second):
            out, _ = dispatcher.communicate(timeout=120)
            assert dispatcher.returncode == 0, out
    finally:
        for dispatcher in (first, second):
            if dispatcher is not None and dispatcher.poll() is None:
                dispatcher.kill()
        book.cleanup()
    assert book.statuses() == {"sent": MESSAGES}
    received = server.received()
    assert received.keys() == expected_ids(book)
    assert sum(count - 1 for count in received.values()) == 0, "a live sender's rows were taken over"


def in_flight_after_kill(book: Book, server: SMTPServer) -> tuple[int, int]:
    """(claimed but not recorded, and of those the ones the server already has) once a sender died."""
    time.sleep(3 * server.delay)  # a message whose DATA was out when the sender died is still being accepted
    received = server.received()
    sending = [key for key, row in book.outbox().items() if row["status"] == "sending"]
    delivered = sum(1 for key in sending if received.get(message_id_for(key, "acme.example")))
    return len(sending), delivered


@pytest.mark.parametrize("successor", ["dispatch", "daemon"])
def test_a_killed_senders_claims_are_put_back_at_once(tmp_path: Path, server: SMTPServer, successor: str) -> None:
    book = queued_book(tmp_path, server)
    dispatcher = start_dispatch(book)
    try:
        wait_for(lambda: sum(server.received().values()) >= 3, 60, "the dispatcher's first messages")
        dispatcher.send_signal(signal.SIGKILL)
        dispatcher.wait(10)
        claimed, delivered = in_flight_after_kill(book, server)
        assert claimed > 0, "killed between two batches: nothing was in flight"
        # The lease (300 s by default) has not run out: only the sender lock tells that its holder is dead.
        if successor == "dispatch":
            result = book.cli("dispatch")
            assert f"({claimed} put back that a killed sender had left mid-send)" in result.stdout
        else:
            daemon = book.start("2026-03-01T08:30+01:00", 1)
            daemon.wait_log(f"recovered {claimed} notification(s)", timeout=60)
            wait_for(lambda: book.statuses() == {"sent": MESSAGES}, 90, lambda: f"all sent; have {book.statuses()}")
            assert daemon.stop() == 0
    finally:
        if dispatcher.poll() is None:
            dispatcher.kill()
        book.cleanup()
    assert book.statuses() == {"sent": MESSAGES}
    received = server.received()
    assert received.keys() == expected_ids(book)
    duplicates = sum(count - 1 for count in received.values())
    assert duplicates <= delivered <= claimed  # only what the server had but the book had not recorded
