"""The approvals queue: invoices an `approval: required` stage waits on; a manager approves from the list."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse

from engine.store import workspace
from engine.web.auth import WebUser, page_user
from engine.web.pages.common import app_of, today
from engine.web.pages.render import render

router = APIRouter()


@router.get("/approvals", response_class=HTMLResponse)
def approvals(request: Request, user: WebUser = Depends(page_user)) -> HTMLResponse:
    rows = workspace.awaiting_approval(app_of(request).repo)
    day = today(request)
    for row in rows:
        row["days_overdue"] = (day - row["due_on"]).days
    return render(request, "approvals.html", user=user, rows=rows)
