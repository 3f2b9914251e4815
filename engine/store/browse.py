"""The list queries of the web workspace and the REST API: filters and keyset (cursor) pagination over
invoices, customers, tasks and the outbox, plus the look-ups authorisation needs (who owns what).

Every list returns rows in id order after `after_id` (the cursor), at most `limit` of them; the caller
turns the last id into the next cursor.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from sqlalchemy import Integer, String, bindparam, func, or_, select
from sqlalchemy.exc import OperationalError

from engine.errors import NotFound
from engine.policy.model import CLOSED_STATES
from engine.store.database import Repository
from engine.store.models import Customer, Event, Invoice, Notification, Task
from engine.store.queries import customer_exists, policy_versions  # the CLI's look-ups, shared

INVOICES = Invoice.__table__  # type: ignore[attr-defined]
CUSTOMERS = Customer.__table__  # type: ignore[attr-defined]
TASKS = Task.__table__  # type: ignore[attr-defined]
NOTIFICATIONS = Notification.__table__  # type: ignore[attr-defined]
EVENTS = Event.__table__  # type: ignore[attr-defined]


def is_database_busy(exc: BaseException) -> bool:
    """Did a statement give up waiting for SQLite's write lock (another process is writing)?"""
    return isinstance(exc, OperationalError) and "locked" in str(exc.orig).lower()


