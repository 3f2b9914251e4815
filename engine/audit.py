"""The event log: the one door every history entry goes through.

Events are only ever appended (nothing in the product updates or deletes them); writers hand their rows
to `append_events` inside their own transaction, so an event exists exactly when the change it records does.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection

from engine.models import Event
from engine.repository import BulkWriter

EVENTS = Event.__table__  # type: ignore[attr-defined]


def append_events(conn: Connection, events: list[dict[str, Any]]) -> None:
    """Append events (dicts with at, recorded_at, kind, invoice_id, customer_id, actor, data)."""
    if events:
        BulkWriter(conn, EVENTS).insert(events)
