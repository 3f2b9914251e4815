"""The webhook channel against a real local HTTP server that checks the HMAC-SHA256 signature."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from channels.base import ChannelContext, PermanentDeliveryError, TransientDeliveryError
from channels.webhook import WebhookChannel
from engine.errors import ConfigError
from tests.integration.test_email import COMPANY, message

SECRET = "whsec-test-0123"


class Receiver:
    """Answers from a script of statuses (then 200), verifying every request's signature."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.script: list[int] = []
        self.delay = 0.0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                expected = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
                receiver.requests.append(
                    {
                        "headers": dict(self.headers),
                        "body": body,
                        "valid": hmac.compare_digest(self.headers.get("X-Dunning-Signature", ""), expected),
                    }
                )
                if receiver.delay:
                    time.sleep(receiver.delay)
                status = receiver.script.pop(0) if receiver.script else 200
                if not receiver.requests[-1]["valid"]:
                    status = 401
                payload = b'{"ok": true}' if status == 200 else b"nope"
                self.send_response(status)
                self.send_header("Content-Length", str(len(payload)))
                self.send_header("X-Request-Id", f"req-{len(receiver.requests)}")
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.handle_error = lambda *args: None  # type: ignore[method-assign]  # a client that timed out
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.server.shutdown()


def webhook(tmp_path: Path, url: str, **options: Any) -> WebhookChannel:
    return WebhookChannel(
        "sms",
        {"url": url, "secret_env": "TEST_WEBHOOK_SECRET", "retries": 2, **options},
        ChannelContext(tmp_path, COMPANY),
    )


def send(ch: WebhookChannel, msg: Any = None) -> Any:
    async def go() -> Any:
        try:
            return await ch.send(msg or message())
        finally:
            await ch.aclose()

    return asyncio.run(go())


@pytest.fixture(autouse=True)
def _secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_WEBHOOK_SECRET", SECRET)


def test_posts_signed_json_with_the_idempotency_key(tmp_path: Path, receiver: Receiver) -> None:
    receipt = send(webhook(tmp_path, receiver.url))
    assert receipt.reference == "req-1"
    (request,) = receiver.requests
    assert request["valid"]
    assert request["headers"]["Idempotency-Key"] == "INV-7/reminder@20260310T090000Z/0/email"
    assert request["headers"]["Content-Type"] == "application/json"
    document = json.loads(request["body"])
    assert document["customer"]["name"] == "上海示例贸易有限公司"
    assert [i["number"] for i in document["invoices"]] == ["INV-7", "INV-8"]
    assert document["invoices"][1]["open_amount"] == "1500.50"  # exact decimals
    assert document["subject"].startswith("付款提醒")


def test_server_errors_are_retried_within_the_attempt(tmp_path: Path, receiver: Receiver) -> None:
    receiver.script = [503, 500]
    send(webhook(tmp_path, receiver.url))
    assert len(receiver.requests) == 3 and all(r["valid"] for r in receiver.requests)


def test_persistent_server_errors_are_transient(tmp_path: Path, receiver: Receiver) -> None:
    receiver.script = [503, 503, 429]
    with pytest.raises(TransientDeliveryError, match="429"):
        send(webhook(tmp_path, receiver.url))


def test_client_errors_are_permanent(tmp_path: Path, receiver: Receiver) -> None:
    receiver.script = [422]
    with pytest.raises(PermanentDeliveryError, match="422"):
        send(webhook(tmp_path, receiver.url))
    assert len(receiver.requests) == 1


def test_a_wrong_secret_is_rejected_by_the_receiver(
    tmp_path: Path, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEST_WEBHOOK_SECRET", "not-the-secret")
    with pytest.raises(PermanentDeliveryError, match="401"):
        send(webhook(tmp_path, receiver.url))
    assert receiver.requests[0]["valid"] is False


def test_timeout_and_unreachable_are_transient(tmp_path: Path, receiver: Receiver) -> None:
    receiver.delay = 0.5
    with pytest.raises(TransientDeliveryError, match="timed out"):
        send(webhook(tmp_path, receiver.url, timeout=0.1, retries=0))
    from tests.integration.smtp_server import free_port

    with pytest.raises(TransientDeliveryError, match="unreachable"):
        send(webhook(tmp_path, f"http://127.0.0.1:{free_port()}/hook", retries=1))


def test_secrets_stay_out_of_the_configuration(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="secret_env"):
        WebhookChannel("sms", {"url": "http://x", "secret": "plain"}, ChannelContext(tmp_path, COMPANY))


def test_webhook_channel_in_a_sweep(make_book, receiver: Receiver) -> None:  # type: ignore[no-untyped-def]
    from tests.conftest import MEMORY_CHANNELS

    channels = {
        **MEMORY_CHANNELS,
        "phone": {"type": "webhook", "recipient": "phone", "url": receiver.url, "secret_env": "TEST_WEBHOOK_SECRET"},
    }
    book = make_book(channels=channels)
    book.customers({"id": "C1", "name": "C1", "credit_grade": "A"})
    book.invoice("INV-1", "C1", "500.00", "2026-03-01")
    for day in ("2026-03-04", "2026-03-16"):
        book.run(day)
    (request,) = receiver.requests
    assert request["valid"] and json.loads(request["body"])["stage"] == "phone"
    (row,) = [r for r in book.app.outbox() if r["channel"] == "phone"]
    assert row["status"] == "sent"
