"""Reads behind the web workspace's pages (engine.web.pages): the worklist, one invoice's or customer's
header, the approvals queue, the outbox's trouble list, the dashboard's counters and the customer view.

Only reads; every change goes through the use cases (engine.actions, engine.tasks, engine.claims).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

from sqlalchemy import and_, bindparam, func, literal, or_, select

from engine.errors import NotFound
from engine.policy.model import CLOSED_STATES
from engine.store import browse
from engine.store.database import Repository
from engine.store.models import Commitment, Customer, Event, Invoice, Notification, PolicyVersion, Sweep, Task

INVOICES = Invoice.__table__  # type: ignore[attr-defined]
CUSTOMERS = Customer.__table__  # type: ignore[attr-defined]
COMMITMENTS = Commitment.__table__  # type: ignore[attr-defined]
EVENTS = Event.__table__  # type: ignore[attr-defined]
NOTIFICATIONS = Notification.__table__  # type: ignore[attr-defined]
SWEEPS = Sweep.__table__  # type: ignore[attr-defined]
TASKS = Task.__table__  # type: ignore[attr-defined]

CLOSED = tuple(sorted(CLOSED_STATES))
#: A broken promise stays at the top of the worklist this long.
BROKEN_RECENT_DAYS = 30
BROKEN_KINDS = ("promise_broken", "installment_missed")

_INVOICE_COLUMNS = (
    INVOICES.c.id,
    INVOICES.c.number,
    INVOICES.c.customer_id,
    INVOICES.c.stage,
    INVOICES.c.policy,
    INVOICES.c.currency,
    INVOICES.c.amount,
    INVOICES.c.open_amount,
    INVOICES.c.issued_on,
    INVOICES.c.due_on,
    INVOICES.c.awaiting_stage,
    INVOICES.c.stage_entered_at,
    INVOICES.c.tags,
    CUSTOMERS.c.name.label("customer_name"),
    CUSTOMERS.c.owner,
)


def _closed_stages(closed: Iterable[str]) -> tuple[str, ...]:
    return tuple(closed) or CLOSED


def _days_overdue(repo: Repository, today: date) -> Any:
    """today − due_on in days, in the database's own date arithmetic (for ordering)."""
    if repo.url.startswith("sqlite"):
        return func.julianday(literal(today.isoformat())) - func.julianday(INVOICES.c.due_on)
    return literal(today) - INVOICES.c.due_on


