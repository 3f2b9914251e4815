"""What every API router shares: the list page shape, cursors, the reader dependency, problem docs."""

from __future__ import annotations

import base64
import binascii
from typing import Any

from fastapi import Depends, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict

from engine.app import json_ready
from engine.errors import DunningError
from engine.web.auth import WebUser, api_user
from engine.web.problems import MEDIA_TYPE, PROBLEM_SCHEMA
from engine.web.services import require

MAX_LIMIT = 500
DEFAULT_LIMIT = 50


class Item(BaseModel):
    """One JSON object as the CLI's --json prints it."""

    model_config = ConfigDict(extra="allow")


class Page(BaseModel):
    """A list: up to `limit` items, and the cursor of the next page (null on the last one)."""

    items: list[dict[str, Any]]
    next_cursor: str | None


def problem_doc(description: str) -> dict[str, Any]:
    return {"description": description, "content": {MEDIA_TYPE: {"schema": PROBLEM_SCHEMA}}}


#: Documented error answers; every route lists the ones it can give.
Responses = dict[int | str, dict[str, Any]]
AUTH: Responses = {
    401: problem_doc("No valid credentials"),
    403: problem_doc("The role (or owner scope) does not allow it"),
    422: problem_doc("Bad input"),
}
FOUND: Responses = {404: problem_doc("Unknown invoice, customer, task or notification")}
CONFLICT: Responses = {409: problem_doc("An illegal state move; nothing changed")}
BUSY: Responses = {503: problem_doc("The database is busy with another writer; retry after Retry-After seconds")}

Limit = Query(DEFAULT_LIMIT, ge=1, le=MAX_LIMIT, description="Items per page.")
Cursor = Query(None, max_length=200, description="`next_cursor` of the previous page.")


class BadCursor(DunningError):
    pass


def encode_cursor(value: int | str) -> str:
    return base64.urlsafe_b64encode(str(value).encode("utf-8")).decode("ascii").rstrip("=")


def decode_cursor(cursor: str | None, *, numeric: bool = True) -> Any:
    if not cursor:
        return 0 if numeric else ""
    refused = BadCursor(f"cursor {cursor!r} is not one this API gave out; start again without it")
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("utf-8")
        value = int(text) if numeric else text
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise refused from None
    # a numeric cursor is a row id: one outside a 64-bit id would reach the database and fail there (500)
    if numeric and not 0 <= value < 2**63:
        raise refused
    return value


def page(items: list[dict[str, Any]], limit: int, last_key: Any, *, ready: bool = False) -> JSONResponse:
    """The list answer; a full page has a next cursor (the next page may turn out empty). Answered as a
    response at once: the items are plain JSON already, validating them again against `Page` costs more
    than the query (`ready`: the items need no conversion either)."""
    return JSONResponse(
        {
            "items": items if ready else json_ready(items),
            "next_cursor": encode_cursor(last_key) if len(items) >= limit else None,
        }
    )


async def reader(request: Request, user: WebUser = Depends(api_user)) -> WebUser:
    """Dependency: any signed-in user (every role reads)."""
    require(request, user, "read", subject="the book")
    return user
