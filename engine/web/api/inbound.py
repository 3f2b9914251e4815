"""Inbound mail: the signed webhook mail providers POST raw messages to, and the triage of `dunning inbound`
(list, assign, confirm)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any, Literal

from fastapi import APIRouter, Body, Depends, Path, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from engine.web import inbound as hook
from engine.web.api.common import (
    AUTH,
    BUSY,
    FOUND,
    Cursor,
    Item,
    Limit,
    Page,
    Responses,
    decode_cursor,
    page,
    problem_doc,
    reader,
)
from engine.web.auth import WebUser, api_user
from engine.web.problems import ApiProblem
from engine.web.services import dunning, inbound_assign, inbound_confirm, mailroom, receive_message

router = APIRouter()

SIGNED: Responses = {
    401: problem_doc("Unsigned, a signature that does not match, or a timestamp outside the window"),
    413: problem_doc(f"The message is larger than {hook.MAX_MESSAGE_BYTES} bytes"),
    415: problem_doc("Not message/rfc822 or application/octet-stream"),
    422: problem_doc("An empty body"),
    503: problem_doc(
        f"${hook.SECRET_ENV} is not set (the webhook is off), or the database is busy; a provider retries later"
    ),
}
RAW_MESSAGE = {
    "required": True,
    "content": {media: {"schema": {"type": "string", "format": "binary"}} for media in hook.MEDIA_TYPES},
}


async def _body(request: Request) -> bytes:
    """The request body, refused with 413 as soon as it is larger than the limit (before reading it all)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > hook.MAX_MESSAGE_BYTES:
        raise _too_large()
    received = bytearray()
    async for chunk in request.stream():
        received += chunk
        if len(received) > hook.MAX_MESSAGE_BYTES:
            raise _too_large()
    return bytes(received)


def _too_large() -> ApiProblem:
    return ApiProblem(
        413, "Message too large", f"the message is larger than {hook.MAX_MESSAGE_BYTES} bytes; it was not processed"
    )


@router.post(
    "/inbound/messages",
    response_model=Item,
    responses=SIGNED,
    openapi_extra={"requestBody": RAW_MESSAGE, "security": [{"inbound_signature": []}]},
    tags=["inbound"],
)
async def receive(request: Request) -> dict[str, Any]:
    """The signed inbound webhook: a raw RFC 822 message (a reply, bounce or auto-reply) from a mail provider.
    Authenticated by `X-Dunning-Signature: sha256=<hex HMAC-SHA256($DUNNING_INBOUND_SECRET, "<timestamp>." +
    body)>` and `X-Dunning-Timestamp` (Unix seconds, within 300 s of our clock) — not by a session or token.
    Processed as IMAP and drop-folder messages are (once by Message-ID): answers the message as
    `dunning inbound show --json` with `duplicate: false`, or `{duplicate: true, message_id}` for one
    already processed."""
    secret = hook.inbound_secret()
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media not in hook.MEDIA_TYPES:
        raise ApiProblem(
            415, "Unsupported media type", f"send the raw message as {' or '.join(hook.MEDIA_TYPES)}, not {media!r}"
        )
    raw = await _body(request)
    now = dunning(request).clock.now().timestamp()
    hook.check_signature(
        secret, request.headers.get(hook.TIMESTAMP_HEADER), request.headers.get(hook.SIGNATURE_HEADER), raw, now
    )
    if not raw.strip():
        raise ApiProblem(422, "Empty message", "the body is empty; send the raw RFC 822 message")
    result: dict[str, Any] = await run_in_threadpool(receive_message, request, raw)
    return result


@router.get("/inbound/messages", response_model=Page, responses={**AUTH}, tags=["inbound"])
def list_messages(
    request: Request,
    unmatched: bool = Query(False, description="Only messages that matched no invoice."),
    limit: int = Limit,
    cursor: str | None = Cursor,
    user: WebUser = Depends(reader),
) -> JSONResponse:
    """`dunning inbound list [--unmatched] --json`: received messages, newest first, with what they matched
    and the intents they suggest. `limit` per page (default 50, at most 500); `cursor` (the previous page's
    `next_cursor`) continues with the messages older than that page's last."""
    # keyset on the id, not an offset: mail keeps arriving while someone pages, and ids only grow
    before = decode_cursor(cursor) if cursor else None
    messages = mailroom(request).list(unmatched=unmatched, limit=limit, before_id=before)
    return page(messages, limit, messages[-1]["id"] if messages else 0)


MessageId = Path(..., ge=1, le=2**62, description="The message's id (from GET /inbound/messages).")


@router.get("/inbound/messages/{message_id}", response_model=Item, responses={**AUTH, **FOUND}, tags=["inbound"])
def get_message(request: Request, message_id: int = MessageId, user: WebUser = Depends(reader)) -> dict[str, Any]:
    """`dunning inbound show MESSAGE --json`."""
    from engine.app import json_ready

    return json_ready(mailroom(request).get(message_id))


class Assignment(BaseModel):
    model_config = ConfigDict(extra="forbid")

    invoice: str = Field(..., min_length=1, max_length=64, description="The invoice number it is about.")


@router.post(
    "/inbound/messages/{message_id}/assign",
    response_model=Item,
    responses={**AUTH, **FOUND, **BUSY},
    tags=["inbound"],
)
def assign(
    request: Request, body: Assignment, message_id: int = MessageId, user: WebUser = Depends(api_user)
) -> dict[str, Any]:
    """`dunning inbound assign MESSAGE --invoice NUMBER`: match the message by hand; its effects (event, task,
    pause) apply then. A collector assigns to invoices of customers they own."""
    return inbound_assign(request, user, message_id, body.invoice)


class Confirmation(BaseModel):
    model_config = ConfigDict(extra="forbid")

    intent: Literal["promise", "dispute", "payment_claim"] | None = Field(
        None, description="Which suggestion (default: the first)."
    )
    amount: Decimal | None = Field(None, description="For a promise: the amount, if not the reply's.")
    on: str | None = Field(None, max_length=10, description="For a promise: the date (YYYY-MM-DD), if not the reply's.")


@router.post(
    "/inbound/messages/{message_id}/confirm",
    response_model=Item,
    responses={**AUTH, **FOUND, **BUSY},
    tags=["inbound"],
)
def confirm(
    request: Request,
    message_id: int = MessageId,
    body: Confirmation = Body(default_factory=lambda: Confirmation.model_validate({})),
    user: WebUser = Depends(api_user),
) -> dict[str, Any]:
    """`dunning inbound confirm MESSAGE`: turn the reply's suggestion into the collector action it names
    (promise, dispute, a note for a payment claim), recorded under the signed-in user. A collector confirms
    replies about their own customers' invoices."""
    return inbound_confirm(request, user, message_id, body.model_dump(exclude_none=True))


__all__ = ["router"]
