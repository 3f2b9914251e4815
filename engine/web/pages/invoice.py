"""One invoice: header, the explanation in words, the timeline of every event, the actions the role allows."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse

from engine.authoring.explain import explain_invoice
from engine.charging import invoice_charges
from engine.errors import DunningError, NotFound
from engine.store import workspace
from engine.web.auth import WebUser, page_user, permits
from engine.web.explain_text import explanation_lines
from engine.web.i18n import translator
from engine.web.pages.common import app_of, today
from engine.web.pages.render import language_of, render
from engine.web.services import one_snapshot

router = APIRouter()
ACTIONS = ("note", "promise", "plan", "dispute", "resolve", "approve", "move", "write-off")


def stages_of(dunning: Any, policy: str | None) -> list[str]:
    policies = dunning.policies_if_valid()
    for candidate in policies.policies if policies else ():
        if candidate.name == policy:
            return [stage.name for stage in candidate.stages]
    return []


@router.get("/invoices/{number}", response_class=HTMLResponse, dependencies=[Depends(one_snapshot)])
async def invoice(request: Request, number: str, user: WebUser = Depends(page_user)) -> HTMLResponse:
    dunning = app_of(request)
    header = workspace.invoice_header(dunning.repo, number)
    if header is None:
        error = NotFound(f"no invoice numbered {number!r}; `dunning status` lists the open ones")
        return render(request, "error.html", user=user, status=404, message=str(error), next="/worklist")
    header["days_overdue"] = (today(request) - header["due_on"]).days
    try:
        explanation: list[str] | None = explanation_lines(
            explain_invoice(dunning, number), translator(language_of(request, user))
        )
        explain_error = None
    except DunningError as exc:  # an invalid policy file must not hide the history
        explanation, explain_error = None, str(exc)
    try:
        charges: Any = invoice_charges(dunning, number)
        charges_error = None
    except DunningError as exc:  # a missing reference rate names the file to update; the page stays up
        charges, charges_error = None, str(exc)
    timeline = dunning.history(number)
    return render(
        request,
        "invoice.html",
        user=user,
        inv=header,
        explanation=explanation,
        explain_error=explain_error,
        charges=charges,
        charges_error=charges_error,
        timeline=timeline,
        stages=stages_of(dunning, header["policy"]),
        zone=dunning.settings.zone,
        allowed=[a for a in ACTIONS if permits(user, a, owner=header["owner"])],
    )
