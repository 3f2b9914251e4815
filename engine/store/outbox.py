"""The outbox: the one builder of notification rows, and the claim and record steps of dispatching them.

A notification is written in the transaction of the change that fires it (a sweep's transition or repeat,
`dunning approve`, `dunning move`, a fallback after a failure for good) and sent afterwards by dispatch.
Every such row is made by `notification`, so each one carries the same fields — the stage's `fallback:`
among them — whoever queued it.

A claim is a lease: the row turns `sending` with `claimed_until`; a dispatcher that dies mid-send leaves rows
whose lease expires and that the next claim takes over. On PostgreSQL claims skip rows another dispatcher
has locked (`FOR UPDATE SKIP LOCKED`), so several daemons send disjoint batches.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from datetime import datetime, timezone
from functools import lru_cache
from typing import Any

from sqlalchemy import ColumnElement, Connection, RowMapping, Table, and_, bindparam, or_, select, update

from engine.policy.model import CLOSED_STATES
from engine.store.bulk import insert_notifications
from engine.store.locks import for_update
from engine.store.models import Customer, Invoice, Notification, NotificationStatus

NOTIFICATIONS: Table = Notification.__table__  # type: ignore[attr-defined]
#: How a pending notice's `error` says why it waits (quiet hours, the contact cap, a hard-bounced address, a
#: reply being read): `dunning outbox` shows the rest as its `held` reason.
HELD_PREFIX = "held: "
INVOICES: Table = Invoice.__table__  # type: ignore[attr-defined]
CUSTOMERS: Table = Customer.__table__  # type: ignore[attr-defined]


# -- keys and rows -----------------------------------------------------------------------------------------


def notification_key(number: str, stage: str, entered_at: datetime, repeat_no: int, channel: str) -> str:
    """Unique per (invoice, stage entry, repeat number, channel): the idempotency key of a notification."""
    return f"{number}/{stage}@{_compact(entered_at)}/{repeat_no}/{channel}"


def group_notification_key(customer_id: str, stage: str, as_of: datetime, repeat_no: int, channel: str) -> str:
    """Unique per (customer, stage, sweep, repeat number, channel): the key of a grouped notification."""
    return f"customer:{customer_id}/{stage}@{_compact(as_of)}/{repeat_no}/{channel}"


def fallback_key(key: str, channel: str) -> str:
    """The key of the notification standing in on `channel` for the one keyed `key`."""
    return f"{key}>{channel}"


@lru_cache(maxsize=4096)
def _compact(instant: datetime) -> str:
    return instant.astimezone(timezone.utc).strftime("%Y%m%dT%H%M%SZ")


def recipient_of(row: Mapping[str, Any], field_name: str) -> str | None:
    """The address a channel reaches a customer at: the customer field `field_name` of a row carrying the
    customer's fields as `c_<field>` (a sweep's or a claim's row), or the customer id itself for "id"."""
    return row["customer_id"] if field_name == "id" else row.get(f"c_{field_name}")


def notification(
    *,
    key: str,
    customer_id: str,
    policy: str,
    stage: str,
    channel: str,
    repeat_no: int,
    recipient: str | None,
    recipient_field: str,
    created_at: datetime,
    fallback: str | None,
    invoice_id: int | None = None,
    invoice_ids: Sequence[int] | None = None,
    due_at: datetime | None = None,
    fallback_of: int | None = None,
    sweep_id: int | None = None,
) -> dict[str, Any]:
    """One outbox row. `fallback` (required: pass the stage's `fallback_for(channel)`) is the channel to queue
    instead if this one fails for good. Without a recipient the row is born failed, saying what to add.

    `invoice_ids` makes a grouped notice (one per customer, `invoice_id` None); `fallback_of` a fallback's
    stand-in. Every row has the same keys, so a batch of them is one bulk statement."""
    status, error = NotificationStatus.PENDING, None
    if not recipient:
        status = NotificationStatus.FAILED
        if fallback_of is None:
            error = (
                f"customer {customer_id} has no {recipient_field}; add it (dunning import customers) "
                f"so the {channel} channel can reach them"
            )
        else:
            error = f"customer {customer_id} has no {recipient_field} for the fallback channel {channel}"
    return {
        "key": key,
        "invoice_id": invoice_id,
        "customer_id": customer_id,
        "policy": policy,
        "stage": stage,
        "channel": channel,
        "repeat_no": repeat_no,
        "recipient": recipient,
        "status": status,
        "attempts": 0,
        "created_at": created_at,
        "due_at": created_at if due_at is None else due_at,
        "error": error,
        "invoice_ids": None if invoice_ids is None else list(invoice_ids),
        "fallback": fallback,
        "fallback_of": fallback_of,
        "sweep_id": sweep_id,
    }


