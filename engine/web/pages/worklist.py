"""The worklist: the collector's home — their invoices in priority order with one-click outcomes, a page of
PAGE_SIZE at a time."""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from datetime import date
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse

from engine.store import browse, workspace
from engine.web.auth import Role, WebUser, page_user, permits
from engine.web.i18n import Translator, translator
from engine.web.pages.common import app_of, today
from engine.web.pages.render import language_of, render, root_of
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


@dataclass(slots=True)  # not frozen: a frozen dataclass sets each field through object.__setattr__
class Row:
    """One row as the page shows it. Its links, texts and amount are worked out here rather than by macros
    and calls in the template: Jinja2 runs every call in a template through `Context.call`, and for a page
    of rows those calls cost more than everything else in the request. The template still escapes every
    value it writes."""

    number: str
    invoice_href: str
    outcome_href: str  # the outcome's name follows
    flag: str | None
    promise_due: str  # the date the promise is due, on a row flagged "promise_due"
    task_id: int | None
    task: str  # the open task's kind, in the language
    customer_href: str
    customer: str
    stage: str
    stage_name: str
    amount: str  # the open amount with its currency, written for the language
    open_amount: Any  # as the promise form's first guess
    days_overdue: int
    may_act: bool  # the user may record an outcome on it


def shown(rows: list[dict[str, Any]], t: Translator, user: WebUser, root: str) -> list[Row]:
    """The rows as `Row`s, for `user` reading the page in `t`'s language under `root`."""
    page = []
    for r in rows:
        number, task_id = r["number"], r["task_id"]
        invoice = quote(str(number), safe="/")  # what Jinja2's urlencode filter does
        page.append(
            Row(
                number=number,
                invoice_href=f"{root}/invoices/{invoice}",
                outcome_href=f"{root}/worklist/{invoice}/outcome/",
                flag=r["flag"],
                promise_due=t.date(r["promise"]["due_on"]) if r["flag"] == "promise_due" else "",
                task_id=task_id,
                task=t.gettext(r["task_kind"]) if task_id else "",
                customer_href=f"{root}/customers/{quote(str(r['customer_id']), safe='/')}",
                customer=r["customer_name"] or r["customer_id"],
                stage=r["stage"],
                stage_name=t.gettext(r["stage"]),
                amount=t.money(r["open_amount"], r["currency"]),
                open_amount=r["open_amount"],
                days_overdue=r["days_overdue"],
                may_act=permits(user, "task_done" if task_id else "promise", owner=r["owner"]),
            )
        )
    return page


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
    language = language_of(request, user)
    return render(
        request,
        "worklist.html",
        user=user,
        language=language,
        rows=shown(rows[:PAGE_SIZE], translator(language), user, root_of(request)),
        owner=scope,
        today=day,
        page=page,
        more=len(rows) > PAGE_SIZE,
        first=(page - 1) * PAGE_SIZE + 1,
    )
