"""The worklist: the collector's home — their invoices in priority order with one-click outcomes."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse

from engine.store import workspace
from engine.web.auth import Role, WebUser, page_user
from engine.web.pages.common import app_of, today
from engine.web.pages.render import render

router = APIRouter()


@router.get("/worklist", response_class=HTMLResponse)
def worklist(request: Request, owner: str | None = None, user: WebUser = Depends(page_user)) -> HTMLResponse:
    """A collector sees their own customers' invoices; others see everyone's, or one owner's (`?owner=`)."""
    scope = user.name if user.role == Role.COLLECTOR else (owner or None)
    rows = workspace.worklist(app_of(request).repo, today=today(request), owner=scope)
    return render(request, "worklist.html", user=user, rows=rows, owner=scope, today=today(request))
