"""The signed inbound webhook's checks: a mail provider POSTs a raw RFC 822 message to
`/api/v1/inbound/messages`, signed with the secret both sides share (`$DUNNING_INBOUND_SECRET`):

    X-Dunning-Timestamp: 1767225600                      (Unix seconds when the provider sent it)
    X-Dunning-Signature: sha256=<hex HMAC-SHA256(secret, "<timestamp>." + body)>

The timestamp is inside the signature, so a captured request cannot be sent again with a fresh one; a request
whose timestamp is more than `WINDOW_SECONDS` away from our clock is refused, and a replay inside the window
is recognised by the mailroom (each message is processed once, by Message-ID and body hash). Signatures are
compared in constant time. Without the secret the endpoint answers 503 (the provider keeps the message and
retries), never processing anything unsigned.
"""

from __future__ import annotations

import hashlib
import hmac
import os

from engine.web.problems import ApiProblem

SECRET_ENV = "DUNNING_INBOUND_SECRET"
MIN_SECRET_LENGTH = 16
SIGNATURE_HEADER = "X-Dunning-Signature"
TIMESTAMP_HEADER = "X-Dunning-Timestamp"
#: How far (seconds) the sender's timestamp may be from our clock, either way.
WINDOW_SECONDS = 300
#: The largest message taken (bytes); mail providers' own limits are 25–35 MB, a dunning reply is small.
MAX_MESSAGE_BYTES = 10 * 1024 * 1024
MEDIA_TYPES = ("message/rfc822", "application/octet-stream")
#: Where messages that came through the webhook are filed (the `mailbox` of `dunning inbound list`).
MAILBOX = "webhook"


def inbound_secret() -> bytes:
    """The shared secret, or a 503 problem saying how to configure it."""
    secret = os.environ.get(SECRET_ENV, "")
    if not secret:
        raise ApiProblem(
            503,
            "Inbound webhook not configured",
            f"the inbound webhook is off: set ${SECRET_ENV} (at least {MIN_SECRET_LENGTH} characters, the secret "
            "the mail provider signs with) for this server",
        )
    if len(secret) < MIN_SECRET_LENGTH:
        raise ApiProblem(
            503,
            "Inbound webhook not configured",
            f"${SECRET_ENV} is too short ({len(secret)} characters); use at least {MIN_SECRET_LENGTH}, "
            "e.g. `openssl rand -hex 32`",
        )
    return secret.encode("utf-8")


def sign(secret: bytes, timestamp: str, body: bytes) -> str:
    """The header value a sender puts in X-Dunning-Signature."""
    return "sha256=" + hmac.new(secret, timestamp.encode("ascii") + b"." + body, hashlib.sha256).hexdigest()


def _refused(detail: str) -> ApiProblem:
    return ApiProblem(
        401, "Signature refused", detail, headers={"WWW-Authenticate": f'{SIGNATURE_HEADER} alg="sha256"'}
    )


def check_signature(secret: bytes, timestamp: str | None, signature: str | None, body: bytes, now: float) -> None:
    """Raise a 401 problem unless `signature` signs `timestamp` and `body` and the timestamp is recent."""
    if not timestamp or not signature:
        raise _refused(f"unsigned: send {TIMESTAMP_HEADER} (Unix seconds) and {SIGNATURE_HEADER}: sha256=<hex>")
    stamp = timestamp.strip()
    if not stamp.isdigit() or len(stamp) > 12:
        raise _refused(f"{TIMESTAMP_HEADER} must be Unix seconds, e.g. 1767225600")
    if abs(now - int(stamp)) > WINDOW_SECONDS:
        raise _refused(
            f"{TIMESTAMP_HEADER} is more than {WINDOW_SECONDS} seconds from this server's clock; "
            "sign the request when it is sent (and check both clocks)"
        )
    expected = sign(secret, stamp, body)
    if not hmac.compare_digest(signature.strip().lower().encode("ascii", "replace"), expected.encode("ascii")):
        raise _refused(f"{SIGNATURE_HEADER} does not match the body; sign '<timestamp>.<body>' with the shared secret")


__all__ = [
    "MAILBOX",
    "MAX_MESSAGE_BYTES",
    "MEDIA_TYPES",
    "SECRET_ENV",
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "WINDOW_SECONDS",
    "check_signature",
    "inbound_secret",
    "sign",
]
