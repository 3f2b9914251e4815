"""The `webhook` channel: an HTTP POST of the notification as JSON, for SMS/voice providers, chat tools, ERPs.

Options:

    url: https://hooks.example.com/dunning
    secret_env: DUNNING_WEBHOOK_SECRET   # HMAC-SHA256 key, from the environment only
    signature_header: X-Dunning-Signature   # value: "sha256=<hex of HMAC-SHA256 over the exact body>"
    timeout: 10          # seconds
    retries: 2           # quick retries inside one attempt for timeouts, 408, 429 and 5xx
    headers: {Authorization-Scope: collections}

Each request carries `Idempotency-Key: <notification key>` so a receiver can drop a repeat delivery.
2xx is success; 408, 429, 5xx, timeouts and connection errors are transient; any other status is permanent
(with the response's status and first bytes as the reason). httpx is imported only here.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import os
from datetime import date, datetime
from decimal import Decimal
from typing import Any
from urllib.parse import quote

import httpx

from channels.base import Channel, ChannelContext, Message, PermanentDeliveryError, Receipt, TransientDeliveryError
from engine.errors import ConfigError

TRANSIENT_STATUS = frozenset({408, 425, 429})


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    raise TypeError(f"cannot encode {type(value).__name__}")


def payload(message: Message) -> bytes:
    """The JSON body: stable keys, amounts as decimal strings (exact), dates in ISO 8601."""
    document = {
        "key": message.key,
        "notification_id": message.notification_id,
        "channel": message.channel,
        "recipient": message.recipient,
        "stage": message.stage,
        "policy": message.policy,
        "repeat": message.repeat_no,
        "language": message.language,
        "subject": message.subject,
        "body": message.body,
        "grouped": message.grouped,
        "customer": dict(message.customer),
        "invoices": [dict(invoice) for invoice in message.invoices],
    }
    return json.dumps(document, default=_plain, ensure_ascii=False, sort_keys=True).encode("utf-8")


def signature(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


#: Characters a header value may carry as they are: visible ASCII and space, except '%' (it escapes).
_HEADER_SAFE = "".join(chr(c) for c in range(0x20, 0x7F) if chr(c) != "%")


def header_safe_key(key: str) -> str:
    """The idempotency key as an HTTP header value: visible ASCII as is, anything else (发票7, CR, LF)
    percent-encoded as UTF-8, so the value is stable, injective and never starts a new header. The JSON body
    carries the key unchanged."""
    return quote(key, safe=_HEADER_SAFE)


class WebhookChannel(Channel):
    type_name = "webhook"

    def __init__(self, name: str, options: Any, context: ChannelContext):
        super().__init__(name, options, context)
        self.url = self.options.get("url")
        if not self.url:
            raise ConfigError(f"channel {name!r}: a webhook needs `url:`")
        if "secret" in self.options:
            raise ConfigError(
                f"channel {name!r}: secrets never go in the configuration; name an environment variable "
                "with `secret_env:`"
            )
        self.timeout = float(self.options.get("timeout", 10))
        self.retries = int(self.options.get("retries", 2))
        self.header = str(self.options.get("signature_header", "X-Dunning-Signature"))
        self.extra_headers = {str(k): str(v) for k, v in (self.options.get("headers") or {}).items()}
        self._client: httpx.AsyncClient | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def _secret(self) -> str | None:
        variable = self.options.get("secret_env")
        if not variable:
            return None
        secret = os.environ.get(str(variable))
        if secret is None:
            raise TransientDeliveryError(f"the webhook secret variable ${variable} is not set; export it")
        return secret

    def _http(self) -> httpx.AsyncClient:
        loop = asyncio.get_running_loop()
        if self._client is None or self._loop is not loop:
            self._client = httpx.AsyncClient(timeout=self.timeout)
            self._loop = loop
        return self._client

    async def send(self, message: Message) -> Receipt:
        body = payload(message)
        headers = {
            "Content-Type": "application/json",
            "Idempotency-Key": header_safe_key(message.key),
            **self.extra_headers,
        }
        secret = self._secret()
        if secret is not None:
            headers[self.header] = signature(secret, body)
        last: TransientDeliveryError | None = None
        for attempt in range(self.retries + 1):
            if attempt:
                await asyncio.sleep(min(0.2 * 2 ** (attempt - 1), 2.0))
            try:
                response = await self._http().post(self.url, content=body, headers=headers)
            except httpx.TimeoutException as exc:
                last = TransientDeliveryError(f"webhook timed out after {self.timeout:g} s: {exc!r}")
                continue
            except httpx.HTTPError as exc:
                last = TransientDeliveryError(f"webhook unreachable: {type(exc).__name__}: {exc}")
                continue
            if response.is_success:
                reference = response.headers.get("X-Request-Id") or f"HTTP {response.status_code}"
                return Receipt(reference=reference, detail=response.text[:200])
            reason = f"webhook answered {response.status_code}: {response.text[:200]}"
            if response.status_code >= 500 or response.status_code in TRANSIENT_STATUS:
                last = TransientDeliveryError(reason)
                continue
            raise PermanentDeliveryError(reason)
        assert last is not None
        raise last

    async def aclose(self) -> None:
        client, self._client = self._client, None
        if client is not None and self._loop is asyncio.get_running_loop():
            await client.aclose()
