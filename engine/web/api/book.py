"""The book: invoices (with history, explain and actions), customers, tasks and the outbox."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any, Literal

from fastapi import APIRouter, Body, Depends, Path, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from engine.app import json_number, json_ready, outbox_entry, status_entry
from engine.clock import iso, parse_instant
from engine.store import browse
from engine.tasks import _row as task_json
from engine.web.api.common import AUTH, BUSY, CONFLICT, FOUND, Cursor, Item, Limit, Page, decode_cursor, page, reader
from engine.web.auth import WebUser, api_user
from engine.web.services import (
    INVOICE_ACTIONS,
    book_day,
    dunning,
    invoice_action,
    one_snapshot,
    retry_notification,
    task_done,
)

router = APIRouter()

InvoiceNumber = Path(..., min_length=1, max_length=64, description="The invoice number.")
ActionName = Literal["dispute", "resolve", "promise", "plan", "note", "write-off", "move", "approve"]
assert set(ActionName.__args__) == set(INVOICE_ACTIONS)  # type: ignore[attr-defined]


def invoice_json(row: dict[str, Any], today: date) -> dict[str, Any]:
    """An invoice as `dunning status --json` lists it, plus its customer's name and owner, the amounts and
    dates, and the stage it awaits approval for — JSON-ready (by hand: this is the hot path of every list)."""
    entry = status_entry(row, today)
    entry["open_amount"] = json_number(entry["open_amount"])
    return {
        **entry,
        "customer_name": row["customer_name"],
        "owner": row["owner"],
        "amount": json_number(row["amount"]),
        "issued_on": row["issued_on"].isoformat(),
        "due_on": row["due_on"].isoformat(),
        "awaiting_stage": row["awaiting_stage"],
        "stage_entered_at": iso(row["stage_entered_at"]),
        "closed_at": iso(row["closed_at"]),
        "tags": row["tags"] or [],
    }


def customer_json(row: dict[str, Any]) -> dict[str, Any]:
    keys = ("id", "name", "email", "phone", "address", "credit_grade", "segment", "owner", "language", "timezone")
    found = {key: row[key] for key in keys}
    found["tags"] = row["tags"] or []
    if "open_invoices" in row:
        found["open_invoices"] = row["open_invoices"]
    return found


# -- invoices ------------------------------------------------------------------------------------------------


@router.get(
    "/invoices",
    response_model=Page,
    responses={**AUTH, **BUSY},
    tags=["invoices"],
    dependencies=[Depends(one_snapshot)],
)
async def list_invoices(
    request: Request,
    stage: str | None = Query(None, max_length=64),
    policy: str | None = Query(None, max_length=128),
    owner: str | None = Query(None, max_length=64, description="The customer's owner (collector)."),
    customer: str | None = Query(None, max_length=64, description="A customer id."),
    status: Literal["open", "closed", "all"] = "open",
    q: str | None = Query(None, max_length=100, description="Part of the number, customer name or id."),
    awaiting_approval: bool = Query(False, description="Only invoices waiting for an approval."),
    limit: int = Limit,
    cursor: str | None = Cursor,
    user: WebUser = Depends(reader),
) -> JSONResponse:
    """Invoices in import order, filtered; the items are `dunning status --json` rows plus customer name,
    owner, amounts and dates."""
    rows = browse.list_invoices(
        dunning(request).repo,
        stage=stage,
        policy=policy,
        owner=owner,
        customer=customer,
        status=status,
        q=q,
        awaiting=awaiting_approval,
        after_id=decode_cursor(cursor),
        limit=limit,
    )
    today = book_day(request)
    return page([invoice_json(r, today) for r in rows], limit, rows[-1]["id"] if rows else 0, ready=True)


@router.get(
    "/invoices/{number}",
    response_model=Item,
    responses={**AUTH, **FOUND},
    tags=["invoices"],
    dependencies=[Depends(one_snapshot)],
)
async def get_invoice(request: Request, number: str = InvoiceNumber, user: WebUser = Depends(reader)) -> dict[str, Any]:
    """One invoice with its customer and pause state."""
    row = browse.invoice_row(dunning(request).repo, number)
    found = invoice_json(row, book_day(request))
    found.update(
        resume_stage=row["resume_stage"],
        paused_since=iso(row["paused_since"]),
        paused_days=row["paused_days"],
        stage_repeats=row["stage_repeats"],
        last_notice_at=iso(row["last_notice_at"]),
    )
    customer = browse.customer_record(dunning(request).repo, row["customer_id"])  # its open totals are not shown
    found["customer"] = customer_json(customer)
    return json_ready(found)


@router.get("/invoices/{number}/history", response_model=Page, responses={**AUTH, **FOUND}, tags=["invoices"])
def invoice_history(request: Request, number: str = InvoiceNumber, user: WebUser = Depends(reader)) -> JSONResponse:
    """Every event of the invoice in order, as `dunning history NUMBER --json` (one page)."""
    return page(dunning(request).history(number), 10**9, None)


@router.get("/invoices/{number}/explain", response_model=Item, responses={**AUTH, **FOUND}, tags=["invoices"])
def invoice_explain(
    request: Request,
    number: str = InvoiceNumber,
    as_of: str | None = Query(None, max_length=40),
    user: WebUser = Depends(reader),
) -> dict[str, Any]:
    """`dunning explain NUMBER --json`: the governing policy and why, what happens next and when."""
    from engine.authoring.explain import explain_invoice

    app = dunning(request)
    browse.invoice_subject(app.repo, number)
    found = explain_invoice(app, number, parse_instant(as_of, app.settings.zone) if as_of else None)
    result = json_ready(found.as_dict())
    result["text"] = list(found.lines())
    return result


@router.get("/invoices/{number}/charges", response_model=Item, responses={**AUTH, **FOUND}, tags=["invoices"])
def invoice_charges(
    request: Request,
    number: str = InvoiceNumber,
    as_of: str | None = Query(None, max_length=40, description="The day counted up to, included (default today)."),
    user: WebUser = Depends(reader),
) -> dict[str, Any]:
    """`dunning charges NUMBER --json`: principal open, interest by periods, compensation, fees, total due and
    the legal basis (all zero when the invoice's policy charges nothing)."""
    from engine.charging import invoice_charges as charges_of

    app = dunning(request)
    return json_ready(charges_of(app, number, parse_instant(as_of, app.settings.zone) if as_of else None).as_dict())


class ActionOptions(BaseModel):
    """The CLI's options of the action, under their option names."""

    model_config = ConfigDict(extra="forbid")

    reason: str | None = Field(None, max_length=2000)
    amount: Decimal | None = Field(None, description="promise: the amount promised")
    by: str | None = Field(None, max_length=10, description="promise: ISO date")
    installments: str | list[dict[str, Any]] | None = Field(
        None, description='plan: "DATE:AMOUNT,..." or [{"due_on": DATE, "amount": N}, ...]'
    )
    to: str | None = Field(None, max_length=64, description="move: the stage")
    at: str | None = Field(None, max_length=40, description="when it happened (ISO; default now)")
    note: str | None = Field(None, max_length=2000)
    text: str | None = Field(None, max_length=4000, description="note: its text")


@router.post(
    "/invoices/{number}/actions/{action}",
    response_model=Item,
    responses={**AUTH, **FOUND, **CONFLICT, **BUSY},
    tags=["invoices"],
)
def act_on_invoice(
    request: Request,
    action: ActionName,
    number: str = InvoiceNumber,
    options: ActionOptions = Body(default_factory=lambda: ActionOptions.model_validate({})),
    user: WebUser = Depends(api_user),
) -> dict[str, Any]:
    """Record a collector action under the signed-in user; answers the recorded event
    (as `dunning history --json` shows it)."""
    return invoice_action(request, user, number, action, options.model_dump(exclude_none=True))


# -- customers -----------------------------------------------------------------------------------------------


@router.get("/customers", response_model=Page, responses={**AUTH, **BUSY}, tags=["customers"])
def list_customers(
    request: Request,
    owner: str | None = Query(None, max_length=64),
    q: str | None = Query(None, max_length=100),
    limit: int = Limit,
    cursor: str | None = Cursor,
    user: WebUser = Depends(reader),
) -> JSONResponse:
    """Customers in id order with their contact data, owner and open invoice count."""
    rows = browse.list_customers(
        dunning(request).repo, owner=owner, q=q, after_id=decode_cursor(cursor, numeric=False), limit=limit
    )
    return page([customer_json(r) for r in rows], limit, rows[-1]["id"] if rows else "")


CustomerId = Path(..., min_length=1, max_length=64, description="The customer id.")


@router.get("/customers/{customer_id}", response_model=Item, responses={**AUTH, **FOUND}, tags=["customers"])
def get_customer(request: Request, customer_id: str = CustomerId, user: WebUser = Depends(reader)) -> dict[str, Any]:
    """One customer, its open amount per currency and its open invoices."""
    repo = dunning(request).repo
    row = browse.customer_row(repo, customer_id)
    found = customer_json(row)
    found["open"] = row["open"]
    today = book_day(request)
    found["open_invoices"] = [
        invoice_json(r, today) for r in browse.list_invoices(repo, customer=customer_id, limit=1000)
    ]
    return json_ready(found)


@router.get("/customers/{customer_id}/history", response_model=Page, responses={**AUTH, **FOUND}, tags=["customers"])
def customer_history(request: Request, customer_id: str = CustomerId, user: WebUser = Depends(reader)) -> JSONResponse:
    """The events of the customer and all its invoices, as `dunning history --customer ID --json`."""
    return page(dunning(request).history(customer=customer_id), 10**9, None)


# -- tasks ---------------------------------------------------------------------------------------------------


@router.get("/tasks", response_model=Page, responses={**AUTH}, tags=["tasks"])
def list_tasks(
    request: Request,
    owner: str | None = Query(None, max_length=64),
    kind: str | None = Query(None, max_length=32),
    all: bool = Query(False, description="Completed tasks too."),
    limit: int = Limit,
    cursor: str | None = Cursor,
    user: WebUser = Depends(reader),
) -> JSONResponse:
    """Calls and visits, oldest first, as `dunning tasks --json`."""
    rows = browse.list_tasks(
        dunning(request).repo,
        owner=owner,
        kind=kind,
        status=None if all else "open",
        after_id=decode_cursor(cursor),
        limit=limit,
    )
    return page([task_json(r) for r in rows], limit, rows[-1]["id"] if rows else 0)


class TaskOutcome(BaseModel):
    model_config = ConfigDict(extra="forbid")

    outcome: Literal["promised", "disputed", "no_answer", "paid", "wrong_contact"]
    amount: Decimal | None = None
    by: str | None = Field(None, max_length=10)
    note: str | None = Field(None, max_length=2000)
    at: str | None = Field(
        None, max_length=40, description="when it happened (ISO; default now; not before the latest sweep)"
    )


@router.post(
    "/tasks/{task_id}/done", response_model=Item, responses={**AUTH, **FOUND, **CONFLICT, **BUSY}, tags=["tasks"]
)
def complete_task(
    request: Request, body: TaskOutcome, task_id: int = Path(..., ge=1, le=2**62), user: WebUser = Depends(api_user)
) -> dict[str, Any]:
    """Record how a call or visit went (as `dunning tasks done ID --json`): `at` dates it (ISO date or
    datetime, company time zone when naive; default now) and is refused (422) before the latest sweep."""
    return task_done(request, user, task_id, body.model_dump(exclude_none=True))


# -- outbox --------------------------------------------------------------------------------------------------


def outbox_json(r: dict[str, Any]) -> dict[str, Any]:
    """A notification as `dunning outbox --json` lists it, plus when it is next tried."""
    return {**outbox_entry(r), "due_at": iso(r["due_at"]), "next_attempt_at": iso(r["next_attempt_at"])}


@router.get("/outbox", response_model=Page, responses={**AUTH}, tags=["outbox"])
def list_outbox(
    request: Request,
    status: Literal["pending", "sending", "sent", "failed", "cancelled"] | None = None,
    invoice: str | None = Query(None, max_length=64),
    channel: str | None = Query(None, max_length=64),
    limit: int = Limit,
    cursor: str | None = Cursor,
    user: WebUser = Depends(reader),
) -> JSONResponse:
    """The notifications in the order they were queued."""
    rows = browse.list_outbox(
        dunning(request).repo,
        status=status,
        invoice=invoice,
        channel=channel,
        after_id=decode_cursor(cursor),
        limit=limit,
    )
    return page([outbox_json(r) for r in rows], limit, rows[-1]["id"] if rows else 0)


@router.post(
    "/outbox/{notification_id}/retry",
    response_model=Item,
    responses={**AUTH, **FOUND, **CONFLICT, **BUSY},
    tags=["outbox"],
)
def retry(
    request: Request, notification_id: int = Path(..., ge=1, le=2**62), user: WebUser = Depends(api_user)
) -> dict[str, Any]:
    """Send a failed notification again (it is due at once, with a fresh attempt count)."""
    return retry_notification(request, user, notification_id)


__all__ = ["customer_json", "invoice_json", "outbox_json", "router"]