def worklist(
    repo: Repository,
    *,
    today: date,
    owner: str | None,
    closed: Iterable[str] = CLOSED,
    limit: int = 100,
    offset: int = 0,
) -> list[dict[str, Any]]:
    """The open invoices a collector should act on, most urgent first: a promise broken in the last
    BROKEN_RECENT_DAYS days, then a promise (or installment) due by today, then amount × days overdue —
    the `limit` of them from position `offset` on (a page).

    Each row: the invoice and customer columns, `days_overdue`, `flag` ("broken", "promise_due" or None),
    `promise` (the open commitment due soonest) and `task_id` (an open task listing the invoice, if any).
    The flagged invoices are few and found through their events and commitments; the rest are ranked by
    the database on the index ix_invoices_worklist, one page at a time."""
    closed = _closed_stages(closed)
    # the rows of invoices already known to be open and the owner's
    rows_of = select(*_INVOICE_COLUMNS).join(CUSTOMERS, CUSTOMERS.c.id == INVOICES.c.customer_id)
    since = datetime.combine(today - timedelta(days=BROKEN_RECENT_DAYS), datetime.min.time(), tzinfo=timezone.utc)
    with repo.read() as session:
        conn = session.connection()
        broken = {
            row[0]: row[1]
            for row in conn.execute(
                _of_open_invoices(
                    select(EVENTS.c.invoice_id, func.max(EVENTS.c.at)).join(
                        INVOICES, INVOICES.c.id == EVENTS.c.invoice_id
                    ),
                    closed,
                    owner,
                )
                .where(EVENTS.c.kind.in_(BROKEN_KINDS), EVENTS.c.at >= since)
                .group_by(EVENTS.c.invoice_id)
            )
        }
        promises: dict[int, dict[str, Any]] = {}
        for row in conn.execute(
            _of_open_invoices(
                select(COMMITMENTS).join(INVOICES, INVOICES.c.id == COMMITMENTS.c.invoice_id), closed, owner
            )
            .where(COMMITMENTS.c.status == "open")
            .order_by(COMMITMENTS.c.due_on)
        ).mappings():
            promises.setdefault(row["invoice_id"], dict(row))
        due_ids = [i for i, p in promises.items() if p["due_on"] <= today]
        flagged_rows = (
            conn.execute(rows_of.where(INVOICES.c.id.in_(list(broken) + due_ids))).mappings().all()
            if broken or due_ids
            else []
        )
        flagged = sorted(
            # a broken promise superseded by a newer one, not yet due, is ranked with the rest
            (item for item in (_worklist_row(row, today, promises, broken) for row in flagged_rows) if item["flag"]),
            key=lambda r: (WORKLIST_ORDER[r["flag"]], -(r["open_amount"] * max(r["days_overdue"], 0)), r["id"]),
        )
        page = flagged[offset : offset + limit]
        if len(page) < limit:
            # The rest in the database's ranking (the flagged ones are on the pages before): ranked on the
            # index alone (it holds every column the ranking reads), then the page's rows fetched.
            ranked = _of_open_invoices(select(INVOICES.c.id), closed, owner).where(INVOICES.c.due_on < today)
            if flagged:
                ranked = ranked.where(INVOICES.c.id.not_in([r["id"] for r in flagged]))
            ids = (
                conn.execute(
                    ranked.order_by((INVOICES.c.open_amount * _days_overdue(repo, today)).desc(), INVOICES.c.id)
                    .offset(max(offset - len(flagged), 0))
                    .limit(limit - len(page))
                )
                .scalars()
                .all()
            )
            found = {row["id"]: row for row in conn.execute(rows_of.where(INVOICES.c.id.in_(ids))).mappings()}
            page += [_worklist_row(found[i], today, promises, broken) for i in ids]
        on_page = {r["id"] for r in page}
        tasks = (
            conn.execute(
                select(TASKS.c.id, TASKS.c.invoice_ids, TASKS.c.kind)
                .where(TASKS.c.status == "open", *([TASKS.c.owner == owner] if owner else []))
                .order_by(TASKS.c.id)
            ).all()
            if on_page
            else []
        )
    task_of: dict[int, tuple[int, str]] = {}
    for task_id, invoice_ids, kind in tasks:
        for invoice_id in invoice_ids or []:
            if int(invoice_id) in on_page:
                task_of.setdefault(int(invoice_id), (int(task_id), str(kind)))
    for item in page:
        item["task_id"], item["task_kind"] = task_of.get(item["id"], (None, None))
    return page


def _of_open_invoices(query: Any, closed: tuple[str, ...], owner: str | None) -> Any:
    """`query` (reading invoices) narrowed to open invoices of customers `owner` owns (None: anyone's)."""
    query = query.where(INVOICES.c.stage.not_in(closed))
    if owner is None:
        return query
    return query.join(CUSTOMERS, CUSTOMERS.c.id == INVOICES.c.customer_id).where(CUSTOMERS.c.owner == owner)


#: Broken promises first, then promises due, then the rest.
WORKLIST_ORDER: dict[str | None, int] = {"broken": 0, "promise_due": 1, None: 2}


def _worklist_row(
    row: Any, today: date, promises: dict[int, dict[str, Any]], broken: dict[int, datetime]
) -> dict[str, Any]:
    item = dict(row)
    item["days_overdue"] = (today - row["due_on"]).days
    promise = promises.get(row["id"])
    item["promise"] = promise
    last_broken = broken.get(row["id"])
    # a promise made after the break supersedes it
    if last_broken is not None and not (promise and promise["created_at"] > last_broken):
        item["flag"] = "broken"
    elif promise is not None and promise["due_on"] <= today:
        item["flag"] = "promise_due"
    else:
        item["flag"] = None
    return item


#: Built once, as the other hot reads of the web (engine.store says why).
_HEADER = (
    select(*_INVOICE_COLUMNS, INVOICES.c.paused_days)
    .join(CUSTOMERS, CUSTOMERS.c.id == INVOICES.c.customer_id)
    .where(INVOICES.c.number == bindparam("number"))
)
_OPEN_COMMITMENTS = (
    select(COMMITMENTS)
    .where(COMMITMENTS.c.invoice_id == bindparam("invoice_id"), COMMITMENTS.c.status == "open")
    .order_by(COMMITMENTS.c.due_on)
)


