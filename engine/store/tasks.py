"""The call and visit lists as collectors see them: listing tasks, completing one, flagging a wrong contact.

Tasks are made by the phone and visit channels through engine.store.channel_records."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import Connection, RowMapping, Table, select, update

from engine.store.invoices import wake
from engine.store.models import Customer, Event, Task, TaskStatus

TASKS: Table = Task.__table__  # type: ignore[attr-defined]
CUSTOMERS: Table = Customer.__table__  # type: ignore[attr-defined]
EVENTS: Table = Event.__table__  # type: ignore[attr-defined]

#: A task outcome's tag: the customer's contact details are wrong.
WRONG_CONTACT_TAG = "wrong_contact"
#: Tag an action adds -> the customer fields it is about: an import changing one of them removes the tag
#: (the contact was corrected); otherwise a re-import keeps it (engine.importer.write).
ACTION_TAG_SUBJECTS: dict[str, tuple[str, ...]] = {WRONG_CONTACT_TAG: ("email", "phone", "address")}


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
    """Add `tag` to the customer's tags (once), as an action's tag (`action_tags`: a re-import keeps it);
    a changed customer is looked at again by the next sweep."""
    row = conn.execute(select(CUSTOMERS.c.tags, CUSTOMERS.c.action_tags).where(CUSTOMERS.c.id == customer_id)).first()
    if row is None:
        return
    tags, added = list(row[0] or []), list(row[1] or [])
    if tag in tags and tag in added:
        return
    conn.execute(
        update(CUSTOMERS)
        .where(CUSTOMERS.c.id == customer_id)
        .values(tags=tags if tag in tags else [*tags, tag], action_tags=added if tag in added else [*added, tag])
    )
    if tag not in tags:
        wake(conn, customer_ids=[customer_id])
