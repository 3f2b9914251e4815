"""The SQL of credit management (engine.credit): customers' credit facts, credit files, grade changes, warnings.

Every write runs in the caller's transaction and records its events through `engine.store.events.append_events`;
a grade change also makes the next sweep look at the customer's invoices again, so the governing policy is
re-decided (`applies_to` on `customer.credit_grade`).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Iterable, Mapping
from datetime import date, datetime, tzinfo
from typing import Any

from sqlalchemy import Connection, func, select, type_coerce, update

from engine.clock import local_day
from engine.policy.model import CLOSED_STATES
from engine.store.events import append_events
from engine.store.models import CreditFile, CreditWarning, Customer, Event, Invoice, Money, Notification

CUSTOMERS = Customer.__table__  # type: ignore[attr-defined]
INVOICES = Invoice.__table__  # type: ignore[attr-defined]
EVENTS = Event.__table__  # type: ignore[attr-defined]
CREDIT_FILES = CreditFile.__table__  # type: ignore[attr-defined]
WARNINGS = CreditWarning.__table__  # type: ignore[attr-defined]
#: Warnings not yet cleared: not raised again while their condition holds.
ACTIVE = ("open", "acknowledged")
_CHUNK = 500


def customers(conn: Connection, ids: Collection[str] | None = None) -> list[dict[str, Any]]:
    """Every customer (or those in `ids`) with the fields credit rules look at, in id order."""
    query = select(CUSTOMERS).order_by(CUSTOMERS.c.id)
    if ids is not None:
        query = query.where(CUSTOMERS.c.id.in_(list(ids)))
    return [dict(row) for row in conn.execute(query).mappings()]


def credit_files(conn: Connection, ids: Collection[str] | None = None) -> dict[str, dict[str, Any]]:
    query = select(CREDIT_FILES)
    if ids is not None:
        query = query.where(CREDIT_FILES.c.customer_id.in_(list(ids)))
    return {row["customer_id"]: dict(row) for row in conn.execute(query).mappings()}


def dispute_days(conn: Connection, zone: tzinfo, until: date) -> dict[str, list[date]]:
    """Per customer, the company-local days disputes were opened, up to `until`."""
    found: dict[str, list[date]] = defaultdict(list)
    for customer_id, at in conn.execute(
        select(EVENTS.c.customer_id, EVENTS.c.at).where(EVENTS.c.kind == "dispute").order_by(EVENTS.c.id)
    ):
        day = local_day(at, zone)
        if customer_id is not None and day <= until:
            found[customer_id].append(day)
    return found


def open_warning_counts(conn: Connection, ids: Collection[str] | None = None) -> dict[str, int]:
    query = (
        select(WARNINGS.c.customer_id, func.count()).where(WARNINGS.c.status == "open").group_by(WARNINGS.c.customer_id)
    )
    if ids is not None:
        query = query.where(WARNINGS.c.customer_id.in_(list(ids)))
    return {row[0]: int(row[1]) for row in conn.execute(query)}


def open_in_stages(conn: Connection, stages: Collection[str], ids: Collection[str] | None = None) -> dict[str, int]:
    """Per customer, how many open invoices sit in one of `stages` (e.g. the legal ones)."""
    if not stages:
        return {}
    query = (
        select(INVOICES.c.customer_id, func.count())
        .where(INVOICES.c.stage.in_(list(stages)))
        .group_by(INVOICES.c.customer_id)
    )
    if ids is not None:
        query = query.where(INVOICES.c.customer_id.in_(list(ids)))
    return {row[0]: int(row[1]) for row in conn.execute(query)}


def open_by_currency(conn: Connection, customer_id: str) -> dict[str, Any]:
    """The customer's open amount per currency, as the book stands now."""
    return {
        row[0]: row[1]
        for row in conn.execute(
            select(INVOICES.c.currency, type_coerce(func.sum(INVOICES.c.open_amount), Money()))
            .where(INVOICES.c.customer_id == customer_id, INVOICES.c.stage.not_in(CLOSED_STATES))
            .group_by(INVOICES.c.currency)
        )
    }


