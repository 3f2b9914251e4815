"""The read side: what `status`, `history`, `outbox`, `explain`, `simulate`, the reports, the policy
versions and the legal case files ask of the book.

Every function takes the `Repository` and opens its own read transaction (one per question, so each
answer is a consistent snapshot), and returns plain rows: mappings keyed by column name, or tuples where
the caller unpacks them in a hot loop. Nothing here decides anything; the callers do. Functions that hand
over many rows lazily (`book_rows`, `stage_entries`) are context managers that keep their transaction open
while the caller reads.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime
from functools import cache
from typing import Any, Literal

from sqlalchemy import Connection, RowMapping, Select, and_, bindparam, func, or_, select

from engine.policy.model import CLOSED_STATES, PAID
from engine.store.database import Repository
from engine.store.events import ExportFilter, VerifyReport, export_events, verify_chain
from engine.store.models import (
    Commitment,
    Customer,
    Event,
    Invoice,
    Notification,
    NotificationStatus,
    Payment,
    PolicyVersion,
    Sweep,
)

__all__ = [
    "BookRows",
    "CaseRecords",
    "audit_events",
    "audit_verify",
    "book_rows",
    "case_records",
    "customer_exists",
    "due_for_dispatch",
    "explain_record",
    "history_rows",
    "invoice_id",
    "latest_sweep",
    "notified_invoices",
    "open_invoices",
    "outbox_rows",
    "policy_events",
    "policy_versions",
    "open_amounts",
    "simulation_start",
    "stage_entries",
]

INVOICES = Invoice.__table__  # type: ignore[attr-defined]
CUSTOMERS = Customer.__table__  # type: ignore[attr-defined]
NOTIFICATIONS = Notification.__table__  # type: ignore[attr-defined]
EVENTS = Event.__table__  # type: ignore[attr-defined]
PAYMENTS = Payment.__table__  # type: ignore[attr-defined]
COMMITMENTS = Commitment.__table__  # type: ignore[attr-defined]
SWEEPS = Sweep.__table__  # type: ignore[attr-defined]
POLICY_VERSIONS = PolicyVersion.__table__  # type: ignore[attr-defined]

#: The events the daemon writes when it loads or rejects the policies.
POLICY_EVENT_KINDS = ("policy_loaded", "policy_rejected")
#: Rows fetched per round trip when a question streams many rows.
STREAM_BATCH = 5000


# -- the outbox condition ----------------------------------------------------------------------------------


def due_for_dispatch(now: datetime, wall: datetime | None = None) -> Any:
    """Outbox rows a dispatcher may claim at `now`: pending and due, or abandoned mid-send — a lease that ran
    out by `wall` (real time, the only clock that senders share; default `now`)."""
    return or_(
        and_(
            NOTIFICATIONS.c.status == NotificationStatus.PENDING,
            NOTIFICATIONS.c.due_at <= now,
            or_(NOTIFICATIONS.c.next_attempt_at.is_(None), NOTIFICATIONS.c.next_attempt_at <= now),
        ),
        # abandoned by a dispatcher that died mid-send
        and_(NOTIFICATIONS.c.status == NotificationStatus.SENDING, NOTIFICATIONS.c.claimed_until < (wall or now)),
    )


# -- status, history, outbox -------------------------------------------------------------------------------


# The statements behind the web workspace's invoice page and API are built once (engine.store says why).
_LATEST_SWEEP = select(func.max(SWEEPS.c.as_of))
_INVOICE_ID = select(INVOICES.c.id).where(INVOICES.c.number == bindparam("number"))


def latest_sweep(repo: Repository) -> datetime | None:
    """The as-of instant of the latest sweep, None before the first."""
    with repo.read() as session:
        return session.connection().execute(_LATEST_SWEEP).scalar()


def open_invoices(repo: Repository) -> list[RowMapping]:
    """Every invoice not closed, in id order: number, customer_id, stage, open_amount, currency, policy,
    due_on, stage_entered_at."""
    with repo.read() as session:
        return list(
            session.connection()
            .execute(
                select(
                    INVOICES.c.number,
                    INVOICES.c.customer_id,
                    INVOICES.c.stage,
                    INVOICES.c.open_amount,
                    INVOICES.c.currency,
                    INVOICES.c.policy,
                    INVOICES.c.due_on,
                    INVOICES.c.stage_entered_at,
                )
                .where(INVOICES.c.stage.not_in(CLOSED_STATES))
                .order_by(INVOICES.c.id)
            )
            .mappings()
            .all()
        )


def invoice_id(repo: Repository, number: str) -> int | None:
    """The id of the invoice numbered `number`, None when there is none."""
    with repo.read() as session:
        found = session.connection().execute(_INVOICE_ID, {"number": number}).scalar()
    return None if found is None else int(found)


def customer_exists(repo: Repository, customer_id: str) -> bool:
    with repo.read() as session:
        return (
            session.connection().execute(select(CUSTOMERS.c.id).where(CUSTOMERS.c.id == customer_id)).first()
            is not None
        )


#: Whose history `history_rows` reads: a customer's, an invoice's, or (invoice None) that of no invoice.
_Subject = Literal["customer", "invoice", "no invoice"]


@cache
def _history_statements(subject: _Subject, grouped: bool) -> tuple[Select[Any], Select[Any]]:
    """`history_rows`' events and outbox statements (`subject` bound as "subject", grouped-notice keys as "keys")."""
    if subject == "customer":
        event_filter = EVENTS.c.customer_id == bindparam("subject")
        notice_filter = NOTIFICATIONS.c.customer_id == bindparam("subject")
    elif subject == "invoice":
        event_filter = EVENTS.c.invoice_id == bindparam("subject")
        notice_filter = NOTIFICATIONS.c.invoice_id == bindparam("subject")
    else:  # what `== None` meant before these were prebuilt
        event_filter = EVENTS.c.invoice_id.is_(None)
        notice_filter = NOTIFICATIONS.c.invoice_id.is_(None)
    if grouped:
        notice_filter = or_(notice_filter, NOTIFICATIONS.c.key.in_(bindparam("keys", expanding=True)))
    events = select(EVENTS).where(event_filter, EVENTS.c.kind != "delivery").order_by(EVENTS.c.id)
    return events, select(NOTIFICATIONS).where(notice_filter)


