"""Signed customer links: a page without login showing one customer what they owe.

A link is `<web.public_url>/c/<token>`; the token names the customer and the last instant it is valid, and
carries an HMAC-SHA256 over both with the secret from `$DUNNING_LINK_SECRET` (every process that renders a
notification and the server that checks the link read the same variable). Changing any character, letting
it expire or using it on another customer's invoice gets `LinkRefused`; the server answers 403 and says
nothing about the customer. No state is stored: revoking all links means changing the secret.

    token = sign("C1", secret=b"...", expires=now + timedelta(days=30))
    verify(token, secret=b"...", now=now)  # -> "C1"
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from collections.abc import Callable
from datetime import datetime, timedelta, timezone

from engine.errors import ConfigError, LinkRefused

LINK_SECRET_ENV = "DUNNING_LINK_SECRET"
#: Separates this use of the secret from any other (a key used for two things signs nothing for both).
PURPOSE = b"dunning customer link v1\x00"
MIN_SECRET_BYTES = 16


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def link_secret(environ: dict[str, str] | None = None) -> bytes | None:
    """The link secret from the environment, or None when unset; too short a secret is a ConfigError."""
    value = (environ if environ is not None else os.environ).get(LINK_SECRET_ENV, "")
    if not value:
        return None
    if len(value.encode()) < MIN_SECRET_BYTES:
        raise ConfigError(
            f"${LINK_SECRET_ENV} is shorter than {MIN_SECRET_BYTES} bytes; set a long random value "
            "(e.g. `python -c 'import secrets; print(secrets.token_urlsafe(32))'`)"
        )
    return value.encode()


def _signature(payload: bytes, secret: bytes) -> bytes:
    return hmac.new(secret, PURPOSE + payload, hashlib.sha256).digest()


def sign(customer_id: str, *, secret: bytes, expires: datetime) -> str:
    """A token for `customer_id`, valid until `expires` (an aware instant)."""
    payload = f"{int(expires.timestamp())}:{customer_id}".encode()
    return f"{_b64(payload)}.{_b64(_signature(payload, secret))}"


def verify(token: str, *, secret: bytes, now: datetime) -> str:
    """The customer id the token was made for; LinkRefused when it was altered or has expired."""
    refused = LinkRefused("this link is not valid (changed, expired or unknown); ask us for a new one")
    body, dot, mac = token.partition(".")
    if not dot or len(token) > 600:
        raise refused
    try:
        payload, given = _unb64(body), _unb64(mac)
    except (ValueError, TypeError):
        raise refused from None
    if not hmac.compare_digest(_signature(payload, secret), given):
        raise refused
    expiry, _, customer_id = payload.decode("utf-8", "replace").partition(":")
    if not expiry.isdigit() or not customer_id or int(expiry) < now.timestamp():
        raise refused
    return customer_id


def customer_link(public_url: str, customer_id: str, *, secret: bytes, now: datetime, days: float) -> str:
    """The full URL of the customer's page, valid for `days` days from `now`."""
    token = sign(customer_id, secret=secret, expires=now + timedelta(days=days))
    return f"{public_url.rstrip('/')}/c/{token}"


def link_maker(
    public_url: str | None, days: float, now: Callable[[], datetime], environ: dict[str, str] | None = None
) -> Callable[[str], str] | None:
    """What rendering uses to offer templates `customer_link`: None unless `public_url` and the secret are set."""
    if not public_url:
        return None
    secret = link_secret(environ)
    if secret is None:
        raise ConfigError(
            f"web.public_url is set but ${LINK_SECRET_ENV} is not; set it in the environment of "
            "every process that sends notifications and of `dunning serve`"
        )

    def make(customer_id: str) -> str:
        return customer_link(public_url, customer_id, secret=secret, now=now().astimezone(timezone.utc), days=days)

    return make
