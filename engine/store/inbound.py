"""The SQL of inbound mail: received messages (each processed once), the holds they put on notices, and the
look-ups that match a message to our notifications, invoices and customers.

Processing once: a message row is inserted with ON CONFLICT DO NOTHING on its unique `message_id` and its
unique (`mailbox`, `uid`), in the same transaction as every effect of the message. Two daemons reading the
same mailbox both try; the second waits on the unique index and then inserts nothing, so it applies nothing.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, bindparam, func, insert, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite

from engine.store.database import Repository
from engine.store.models import (
    Customer,
    InboundHold,
    InboundMessage,
    Invoice,
    Notification,
    NotificationStatus,
    Task,
    TaskStatus,
)

MESSAGES = InboundMessage.__table__  # type: ignore[attr-defined]
HOLDS = InboundHold.__table__  # type: ignore[attr-defined]
INVOICES = Invoice.__table__  # type: ignore[attr-defined]
CUSTOMERS = Customer.__table__  # type: ignore[attr-defined]
NOTIFICATIONS = Notification.__table__  # type: ignore[attr-defined]
TASKS = Task.__table__  # type: ignore[attr-defined]

BOUNCED_ADDRESS, REPLY_PAUSE, OUT_OF_OFFICE = "bounced_address", "reply_pause", "out_of_office"
#: A notice held for a bounced address is looked at again this often (the address may have changed).
BOUNCE_RECHECK = timedelta(hours=6)
#: Summary columns of a message (all but the raw bytes).
LISTED = [column for column in MESSAGES.c if column.name != "raw"]


def digest_of(key: str) -> str:
    """The local part of a notification's Message-ID (channels.email.message_id_for: SHA-256 of the key)."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()[:40]


def record_message(conn: Connection, row: Mapping[str, Any]) -> int | None:
    """Insert a received message; its id, or None when this Message-ID or mailbox UID was processed already."""
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    statement = dialect.insert(MESSAGES).values(**row).on_conflict_do_nothing().returning(MESSAGES.c.id)
    found = conn.execute(statement).scalar()
    return int(found) if found is not None else None


def seen(conn: Connection, mailbox: str, uid: str, message_id: str | None = None) -> bool:
    condition = (MESSAGES.c.mailbox == mailbox) & (MESSAGES.c.uid == uid)
    if message_id:
        condition = or_(condition, MESSAGES.c.message_id == message_id)
    return conn.execute(select(MESSAGES.c.id).where(condition).limit(1)).first() is not None


def known_uids(conn: Connection, mailbox: str) -> set[str]:
    return set(conn.execute(select(MESSAGES.c.uid).where(MESSAGES.c.mailbox == mailbox)).scalars())


def email_notice_keys(conn: Connection, after_id: int = 0) -> list[tuple[int, str]]:
    """(id, key) of the e-mail notices (recipient with an @) after `after_id`, in id order: Message-IDs are
    derived from keys, not stored, so a reader hashes these once and keeps the map (engine.replies)."""
    return [
        (int(row.id), str(row.key))
        for row in conn.execute(
            select(NOTIFICATIONS.c.id, NOTIFICATIONS.c.key)
            .where(NOTIFICATIONS.c.id > after_id, NOTIFICATIONS.c.recipient.like("%@%"))
            .order_by(NOTIFICATIONS.c.id)
        )
    ]


def notification_rows(conn: Connection, ids: Iterable[int]) -> list[dict[str, Any]]:
    ids = list(ids)
    if not ids:
        return []
    return [
        dict(row)
        for row in conn.execute(
            select(NOTIFICATIONS).where(NOTIFICATIONS.c.id.in_(ids)).order_by(NOTIFICATIONS.c.id.desc())
        ).mappings()
    ]


def latest_notice_to(conn: Connection, address: str) -> dict[str, Any] | None:
    """The newest notice sent (or being sent) to an address: what a bounce without a Message-ID is about."""
    row = (
        conn.execute(
            select(NOTIFICATIONS)
            .where(
                func.lower(NOTIFICATIONS.c.recipient) == address.lower(),
                NOTIFICATIONS.c.status.in_([NotificationStatus.SENT, NotificationStatus.SENDING]),
            )
            .order_by(NOTIFICATIONS.c.id.desc())
            .limit(1)
        )
        .mappings()
        .first()
    )
    return dict(row) if row is not None else None


def invoices_by_numbers(conn: Connection, numbers: Sequence[str]) -> list[dict[str, Any]]:
    if not numbers:
        return []
    return [
        dict(row)
        for row in conn.execute(
            select(INVOICES.c.id, INVOICES.c.number, INVOICES.c.customer_id, INVOICES.c.stage)
            .where(INVOICES.c.number.in_(list(numbers)))
            .order_by(INVOICES.c.due_on, INVOICES.c.id)
        ).mappings()
    ]


