"""The worklist: the collector's home — their invoices in priority order with one-click outcomes, a page of
PAGE_SIZE at a time."""

from __future__ import annotations

import threading
from collections import OrderedDict
from datetime import date
from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse

from engine.store import browse, workspace
from engine.web.auth import Role, WebUser, page_user
from engine.web.pages.common import app_of, today
from engine.web.pages.render import render
from engine.web.services import one_snapshot

router = APIRouter()
#: Invoices per page: a collector works down one page; the next is a click away.
PAGE_SIZE = 25
#: Worklist pages already computed, by (book, owner, day, latest event id, page): exact while no event is
#: appended.
_cache: OrderedDict[tuple[str, str | None, date, int, int], list[dict[str, Any]]] = OrderedDict()
_lock = threading.Lock()
CACHED = 64


def rows_for(request: Request, owner: str | None, day: date, page: int = 1) -> list[dict[str, Any]]:
    """Page `page` of the worklist, with one row more than PAGE_SIZE when there is a next page."""
    repo = app_of(request).repo
    key = (repo.url, owner, day, browse.last_event_id(repo), page)
    with _lock:
        if key in _cache:
            _cache.move_to_end(key)
            return _cache[key]
    rows = workspace.worklist(repo, today=day, owner=owner, limit=PAGE_SIZE + 1, offset=(page - 1) * PAGE_SIZE)
    with _lock:
        _cache[key] = rows
        while len(_cache) > CACHED:
            _cache.popitem(last=False)
    return rows


@router.get("/worklist", response_class=HTMLResponse, dependencies=[Depends(one_snapshot)])
async def worklist(
    request: Request,
    owner: str | None = None,
    page: int = Query(1, ge=1, le=10_000),
    user: WebUser = Depends(page_user),
) -> HTMLResponse:
    """A collector sees their own customers' invoices; others see everyone's, or one owner's (`?owner=`)."""
    scope = user.name if user.role == Role.COLLECTOR else (owner or None)
    day = today(request)
    rows = rows_for(request, scope, day, page)
    return render(
        request,
        "worklist.html",
        user=user,
        rows=rows[:PAGE_SIZE],
        owner=scope,
        today=day,
        page=page,
        more=len(rows) > PAGE_SIZE,
        first=(page - 1) * PAGE_SIZE + 1,
    )