def history_rows(
    repo: Repository, *, invoice: int | None = None, customer: str | None = None
) -> tuple[list[RowMapping], dict[str, RowMapping]]:
    """The events of one invoice (or of one customer and all its invoices), deliveries left out, in the
    order they happened; and the outbox rows they name, by key (grouped notices included through the keys
    the events carry)."""
    subject: _Subject = "customer" if customer is not None else "invoice" if invoice is not None else "no invoice"
    values: dict[str, Any] = {"subject": customer if customer is not None else invoice}
    with repo.read() as session:
        conn = session.connection()
        events = conn.execute(_history_statements(subject, False)[0], values).mappings().all()
        # grouped notices (group_by: customer) are found by the keys the invoice's events name
        keys = [e["data"]["key"] for e in events if e["kind"] == "notification" and (e["data"] or {}).get("group")]
        if keys:
            values["keys"] = keys
        notices = _history_statements(subject, bool(keys))[1]
        outbox = {row["key"]: row for row in conn.execute(notices, values).mappings()}
    return list(events), outbox


def notified_invoices(repo: Repository, at: datetime) -> list[str]:
    """Numbers of the invoices a sweep at `at` queued notifications for."""
    with repo.read() as session:
        return list(
            session.connection()
            .execute(
                select(INVOICES.c.number)
                .distinct()
                .join(NOTIFICATIONS, NOTIFICATIONS.c.invoice_id == INVOICES.c.id)
                .where(NOTIFICATIONS.c.created_at == at)
            )
            .scalars()
        )


