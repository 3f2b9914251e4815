"""The worklist: the collector's home — their invoices in priority order with one-click outcomes."""

from __future__ import annotations

import threading
from collections import OrderedDict
from datetime import date
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse

from engine.store import workspace
from engine.web.auth import Role, WebUser, page_user
from engine.web.pages.common import app_of, today
from engine.web.pages.render import render

router = APIRouter()
#: Worklists already computed, by (book, owner, day, latest event id): exact while no event is appended.
_cache: OrderedDict[tuple[str, str | None, date, int], list[dict[str, Any]]] = OrderedDict()
_lock = threading.Lock()
CACHED = 64


def rows_for(request: Request, owner: str | None, day: date) -> list[dict[str, Any]]:
    repo = app_of(request).repo
    key = (repo.url, owner, day, workspace.event_head(repo))
    with _lock:
        if key in _cache:
            _cache.move_to_end(key)
            return _cache[key]
    rows = workspace.worklist(repo, today=day, owner=owner)
    with _lock:
        _cache[key] = rows
        while len(_cache) > CACHED:
            _cache.popitem(last=False)
    return rows


@router.get("/worklist", response_class=HTMLResponse)
def worklist(request: Request, owner: str | None = None, user: WebUser = Depends(page_user)) -> HTMLResponse:
    """A collector sees their own customers' invoices; others see everyone's, or one owner's (`?owner=`)."""
    scope = user.name if user.role == Role.COLLECTOR else (owner or None)
    day = today(request)
    return render(request, "worklist.html", user=user, rows=rows_for(request, scope, day), owner=scope, today=day)
