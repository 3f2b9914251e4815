"""What the daemon (engine.service) asks of the database: a look at the outbox, its policy events, the health probe and housekeeping.

Each function is one short transaction of its own, so an idle daemon never holds a lock.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, text

from engine.store.database import Repository
from engine.store.events import append_events
from engine.store.models import Event, Notification, NotificationStatus, Sweep
from engine.store.queries import due_for_dispatch

__all__ = [
    "checkpoint",
    "health_probe",
    "last_policy_fingerprint",
    "notifications_due",
    "outbox_depth",
    "record_event",
]

NOTIFICATIONS = Notification.__table__  # type: ignore[attr-defined]
SWEEPS = Sweep.__table__  # type: ignore[attr-defined]
EVENTS = Event.__table__  # type: ignore[attr-defined]


def notifications_due(repo: Repository, now: datetime, wall: datetime | None = None) -> bool:
    """Whether any outbox row may be claimed at `now`, leases judged at `wall` (a read-only look: no write
    lock just to find none)."""
    with repo.read() as session:
        query = select(NOTIFICATIONS.c.id).where(due_for_dispatch(now, wall)).limit(1)
        return session.connection().execute(query).first() is not None


def outbox_depth(repo: Repository) -> dict[str, int]:
    """Outbox rows per status, pending and sending (zero when none)."""
    with repo.read() as session:
        rows = (
            session.connection()
            .execute(
                select(NOTIFICATIONS.c.status, func.count())
                .where(NOTIFICATIONS.c.status.in_([NotificationStatus.PENDING, NotificationStatus.SENDING]))
                .group_by(NOTIFICATIONS.c.status)
            )
            .all()
        )
    depth = {NotificationStatus.PENDING: 0, NotificationStatus.SENDING: 0}
    depth.update({status: int(count) for status, count in rows})
    return depth


def health_probe(repo: Repository) -> tuple[datetime | None, datetime | None]:
    """Round-trip to the database and read the latest sweep: (as_of, finished_at), (None, None) before the
    first. Raises whatever the driver raises when the database does not answer."""
    with repo.read() as session:
        conn = session.connection()
        conn.execute(text("SELECT 1"))
        row = conn.execute(
            select(SWEEPS.c.as_of, SWEEPS.c.finished_at).order_by(SWEEPS.c.as_of.desc()).limit(1)
        ).first()
    return (row[0], row[1]) if row else (None, None)


def last_policy_fingerprint(repo: Repository) -> str | None:
    """The policy fingerprint the latest `policy_loaded` event recorded."""
    with repo.read() as session:
        data = (
            session.connection()
            .execute(
                select(EVENTS.c.data).where(EVENTS.c.kind == "policy_loaded").order_by(EVENTS.c.id.desc()).limit(1)
            )
            .scalar()
        )
    return (data or {}).get("fingerprint")


def record_event(repo: Repository, event: Mapping[str, Any]) -> None:
    """Append one event made by `engine.store.events.new_event` (about no invoice or customer: a policy
    reload) to the audit log, in a transaction of its own."""
    with repo.write() as session:
        append_events(session.connection(), [event])


def checkpoint(repo: Repository) -> None:
    """SQLite: fold the WAL back into the database file, so it does not grow without bound in a process
    that never closes its connections. Nothing to do elsewhere."""
    if repo.dialect != "sqlite":
        return
    with repo.engine.connect() as conn:
        conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
