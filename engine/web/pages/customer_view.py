"""The customer's own page, reached by a signed link (engine.web.links) without logging in: their open
invoices and what they owe, "I have paid" (with their reference) and "I dispute this" (with a text).

A tampered, expired or foreign link answers 403 with a page that names nobody and nothing.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response
from starlette.datastructures import FormData

from engine.claims import ClaimRefused, CustomerDesk
from engine.errors import DunningError, LinkRefused
from engine.web.auth import verified_form
from engine.web.links import link_secret, verify
from engine.web.pages.common import app_of
from engine.web.pages.render import back, language_of, render

router = APIRouter()


def _desk(request: Request, token: str) -> CustomerDesk:
    dunning = app_of(request)
    secret = link_secret()
    if secret is None:
        raise LinkRefused("customer links are not enabled here")
    return CustomerDesk(dunning, verify(token, secret=secret, now=dunning.clock.now()))


def _refused(request: Request) -> HTMLResponse:
    return render(request, "customer_refused.html", user=None, status=403)


def _page(
    request: Request, desk: CustomerDesk, *, notice: str | None = None, error: str | None = None, status: int = 200
) -> HTMLResponse:
    statement = desk.statement()
    return render(
        request,
        "customer_view.html",
        user=None,
        status=status,
        s=statement,
        notice=notice,
        error=error,
        token=request.path_params["token"],
        language=language_of(request, None, statement["customer"]["language"]),
    )


@router.get("/c/{token}", response_class=HTMLResponse)
def customer_page(request: Request, token: str) -> Response:
    try:
        desk = _desk(request, token)
        return _page(request, desk, notice=request.query_params.get("done"))
    except LinkRefused:
        return _refused(request)


@router.post("/c/{token}/{number}/{what}", response_class=HTMLResponse)
def customer_says(
    request: Request, token: str, number: str, what: str, form: FormData = Depends(verified_form)
) -> Response:
    """`what` is `paid` (field `reference`) or `dispute` (field `text`)."""
    try:
        desk = _desk(request, token)
        if what == "paid":
            pause = int(app_of(request).settings.web.claim_pause_days)
            desk.claim_paid(number, str(form.get("reference") or ""), pause_days=pause)
        elif what == "dispute":
            desk.dispute(number, str(form.get("text") or ""))
        else:
            return _refused(request)
    except LinkRefused:
        return _refused(request)
    except (ClaimRefused, DunningError) as exc:
        return _page(request, desk, error=str(exc), status=422)
    return back(request, f"/c/{token}?done={what}", f"/c/{token}")