def outbox_rows(repo: Repository, status: str | None = None, invoice_id: int | None = None) -> list[RowMapping]:
    """Every outbox row (or those with `status`, those about invoice `invoice_id` — as the lead or as one
    of a grouped notice's invoices) in id order, with its invoice's `number` (None for none)."""
    query = (
        select(NOTIFICATIONS, INVOICES.c.number)
        .join(INVOICES, INVOICES.c.id == NOTIFICATIONS.c.invoice_id, isouter=True)
        .order_by(NOTIFICATIONS.c.id)
    )
    if status:
        query = query.where(NOTIFICATIONS.c.status == status)
    if invoice_id is not None:
        query = query.where(or_(NOTIFICATIONS.c.invoice_id == invoice_id, NOTIFICATIONS.c.invoice_ids.is_not(None)))
    with repo.read() as session:
        rows = session.connection().execute(query).mappings().all()
    if invoice_id is None:
        return list(rows)
    # A grouped notice lists its invoices in JSON: matched here rather than in each dialect's JSON syntax.
    return [r for r in rows if r["invoice_id"] == invoice_id or invoice_id in (r["invoice_ids"] or ())]


# -- explain -----------------------------------------------------------------------------------------------

#: The customer's fields as the sweep's rows name them (`c_name`, `c_credit_grade`, ...).
CUSTOMER_FIELDS = tuple(column.label(f"c_{column.name}") for column in CUSTOMERS.c if column.name != "id")

#: Per customer: (open amount, overdue open amount, overdue invoice count) — the sweep's totals query.
Totals = Callable[[Connection, date, Collection[str]], Mapping[str, Any]]


_EXPLAIN_ROW = (
    select(*INVOICES.c, *CUSTOMER_FIELDS)
    .join(CUSTOMERS, CUSTOMERS.c.id == INVOICES.c.customer_id)
    .where(INVOICES.c.number == bindparam("number"))
)
_EXPLAIN_EVENTS = (
    select(EVENTS.c.kind, EVENTS.c.at, EVENTS.c.data)
    .where(EVENTS.c.invoice_id == bindparam("invoice_id"))
    .order_by(EVENTS.c.id)
)


def explain_record(
    repo: Repository, number: str, today: date, totals: Totals
) -> tuple[RowMapping, Any, list[tuple[str, datetime, dict[str, Any] | None]]] | None:
    """What `explain` needs of invoice `number`, read in one snapshot: the invoice with its customer's fields
    (`c_...`), that customer's totals on `today` (as the sweep computes them, by `totals`), and the
    invoice's events as (kind, at, data) in order. None when there is no such invoice."""
    with repo.read() as session:
        conn = session.connection()
        row = conn.execute(_EXPLAIN_ROW, {"number": number}).mappings().first()
        if row is None:
            return None
        found = totals(conn, today, [row["customer_id"]]).get(row["customer_id"])
        events = conn.execute(_EXPLAIN_EVENTS, {"invoice_id": row["id"]}).all()
    return row, found, [tuple(event) for event in events]


# -- simulate ----------------------------------------------------------------------------------------------


def simulation_start(repo: Repository, *, with_stages: bool) -> tuple[int, dict[int, list[Any]]]:
    """Where a simulation starts: the number of open invoices and, with `with_stages`, each open invoice's
    [number, stage, open_amount] by id."""
    with repo.read() as session:
        conn = session.connection()
        open_count = (
            conn.execute(
                select(func.count()).select_from(INVOICES).where(INVOICES.c.stage.not_in(CLOSED_STATES))
            ).scalar()
            or 0
        )
        stages: dict[int, list[Any]] = (
            {
                row[0]: [row[1], row[2], row[3]]
                for row in conn.execute(
                    select(INVOICES.c.id, INVOICES.c.number, INVOICES.c.stage, INVOICES.c.open_amount)
                    .where(INVOICES.c.stage.not_in(CLOSED_STATES))
                    .order_by(INVOICES.c.id)
                )
            }
            if with_stages
            else {}
        )
    return int(open_count), stages


def open_amounts(repo: Repository, invoice_ids: Collection[int]) -> dict[int, tuple[Any, str]]:
    """Invoice id -> (open amount, currency), for the ids that exist."""
    found: dict[int, tuple[Any, str]] = {}
    ids = list(invoice_ids)
    with repo.read() as session:
        conn = session.connection()
        for start in range(0, len(ids), 5000):
            query = select(INVOICES.c.id, INVOICES.c.open_amount, INVOICES.c.currency).where(
                INVOICES.c.id.in_(ids[start : start + 5000])
            )
            found.update((row[0], (row[1], row[2])) for row in conn.execute(query))
    return found