def _rows(repo: Repository, query: Any, values: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """The rows of `query` (with these bound values), each a plain dict, read in a snapshot of their own."""
    with repo.read() as session:
        result = session.connection().execute(query, values)
        keys = tuple(result.keys())
        # zipping the keys once is a fifth cheaper than a RowMapping per row (50 invoices: 0.82 ms, 1.05 ms)
        return [dict(zip(keys, row, strict=True)) for row in result]


def _one(repo: Repository, query: Any, missing: str, values: dict[str, Any] | None = None) -> dict[str, Any]:
    """The first row of `query` (with these bound values); NotFound(`missing`) when there is none."""
    with repo.read() as session:
        row = session.connection().execute(query, values).mappings().first()
    if row is None:
        raise NotFound(missing)
    return dict(row)


def _after(query: Any, key: Any, after: Any, limit: int) -> Any:
    """One page of `query`: at most `limit` rows whose `key` comes after `after` (the cursor), in key order."""
    return query.where(key > after).order_by(key).limit(limit)


def _no_invoice(number: str) -> str:
    return f"no invoice numbered {number!r}; `dunning status` lists the open ones"


def _by_number(columns: tuple[Any, ...]) -> Any:
    """The statement reading these columns of one invoice (and of its customer), by `:number`."""
    query = select(*columns).join(CUSTOMERS, CUSTOMERS.c.id == INVOICES.c.customer_id)
    return query.where(INVOICES.c.number == bindparam("number"))


def _like(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


# -- who owns what (authorisation) ---------------------------------------------------------------------------


_SUBJECT_BY_NUMBER = _by_number(
    (INVOICES.c.id, INVOICES.c.number, INVOICES.c.customer_id, INVOICES.c.stage, CUSTOMERS.c.owner)
)


def invoice_subject(repo: Repository, number: str) -> dict[str, Any]:
    """The invoice's id, customer, customer owner and stage; NotFound when there is none."""
    return _one(repo, _SUBJECT_BY_NUMBER, _no_invoice(number), {"number": number})


def task_subject(repo: Repository, task_id: int) -> dict[str, Any]:
    query = (
        select(TASKS.c.id, TASKS.c.owner, TASKS.c.customer_id, TASKS.c.status, CUSTOMERS.c.owner.label("c_owner"))
        .join(CUSTOMERS, CUSTOMERS.c.id == TASKS.c.customer_id, isouter=True)
        .where(TASKS.c.id == task_id)
    )
    return _one(repo, query, f"no task {task_id}; `dunning tasks` lists the open ones")


def notification_subject(repo: Repository, notification_id: int) -> dict[str, Any]:
    query = select(NOTIFICATIONS.c.id, NOTIFICATIONS.c.status, NOTIFICATIONS.c.invoice_id, NOTIFICATIONS.c.key)
    return _one(
        repo,
        query.where(NOTIFICATIONS.c.id == notification_id),
        f"no notification {notification_id}; `dunning outbox` lists them",
    )


_LAST_EVENT = select(func.max(EVENTS.c.id))


def last_event_id(repo: Repository) -> int:
    """The id of the latest event: every change to the book appends one, so results read at the same id
    are still exact (what the pages' caches key on)."""
    with repo.read() as session:
        return int(session.connection().execute(_LAST_EVENT).scalar() or 0)


def events_after(
    repo: Repository, after_id: int, *, invoice_ids: list[int] | None = None, actor: str | None = None
) -> list[dict[str, Any]]:
    """The events recorded after event `after_id` (of these invoices, by this actor), in order."""
    query = select(EVENTS).where(EVENTS.c.id > after_id).order_by(EVENTS.c.id)
    if invoice_ids is not None:
        query = query.where(EVENTS.c.invoice_id.in_(invoice_ids))
    if actor is not None:
        query = query.where(EVENTS.c.actor == actor)
    return _rows(repo, query)


# -- lists ---------------------------------------------------------------------------------------------------

INVOICE_COLUMNS = (
    INVOICES.c.id,
    INVOICES.c.number,
    INVOICES.c.customer_id,
    INVOICES.c.stage,
    INVOICES.c.open_amount,
    INVOICES.c.amount,
    INVOICES.c.currency,
    INVOICES.c.policy,
    INVOICES.c.due_on,
    INVOICES.c.issued_on,
    INVOICES.c.awaiting_stage,
    INVOICES.c.stage_entered_at,
    INVOICES.c.closed_at,
    INVOICES.c.tags,
    CUSTOMERS.c.name.label("customer_name"),
    CUSTOMERS.c.owner,
)


def list_invoices(
    repo: Repository,
    *,
    stage: str | None = None,
    policy: str | None = None,
    owner: str | None = None,
    customer: str | None = None,
    status: str = "open",
    q: str | None = None,
    awaiting: bool = False,
    after_id: int = 0,
    limit: int = 50,
) -> list[dict[str, Any]]:
    """Invoices with their customer's name and owner, filtered, in id order after `after_id`."""
    values = {"stage": stage, "policy": policy, "owner": owner, "customer": customer}
    query = _invoice_list(status, bool(q), awaiting, *(value is not None for value in values.values()))
    given = {name: value for name, value in values.items() if value is not None}
    return _rows(repo, query, {**given, "after": after_id, "limit": limit, "pattern": _like(q) if q else None})


@lru_cache(maxsize=256)
def _invoice_list(
    status: str, search: bool, awaiting: bool, stage: bool, policy: bool, owner: bool, customer: bool
) -> Any:
    """The statement of one shape of `list_invoices` (which filters are given), values bound at execution
    (engine.store says why)."""
    query = (
        select(*INVOICE_COLUMNS)
        .join(CUSTOMERS, CUSTOMERS.c.id == INVOICES.c.customer_id)
        .where(INVOICES.c.id > bindparam("after"))
        .order_by(INVOICES.c.id)
        .limit(bindparam("limit", type_=Integer))
    )
    if status == "open":
        query = query.where(INVOICES.c.stage.not_in(CLOSED_STATES))
    elif status == "closed":
        query = query.where(INVOICES.c.stage.in_(CLOSED_STATES))
    if stage:
        query = query.where(INVOICES.c.stage == bindparam("stage"))
    if policy:
        query = query.where(INVOICES.c.policy == bindparam("policy"))
    if owner:
        query = query.where(CUSTOMERS.c.owner == bindparam("owner"))
    if customer:
        query = query.where(INVOICES.c.customer_id == bindparam("customer"))
    if awaiting:
        query = query.where(INVOICES.c.awaiting_stage.is_not(None))
    if search:
        pattern = bindparam("pattern", type_=String())
        query = query.where(
            or_(
                INVOICES.c.number.ilike(pattern, escape="\\"),
                CUSTOMERS.c.name.ilike(pattern, escape="\\"),
                INVOICES.c.customer_id.ilike(pattern, escape="\\"),
            )
        )
    return query


_ROW_BY_NUMBER = _by_number(
    (
        *INVOICE_COLUMNS,
        INVOICES.c.resume_stage,
        INVOICES.c.paused_since,
        INVOICES.c.paused_days,
        INVOICES.c.stage_repeats,
        INVOICES.c.last_notice_at,
    )
)


def invoice_row(repo: Repository, number: str) -> dict[str, Any]:
    """The list's columns of invoice `number` plus its pause state; NotFound when there is none."""
    return _one(repo, _ROW_BY_NUMBER, _no_invoice(number), {"number": number})


def list_customers(
    repo: Repository, *, owner: str | None = None, q: str | None = None, after_id: str = "", limit: int = 50
) -> list[dict[str, Any]]:
    """Customers in id order after `after_id` (ids are text), with their open invoice count."""
    open_count = (
        select(func.count())
        .where(INVOICES.c.customer_id == CUSTOMERS.c.id, INVOICES.c.stage.not_in(CLOSED_STATES))
        .correlate(CUSTOMERS)
        .scalar_subquery()
    )
    query = _after(select(CUSTOMERS, open_count.label("open_invoices")), CUSTOMERS.c.id, after_id, limit)
    if owner is not None:
        query = query.where(CUSTOMERS.c.owner == owner)
    if q:
        pattern = _like(q)
        query = query.where(
            or_(CUSTOMERS.c.id.ilike(pattern, escape="\\"), CUSTOMERS.c.name.ilike(pattern, escape="\\"))
        )
    return _rows(repo, query)


def customer_row(repo: Repository, customer_id: str) -> dict[str, Any]:
    """The customer and its open amount per currency; NotFound when there is none."""
    with repo.read() as session:
        conn = session.connection()
        row = _customer(conn, customer_id)
        totals = conn.execute(
            select(INVOICES.c.currency, func.count(), func.sum(INVOICES.c.open_amount))
            .where(INVOICES.c.customer_id == customer_id, INVOICES.c.stage.not_in(CLOSED_STATES))
            .group_by(INVOICES.c.currency)
            .order_by(INVOICES.c.currency)
        ).all()
    return {**row, "open": [{"currency": c, "invoices": n, "open_amount": total} for c, n, total in totals]}


def customer_record(repo: Repository, customer_id: str) -> dict[str, Any]:
    """The customer alone (who owns it, how to reach it); NotFound when there is none."""
    with repo.read() as session:
        return _customer(session.connection(), customer_id)


_CUSTOMER_BY_ID = select(CUSTOMERS).where(CUSTOMERS.c.id == bindparam("id"))


def _customer(conn: Any, customer_id: str) -> dict[str, Any]:
    row = conn.execute(_CUSTOMER_BY_ID, {"id": customer_id}).mappings().first()
    if row is None:
        raise NotFound(f"no customer with id {customer_id!r}; check the id in your customers file")
    return dict(row)


def list_tasks(
    repo: Repository,
    *,
    owner: str | None = None,
    kind: str | None = None,
    status: str | None = "open",
    after_id: int = 0,
    limit: int = 50,
) -> list[dict[str, Any]]:
    query = _after(select(TASKS), TASKS.c.id, after_id, limit)
    if owner is not None:
        query = query.where(TASKS.c.owner == owner)
    if kind is not None:
        query = query.where(TASKS.c.kind == kind)
    if status is not None:
        query = query.where(TASKS.c.status == status)
    return _rows(repo, query)


def list_outbox(
    repo: Repository,
    *,
    status: str | None = None,
    invoice: str | None = None,
    channel: str | None = None,
    after_id: int = 0,
    limit: int = 50,
) -> list[dict[str, Any]]:
    query = _after(
        select(NOTIFICATIONS, INVOICES.c.number).join(
            INVOICES, INVOICES.c.id == NOTIFICATIONS.c.invoice_id, isouter=True
        ),
        NOTIFICATIONS.c.id,
        after_id,
        limit,
    )
    if status is not None:
        query = query.where(NOTIFICATIONS.c.status == status)
    if invoice is not None:
        query = query.where(INVOICES.c.number == invoice)
    if channel is not None:
        query = query.where(NOTIFICATIONS.c.channel == channel)
    return _rows(repo, query)


__all__ = [
    "customer_exists",
    "customer_record",
    "customer_row",
    "events_after",
    "invoice_number",
    "invoice_row",
    "invoice_subject",
    "is_database_busy",
    "last_event_id",
    "list_customers",
    "list_invoices",
    "list_outbox",
    "list_tasks",
    "notification_subject",
    "policy_versions",
    "requeue_failed",
    "task_subject",
]


# -- the one write the outbox page needs ---------------------------------------------------------------------


def requeue_failed(repo: Repository, notification_id: int, actor: str, now: Any) -> dict[str, Any]:
    """Put a failed notification back in the outbox, due now with a fresh attempt count, and record a
    `retry` event by `actor`; returns that event. Only failed notifications may be retried."""
    from engine.errors import IllegalTransition
    from engine.store.events import append_events
    from engine.store.models import NotificationStatus

    with repo.write() as session:
        conn = session.connection()
        row = conn.execute(select(NOTIFICATIONS).where(NOTIFICATIONS.c.id == notification_id)).mappings().first()
        if row is None:
            raise NotFound(f"no notification {notification_id}; `dunning outbox` lists them")
        if row["status"] != NotificationStatus.FAILED:
            raise IllegalTransition(
                f"notification {notification_id} is {row['status']}, not failed; only failed "
                "notifications can be retried"
            )
        conn.execute(
            NOTIFICATIONS.update()
            .where(NOTIFICATIONS.c.id == notification_id)
            .values(
                status=NotificationStatus.PENDING,
                attempts=0,
                due_at=now,
                next_attempt_at=None,
                claimed_until=None,
                error=None,
            )
        )
        event = {
            "at": now,
            "recorded_at": now,
            "kind": "retry",
            "invoice_id": row["invoice_id"],
            "customer_id": row["customer_id"],
            "actor": actor,
            "data": {
                "notification": notification_id,
                "key": row["key"],
                "channel": row["channel"],
                "previous_error": row["error"],
            },
        }
        append_events(conn, [event])
    return event


def invoice_number(repo: Repository, invoice_id: int) -> str | None:
    with repo.read() as session:
        return session.connection().execute(select(INVOICES.c.number).where(INVOICES.c.id == invoice_id)).scalar()
