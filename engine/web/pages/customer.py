"""One customer: contact data, owner, open invoices with totals, and the history of the customer."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse

from engine.errors import DunningError, NotFound
from engine.store import workspace
from engine.web.auth import WebUser, page_user
from engine.web.pages.common import app_of, today
from engine.web.pages.render import render

router = APIRouter()
HISTORY_SHOWN = 200
WARNINGS_SHOWN = 100


@router.get("/customers/{customer_id}", response_class=HTMLResponse)
def customer(request: Request, customer_id: str, user: WebUser = Depends(page_user)) -> HTMLResponse:
    dunning = app_of(request)
    record = workspace.customer_record(dunning.repo, customer_id)
    if record is None:
        error = NotFound(f"no customer with id {customer_id!r}; check the id in your customers file")
        return render(request, "error.html", user=user, status=404, message=str(error), next="/worklist")
    day = today(request)
    invoices = workspace.customer_invoices(dunning.repo, customer_id, open_only=False)
    totals: dict[str, dict[str, object]] = {}
    for inv in invoices:
        inv["days_overdue"] = (day - inv["due_on"]).days
        if inv["stage"] not in ("paid", "written_off"):
            entry = totals.setdefault(inv["currency"], {"open": 0, "overdue": 0, "count": 0})
            entry["open"] += inv["open_amount"]  # type: ignore[operator]
            entry["count"] += 1  # type: ignore[operator]
            if inv["days_overdue"] > 0:
                entry["overdue"] += inv["open_amount"]  # type: ignore[operator]
    history = dunning.history(customer=customer_id)[-HISTORY_SHOWN:][::-1]
    try:
        standing: dict[str, object] | None = dunning.credit.standing(customer_id)
        standing_error = None
    except DunningError as exc:  # an invalid credit.yaml names its problems; the page stays up
        standing, standing_error = None, str(exc)
    warnings = dunning.credit.warnings(
        customer=customer_id, newest_first=True, limit=WARNINGS_SHOWN, with_customer=True
    )
    return render(
        request,
        "customer.html",
        user=user,
        c=record,
        invoices=invoices,
        totals=totals,
        history=history,
        standing=standing,
        standing_error=standing_error,
        warnings=warnings,
        zone=dunning.settings.zone,
    )
