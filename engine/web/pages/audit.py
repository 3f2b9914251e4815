"""The audit page: `audit verify` with the head hash, and a filtered export to download (the API's export)."""

from __future__ import annotations

from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from engine.store import workspace
from engine.web.auth import WebUser, page_user
from engine.web.pages.common import app_of
from engine.web.pages.render import render

router = APIRouter()
HEX = frozenset("0123456789abcdef")
EXPORT_FILTERS = ("format", "from", "to", "customer", "stage", "channel", "actor", "kind")


@router.get("/audit", response_class=HTMLResponse)
def audit(request: Request, expect_head: str | None = None, user: WebUser = Depends(page_user)) -> HTMLResponse:
    expected = (expect_head or "").strip().lower() or None
    bad_head = expected is not None and (len(expected) != 64 or not set(expected) <= HEX)
    report = workspace.verify_audit(app_of(request).repo, None if bad_head else expected)
    return render(request, "audit.html", user=user, report=report, expected=expected, bad_head=bad_head)


@router.get("/audit/export")
def export(request: Request, user: WebUser = Depends(page_user)) -> RedirectResponse:
    """The export form's target: on to the API's download with only the filters that were filled in (a
    form sends its empty fields too)."""
    chosen = {k: v.strip() for k, v in request.query_params.items() if k in EXPORT_FILTERS and v.strip()}
    root = request.scope.get("root_path", "").rstrip("/")
    return RedirectResponse(f"{root}/api/v1/audit/export?{urlencode(chosen)}", status_code=303)
