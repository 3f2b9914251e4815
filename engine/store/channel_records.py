"""The records behind the doors `ChannelContext` gives the channels: tasks made by the `phone` / `visit`
channels, and the one-line summaries of events that tasks and legal case files show.

The engine's adapters (engine.channel_services) call these; channels themselves never import the store.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, insert, select

from engine.clock import iso
from engine.currencies import money_text
from engine.store.models import Event, Invoice, Task, TaskStatus

__all__ = ["HISTORY_LINES", "create_task", "event_summary"]

TASKS = Task.__table__  # type: ignore[attr-defined]
INVOICES = Invoice.__table__  # type: ignore[attr-defined]
EVENTS = Event.__table__  # type: ignore[attr-defined]
#: How many of the latest history entries a task's summary lists.
HISTORY_LINES = 8


def event_summary(kind: str, data: Mapping[str, Any]) -> str:
    """One event in a few words, for people: "reminder → phone", "email notice (reminder)"."""
    if kind == "transition":
        return f"{data.get('from')} → {data.get('to')}"
    if kind == "notification":
        return f"{data.get('channel')} notice ({data.get('stage')})"
    if kind == "payment":
        return f"payment {data.get('amount')}"
    if kind == "task_outcome":
        note = f" — {data['note']}" if data.get("note") else ""
        return f"{data.get('task_kind', 'task')}: {data.get('outcome')}" + note
    for key in ("reason", "text", "note"):
        if data.get(key):
            return f"{kind}: {data[key]}"
    return kind


def create_task(
    conn: Connection,
    *,
    key: str,
    kind: str,
    notification_id: int | None,
    stage: str,
    customer: Mapping[str, Any],
    invoices: Sequence[Mapping[str, Any]],
    now: datetime,
) -> tuple[int, bool]:
    """Make the task for one notification (idempotent by key): (task id, whether it is new)."""
    existing = conn.execute(select(TASKS.c.id).where(TASKS.c.key == key)).scalar()
    if existing is not None:
        return int(existing), False
    numbers = [str(inv["number"]) for inv in invoices]
    ids = {
        r[1]: r[0] for r in conn.execute(select(INVOICES.c.id, INVOICES.c.number).where(INVOICES.c.number.in_(numbers)))
    }
    invoice_ids = [ids[n] for n in numbers if n in ids]
    history = (
        conn.execute(
            select(EVENTS.c.at, EVENTS.c.kind, EVENTS.c.data)
            .where(EVENTS.c.invoice_id.in_(invoice_ids), EVENTS.c.kind != "delivery")
            .order_by(EVENTS.c.id.desc())
            .limit(HISTORY_LINES)
        ).all()
        if invoice_ids
        else []
    )
    notices = (
        conn.execute(
            select(EVENTS.c.id).where(EVENTS.c.invoice_id.in_(invoice_ids), EVENTS.c.kind == "notification")
        ).all()
        if invoice_ids
        else []
    )
    details = {
        "contact": {k: customer.get(k) for k in ("id", "name", "phone", "email", "address", "owner", "language")},
        "invoices": [
            {
                "number": str(inv["number"]),
                "currency": inv["currency"],
                "amount": money_text(Decimal(str(inv["amount"])), inv["currency"]),
                "open_amount": money_text(Decimal(str(inv["open_amount"])), inv["currency"]),
                "due_on": str(inv["due_on"]),
                "days_overdue": inv.get("days_overdue"),
            }
            for inv in invoices
        ],
        "history": [
            {"at": iso(at), "invoice": (data or {}).get("invoice"), "summary": event_summary(k, data or {})}
            for at, k, data in reversed(history)
        ],
        "notices_so_far": len(notices),
    }
    result = conn.execute(
        insert(TASKS),
        {
            "key": key,
            "notification_id": notification_id,
            "kind": kind,
            "customer_id": customer["id"],
            "owner": customer.get("owner"),
            "stage": stage,
            "invoice_ids": invoice_ids,
            "details": details,
            "status": TaskStatus.OPEN,
            "created_at": now,
        },
    )
    primary_key = result.inserted_primary_key
    assert primary_key is not None
    return int(primary_key[0]), True