def queue(conn: Connection, rows: Sequence[dict[str, Any]], *, copy: bool = False) -> None:
    """Write notifications made by `notification` (one bulk statement; `copy`: COPY on PostgreSQL for a
    large batch, for a writer whose keys cannot collide, such as a sweep's fresh notices)."""
    insert_notifications(conn, rows, copy=copy)


def queue_once(conn: Connection, row: dict[str, Any]) -> bool:
    """Write one notification unless one with its key exists already; whether it was written."""
    if conn.execute(select(NOTIFICATIONS.c.id).where(NOTIFICATIONS.c.key == row["key"])).first() is not None:
        return False
    insert_notifications(conn, [row])
    return True


def cancel_pending(conn: Connection, invoice_ids: Collection[int], reason: str) -> None:
    """Queued notices of these invoices must not go out any more (paid, written off, paused): cancel them."""
    if not invoice_ids:
        return
    conn.execute(
        update(NOTIFICATIONS)
        .where(
            NOTIFICATIONS.c.invoice_id == bindparam("b_invoice"), NOTIFICATIONS.c.status == NotificationStatus.PENDING
        )
        .values(status=NotificationStatus.CANCELLED, error=reason),
        [{"b_invoice": invoice_id} for invoice_id in invoice_ids],
    )


# -- claiming ----------------------------------------------------------------------------------------------


def due_for_dispatch(now: datetime, wall: datetime | None = None) -> ColumnElement[bool]:
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


def any_due(conn: Connection, now: datetime, wall: datetime | None = None) -> bool:
    """Whether anything in the outbox could be claimed at `now` (leases judged at `wall`)."""
    return conn.execute(select(NOTIFICATIONS.c.id).where(due_for_dispatch(now, wall)).limit(1)).first() is not None


#: What a claimed row carries besides its own columns: the invoice (`i_…`, none for a grouped notice) and
#: the customer (`c_…`) a message is rendered from.
_CLAIM_COLUMNS = (
    NOTIFICATIONS,
    INVOICES.c.number.label("i_number"),
    INVOICES.c.amount.label("i_amount"),
    INVOICES.c.open_amount.label("i_open_amount"),
    INVOICES.c.currency.label("i_currency"),
    INVOICES.c.issued_on.label("i_issued_on"),
    INVOICES.c.due_on.label("i_due_on"),
    CUSTOMERS.c.name.label("c_name"),
    CUSTOMERS.c.email.label("c_email"),
    CUSTOMERS.c.phone.label("c_phone"),
    CUSTOMERS.c.address.label("c_address"),
    CUSTOMERS.c.owner.label("c_owner"),
    CUSTOMERS.c.language.label("c_language"),
    CUSTOMERS.c.timezone.label("c_timezone"),
    CUSTOMERS.c.tags.label("c_tags"),
)


def claim(
    conn: Connection, now: datetime, size: int, lease_until: datetime, wall: datetime | None = None
) -> list[dict[str, Any]]:
    """Lease up to `size` rows due at `now` (oldest first) until `lease_until` (real time, as `wall`: other
    senders' leases that ran out by then are taken over), counting the attempt; the claimed rows with their
    invoice and customer fields, grouped notices with their open invoices (`group`)."""
    query = for_update(
        conn,
        select(NOTIFICATIONS.c.id).where(due_for_dispatch(now, wall)).order_by(NOTIFICATIONS.c.id).limit(size),
        skip_locked=True,
    )
    ids = list(conn.execute(query).scalars())
    if not ids:
        return []
    conn.execute(
        update(NOTIFICATIONS)
        .where(NOTIFICATIONS.c.id.in_(ids))
        .values(status=NotificationStatus.SENDING, claimed_until=lease_until, attempts=NOTIFICATIONS.c.attempts + 1)
    )
    rows = (
        conn.execute(
            select(*_CLAIM_COLUMNS)
            .join(INVOICES, INVOICES.c.id == NOTIFICATIONS.c.invoice_id, isouter=True)  # grouped: no invoice_id
            .join(CUSTOMERS, CUSTOMERS.c.id == NOTIFICATIONS.c.customer_id)
            .where(NOTIFICATIONS.c.id.in_(ids))
            .order_by(NOTIFICATIONS.c.id)
        )
        .mappings()
        .all()
    )
    claimed = [dict(row) for row in rows]
    _attach_groups(conn, claimed)
    return claimed