def invoices_by_ids(conn: Connection, ids: Sequence[int]) -> list[dict[str, Any]]:
    if not ids:
        return []
    return [
        dict(row)
        for row in conn.execute(
            select(
                INVOICES.c.id,
                INVOICES.c.number,
                INVOICES.c.customer_id,
                INVOICES.c.stage,
                INVOICES.c.currency,
                INVOICES.c.amount,
                INVOICES.c.open_amount,
                INVOICES.c.due_on,
            )
            .where(INVOICES.c.id.in_(list(ids)))
            .order_by(INVOICES.c.due_on, INVOICES.c.id)
        ).mappings()
    ]


def open_invoices_of(conn: Connection, customer_id: str, closed: Sequence[str]) -> list[dict[str, Any]]:
    return [
        dict(row)
        for row in conn.execute(
            select(INVOICES.c.id, INVOICES.c.number, INVOICES.c.customer_id, INVOICES.c.stage)
            .where(INVOICES.c.customer_id == customer_id, INVOICES.c.stage.not_in(list(closed)))
            .order_by(INVOICES.c.due_on, INVOICES.c.id)
        ).mappings()
    ]


def customers_by_email(conn: Connection, address: str) -> list[dict[str, Any]]:
    return [
        dict(row)
        for row in conn.execute(
            select(CUSTOMERS).where(func.lower(CUSTOMERS.c.email) == address.lower()).order_by(CUSTOMERS.c.id)
        ).mappings()
    ]


def customer(conn: Connection, customer_id: str) -> dict[str, Any] | None:
    row = conn.execute(select(CUSTOMERS).where(CUSTOMERS.c.id == customer_id)).mappings().first()
    return dict(row) if row is not None else None


def fail_notification(conn: Connection, notification_id: int, error: str) -> bool:
    """A notice a hard bounce proves undelivered turns failed; False if it is failed or cancelled already."""
    return bool(
        conn.execute(
            update(NOTIFICATIONS)
            .where(
                NOTIFICATIONS.c.id == notification_id,
                NOTIFICATIONS.c.status.in_(
                    [NotificationStatus.SENT, NotificationStatus.SENDING, NotificationStatus.PENDING]
                ),
            )
            .values(status=NotificationStatus.FAILED, error=error, claimed_until=None)
        ).rowcount
    )


def queue_fallback(
    conn: Connection, row: Mapping[str, Any], recipient: str | None, field_name: str, now: datetime
) -> dict[str, Any] | None:
    """The stage's fallback for a bounced notice, keyed `KEY>CHANNEL` exactly as dispatch keys the fallback of a
    notice that failed on sending (so the two can never both queue it); None if it exists already."""
    channel = row["fallback"]
    key = f"{row['key']}>{channel}"
    if conn.execute(select(NOTIFICATIONS.c.id).where(NOTIFICATIONS.c.key == key)).first() is not None:
        return None
    status, error = NotificationStatus.PENDING, None
    if not recipient:
        status = NotificationStatus.FAILED
        error = f"customer {row['customer_id']} has no {field_name} for the fallback channel {channel}"
    values = {
        "key": key,
        "invoice_id": row["invoice_id"],
        "invoice_ids": row.get("invoice_ids"),
        "customer_id": row["customer_id"],
        "policy": row["policy"],
        "stage": row["stage"],
        "channel": channel,
        "repeat_no": row["repeat_no"],
        "recipient": recipient,
        "status": status,
        "attempts": 0,
        "created_at": row["created_at"],
        "due_at": now,
        "error": error,
        "fallback_of": row["id"],
        "sweep_id": row.get("sweep_id"),
    }
    conn.execute(insert(NOTIFICATIONS).values(**values))
    return values


def add_hold(
    conn: Connection,
    *,
    kind: str,
    customer_id: str,
    reason: str,
    message: int,
    now: datetime,
    invoice_id: int | None = None,
    address: str | None = None,
    until: datetime | None = None,
) -> None:
    conn.execute(
        insert(HOLDS).values(
            kind=kind,
            customer_id=customer_id,
            invoice_id=invoice_id,
            address=address.lower() if address else None,
            until=until,
            reason=reason,
            message=message,
            created_at=now,
        )
    )


# Built once (engine.store says why): `explain` (the web workspace's invoice page) asks on every view.
_ACTIVE_HOLDS = select(HOLDS).where(
    HOLDS.c.customer_id.in_(bindparam("customer_ids", expanding=True)),
    HOLDS.c.released_at.is_(None),
    or_(HOLDS.c.until.is_(None), HOLDS.c.until > bindparam("now")),
)


def active_holds(conn: Connection, customer_ids: Iterable[str], now: datetime) -> list[dict[str, Any]]:
    customer_ids = list(set(customer_ids))
    if not customer_ids:
        return []
    return [dict(row) for row in conn.execute(_ACTIVE_HOLDS, {"customer_ids": customer_ids, "now": now}).mappings()]