@contextmanager
def stage_entries(repo: Repository) -> Iterator[tuple[dict[int, datetime], Iterator[tuple[int, datetime, str, Any]]]]:
    """For the observed payment rates, in one snapshot: when each paid invoice was closed (by id), and every
    stage entry — (invoice id, at, kind, data) of each transition and import event — streamed."""
    with repo.read() as session:
        conn = session.connection()
        closed = {
            invoice: closed_at
            for invoice, closed_at in conn.execute(
                select(INVOICES.c.id, INVOICES.c.closed_at).where(INVOICES.c.stage == PAID)
            )
            if closed_at is not None
        }
        entries = conn.execution_options(yield_per=STREAM_BATCH).execute(
            select(EVENTS.c.invoice_id, EVENTS.c.at, EVENTS.c.kind, EVENTS.c.data).where(
                EVENTS.c.kind.in_(("transition", "import")), EVENTS.c.invoice_id.is_not(None)
            )
        )
        yield closed, (tuple(entry) for entry in entries)


# -- reports -----------------------------------------------------------------------------------------------


class BookRows:
    """The rows the reports are computed from, read in one snapshot (see `book_rows`)."""

    #: The event kinds the reports look at.
    EVENT_KINDS = (
        "transition",
        "notification",
        "write_off",
        "promise_kept",
        "promise_broken",
        "installment_kept",
        "installment_missed",
    )

    def __init__(self, conn: Connection, as_of: date):
        self._conn = conn
        self.as_of = as_of

    def invoices(self) -> Iterator[RowMapping]:
        """Invoices issued by `as_of`, in id order: id, number, customer_id, currency, amount, issued_on,
        due_on, stage."""
        return iter(
            self._conn.execute(
                select(
                    INVOICES.c.id,
                    INVOICES.c.number,
                    INVOICES.c.customer_id,
                    INVOICES.c.currency,
                    INVOICES.c.amount,
                    INVOICES.c.issued_on,
                    INVOICES.c.due_on,
                    INVOICES.c.stage,
                )
                .where(INVOICES.c.issued_on <= self.as_of)
                .order_by(INVOICES.c.id)
            ).mappings()
        )

    def customers(self) -> Iterator[RowMapping]:
        """Every customer: id, name, segment, credit_grade, owner, industry, region."""
        return iter(
            self._conn.execute(
                select(
                    CUSTOMERS.c.id,
                    CUSTOMERS.c.name,
                    CUSTOMERS.c.segment,
                    CUSTOMERS.c.credit_grade,
                    CUSTOMERS.c.owner,
                    CUSTOMERS.c.industry,
                    CUSTOMERS.c.region,
                )
            ).mappings()
        )

    def payments(self) -> Iterator[tuple[int, date, Any]]:
        """(invoice id, paid_on, amount) of the payments made by `as_of`, by day."""
        return iter(
            self._conn.execute(
                select(PAYMENTS.c.invoice_id, PAYMENTS.c.paid_on, PAYMENTS.c.amount)
                .where(PAYMENTS.c.paid_on <= self.as_of)
                .order_by(PAYMENTS.c.paid_on, PAYMENTS.c.id)
            )
        )

    def events(self) -> Iterator[RowMapping]:
        """The invoice events of `EVENT_KINDS` (kind, invoice_id, at, data), in order; all of them: a
        later event's local day is for the caller to judge."""
        return iter(
            self._conn.execute(
                select(EVENTS.c.kind, EVENTS.c.invoice_id, EVENTS.c.at, EVENTS.c.data)
                .where(EVENTS.c.kind.in_(self.EVENT_KINDS), EVENTS.c.invoice_id.is_not(None))
                .order_by(EVENTS.c.id)
            ).mappings()
        )

    def open_commitments(self) -> Iterator[RowMapping]:
        """Every open promise and installment, in id order (all columns)."""
        return iter(
            self._conn.execute(
                select(COMMITMENTS).where(COMMITMENTS.c.status == "open").order_by(COMMITMENTS.c.id)
            ).mappings()
        )