def _attach_groups(conn: Connection, rows: list[dict[str, Any]]) -> None:
    """Give each claimed grouped notice (`invoice_ids`) its invoices as `group`: the still-open ones, in order."""
    wanted = {invoice_id for row in rows for invoice_id in (row.get("invoice_ids") or ())}
    if not wanted:
        return
    found = {
        r["id"]: dict(r)
        for r in conn.execute(
            select(
                INVOICES.c.id,
                INVOICES.c.number,
                INVOICES.c.amount,
                INVOICES.c.open_amount,
                INVOICES.c.currency,
                INVOICES.c.issued_on,
                INVOICES.c.due_on,
                INVOICES.c.stage,
            ).where(INVOICES.c.id.in_(wanted))
        ).mappings()
    }
    for row in rows:
        if row.get("invoice_ids"):
            row["group"] = [
                {k: v for k, v in found[i].items() if k != "stage"}
                for i in row["invoice_ids"]
                if i in found and found[i]["stage"] not in CLOSED_STATES
            ]


def sent_since(conn: Connection, customer_ids: Collection[str], since: datetime) -> list[tuple[str, datetime]]:
    """(customer id, sent at) of every message sent to these customers after `since` (the contact cap)."""
    rows = conn.execute(
        select(NOTIFICATIONS.c.customer_id, NOTIFICATIONS.c.sent_at).where(
            NOTIFICATIONS.c.customer_id.in_(set(customer_ids)),
            NOTIFICATIONS.c.status == NotificationStatus.SENT,
            NOTIFICATIONS.c.sent_at > since,
        )
    )
    return [(customer_id, sent_at) for customer_id, sent_at in rows]


def contact_fields(conn: Connection, customer_ids: Iterable[str]) -> dict[str, RowMapping]:
    """Customer id -> its `timezone` and `tags` (what quiet hours need), for claims that did not join them."""
    return {
        r["id"]: r
        for r in conn.execute(
            select(CUSTOMERS.c.id, CUSTOMERS.c.timezone, CUSTOMERS.c.tags).where(CUSTOMERS.c.id.in_(set(customer_ids)))
        ).mappings()
    }


def renew_leases(conn: Connection, notification_ids: Collection[int], until: datetime) -> None:
    """A live sender keeps its claims: the rows among these still `sending` are leased until `until`."""
    conn.execute(
        update(NOTIFICATIONS)
        .where(NOTIFICATIONS.c.id.in_(list(notification_ids)), NOTIFICATIONS.c.status == NotificationStatus.SENDING)
        .values(claimed_until=until)
    )


def hold_back(conn: Connection, notification_id: int, until: datetime, reason: str | None = None) -> None:
    """Put a claimed row back, due at `until`; holding a message is not a delivery attempt, so the claim's
    attempt is given back. `reason` is kept as "held: REASON" (what `dunning outbox` shows) until it goes."""
    values: dict[str, Any] = {"status": NotificationStatus.PENDING, "due_at": until, "claimed_until": None}
    if reason is not None:
        values["error"] = f"{HELD_PREFIX}{reason}"
    conn.execute(
        update(NOTIFICATIONS)
        .where(NOTIFICATIONS.c.id == notification_id)
        .values(**values, attempts=NOTIFICATIONS.c.attempts - 1)
    )


# -- recording ---------------------------------------------------------------------------------------------


def record_outcome(conn: Connection, notification_id: int, values: Mapping[str, Any]) -> bool:
    """Settle a claimed row with its outcome (`values`: status, error, sent_at …), only if it is still being
    sent by us — a paid invoice's notice may have been cancelled meanwhile. Whether it was settled."""
    result = conn.execute(
        update(NOTIFICATIONS)
        .where(NOTIFICATIONS.c.id == notification_id, NOTIFICATIONS.c.status == NotificationStatus.SENDING)
        .values(**values)
    )
    return bool(result.rowcount)
