"""The channel contract, run against every built-in channel type wired to real parts.

Each channel is built the way dispatch builds it — by `Dunning.build_channels()` from a configuration, so
through the registry and with the installation's real `ChannelContext` (the case-file source and task sink
over an SQLite book) — and talks to a real receiver: an aiosmtpd server for `email`, a local HTTP server for
`webhook`, the file system for `log`, `letter` and `legal`, the task list for `phone`, `visit` and `task`.

What every channel promises the dispatcher:

- `send` hands the message over once and returns a `Receipt` naming it;
- a failure is a `TransientDeliveryError` (worth another try) or a `PermanentDeliveryError` (never as is),
  never another exception, and nothing is delivered;
- the idempotency key (`Message.key`) reaches the receiver: a channel whose receiver keeps records makes a
  repeat a no-op (one task, one file), the others hand the same key over again so the receiver can drop it;
- `aclose` releases what the channel holds (its connections), may be called twice, and the channel works
  again afterwards.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from channels.base import Channel, ChannelContext, Message, PermanentDeliveryError, Receipt, TransientDeliveryError
from channels.files import notice_stem
from channels.memory import MemoryChannel
from channels.registry import BUILTIN
from tests.conftest import CANONICAL_POLICY, DEFAULT_POLICY, Book
from tests.integration.smtp_server import SMTPServer
from tests.integration.test_email import message as rendered_message

#: The engine's clock in these tests: what the task channels must stamp (not the wall clock).
ENGINE_NOW = datetime(2026, 3, 10, 9, 30, tzinfo=timezone.utc)


# -- real receivers ---------------------------------------------------------------------------------------


class CountingSMTPServer(SMTPServer):
    """The tests' aiosmtpd server, also counting the connections open right now."""

    def __init__(self) -> None:
        super().__init__()
        self.live = 0

    def _protocol(self) -> Any:
        protocol = super()._protocol()
        made, lost = protocol.connection_made, protocol.connection_lost

        def connection_made(transport: Any) -> None:
            self.live += 1
            made(transport)

        def connection_lost(exc: Exception | None) -> None:
            self.live -= 1
            lost(exc)

        protocol.connection_made = connection_made  # type: ignore[method-assign]
        protocol.connection_lost = connection_lost  # type: ignore[method-assign]
        return protocol


