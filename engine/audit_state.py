"""The audit beyond the log: replay the event log and compare what it says with the invoice and outbox tables.

The hash chain (engine.store.events) proves the log was not altered; it says nothing about the tables beside
it. Someone with write access can set an invoice's open amount to 0 and its stage to `paid`, delete a queued
notification, or put a sent one back to `pending` (it would go out again) — and the log stays intact. Every
such change made outside the product leaves the tables disagreeing with their history, and this replay names
each disagreement.

What the events record, and so what is compared:

- invoices: that it exists (its `import` event), number, amount, open amount (payments and amount changes),
  stage (every `transition` and `policy_changed`), closed or not (`closed_at` set exactly when the stage is
  paid or written off), the stage it awaits approval for, and the stage a paused invoice resumes to;
- notifications: that it exists (its `notification` event, by idempotency key), the invoice it is about
  (none for a grouped notice), and its status (queued, then each `delivery` outcome; the product cancels
  queued notices of an invoice it disputes, promises, plans, writes off or closes, without an event per
  notice, and the replay does the same). A notice `sending` right now agrees with a replayed `pending`.

What events do not record is not compared (due dates, tags, repeat counters, paused day counts, leases).

    report = verify_state(repo)
    report.ok, report.mismatches
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from engine.policy.model import CLOSED_STATES, CURRENT, PAUSED_STATES, PROMISED
from engine.store import replay as stored
from engine.store.database import Repository
from engine.store.events import VerifyReport, verify_chain
from engine.store.models import NotificationStatus

#: A delivery event's `status` -> the notification status it leaves.
DELIVERY_STATUS = {
    "sent": NotificationStatus.SENT,
    "failed": NotificationStatus.FAILED,
    "cancelled": NotificationStatus.CANCELLED,
    "retrying": NotificationStatus.PENDING,
}
#: Events after which the product cancels the invoice's queued (pending) notices.
CANCELLING_KINDS = frozenset({"dispute", "promise", "plan", "write_off"})


@dataclass
class InvoiceState:
    """One invoice as its events tell it."""

    id: int
    number: str
    amount: Decimal
    open_amount: Decimal
    paid: Decimal = Decimal(0)
    stage: str = CURRENT
    awaiting_stage: str | None = None
    resume_stage: str | None = None

    @property
    def closed(self) -> bool:
        return self.stage in CLOSED_STATES


@dataclass
class NotificationState:
    """One outbox row as its events tell it."""

    key: str
    invoice_id: int | None
    status: str


@dataclass(frozen=True)
class Mismatch:
    """One thing the tables say that their history does not: `kind` is invoice or notification, `id` the
    invoice number or the notification key, `field` the column (or `exists`), then both values."""

    kind: str
    id: str
    field: str
    table: Any
    replayed: Any

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "id": self.id,
            "field": self.field,
            "table": _plain(self.table),
            "replayed": _plain(self.replayed),
        }

    def __str__(self) -> str:
        return (
            f"{self.kind} {self.id}: {self.field} is {_shown(self.table)} in the table, "
            f"{_shown(self.replayed)} by the event log"
        )


@dataclass
class Replay:
    """Folds events, in chain order, into the invoice and notification states they imply."""

    invoices: dict[int, InvoiceState] = field(default_factory=dict)
    notifications: dict[str, NotificationState] = field(default_factory=dict)
    #: invoice id -> keys of its own (ungrouped) notifications, for cancellations
    by_invoice: dict[int, list[str]] = field(default_factory=dict)
    events: int = 0

    def apply(self, event: Mapping[str, Any]) -> None:
        self.events += 1
        kind = event["kind"]
        data = event["data"] or {}
        invoice_id = event["invoice_id"]
        if kind in ("notification", "delivery"):
            self._notification(kind, invoice_id, data)
            return
        if invoice_id is None:
            return  # customer imports and updates, daemon events: no invoice or outbox state
        if kind == "import":
            amount = _amount(data.get("amount"))
            self.invoices[invoice_id] = InvoiceState(invoice_id, str(data.get("invoice")), amount, amount)
            return
        invoice = self.invoices.get(invoice_id)
        if invoice is None:
            # An event about an invoice never imported: remembered as such, reported by the comparison.
            invoice = self.invoices[invoice_id] = InvoiceState(invoice_id, str(data.get("invoice")), _NONE, _NONE)
        if kind == "update":
            change = (data.get("changes") or {}).get("amount")
            if change:
                invoice.amount = _amount(change[1])
                invoice.open_amount = invoice.amount - invoice.paid
        elif kind == "payment":
            invoice.paid += _amount(data.get("amount"))
            invoice.open_amount = _amount(data.get("open_amount"))
        elif kind == "transition":
            invoice.stage = str(data.get("to"))
            invoice.awaiting_stage = None
            if invoice.stage not in PAUSED_STATES:
                invoice.resume_stage = None
            if invoice.stage in CLOSED_STATES | PAUSED_STATES:
                self._cancel_pending(invoice_id)
        elif kind == "policy_changed":
            invoice.stage = str(data.get("to"))
        elif kind == "approval_requested":
            invoice.awaiting_stage = data.get("to")
        elif kind in ("dispute", "promise", "plan"):
            if not (kind == "dispute" and data.get("from") == PROMISED):
                invoice.resume_stage = data.get("from")
        if kind in CANCELLING_KINDS:
            self._cancel_pending(invoice_id)

    def _notification(self, kind: str, invoice_id: int | None, data: Mapping[str, Any]) -> None:
        key = data.get("key")
        if not key:
            return
        notice = self.notifications.get(key)
        if kind == "notification":
            if notice is not None:
                return  # a grouped notice's event for one more of the invoices it covers
            status = NotificationStatus.PENDING if data.get("recipient") else NotificationStatus.FAILED
            own_invoice = None if data.get("group") else invoice_id
            self.notifications[key] = NotificationState(key, own_invoice, status)
            if own_invoice is not None:
                self.by_invoice.setdefault(own_invoice, []).append(key)
            return
        if notice is None:
            # A delivery of a notice that was never queued: reported by the comparison.
            notice = self.notifications[key] = NotificationState(key, None, _NEVER_QUEUED)
        notice.status = DELIVERY_STATUS.get(str(data.get("status")), str(data.get("status")))

    def _cancel_pending(self, invoice_id: int) -> None:
        for key in self.by_invoice.get(invoice_id, ()):
            notice = self.notifications[key]
            if notice.status == NotificationStatus.PENDING:
                notice.status = NotificationStatus.CANCELLED


_NONE = Decimal(0)
_NEVER_QUEUED = "never queued"


def compare_invoices(replay: Replay, rows: Iterable[Mapping[str, Any]]) -> tuple[int, list[Mismatch]]:
    """The stored invoices against the replayed ones: (how many rows were checked, the mismatches)."""
    found: list[Mismatch] = []
    seen: set[int] = set()
    checked = 0
    for row in rows:
        checked += 1
        seen.add(row["id"])
        number = str(row["number"])
        expected = replay.invoices.get(row["id"])
        if expected is None:
            found.append(Mismatch("invoice", number, "exists", "present", "absent (no import event)"))
            continue
        closed = row["closed_at"] is not None
        for name, table, replayed in (
            ("number", number, expected.number),
            ("amount", row["amount"], expected.amount),
            ("open_amount", row["open_amount"], expected.open_amount),
            ("stage", row["stage"], expected.stage),
            ("closed", closed, expected.closed),
            ("awaiting_stage", row["awaiting_stage"], expected.awaiting_stage),
            ("resume_stage", row["resume_stage"], expected.resume_stage),
        ):
            if table != replayed:
                found.append(Mismatch("invoice", number, name, table, replayed))
    for invoice_id, expected in replay.invoices.items():
        if invoice_id not in seen:
            found.append(Mismatch("invoice", expected.number, "exists", "absent", "present"))
    return checked, found


def compare_notifications(replay: Replay, rows: Iterable[Mapping[str, Any]]) -> tuple[int, list[Mismatch]]:
    """The stored outbox against the replayed one: (how many rows were checked, the mismatches)."""
    found: list[Mismatch] = []
    seen: set[str] = set()
    checked = 0
    for row in rows:
        checked += 1
        key = str(row["key"])
        seen.add(key)
        expected = replay.notifications.get(key)
        if expected is None:
            found.append(Mismatch("notification", key, "exists", "present", "absent (no notification event)"))
            continue
        status = row["status"]
        in_flight = status == NotificationStatus.SENDING and expected.status == NotificationStatus.PENDING
        if status != expected.status and not in_flight:
            found.append(Mismatch("notification", key, "status", status, expected.status))
        if expected.status != _NEVER_QUEUED and row["invoice_id"] != expected.invoice_id:
            found.append(Mismatch("notification", key, "invoice_id", row["invoice_id"], expected.invoice_id))
    for key in replay.notifications:
        if key not in seen:
            found.append(Mismatch("notification", key, "exists", "absent", "present"))
    return checked, found


@dataclass(frozen=True)
class StateReport:
    """The chain check plus the state comparison. `ok` only when both hold."""

    chain: VerifyReport
    events: int
    invoices_checked: int
    notifications_checked: int
    mismatches: list[Mismatch]

    @property
    def ok(self) -> bool:
        return self.chain.ok and not self.mismatches

    def as_dict(self) -> dict[str, Any]:
        problem = self.chain.problem
        return {
            "ok": self.ok,
            "head": self.chain.head,
            "events": self.chain.events,
            "first_bad_event": problem.event_id if problem else None,
            "position": problem.position if problem else None,
            "reason": problem.reason if problem else None,
            "invoices_checked": self.invoices_checked,
            "notifications_checked": self.notifications_checked,
            "mismatches": [m.as_dict() for m in self.mismatches],
        }


def verify_state(repo: Repository, expect_head: str | None = None) -> StateReport:
    """Verify the chain, replay the log and compare every invoice and notification with it (one read
    transaction, so the tables and the log are seen at the same instant on PostgreSQL)."""
    with repo.read() as session:
        # One snapshot for every statement: PostgreSQL's default isolation would let a sweep committing
        # between the reads show up as mismatches. SQLite's read transaction is a snapshot already.
        options = {"isolation_level": "REPEATABLE READ"} if repo.dialect == "postgresql" else {}
        conn = session.connection(execution_options=options)
        chain = verify_chain(conn, expect_head)
        replay = Replay()
        for event in stored.events(conn):
            replay.apply(event)
        invoices_checked, on_invoices = compare_invoices(replay, stored.invoice_states(conn))
        notifications_checked, on_notices = compare_notifications(replay, stored.notification_states(conn))
    return StateReport(chain, replay.events, invoices_checked, notifications_checked, on_invoices + on_notices)


def _amount(value: Any) -> Decimal:
    try:
        return Decimal(str(value))
    except (InvalidOperation, ValueError):
        return _NONE


def _plain(value: Any) -> Any:
    return str(value) if isinstance(value, Decimal) else value


def _shown(value: Any) -> str:
    return "NULL" if value is None else repr(_plain(value))