def open_stages(conn: Connection, customer_id: str) -> list[str]:
    return list(
        conn.execute(
            select(INVOICES.c.stage).where(
                INVOICES.c.customer_id == customer_id, INVOICES.c.stage.not_in(CLOSED_STATES)
            )
        ).scalars()
    )


def save_credit_files(conn: Connection, rows: Iterable[Mapping[str, Any]]) -> None:
    """Insert or replace credit files (whole rows, keyed by customer_id)."""
    rows = [dict(row) for row in rows]
    if not rows:
        return
    ids = [row["customer_id"] for row in rows]
    existing = set(
        conn.execute(select(CREDIT_FILES.c.customer_id).where(CREDIT_FILES.c.customer_id.in_(ids))).scalars()
    )
    for row in rows:
        if row["customer_id"] in existing:
            values = {k: v for k, v in row.items() if k != "customer_id"}
            conn.execute(update(CREDIT_FILES).where(CREDIT_FILES.c.customer_id == row["customer_id"]).values(**values))
        else:
            conn.execute(CREDIT_FILES.insert().values(**row))


def set_grades(conn: Connection, grades: Mapping[str, str | None]) -> None:
    """Set customers' grades in force and wake their invoices: the next sweep re-decides the governing policy."""
    for customer_id, grade in grades.items():
        conn.execute(update(CUSTOMERS).where(CUSTOMERS.c.id == customer_id).values(credit_grade=grade))
    ids = list(grades)
    for start in range(0, len(ids), _CHUNK):
        conn.execute(
            update(INVOICES).where(INVOICES.c.customer_id.in_(ids[start : start + _CHUNK])).values(next_action_on=None)
        )


def record(conn: Connection, events: list[dict[str, Any]]) -> None:
    """Append credit events (grade_changed, credit_hold, credit_release, warning_*) to the audit log."""
    append_events(conn, events)


def event(
    at: datetime, recorded_at: datetime, kind: str, customer_id: str, data: dict[str, Any], actor: str = "system"
) -> dict[str, Any]:
    return {
        "at": at,
        "recorded_at": recorded_at,
        "kind": kind,
        "invoice_id": None,
        "customer_id": customer_id,
        "actor": actor,
        "data": {"customer": customer_id, **data},
    }


# -- warnings -------------------------------------------------------------------------------------------


def active_warnings(conn: Connection) -> dict[tuple[str, str], dict[str, Any]]:
    """(rule, customer_id) -> the warning not yet cleared."""
    return {
        (row["rule"], row["customer_id"]): dict(row)
        for row in conn.execute(select(WARNINGS).where(WARNINGS.c.status.in_(ACTIVE))).mappings()
    }


def raise_warning(conn: Connection, rule: str, customer_id: str, severity: str, at: datetime) -> int:
    result = conn.execute(
        WARNINGS.insert().values(
            rule=rule,
            customer_id=customer_id,
            severity=severity,
            status="open",
            raised_at=at,
        )
    )
    key = result.inserted_primary_key
    assert key is not None  # an INSERT of one row always has its key
    return int(key[0])


def clear_warning(conn: Connection, warning_id: int, at: datetime) -> None:
    conn.execute(update(WARNINGS).where(WARNINGS.c.id == warning_id).values(status="cleared", cleared_at=at))


def warning(conn: Connection, warning_id: int) -> dict[str, Any] | None:
    row = conn.execute(select(WARNINGS).where(WARNINGS.c.id == warning_id)).mappings().first()
    return dict(row) if row is not None else None


def acknowledge_warning(conn: Connection, warning_id: int, actor: str, note: str | None, at: datetime) -> None:
    conn.execute(
        update(WARNINGS)
        .where(WARNINGS.c.id == warning_id)
        .values(
            status="acknowledged",
            acknowledged_at=at,
            acknowledged_by=actor,
            note=note,
        )
    )