def hold_claimed(conn: Connection, rows: list[dict[str, Any]], now: datetime) -> list[dict[str, Any]]:
    """Dispatch's claim: the rows that may go out; the others go back to pending, due when their hold ends,
    with the hold's reason as their `error` (shown by `dunning outbox`).

    A notice to a hard-bounced address waits until the customer's address changes; then the hold is released
    and the notice goes to the new address."""
    if not rows:
        return rows
    holds = active_holds(conn, (row["customer_id"] for row in rows), now)
    if not holds:
        return rows
    allowed: list[dict[str, Any]] = []
    for row in rows:
        verdict = _held(conn, row, holds, now)
        if verdict is None:
            allowed.append(row)
            continue
        due_at, reason = verdict
        conn.execute(
            update(NOTIFICATIONS)
            .where(NOTIFICATIONS.c.id == row["id"])
            .values(
                status=NotificationStatus.PENDING,
                due_at=due_at,
                claimed_until=None,
                attempts=NOTIFICATIONS.c.attempts - 1,
                error=f"held: {reason}",
            )
        )
    return allowed


def _held(
    conn: Connection, row: dict[str, Any], holds: list[dict[str, Any]], now: datetime
) -> tuple[datetime, str] | None:
    recipient = (row.get("recipient") or "").lower()
    until: datetime | None = None
    reasons: list[str] = []
    for hold in holds:
        if hold["customer_id"] != row["customer_id"]:
            continue
        if hold["kind"] == BOUNCED_ADDRESS:
            if not recipient or recipient != hold["address"]:
                continue
            current = (row.get("c_email") or "").strip()
            if current and current.lower() != hold["address"]:
                # The address changed: the hold is over and this notice goes to the new one.
                conn.execute(update(HOLDS).where(HOLDS.c.id == hold["id"]).values(released_at=now))
                conn.execute(update(NOTIFICATIONS).where(NOTIFICATIONS.c.id == row["id"]).values(recipient=current))
                row["recipient"] = current
                continue
            until = max(until, now + BOUNCE_RECHECK) if until else now + BOUNCE_RECHECK
            reasons.append(hold["reason"])
            continue
        covers = (
            hold["invoice_id"] is None
            or hold["invoice_id"] == row.get("invoice_id")
            or hold["invoice_id"] in (row.get("invoice_ids") or ())
        )
        if covers and hold["until"] is not None:
            until = max(until, hold["until"]) if until else hold["until"]
            reasons.append(hold["reason"])
    return (until, "; ".join(reasons)) if until is not None else None


def create_task(
    conn: Connection,
    *,
    key: str,
    customer: Mapping[str, Any],
    invoice_ids: list[int],
    stage: str,
    details: dict[str, Any],
    now: datetime,
) -> int | None:
    """A task (the collectors' list of engine.tasks) to read a reply; None when it exists already."""
    if conn.execute(select(TASKS.c.id).where(TASKS.c.key == key)).first() is not None:
        return None
    result = conn.execute(
        insert(TASKS).values(
            key=key,
            notification_id=None,
            kind="reply",
            customer_id=customer["id"],
            owner=customer.get("owner"),
            stage=stage,
            invoice_ids=invoice_ids,
            details=details,
            status=TaskStatus.OPEN,
            created_at=now,
        )
    )
    key_row = result.inserted_primary_key
    assert key_row is not None
    return int(key_row[0])


def list_messages(
    conn: Connection, *, unmatched: bool = False, limit: int = 500, before_id: int | None = None
) -> list[dict[str, Any]]:
    """Messages newest first; `before_id` pages on by keyset (ids below the previous page's last), so a
    message received meanwhile neither repeats nor shifts one out of the next page as an offset would."""
    query = select(*LISTED).order_by(MESSAGES.c.id.desc()).limit(limit)
    if unmatched:
        query = query.where(MESSAGES.c.status == "unmatched")
    if before_id is not None:
        query = query.where(MESSAGES.c.id < before_id)
    return [dict(row) for row in conn.execute(query).mappings()]


def get_message(conn: Connection, message_id: int, *, raw: bool = False, lock: bool = False) -> dict[str, Any] | None:
    query = (select(MESSAGES) if raw else select(*LISTED)).where(MESSAGES.c.id == message_id)
    if lock and conn.dialect.name == "postgresql":
        query = query.with_for_update()
    row = conn.execute(query).mappings().first()
    return dict(row) if row is not None else None


def update_message(conn: Connection, message_id: int, values: dict[str, Any]) -> None:
    conn.execute(update(MESSAGES).where(MESSAGES.c.id == message_id).values(**values))


def hold_reasons(conn: Connection, customer_id: str, invoice_id: int, email: str | None, now: datetime) -> list[str]:
    """Why this invoice's notices are held by inbound mail right now (for `dunning explain`)."""
    reasons = []
    for hold in active_holds(conn, [customer_id], now):
        if hold["kind"] == BOUNCED_ADDRESS:
            if email and email.strip().lower() == hold["address"]:
                reasons.append(f"email notices held: {hold['reason']}")
        elif hold["invoice_id"] in (None, invoice_id):
            reasons.append(f"notices held: {hold['reason']}")
    return reasons


def hold_reasons_for(
    repo: Repository, customer_id: str, invoice_id: int, email: str | None, now: datetime
) -> list[str]:
    """`hold_reasons` in a read snapshot of its own (explain reads through engine.store.queries)."""
    with repo.read() as session:
        return hold_reasons(session.connection(), customer_id, invoice_id, email, now)
