"""What `dunning audit verify --state` reads: the event log in chain order, and the invoice and outbox tables
as they are now (engine.audit_state replays the one and compares it with the others)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from sqlalchemy import Connection, select

from engine.store.events import iter_events
from engine.store.models import Invoice, Notification

INVOICES = Invoice.__table__  # type: ignore[attr-defined]
NOTIFICATIONS = Notification.__table__  # type: ignore[attr-defined]

#: The invoice columns the replay can recompute from events.
INVOICE_STATE = ("id", "number", "amount", "open_amount", "stage", "closed_at", "awaiting_stage", "resume_stage")
#: The outbox columns the replay can recompute from events.
NOTIFICATION_STATE = ("id", "key", "invoice_id", "status")


def events(conn: Connection) -> Iterator[dict[str, Any]]:
    """Every event in id order (the chain's order), as plain dicts."""
    for row in iter_events(conn):
        yield dict(row)


def invoice_states(conn: Connection) -> Iterator[dict[str, Any]]:
    """Every invoice's stored collection state, in id order, read in batches."""
    yield from _batched(conn, INVOICES, INVOICE_STATE)


def notification_states(conn: Connection) -> Iterator[dict[str, Any]]:
    """Every notification's stored status, in id order, read in batches."""
    yield from _batched(conn, NOTIFICATIONS, NOTIFICATION_STATE)


def _batched(conn: Connection, table: Any, names: tuple[str, ...], batch: int = 5000) -> Iterator[dict[str, Any]]:
    columns = [table.c[name] for name in names]
    last = None
    while True:
        query = select(*columns).order_by(table.c.id).limit(batch)
        if last is not None:
            query = query.where(table.c.id > last)
        rows = conn.execute(query).mappings().all()
        if not rows:
            return
        for row in rows:
            yield dict(row)
        last = rows[-1]["id"]