@contextmanager
def book_rows(repo: Repository, as_of: date) -> Iterator[BookRows]:
    """The reports' rows as of `as_of`, read lazily inside one read transaction."""
    with repo.read() as session:
        yield BookRows(session.connection(), as_of)


# -- policy versions and the daemon's policy events --------------------------------------------------------


def policy_versions(repo: Repository) -> list[RowMapping]:
    """Every policy version ever in force, by the time it took effect, then name (all columns)."""
    with repo.read() as session:
        return list(
            session.connection()
            .execute(select(POLICY_VERSIONS).order_by(POLICY_VERSIONS.c.first_used_at, POLICY_VERSIONS.c.name))
            .mappings()
            .all()
        )


def policy_events(repo: Repository) -> list[RowMapping]:
    """The policy_loaded / policy_rejected events (at, kind, actor, data), oldest first."""
    with repo.read() as session:
        return list(
            session.connection()
            .execute(
                select(EVENTS.c.at, EVENTS.c.kind, EVENTS.c.actor, EVENTS.c.data)
                .where(EVENTS.c.kind.in_(POLICY_EVENT_KINDS))
                .order_by(EVENTS.c.id)
            )
            .mappings()
            .all()
        )


# -- legal case files --------------------------------------------------------------------------------------

#: The invoice fields a case file takes from the database.
CASE_INVOICE_COLUMNS = ("id", "number", "amount", "open_amount", "currency", "issued_on", "due_on", "stage", "policy")
#: The outbox fields a case file lists per delivery.
CASE_DELIVERY_COLUMNS = (
    "key",
    "channel",
    "stage",
    "recipient",
    "status",
    "attempts",
    "created_at",
    "sent_at",
    "receipt",
    "error",
)


@dataclass(frozen=True)
class CaseRecords:
    """What the database holds about a case: the customer's row (None when unknown), the invoices' rows by
    number, their events in order, and every outbox row of the customer that covers one of them."""

    customer: Mapping[str, Any] | None
    invoices: Mapping[str, Mapping[str, Any]]
    events: list[Mapping[str, Any]]
    deliveries: list[Mapping[str, Any]]


def case_records(repo: Repository, customer_id: str, numbers: Sequence[str]) -> CaseRecords:
    """The records of a case file about `customer_id`'s invoices `numbers`, in one snapshot."""
    events: list[Mapping[str, Any]] = []
    deliveries: list[Mapping[str, Any]] = []
    with repo.read() as session:
        conn = session.connection()
        customer = conn.execute(select(CUSTOMERS).where(CUSTOMERS.c.id == customer_id)).mappings().first()
        invoices = {
            row["number"]: dict(row)
            for row in conn.execute(
                select(*(INVOICES.c[name] for name in CASE_INVOICE_COLUMNS)).where(INVOICES.c.number.in_(numbers))
            ).mappings()
        }
        ids = [row["id"] for row in invoices.values()]
        if ids:
            events = [
                dict(e)
                for e in conn.execute(
                    select(EVENTS).where(EVENTS.c.invoice_id.in_(ids)).order_by(EVENTS.c.id)
                ).mappings()
            ]
            for notice in conn.execute(
                select(NOTIFICATIONS).where(NOTIFICATIONS.c.customer_id == customer_id).order_by(NOTIFICATIONS.c.id)
            ).mappings():
                covered = notice["invoice_ids"] or [notice["invoice_id"]]
                if set(covered) & set(ids):
                    deliveries.append({name: notice[name] for name in CASE_DELIVERY_COLUMNS})
    return CaseRecords(dict(customer) if customer is not None else None, invoices, events, deliveries)


# -- the audit log -----------------------------------------------------------------------------------------


def audit_verify(repo: Repository, expect_head: str | None = None) -> VerifyReport:
    """Recompute the event log's hash chain in one snapshot (engine.store.events.verify_chain)."""
    with repo.read() as session:
        return verify_chain(session.connection(), expect_head)


@contextmanager
def audit_events(repo: Repository, filters: ExportFilter, zone: Any) -> Iterator[Iterator[dict[str, Any]]]:
    """The events `filters` select, as export records, streamed inside one read transaction."""
    with repo.read() as session:
        yield export_events(session.connection(), filters, zone)