def list_warnings(
    conn: Connection,
    *,
    open_only: bool = False,
    customer: str | None = None,
    after_id: int = 0,
    limit: int | None = None,
    newest_first: bool = False,
) -> list[dict[str, Any]]:
    """Warnings in id order (oldest first, or newest), with their customer's `customer_name` and `owner`:
    open ones only, one customer's, those after an id (in the order asked), at most `limit`."""
    query = select(WARNINGS, CUSTOMERS.c.name.label("customer_name"), CUSTOMERS.c.owner).join(
        CUSTOMERS, CUSTOMERS.c.id == WARNINGS.c.customer_id, isouter=True
    )
    if newest_first:
        query = query.order_by(WARNINGS.c.id.desc())
        if after_id:
            query = query.where(WARNINGS.c.id < after_id)
    else:
        query = query.where(WARNINGS.c.id > after_id).order_by(WARNINGS.c.id)
    if open_only:
        query = query.where(WARNINGS.c.status == "open")
    if customer is not None:
        query = query.where(WARNINGS.c.customer_id == customer)
    if limit is not None:
        query = query.limit(limit)
    return [dict(row) for row in conn.execute(query).mappings()]


def open_in_currency(conn: Connection, ids: Collection[str], currency: str) -> dict[str, Any]:
    """Per customer in `ids`, the open amount of its open invoices in `currency`."""
    if not ids:
        return {}
    return {
        row[0]: row[1]
        for row in conn.execute(
            select(INVOICES.c.customer_id, type_coerce(func.sum(INVOICES.c.open_amount), Money()))
            .where(
                INVOICES.c.customer_id.in_(list(ids)),
                INVOICES.c.currency == currency,
                INVOICES.c.stage.not_in(CLOSED_STATES),
            )
            .group_by(INVOICES.c.customer_id)
        )
    }


def queue_notices(conn: Connection, notices: list[dict[str, Any]]) -> None:
    """Outbox rows about a customer itself (no invoice): holds, releases, warnings; a key already queued is
    left alone, so evaluating twice never sends twice."""
    if not notices:
        return
    table = Notification.__table__  # type: ignore[attr-defined]
    known = set(conn.execute(select(table.c.key).where(table.c.key.in_([n["key"] for n in notices]))).scalars())
    fresh = [n for n in notices if n["key"] not in known]
    if fresh:
        conn.execute(table.insert(), fresh)


def grade_changes(conn: Connection) -> list[dict[str, Any]]:
    """Every grade_changed event: at, customer_id and its data, in log order."""
    return [
        dict(row)
        for row in conn.execute(
            select(EVENTS.c.at, EVENTS.c.customer_id, EVENTS.c.data)
            .where(EVENTS.c.kind == "grade_changed")
            .order_by(EVENTS.c.id)
        ).mappings()
    ]


def latest_event_at(conn: Connection, kind: str) -> datetime | None:
    value = conn.execute(select(func.max(EVENTS.c.at)).where(EVENTS.c.kind == kind)).scalar()
    if value is not None and value.tzinfo is None:
        from datetime import timezone

        value = value.replace(tzinfo=timezone.utc)
    return value


def invoices_by_number(conn: Connection, numbers: Collection[str]) -> list[dict[str, Any]]:
    return [
        dict(row)
        for row in conn.execute(
            select(
                INVOICES.c.id,
                INVOICES.c.number,
                INVOICES.c.customer_id,
                INVOICES.c.open_amount,
                INVOICES.c.amount,
                INVOICES.c.currency,
            )
            .where(INVOICES.c.number.in_(list(numbers)))
            .order_by(INVOICES.c.id)
        ).mappings()
    ]


def task_invoice_numbers(conn: Connection, task_id: int) -> list[str]:
    from engine.store.models import Task

    tasks = Task.__table__  # type: ignore[attr-defined]
    ids = conn.execute(select(tasks.c.invoice_ids).where(tasks.c.id == task_id)).scalar() or []
    return list(conn.execute(select(INVOICES.c.number).where(INVOICES.c.id.in_(list(ids)))).scalars())


def events_of_kind(conn: Connection, kind: str) -> list[dict[str, Any]]:
    return [
        dict(row)
        for row in conn.execute(
            select(EVENTS.c.at, EVENTS.c.invoice_id, EVENTS.c.customer_id, EVENTS.c.actor, EVENTS.c.data)
            .where(EVENTS.c.kind == kind)
            .order_by(EVENTS.c.id)
        ).mappings()
    ]
