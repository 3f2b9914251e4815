"""Credit: the order check an ERP calls before it ships, and the early warnings with their acknowledgement."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Body, Depends, Path, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from engine.web.api.common import AUTH, BUSY, FOUND, Cursor, Item, Limit, decode_cursor, page, reader
from engine.web.auth import WebUser, api_user
from engine.web.services import acknowledge_warning, credit_check, dunning

router = APIRouter()

Amount = int | float


class CreditCheck(BaseModel):
    """`dunning credit check CUSTOMER --amount X --json`; `headroom` is limit − open before the order."""

    customer_id: str
    ok: bool
    limit: Amount | None
    open: Amount
    amount: Amount
    headroom: Amount | None
    reasons: list[str]


@router.get(
    "/customers/{customer_id}/credit-check",
    response_model=CreditCheck,
    responses={**AUTH, **FOUND},
    tags=["credit"],
)
def check_order(
    request: Request,
    customer_id: str = Path(..., min_length=1, max_length=64, description="The customer id."),
    amount: str = Query(..., min_length=1, max_length=40, description="The new order's amount, e.g. 5000 or 1234.50."),
    currency: str | None = Query(None, max_length=8, description="Its currency (default: credit.yaml's)."),
    user: WebUser = Depends(reader),
) -> dict[str, Any]:
    """May a new order of `amount` ship? 200 whether it may (`ok` true, the headroom) or not (`ok` false, the
    reasons: over limit, invoice in legal, on hold). Changes nothing; every role (and API token) may ask."""
    return credit_check(request, user, customer_id, amount, currency)


class Warning(BaseModel):
    """A warning as `dunning warnings --json` lists it."""

    model_config = ConfigDict(extra="allow")

    id: int
    rule: str
    customer_id: str
    severity: str
    status: Literal["open", "acknowledged", "cleared"]
    raised_at: str | None
    cleared_at: str | None
    acknowledged_by: str | None
    note: str | None


class WarningPage(BaseModel):
    items: list[Warning]
    next_cursor: str | None


@router.get("/warnings", response_model=WarningPage, responses={**AUTH}, tags=["credit"])
def list_warnings(
    request: Request,
    status: Literal["open", "all"] = Query("open", description="open: not acknowledged or cleared; all: every one."),
    customer: str | None = Query(None, max_length=64, description="Only this customer's."),
    limit: int = Limit,
    cursor: str | None = Cursor,
    user: WebUser = Depends(reader),
) -> JSONResponse:
    """Early warnings, oldest first, as `dunning warnings [--open] --json` lists them."""
    rows = dunning(request).credit.warnings(
        open_only=status == "open", customer=customer, after_id=decode_cursor(cursor), limit=limit
    )
    return page(rows, limit, rows[-1]["id"] if rows else 0)


class Acknowledgement(BaseModel):
    model_config = ConfigDict(extra="forbid")

    note: str | None = Field(None, max_length=2000, description="What is being done about it.")


@router.post(
    "/warnings/{warning_id}/ack",
    response_model=Item,
    responses={**AUTH, **FOUND, **BUSY},
    tags=["credit"],
)
def ack_warning(
    request: Request,
    warning_id: int = Path(..., ge=1, le=2**62),
    body: Acknowledgement = Body(default_factory=lambda: Acknowledgement.model_validate({})),
    user: WebUser = Depends(api_user),
) -> dict[str, Any]:
    """`dunning warnings ack ID --note TEXT`: the warning is not raised again while its condition holds.
    Managers and up; a collector for warnings of customers they own. Answers the recorded
    `warning_acknowledged` event; 422 when the warning is not open."""
    return acknowledge_warning(request, user, warning_id, body.note)


__all__ = ["router"]