class HookReceiver:
    """A keep-alive HTTP/1.1 server: answers from a script of statuses (then 200), records the requests and
    counts the connections open right now."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.script: list[int] = []
        self.live = 0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self) -> None:
                receiver.live += 1
                super().setup()

            def finish(self) -> None:
                super().finish()
                receiver.live -= 1

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                status = receiver.script.pop(0) if receiver.script else 200
                receiver.requests.append({"headers": dict(self.headers), "body": json.loads(body), "status": status})
                payload = b'{"ok": true}' if status == 200 else b"refused"
                self.send_response(status)
                self.send_header("Content-Length", str(len(payload)))
                self.send_header("X-Request-Id", f"req-{len(receiver.requests)}")
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def accepted_keys(self) -> list[str]:
        """The Idempotency-Key of every request answered 2xx, i.e. delivered."""
        return [r["headers"]["Idempotency-Key"] for r in self.requests if r["status"] == 200]

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


# -- one rig per channel type -----------------------------------------------------------------------------


@dataclass
class Rig:
    """A built-in channel wired to real parts, and how to observe and break its receiver."""

    channel: Channel
    #: How many deliveries carrying `key` the receiver got.
    deliveries: Callable[[str], int]
    #: True: the channel (or its receiver) makes a repeat of a key a no-op; False: it hands the key over again.
    records_once: bool
    #: Break the receiver so the next send fails transiently / permanently: returns the channel and message to
    #: send (None: the channel has no such failure).
    transient: Callable[[], tuple[Channel, Message]] | None = None
    permanent: Callable[[], tuple[Channel, Message]] | None = None
    #: Connections open on the receiver right now (None: the channel holds none).
    connections: Callable[[], int] | None = None


#: One outbox row per idempotency key, as in the outbox: the key's notification id.
NOTIFICATION_IDS: dict[str, int] = {}


def notification_id(key: str) -> int:
    return NOTIFICATION_IDS.setdefault(key, len(NOTIFICATION_IDS) + 1)


def a_message(channel: str, key: str = "INV-7/stage@20260310T090000Z/0/x", **changes: Any) -> Message:
    """A rendered two-invoice message for customer C7 (the e-mail tests' message), sent on `channel`."""
    fields = {
        "notification_id": notification_id(key),
        "channel": channel,
        "recipient": "ap@customer.example" if channel == "email" else "+86 21 1234",
        **changes,
    }
    return replace(rendered_message(language="en", key=key), **fields)


def sibling(channel: Channel, **options: Any) -> Channel:
    """Another channel of the same type and context, with other options."""
    return type(channel)(channel.name, {**channel.options, **options}, channel.context)


def block_with_a_file(folder: Path) -> None:
    """Put a plain file where the channel's output folder must go: every write there fails (even for root)."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    folder.write_text("not a folder\n", encoding="utf-8")


@pytest.fixture
def book(tmp_path: Path) -> Iterator[Book]:
    smtp = CountingSMTPServer().start()
    hook = HookReceiver()
    channels = {
        "email": {
            "type": "email",
            "recipient": "email",
            "host": "127.0.0.1",
            "port": smtp.port,
            "security": "none",
            "from": "ar@acme.example",
        },
        "webhook": {"type": "webhook", "recipient": "phone", "url": hook.url, "retries": 0},
        "log": {"type": "log", "recipient": "email", "path": str(tmp_path / "out" / "log" / "notifications.log")},
        "memory": {"type": "memory", "recipient": "email"},
        "letter": {"type": "letter", "recipient": "address"},
        "legal": {"type": "legal", "recipient": "address"},
        "phone": {"type": "phone", "recipient": "phone"},
        "visit": {"type": "visit", "recipient": "address"},
        "task": {"type": "task", "recipient": "phone"},
    }
    built = Book(
        tmp_path,
        f"sqlite:///{tmp_path / 'book.db'}",
        {"10-standard.yaml": CANONICAL_POLICY, "90-default.yaml": DEFAULT_POLICY},
        channels=channels,
        database_busy_seconds=1,  # the task channels' busy-database case waits this long
    )
    built.clock.at = ENGINE_NOW
    built.customers({"id": "C7", "name": "Shanghai Example Trading", "credit_grade": "A", "owner": "li.wei"})
    built.invoice("INV-7", "C7", "12000.00", "2026-02-09", currency="CNY")
    built.invoice("INV-8", "C7", "3500.50", "2026-02-19", currency="CNY")
    built.smtp, built.hook = smtp, hook  # type: ignore[attr-defined]
    MemoryChannel.clear()
    try:
        yield built
    finally:
        built.app.repo.dispose()
        hook.stop()
        smtp.stop()


def rig_for(kind: str, book: Book) -> Rig:
    channel = book.app.build_channels()[kind]
    out = book.settings.output_path
    smtp: CountingSMTPServer = book.smtp  # type: ignore[attr-defined]
    hook: HookReceiver = book.hook  # type: ignore[attr-defined]

    if kind == "email":
        return Rig(
            channel,
            deliveries=lambda key: sum(1 for m in smtp.messages if m["X-Dunning-Key"] == key),
            records_once=False,
            transient=lambda: (channel, a_message("email", recipient="busy@customer.example")),  # 451 at RCPT
            permanent=lambda: (channel, a_message("email", recipient="reject@customer.example")),  # 550 at RCPT
            connections=lambda: smtp.live,
        )
    if kind == "webhook":

        def failing(status: int) -> tuple[Channel, Message]:
            hook.script = [status]
            return channel, a_message("webhook")

        return Rig(
            channel,
            deliveries=lambda key: hook.accepted_keys().count(key),
            records_once=False,
            transient=lambda: failing(503),
            permanent=lambda: failing(422),
            connections=lambda: hook.live,
        )
    if kind == "log":
        path = Path(channel.options["path"])

        def unwritable() -> tuple[Channel, Message]:
            block_with_a_file(path.parent)
            return channel, a_message("log")

        return Rig(
            channel,
            records_once=False,
            transient=unwritable,
            deliveries=lambda key: path.read_text(encoding="utf-8").count(f"=== {key}\n") if path.exists() else 0,
        )
    if kind == "memory":
        return Rig(
            channel,
            records_once=False,
            deliveries=lambda key: sum(1 for m in MemoryChannel.sent if m.key == key),
            transient=lambda: (sibling(channel, fail="transient"), a_message("memory")),
            permanent=lambda: (sibling(channel, fail="permanent"), a_message("memory")),
        )
    if kind in ("letter", "legal"):
        folder = out / ("letters" if kind == "letter" else "legal")

        def unwritable() -> tuple[Channel, Message]:
            block_with_a_file(folder)
            return channel, a_message(kind)

        def delivered(key: str) -> int:
            if kind == "letter":
                written = folder / f"{notice_stem(notification_id(key), 'INV-7')}.pdf"
            else:
                written = folder / notice_stem(notification_id(key), f"C7-{key}") / "case.json"
            return 1 if written.is_file() else 0

        return Rig(
            channel,
            deliveries=delivered,
            records_once=True,
            transient=unwritable,
            permanent=lambda: (channel, a_message(kind, invoices=())),
        )  # nothing to write about
    if kind in ("phone", "visit", "task"):
        from engine.tasks import TaskBook

        def busy_database() -> tuple[Channel, Message]:
            # Another process holds SQLite's write lock for longer than the busy timeout.
            holder = sqlite3.connect(str(book.root / "book.db"), isolation_level=None)
            holder.execute("BEGIN IMMEDIATE")
            book.holder = holder  # type: ignore[attr-defined]  # released by the test's teardown below
            return channel, a_message(kind)

        def no_task_list() -> tuple[Channel, Message]:
            context = ChannelContext(channel.context.output_dir, channel.context.company)
            return type(channel)(channel.name, channel.options, context), a_message(kind)

        return Rig(
            channel,
            records_once=True,
            transient=busy_database,
            permanent=no_task_list,
            deliveries=lambda key: sum(1 for t in TaskBook(book.app).list(status=None) if t["key"] == key),
        )
    raise AssertionError(f"no contract rig for the built-in channel type {kind!r}; add one here")


KINDS = sorted(BUILTIN)


@pytest.fixture(params=KINDS)
def rig(request: pytest.FixtureRequest, book: Book) -> Iterator[Rig]:
    yield rig_for(request.param, book)
    holder = getattr(book, "holder", None)
    if holder is not None:
        holder.close()  # rolls the held transaction back


def run(coroutine: Coroutine[Any, Any, Any]) -> Any:
    return asyncio.run(coroutine)


async def send_and_close(channel: Channel, *messages: Message) -> list[Receipt]:
    try:
        return [await channel.send(m) for m in messages]
    finally:
        await channel.aclose()


def wait_until(condition: Callable[[], bool], seconds: float = 5.0) -> bool:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


# -- the contract -----------------------------------------------------------------------------------------


def test_every_built_in_channel_type_has_a_rig(book: Book) -> None:
    for kind in BUILTIN:
        assert rig_for(kind, book).channel.type_name == kind


def test_send_hands_the_message_over_once_and_returns_a_receipt(rig: Rig) -> None:
    message = a_message(rig.channel.name, key="INV-7/send@20260310T090000Z/0/x")
    (receipt,) = run(send_and_close(rig.channel, message))
    assert isinstance(receipt, Receipt) and isinstance(receipt.reference, str) and receipt.reference
    assert rig.deliveries(message.key) == 1


def test_a_transient_failure_is_transient_and_delivers_nothing(rig: Rig) -> None:
    if rig.transient is None:
        pytest.skip(f"the {rig.channel.type_name} channel has no transient failure")
    channel, message = rig.transient()
    with pytest.raises(TransientDeliveryError):
        run(send_and_close(channel, message))
    assert rig.deliveries(message.key) == 0


def test_a_permanent_failure_is_permanent_and_delivers_nothing(rig: Rig) -> None:
    if rig.permanent is None:
        pytest.skip(f"the {rig.channel.type_name} channel cannot fail for good: it only writes a local log")
    channel, message = rig.permanent()
    with pytest.raises(PermanentDeliveryError):
        run(send_and_close(channel, message))
    assert rig.deliveries(message.key) == 0


def test_the_idempotency_key_reaches_the_receiver(rig: Rig) -> None:
    first = a_message(rig.channel.name, key="INV-7/again@20260310T090000Z/0/x")
    other = a_message(rig.channel.name, key="INV-7/other@20260310T090000Z/0/x")
    receipts = run(send_and_close(rig.channel, first, first, other))
    assert rig.deliveries(other.key) == 1  # another key is another delivery
    if rig.records_once:
        assert rig.deliveries(first.key) == 1  # a repeat is recognised: still one task / one file
        assert receipts[0].reference == receipts[1].reference
    else:
        assert rig.deliveries(first.key) == 2  # handed over again, with the same key for the receiver to drop


def test_aclose_releases_connections_twice_over_and_the_channel_works_again(rig: Rig) -> None:
    channel = rig.channel

    async def scenario() -> None:
        await channel.send(a_message(channel.name, key="INV-7/close@20260310T090000Z/0/x"))
        await channel.aclose()
        await channel.aclose()  # a second close is harmless

    run(scenario())
    if rig.connections is not None:
        assert wait_until(lambda: rig.connections() == 0), f"{rig.connections()} connection(s) still open"
    # closed, and used again (dispatch closes its channels after every run, then reuses them)
    run(send_and_close(channel, a_message(channel.name, key="INV-7/reopen@20260310T090000Z/0/x")))
    assert rig.deliveries("INV-7/reopen@20260310T090000Z/0/x") == 1
    if rig.connections is not None:
        assert wait_until(lambda: rig.connections() == 0)


@pytest.mark.parametrize("kind", ["phone", "visit", "task"])
def test_task_channels_stamp_the_engine_clock_not_the_wall_clock(book: Book, kind: str) -> None:
    from engine.tasks import TaskBook

    channel = book.app.build_channels()[kind]
    run(send_and_close(channel, a_message(kind, key=f"INV-7/{kind}@20260310T090000Z/0/{kind}")))
    (task,) = TaskBook(book.app).list(status=None)
    assert task["created_at"] == "2026-03-10T09:30:00Z" and task["kind"] == kind
    assert [i["number"] for i in task["invoices"]] == ["INV-7", "INV-8"]


def test_the_legal_case_file_carries_the_stored_history(book: Book) -> None:
    book.run("2026-02-20")  # a sweep: transitions and notifications on record
    channel = book.app.build_channels()["legal"]
    message = a_message("legal", key="INV-7/legal@20260310T090000Z/0/legal")
    run(send_and_close(channel, message))
    folder = book.settings.output_path / "legal" / notice_stem(message.notification_id, f"C7-{message.key}")
    case = json.loads((folder / "case.json").read_text(encoding="utf-8"))
    assert case["customer"]["credit_grade"] == "A"  # from the database, not in the message
    assert {i["number"]: i["policy"] for i in case["invoices"]} == {"INV-7": "standard", "INV-8": "standard"}
    assert any(h["kind"] == "transition" and h["summary"] for h in case["history"])
    assert {d["channel"] for d in case["deliveries"]} >= {"email"}
    assert case["prepared_on"] == "2026-03-10"  # the message's as_of
