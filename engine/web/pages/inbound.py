"""The inbound triage (`dunning inbound list`): messages that matched no invoice, with *Assign* to an invoice,
and replies whose suggested intents (promise, dispute, payment claim) wait for a person's *Confirm*."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse

from engine.errors import NotFound
from engine.store import browse
from engine.web.auth import WebUser, page_user
from engine.web.pages.common import app_of
from engine.web.pages.render import render
from engine.web.services import mailroom

router = APIRouter()
WAITING = ("matched", "assigned")


def _owners(request: Request, customer_ids: set[str]) -> dict[str, str | None]:
    found: dict[str, str | None] = {}
    for customer_id in customer_ids:
        try:
            found[customer_id] = browse.customer_record(app_of(request).repo, customer_id)["owner"]
        except NotFound:
            found[customer_id] = None
    return found


@router.get("/inbound", response_class=HTMLResponse)
def inbound(request: Request, user: WebUser = Depends(page_user)) -> HTMLResponse:
    messages = mailroom(request).list()
    unmatched = [m for m in messages if m["status"] == "unmatched"]
    waiting = [m for m in messages if m["status"] in WAITING and m["intents"] and m["invoices"]]
    owners = _owners(request, {m["customer_id"] for m in waiting if m["customer_id"]})
    rows: list[dict[str, Any]] = [{**m, "owner": owners.get(m["customer_id"] or "")} for m in waiting]
    return render(
        request,
        "inbound.html",
        user=user,
        unmatched=unmatched,
        waiting=rows,
        zone=app_of(request).settings.zone,
    )
