"""The outbox's trouble list: failed, held (quiet hours, contact cap) and retrying notifications."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse

from engine.store import workspace
from engine.web.auth import WebUser, page_user
from engine.web.pages.common import app_of
from engine.web.pages.render import render

router = APIRouter()
STATES = ("failed", "held", "retrying")


@router.get("/outbox", response_class=HTMLResponse)
def outbox(request: Request, state: str | None = None, user: WebUser = Depends(page_user)) -> HTMLResponse:
    dunning = app_of(request)
    chosen = state if state in STATES else None
    now = dunning.clock.now()
    rows = workspace.outbox_trouble(dunning.repo, now=now, kind=chosen)
    counts = workspace.outbox_counts(dunning.repo, now=now)
    return render(
        request,
        "outbox.html",
        user=user,
        rows=rows,
        counts=counts,
        state=chosen,
        states=STATES,
        zone=dunning.settings.zone,
    )