def invoice_header(repo: Repository, number: str) -> dict[str, Any] | None:
    """The invoice with its customer's name and owner, and its open commitments; None if unknown."""
    with repo.read() as session:
        conn = session.connection()
        row = conn.execute(_HEADER, {"number": number}).mappings().first()
        if row is None:
            return None
        commitments = [dict(r) for r in conn.execute(_OPEN_COMMITMENTS, {"invoice_id": row["id"]}).mappings()]
    return {**dict(row), "commitments": commitments}


def customer_record(repo: Repository, customer_id: str) -> dict[str, Any] | None:
    """The customer alone, or None when there is none (browse.customer_record, for a page that says so)."""
    try:
        return browse.customer_record(repo, customer_id)
    except NotFound:
        return None


def customer_invoices(
    repo: Repository, customer_id: str, *, open_only: bool, closed: Iterable[str] = CLOSED
) -> list[dict[str, Any]]:
    """The customer's invoices (or only the open ones), by due date."""
    query = (
        select(*_INVOICE_COLUMNS)
        .join(CUSTOMERS, CUSTOMERS.c.id == INVOICES.c.customer_id)
        .where(INVOICES.c.customer_id == customer_id)
        .order_by(INVOICES.c.due_on, INVOICES.c.id)
    )
    if open_only:
        query = query.where(INVOICES.c.stage.not_in(_closed_stages(closed)))
    with repo.read() as session:
        return [dict(r) for r in session.connection().execute(query).mappings()]


def awaiting_approval(repo: Repository, *, closed: Iterable[str] = CLOSED, limit: int = 500) -> list[dict[str, Any]]:
    """Invoices an `approval: required` stage is waiting on, oldest request first."""
    with repo.read() as session:
        conn = session.connection()
        rows = [
            dict(r)
            for r in conn.execute(
                select(*_INVOICE_COLUMNS)
                .join(CUSTOMERS, CUSTOMERS.c.id == INVOICES.c.customer_id)
                .where(INVOICES.c.awaiting_stage.is_not(None), INVOICES.c.stage.not_in(_closed_stages(closed)))
                .order_by(INVOICES.c.id)
                .limit(limit)
            ).mappings()
        ]
        ids = [r["id"] for r in rows]
        requested = (
            {
                r[0]: r[1]
                for r in conn.execute(
                    select(EVENTS.c.invoice_id, func.max(EVENTS.c.at))
                    .where(EVENTS.c.kind == "approval_requested", EVENTS.c.invoice_id.in_(ids))
                    .group_by(EVENTS.c.invoice_id)
                )
            }
            if ids
            else {}
        )
    for row in rows:
        row["requested_at"] = requested.get(row["id"])
    return sorted(rows, key=lambda r: (r["requested_at"] is None, r["requested_at"] or 0, r["id"]))


def outbox_trouble(
    repo: Repository, *, now: datetime, kind: str | None = None, limit: int = 200
) -> list[dict[str, Any]]:
    """Notifications needing a look: `failed`, `held` (pending, not tried yet, due later than queued: quiet
    hours or the contact cap moved it) and `retrying` (pending after a failed attempt), newest first."""
    held = and_(
        NOTIFICATIONS.c.status == "pending",
        NOTIFICATIONS.c.attempts == 0,
        NOTIFICATIONS.c.due_at > NOTIFICATIONS.c.created_at,
        NOTIFICATIONS.c.due_at > now,
    )
    retrying = and_(NOTIFICATIONS.c.status == "pending", NOTIFICATIONS.c.attempts > 0)
    failed = NOTIFICATIONS.c.status == "failed"
    chosen = {"failed": failed, "held": held, "retrying": retrying}.get(kind or "", or_(failed, held, retrying))
    with repo.read() as session:
        rows = (
            session.connection()
            .execute(
                select(NOTIFICATIONS, INVOICES.c.number)
                .join(INVOICES, INVOICES.c.id == NOTIFICATIONS.c.invoice_id, isouter=True)
                .where(chosen)
                .order_by(NOTIFICATIONS.c.id.desc())
                .limit(limit)
            )
            .mappings()
            .all()
        )
    out = []
    for r in rows:
        state = "failed" if r["status"] == "failed" else ("retrying" if r["attempts"] else "held")
        out.append(
            {
                "id": r["id"],
                "invoice": r["number"],
                "customer_id": r["customer_id"],
                "stage": r["stage"],
                "channel": r["channel"],
                "recipient": r["recipient"],
                "state": state,
                "attempts": r["attempts"],
                "error": r["error"],
                "created_at": r["created_at"],
                "next_try": r["next_attempt_at"] if state == "retrying" else (r["due_at"] if state == "held" else None),
            }
        )
    return out


