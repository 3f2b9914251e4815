"""The pages' forms: every one posts here, carries the CSRF token (engine.web.auth.verified_form) and acts
through engine.web.services (which authorises the role and records the logged-in user as the actor).

Sent by the page's script (`X-Requested-With: fetch`) the answer is a short HTML fragment shown in place —
the collector stays on the worklist; sent as a plain form it redirects back (303) to the page it came from.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response
from starlette.datastructures import FormData

from engine.actions import ActionRefused
from engine.errors import DunningError
from engine.web import services
from engine.web.auth import WebUser, page_user, verified_form
from engine.web.pages.render import back, render, wants_fragment
from engine.web.problems import status_for

router = APIRouter()

#: Worklist outcomes on an invoice that has no open task: recorded as a note in its history.
NOTE_OUTCOMES = {
    "no_answer": "Call outcome: no answer",
    "paid": "Call outcome: the customer says it is paid",
    "wrong_contact": "Call outcome: wrong contact details",
}
INVOICE_FIELDS = ("reason", "amount", "by", "installments", "to", "at", "text", "note")


def _options(form: FormData, names: tuple[str, ...]) -> dict[str, Any]:
    return {name: str(form[name]).strip() for name in names if str(form.get(name) or "").strip()}


def _answer(
    request: Request,
    user: WebUser,
    form: FormData,
    default: str,
    *,
    done: str | None = None,
    error: DunningError | None = None,
) -> Response:
    if wants_fragment(request):
        status = status_for(error) if error is not None else 200
        return render(
            request,
            "_answer.html",
            user=user,
            status=status,
            done=done,
            error=str(error) if error is not None else None,
        )
    if error is not None:
        return render(
            request,
            "error.html",
            user=user,
            status=status_for(error),
            message=str(error),
            next=str(form.get("next") or default),
        )
    return back(request, str(form.get("next") or ""), default)


@router.post("/invoices/{number}/do/{action}", response_class=HTMLResponse)
def invoice_action(
    request: Request,
    number: str,
    action: str,
    user: WebUser = Depends(page_user),
    form: FormData = Depends(verified_form),
) -> Response:
    """One action on one invoice (dispute, resolve, promise, plan, note, write-off, move, approve)."""
    options = _options(form, INVOICE_FIELDS)
    if action == "note" and "text" not in options and "note" in options:
        options["text"] = options.pop("note")
    try:
        services.invoice_action(request, user, number, action, options)
    except DunningError as exc:
        return _answer(request, user, form, f"/invoices/{number}", error=exc)
    return _answer(request, user, form, f"/invoices/{number}", done=action)


@router.post("/worklist/{number}/outcome/{outcome}", response_class=HTMLResponse)
def worklist_outcome(
    request: Request,
    number: str,
    outcome: str,
    user: WebUser = Depends(page_user),
    form: FormData = Depends(verified_form),
) -> Response:
    """A one-click outcome from the worklist: on the invoice's open task when it has one (the task is then
    done), else the matching invoice action (promise, dispute) or a note."""
    task = str(form.get("task") or "").strip()
    options = _options(form, ("amount", "by", "reason", "note"))
    try:
        if task.isdigit():
            if outcome == "disputed" and "reason" in options:
                options.setdefault("note", options.pop("reason"))
            services.task_done(request, user, int(task), {"outcome": outcome, **options})
        elif outcome == "promised":
            services.invoice_action(request, user, number, "promise", options)
        elif outcome == "disputed":
            services.invoice_action(request, user, number, "dispute", options)
        elif outcome in NOTE_OUTCOMES:
            services.invoice_action(request, user, number, "note", {"text": NOTE_OUTCOMES[outcome]})
        else:
            raise ActionRefused(
                f"unknown outcome {outcome!r}; use promised, disputed, no_answer, paid or wrong_contact"
            )
    except DunningError as exc:
        return _answer(request, user, form, "/worklist", error=exc)
    return _answer(request, user, form, "/worklist", done=outcome)


@router.post("/tasks/{task_id}/done", response_class=HTMLResponse)
def task_done(
    request: Request, task_id: int, user: WebUser = Depends(page_user), form: FormData = Depends(verified_form)
) -> Response:
    try:
        services.task_done(request, user, task_id, _options(form, ("outcome", "amount", "by", "note")))
    except DunningError as exc:
        return _answer(request, user, form, "/worklist", error=exc)
    return _answer(request, user, form, "/worklist", done=str(form.get("outcome") or "done"))


@router.post("/outbox/{notification_id}/retry", response_class=HTMLResponse)
def retry(
    request: Request, notification_id: int, user: WebUser = Depends(page_user), form: FormData = Depends(verified_form)
) -> Response:
    try:
        services.retry_notification(request, user, notification_id)
    except DunningError as exc:
        return _answer(request, user, form, "/outbox", error=exc)
    return _answer(request, user, form, "/outbox", done="retry")


@router.post("/warnings/{warning_id}/ack", response_class=HTMLResponse)
def acknowledge_warning(
    request: Request, warning_id: int, user: WebUser = Depends(page_user), form: FormData = Depends(verified_form)
) -> Response:
    """The dashboard's (and the customer page's) *Acknowledge* on an open early warning."""
    try:
        services.acknowledge_warning(request, user, warning_id, str(form.get("note") or "").strip() or None)
    except DunningError as exc:
        return _answer(request, user, form, "/", error=exc)
    return _answer(request, user, form, "/", done="acknowledged")


@router.post("/inbound/{message_id}/assign", response_class=HTMLResponse)
def assign_message(
    request: Request, message_id: int, user: WebUser = Depends(page_user), form: FormData = Depends(verified_form)
) -> Response:
    """The triage's *Assign*: match a message to an invoice by hand (`dunning inbound assign`)."""
    try:
        number = str(form.get("invoice") or "").strip()
        if not number:
            raise ActionRefused("give the invoice number the message is about")
        services.inbound_assign(request, user, message_id, number)
    except DunningError as exc:
        return _answer(request, user, form, "/inbound", error=exc)
    return _answer(request, user, form, "/inbound", done="assigned")


@router.post("/inbound/{message_id}/confirm", response_class=HTMLResponse)
def confirm_message(
    request: Request, message_id: int, user: WebUser = Depends(page_user), form: FormData = Depends(verified_form)
) -> Response:
    """The triage's *Confirm*: turn a suggested intent into the collector action (`dunning inbound confirm`)."""
    try:
        services.inbound_confirm(request, user, message_id, _options(form, ("intent", "amount", "on")))
    except DunningError as exc:
        return _answer(request, user, form, "/inbound", error=exc)
    return _answer(request, user, form, "/inbound", done="confirmed")
