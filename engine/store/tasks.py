"""The call and visit lists: task rows, made by the phone and visit channels and completed by collectors."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, CursorResult, RowMapping, Table, insert, select, update

from engine.store.invoices import wake
from engine.store.models import Customer, Event, Task, TaskStatus

TASKS: Table = Task.__table__  # type: ignore[attr-defined]
CUSTOMERS: Table = Customer.__table__  # type: ignore[attr-defined]
EVENTS: Table = Event.__table__  # type: ignore[attr-defined]


def task_id_for_key(conn: Connection, key: str) -> int | None:
    """The task made for the notification keyed `key`, if there is one."""
    existing = conn.execute(select(TASKS.c.id).where(TASKS.c.key == key)).scalar()
    return None if existing is None else int(existing)


def recent_history(conn: Connection, invoice_ids: Sequence[int], limit: int) -> list[tuple[datetime, str, Any]]:
    """The latest `limit` events of these invoices other than deliveries, newest first: (at, kind, data)."""
    if not invoice_ids:
        return []
    rows = conn.execute(
        select(EVENTS.c.at, EVENTS.c.kind, EVENTS.c.data)
        .where(EVENTS.c.invoice_id.in_(invoice_ids), EVENTS.c.kind != "delivery")
        .order_by(EVENTS.c.id.desc())
        .limit(limit)
    )
    return [(at, kind, data) for at, kind, data in rows]


def notices_so_far(conn: Connection, invoice_ids: Sequence[int]) -> int:
    """How many notifications these invoices' histories record."""
    if not invoice_ids:
        return 0
    return len(
        conn.execute(
            select(EVENTS.c.id).where(EVENTS.c.invoice_id.in_(invoice_ids), EVENTS.c.kind == "notification")
        ).all()
    )


def add_task(
    conn: Connection,
    *,
    key: str,
    notification_id: int | None,
    kind: str,
    customer_id: str,
    owner: str | None,
    stage: str,
    invoice_ids: Sequence[int],
    details: Mapping[str, Any],
    created_at: datetime,
) -> int:
    """A new open task; its id."""
    result = conn.execute(
        insert(TASKS),
        {
            "key": key,
            "notification_id": notification_id,
            "kind": kind,
            "customer_id": customer_id,
            "owner": owner,
            "stage": stage,
            "invoice_ids": list(invoice_ids),
            "details": dict(details),
            "status": TaskStatus.OPEN,
            "created_at": created_at,
        },
    )
    return _new_id(result)


def list_tasks(conn: Connection, *, owner: str | None, status: str | None, kind: str | None) -> list[RowMapping]:
    """Tasks oldest first, filtered by whichever of owner, status and kind is given."""
    query = select(TASKS).order_by(TASKS.c.created_at, TASKS.c.id)
    if owner is not None:
        query = query.where(TASKS.c.owner == owner)
    if status is not None:
        query = query.where(TASKS.c.status == status)
    if kind is not None:
        query = query.where(TASKS.c.kind == kind)
    return list(conn.execute(query).mappings())


def get_task(conn: Connection, task_id: int) -> RowMapping | None:
    return conn.execute(select(TASKS).where(TASKS.c.id == task_id)).mappings().first()


def mark_done(
    conn: Connection,
    task_id: int,
    *,
    outcome: str,
    note: str | None,
    promised_amount: Decimal | None,
    promised_on: date | None,
    done_at: datetime,
    done_by: str,
) -> bool:
    """Complete an open task; False when it was no longer open (someone else completed it meanwhile)."""
    result = conn.execute(
        update(TASKS)
        .where(TASKS.c.id == task_id, TASKS.c.status == TaskStatus.OPEN)
        .values(
            status=TaskStatus.DONE,
            outcome=outcome,
            note=note,
            promised_amount=promised_amount,
            promised_on=promised_on,
            done_at=done_at,
            done_by=done_by,
        )
    )
    return bool(result.rowcount)


def tag_customer(conn: Connection, customer_id: str, tag: str) -> None:
    """Add `tag` to the customer's tags (once); a changed customer is looked at again by the next sweep."""
    tags: Iterable[str] = conn.execute(select(CUSTOMERS.c.tags).where(CUSTOMERS.c.id == customer_id)).scalar() or []
    tags = list(tags)
    if tag not in tags:
        conn.execute(update(CUSTOMERS).where(CUSTOMERS.c.id == customer_id).values(tags=[*tags, tag]))
        wake(conn, customer_ids=[customer_id])


def _new_id(result: CursorResult[Any]) -> int:
    key = result.inserted_primary_key
    assert key is not None, "an INSERT of one row reports its primary key"
    return int(key[0])