def outbox_counts(repo: Repository, *, now: datetime) -> dict[str, int]:
    """How many notifications are failed, held and retrying (the dashboard's outbox health)."""
    counts = {"failed": 0, "held": 0, "retrying": 0}
    with repo.read() as session:
        conn = session.connection()
        counts["failed"] = int(
            conn.execute(select(func.count()).where(NOTIFICATIONS.c.status == "failed")).scalar() or 0
        )
        counts["retrying"] = int(
            conn.execute(
                select(func.count()).where(NOTIFICATIONS.c.status == "pending", NOTIFICATIONS.c.attempts > 0)
            ).scalar()
            or 0
        )
        counts["held"] = int(
            conn.execute(
                select(func.count()).where(
                    NOTIFICATIONS.c.status == "pending",
                    NOTIFICATIONS.c.attempts == 0,
                    NOTIFICATIONS.c.due_at > NOTIFICATIONS.c.created_at,
                    NOTIFICATIONS.c.due_at > now,
                )
            ).scalar()
            or 0
        )
    return counts


def last_sweep(repo: Repository) -> dict[str, Any] | None:
    with repo.read() as session:
        row = session.connection().execute(select(SWEEPS).order_by(SWEEPS.c.as_of.desc()).limit(1)).mappings().first()
    return dict(row) if row is not None else None


def approvals_waiting(repo: Repository, *, closed: Iterable[str] = CLOSED) -> int:
    with repo.read() as session:
        return int(
            session.connection()
            .execute(
                select(func.count()).where(
                    INVOICES.c.awaiting_stage.is_not(None), INVOICES.c.stage.not_in(_closed_stages(closed))
                )
            )
            .scalar()
            or 0
        )


def open_by_currency(repo: Repository, *, today: date, closed: Iterable[str] = CLOSED) -> list[dict[str, Any]]:
    """Per currency: open invoices and amount, and the overdue part (due before today)."""
    closed = _closed_stages(closed)
    with repo.read() as session:
        conn = session.connection()
        totals = conn.execute(
            select(INVOICES.c.currency, func.count(), func.sum(INVOICES.c.open_amount))
            .where(INVOICES.c.stage.not_in(closed))
            .group_by(INVOICES.c.currency)
            .order_by(INVOICES.c.currency)
        ).all()
        overdue = {
            r[0]: (r[1], r[2])
            for r in conn.execute(
                select(INVOICES.c.currency, func.count(), func.sum(INVOICES.c.open_amount))
                .where(INVOICES.c.stage.not_in(closed), INVOICES.c.due_on < today)
                .group_by(INVOICES.c.currency)
            )
        }
    out = []
    for currency, count, amount in totals:
        late_count, late_amount = overdue.get(currency, (0, None))
        out.append(
            {
                "currency": currency,
                "invoices": int(count),
                "open": _money(repo, amount),
                "overdue_invoices": int(late_count),
                "overdue": _money(repo, late_amount),
            }
        )
    return out


def _money(repo: Repository, value: Any) -> Decimal:
    """A SUM over a Money column (already converted by the column's type); None when nothing was summed."""
    return Decimal(0) if value is None else Decimal(value)


def verify_audit(repo: Repository, expect_head: str | None = None) -> Any:
    """`dunning audit verify` for the audit page: the chain checked from the first event (a VerifyReport)."""
    from engine.store.events import verify_chain

    with repo.read() as session:
        return verify_chain(session.connection(), expect_head)


def policy_versions(repo: Repository) -> list[dict[str, Any]]:
    """Every policy text ever used (newest first), without the text itself."""
    table = PolicyVersion.__table__  # type: ignore[attr-defined]
    with repo.read() as session:
        return [
            dict(r)
            for r in session.connection()
            .execute(
                select(table.c.id, table.c.name, table.c.sha256, table.c.path, table.c.first_used_at).order_by(
                    table.c.first_used_at.desc(), table.c.id.desc()
                )
            )
            .mappings()
        ]


def policy_version(repo: Repository, version_id: int) -> dict[str, Any] | None:
    table = PolicyVersion.__table__  # type: ignore[attr-defined]
    with repo.read() as session:
        row = session.connection().execute(select(table).where(table.c.id == version_id)).mappings().first()
    return dict(row) if row is not None else None
