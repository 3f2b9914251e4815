"""What the API and the pages both call: authorise, run the use case under the logged-in user, answer with
the recorded event.

Authorisation happens here (not in the routers) so no caller can forget it; refusals are written to the
security log. Errors are `engine.errors` classes, turned into answers by `engine.web.problems`:
NotFound → 404, PermissionRefused → 403, IllegalTransition → 409, bad input (ActionRefused, TaskRefused) → 422.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import AsyncIterator
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from fastapi import Request

from engine.actions import Collector, parse_installments
from engine.app import Dunning, json_ready
from engine.clock import iso, local_day, parse_instant
from engine.errors import ActionRefused, InboundError, PermissionRefused, TaskRefused
from engine.replies import Mailroom
from engine.store import browse
from engine.tasks import TaskBook
from engine.web.auth import WebUser, permits, refused

#: API action name → (role-table action, the kind of the event the use case records).
INVOICE_ACTIONS: dict[str, tuple[str, str]] = {
    "dispute": ("dispute", "dispute"),
    "resolve": ("resolve", "dispute_resolved"),
    "promise": ("promise", "promise"),
    "plan": ("plan", "plan"),
    "note": ("note", "note"),
    "write-off": ("write-off", "write_off"),
    "move": ("move", "override"),
    "approve": ("approve", "approval"),
}


#: How often a request may look at the rules folder for edits (the facade caches the loaded policies).
RULES_CHECK_SECONDS = 2.0


def dunning(request: Request) -> Dunning:
    """The app's one Dunning facade (settings, repository, policies). Edited policy files are picked up
    within RULES_CHECK_SECONDS, as the daemon picks them up."""
    state = request.app.state
    facade: Dunning = state.dunning
    now = time.monotonic()
    if now - getattr(state, "rules_checked", 0.0) >= RULES_CHECK_SECONDS:
        state.rules_checked = now
        signature = rules_signature(facade.settings.rules_path)
        if signature != getattr(state, "rules_signature", signature):
            facade.__dict__.pop("policies", None)  # the cached_property loads them again on next use
        state.rules_signature = signature
    return facade


async def one_snapshot(request: Request) -> AsyncIterator[None]:
    """Route dependency of the bounded reads that run on the event loop (`async def` handlers only: a
    handler in the thread pool must not share the loop's session): the credentials' look-up and every read of
    the handler share one session, one BEGIN. Listed first in the route's `dependencies`, it is solved before
    the user is."""
    with dunning(request).repo.snapshot():
        yield


#: How long the latest sweep's instant is reused between requests (it changes once a day, at a sweep).
SWEEP_CACHE_SECONDS = 1.0


def book_day(request: Request) -> date:
    """The company-local day invoices are overdue by: the latest sweep's (as `dunning status` counts),
    else today. Read at most once a second per server: every list of invoices needs it."""
    state = request.app.state
    now = time.monotonic()
    cached = getattr(state, "book_day", None)
    if cached is None or cached[1] <= now:
        facade = dunning(request)
        day = local_day(facade.latest_sweep() or facade.clock.now(), facade.settings.zone)
        cached = state.book_day = (day, now + SWEEP_CACHE_SECONDS)
    return cached[0]


def rules_signature(folder: Path) -> tuple[tuple[str, int, int], ...]:
    """Name, size and modification time of every file under the rules folder."""
    try:
        files = sorted(p for p in folder.rglob("*") if p.is_file()) if folder.is_dir() else [folder]
        return tuple((str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in files if p.exists())
    except OSError:
        return ()


def require(request: Request, user: WebUser, action: str, *, owner: str | None = None, subject: str) -> None:
    """Raise PermissionRefused (and log the refusal) unless the role table lets `user` do `action`."""
    if permits(user, action, owner=owner):
        return
    refused(request, user, action, subject)
    if user.role.label == "collector" and permits(user, action, owner=user.name):
        raise PermissionRefused(
            f"{subject} belongs to a customer owned by {owner or 'nobody'}; a collector acts "
            "only on their own customers' invoices, tasks, warnings and replies — ask a manager"
        )
    raise PermissionRefused(f"a {user.role.label} may not {action.replace('_', ' ')}; ask a manager or admin")


def event_json(event: dict[str, Any], number: str | None = None) -> dict[str, Any]:
    """An event as `dunning history --json` shows it (plus its id and invoice number)."""
    entry: dict[str, Any] = {
        "id": event.get("id"),
        "kind": event["kind"],
        "at": iso(event["at"]),
        "actor": event["actor"],
    }
    if number is not None:
        entry["invoice"] = number
    entry.update(event.get("data") or {})
    return json_ready(entry)


def _text(options: dict[str, Any], name: str) -> str | None:
    value = options.get(name)
    return None if value is None else str(value)


def _amount(options: dict[str, Any], name: str = "amount") -> Decimal:
    value = options.get(name)
    if value is None:
        raise ActionRefused(f"--{name} is required; give an amount such as 5000 or 1234.50")
    try:
        return Decimal(str(value))
    except InvalidOperation:
        raise ActionRefused(f"--{name} {value!r} is not an amount; write e.g. 5000 or 1234.50") from None


def _day(options: dict[str, Any], name: str = "by") -> date:
    value = options.get(name)
    if value is None:
        raise ActionRefused(f"--{name} is required; give an ISO date such as 2026-12-01")
    try:
        return date.fromisoformat(str(value).strip())
    except ValueError:
        raise ActionRefused(f"--{name} {value!r} is not an ISO date; write e.g. 2026-12-01") from None


def _installments(options: dict[str, Any]) -> list[tuple[date, Decimal]]:
    value = options.get("installments")
    if isinstance(value, list):
        value = ",".join(
            f"{item.get('due_on')}:{item.get('amount')}" if isinstance(item, dict) else str(item) for item in value
        )
    if not value:
        raise ActionRefused('no installments given; write e.g. --installments "2026-12-01:5000,2027-01-01:5000"')
    return parse_installments(str(value))


def _at(options: dict[str, Any], app: Dunning) -> datetime | None:
    value = options.get("at")
    return parse_instant(str(value), app.settings.zone) if value else None


def invoice_action(
    request: Request, user: WebUser, number: str, action: str, options: dict[str, Any]
) -> dict[str, Any]:
    """Run a collector action on one invoice as `user`; answers the event it recorded.

    `options` carries the CLI's options under their names: reason, amount, by, installments, to, at, note,
    and `text` for a note."""
    if action not in INVOICE_ACTIONS:
        raise ActionRefused(f"unknown action {action!r}; use one of: {', '.join(INVOICE_ACTIONS)}")
    app = dunning(request)
    role_action, kind = INVOICE_ACTIONS[action]
    subject = browse.invoice_subject(app.repo, number)
    require(request, user, role_action, owner=subject["owner"], subject=f"invoice {number}")
    at = _at(options, app)
    collector = Collector(app, actor=user.name)
    before = browse.last_event_id(app.repo)
    if action == "dispute":
        reason = _text(options, "reason")
        if not reason:
            raise ActionRefused("a dispute needs --reason TEXT (or --resolve to end one)")
        collector.dispute(number, reason, at=at)
    elif action == "resolve":
        collector.resolve_dispute(number, _text(options, "note") or _text(options, "reason"), at=at)
    elif action == "promise":
        collector.promise(number, _amount(options), _day(options), _text(options, "note"), at=at)
    elif action == "plan":
        collector.plan(number, _installments(options), at=at)
    elif action == "note":
        collector.note(number, _text(options, "text") or "", at=at)
    elif action == "write-off":
        collector.write_off(number, _text(options, "reason") or "", at=at)
    elif action == "move":
        if not options.get("to"):
            raise ActionRefused("a manual move needs --to STAGE")
        collector.move(number, str(options["to"]), _text(options, "reason") or "", at=at)
    else:
        collector.approve(number, at=at)
    recorded = browse.events_after(app.repo, before, invoice_ids=[subject["id"]], actor=user.name)
    event = next((e for e in recorded if e["kind"] == kind), recorded[0] if recorded else None)
    if event is None:  # pragma: no cover - every action records its event
        raise ActionRefused(f"invoice {number}: the {action} left no event; check `dunning history {number}`")
    return event_json(event, number)


def task_done(request: Request, user: WebUser, task_id: int, options: dict[str, Any]) -> dict[str, Any]:
    """Record a call or visit outcome as `user`; answers the completed task (as `dunning tasks done --json`).

    `options` carries the CLI's options under their names: outcome, amount, by, note, at."""
    app = dunning(request)
    subject = browse.task_subject(app.repo, task_id)
    require(request, user, "task_done", owner=subject["c_owner"] or subject["owner"], subject=f"task {task_id}")
    outcome = _text(options, "outcome")
    if not outcome:
        raise TaskRefused("--outcome is required: one of promised, disputed, no_answer, paid, wrong_contact")
    by = _day(options) if options.get("by") is not None else None
    amount = options.get("amount")
    return json_ready(
        TaskBook(app).complete(
            task_id,
            outcome,
            note=_text(options, "note"),
            amount=None if amount is None else str(amount),
            by=by,
            actor=user.name,
            at=_at(options, app),
        )
    )


def retry_notification(request: Request, user: WebUser, notification_id: int) -> dict[str, Any]:
    """Put a failed notification back in the outbox as `user`; answers the recorded `retry` event."""
    app = dunning(request)
    browse.notification_subject(app.repo, notification_id)
    require(request, user, "retry", subject=f"notification {notification_id}")
    before = browse.last_event_id(app.repo)
    browse.requeue_failed(app.repo, notification_id, user.name, app.clock.now())
    recorded = browse.events_after(app.repo, before, actor=user.name)
    event = next(e for e in recorded if e["kind"] == "retry")
    number = browse.invoice_number(app.repo, event["invoice_id"]) if event["invoice_id"] else None
    return event_json(event, number)


# -- credit ----------------------------------------------------------------------------------------------


def credit_check(
    request: Request, user: WebUser, customer_id: str, amount: str, currency: str | None
) -> dict[str, Any]:
    """`dunning credit check CUSTOMER --amount X [--currency C] --json`: may a new order ship? (Changes nothing.)"""
    from engine.credit.desk import order_amount

    require(request, user, "read", subject=f"customer {customer_id}")
    return json_ready(dunning(request).credit.check(customer_id, order_amount(amount), currency))


def acknowledge_warning(request: Request, user: WebUser, warning_id: int, note: str | None) -> dict[str, Any]:
    """`dunning warnings ack ID --note TEXT` as `user`; answers the recorded `warning_acknowledged` event."""
    app = dunning(request)
    found = app.credit.warning(warning_id)
    owner = browse.customer_record(app.repo, found["customer_id"])["owner"]
    require(request, user, "ack_warning", owner=owner, subject=f"warning {warning_id}")
    before = browse.last_event_id(app.repo)
    app.credit.acknowledge(warning_id, note=(note or "").strip() or None, actor=user.name)
    recorded = browse.events_after(app.repo, before, actor=user.name)
    return event_json(
        next(e for e in recorded if e["kind"] == "warning_acknowledged" and e["data"].get("warning") == warning_id)
    )


# -- inbound mail ----------------------------------------------------------------------------------------

_mailroom_lock = threading.Lock()


def mailroom(request: Request) -> Mailroom:
    """The app's one mailroom: it keeps the Message-ID digests of our notices between messages."""
    state = request.app.state
    with _mailroom_lock:
        room: Mailroom | None = getattr(state, "mailroom", None)
        if room is None or room.app is not dunning(request):
            room = state.mailroom = Mailroom(dunning(request))
        return room


def receive_message(request: Request, raw: bytes) -> dict[str, Any]:
    """A raw RFC 822 message from the signed webhook, through the same processing as IMAP and the drop
    folder: processed once (by Message-ID, and by the body's hash as its uid), matched and applied."""
    from engine.web.inbound import MAILBOX

    room = mailroom(request)
    with _mailroom_lock:  # one message at a time: the digests are shared, and the writes queue for one lock anyway
        found = room.process(raw, mailbox=MAILBOX, uid="sha256:" + hashlib.sha256(raw).hexdigest())
    return json_ready(found if found.get("duplicate") else {"duplicate": False, **found})


def inbound_assign(request: Request, user: WebUser, message_id: int, number: str) -> dict[str, Any]:
    """`dunning inbound assign MESSAGE --invoice NUMBER` as `user` (a collector: to their own customers'
    invoices); answers the message as `dunning inbound show --json` does."""
    room = mailroom(request)
    room.get(message_id)
    subject = browse.invoice_subject(dunning(request).repo, number)
    require(request, user, "inbound_assign", owner=subject["owner"], subject=f"invoice {number}")
    return json_ready(room.assign(message_id, number, actor=user.name))


def inbound_confirm(request: Request, user: WebUser, message_id: int, options: dict[str, Any]) -> dict[str, Any]:
    """`dunning inbound confirm MESSAGE [--intent] [--amount] [--on]` as `user` (a collector: only when every
    invoice the message matches is of a customer they own); answers the message."""
    try:
        amount = Decimal(str(options["amount"])) if options.get("amount") is not None else None
        on = date.fromisoformat(str(options["on"])) if options.get("on") is not None else None
        if amount is not None and not amount.is_finite():
            raise InvalidOperation
    except (InvalidOperation, ValueError):
        raise InboundError("--amount must be a number (e.g. 1200.50) and --on a date (YYYY-MM-DD)") from None
    room = mailroom(request)
    shown = room.get(message_id)
    repo = dunning(request).repo
    owners = {browse.invoice_subject(repo, inv["number"])["owner"] for inv in shown["invoices"]} or {None}
    for owner in sorted(owners, key=str):
        require(request, user, "inbound_confirm", owner=owner, subject=f"inbound message {message_id}")
    intent = _text(options, "intent")
    return json_ready(room.confirm(message_id, actor=user.name, intent=intent, amount=amount, on=on))
