"""Invoices in collection: what a stage move, a closing and a wake-up write, and the reads bound to them.

The collection state of an invoice is a handful of columns that must move together. `entered_stage` and
`closed` are the only spellings of the two moves every writer makes (the sweep, collector actions, imports),
so a paid invoice and a written-off one are left in exactly the same shape.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    Connection,
    Row,
    RowMapping,
    Select,
    String,
    Table,
    bindparam,
    case,
    cast,
    func,
    or_,
    select,
    type_coerce,
    update,
)

from engine.currencies import in_minor_units
from engine.policy.model import CLOSED_STATES, PAUSED_STATES
from engine.store.locks import for_update
from engine.store.models import Customer, Invoice, Money

INVOICES: Table = Invoice.__table__  # type: ignore[attr-defined]
CUSTOMERS: Table = Customer.__table__  # type: ignore[attr-defined]
ZERO = Decimal(0)

#: An invoice with its customer's fields (`c_…`): what a sweep decides on, one row per invoice.
SWEEP_COLUMNS = (
    INVOICES.c.id,
    INVOICES.c.number,
    INVOICES.c.customer_id,
    INVOICES.c.currency,
    INVOICES.c.amount,
    INVOICES.c.open_amount,
    INVOICES.c.issued_on,
    INVOICES.c.due_on,
    INVOICES.c.tags,
    INVOICES.c.stage,
    INVOICES.c.policy,
    INVOICES.c.stage_entered_at,
    INVOICES.c.stage_repeats,
    INVOICES.c.last_notice_at,
    INVOICES.c.next_action_on,
    INVOICES.c.paused_days,
    INVOICES.c.escalate_now,
    CUSTOMERS.c.name.label("c_name"),
    CUSTOMERS.c.email.label("c_email"),
    CUSTOMERS.c.phone.label("c_phone"),
    CUSTOMERS.c.address.label("c_address"),
    CUSTOMERS.c.credit_grade.label("c_credit_grade"),
    CUSTOMERS.c.segment.label("c_segment"),
    CUSTOMERS.c.owner.label("c_owner"),
    CUSTOMERS.c.language.label("c_language"),
    CUSTOMERS.c.timezone.label("c_timezone"),
    CUSTOMERS.c.tags.label("c_tags"),
)

#: A sweep's row plus the pause and approval state a collector action needs.
ACTION_COLUMNS = (
    *SWEEP_COLUMNS,
    *(
        column
        for column in (
            INVOICES.c.resume_stage,
            INVOICES.c.paused_since,
            INVOICES.c.paused_days,
            INVOICES.c.awaiting_stage,
        )
        if column.name not in {c.name for c in SWEEP_COLUMNS}
    ),
)


# -- the two moves -------------------------------------------------------------------------------------------


def entered_stage(stage: str, at: datetime, *, notified: bool) -> dict[str, Any]:
    """The columns of an invoice entering `stage` at `at`: no repeats yet, and its last notice now when the
    entry sends one (`notified`), else none in this stage."""
    return {"stage": stage, "stage_entered_at": at, "stage_repeats": 0, "last_notice_at": at if notified else None}


def closed(stage: str, at: datetime) -> dict[str, Any]:
    """The columns of an invoice closed at `at` (`paid` or `written_off`): the stage entered, no pause to
    resume, no approval awaited, no escalation flagged, and nothing for the next sweep to wait for.

    The one definition of closing: a payment settling the open amount, an amount lowered to what was paid
    and a write-off all write exactly these (plus their own `open_amount` and bookkeeping)."""
    return {
        **entered_stage(stage, at, notified=False),
        "closed_at": at,
        "resume_stage": None,
        "paused_since": None,
        "awaiting_stage": None,
        "escalate_now": False,
        "next_action_on": None,
    }


def reopened(stage: str, at: datetime) -> dict[str, Any]:
    """The columns of a closed invoice back in collection at `stage` (its amount was raised above what was paid)."""
    return {**closed(stage, at), "closed_at": None}


# -- reads bound to the writes -------------------------------------------------------------------------------


def sweep_chunk(
    conn: Connection, *, after_id: int, limit: int, due_by: date | None = None, changed_since: datetime | None = None
) -> Sequence[RowMapping]:
    """The next `limit` invoices a sweep decides on (open, not paused, not awaiting approval), id order after
    `after_id`. With `due_by` (a selective sweep) only those whose next action day has come, never computed,
    or written since `changed_since` (the last sweep: the safety net)."""
    return conn.execute(_sweep_query(SWEEP_COLUMNS, after_id, limit, due_by, changed_since)).mappings().all()


#: `sweep_rows`' columns: SWEEP_COLUMNS with the two tag lists as their stored JSON text.
SWEEP_ROW_COLUMNS = tuple(
    cast(column.element if column.name == "c_tags" else column, String).label(column.name)
    if column.name in ("tags", "c_tags")
    else column
    for column in SWEEP_COLUMNS
)
#: Position of each field in a `sweep_rows` row, by name.
SWEEP_ROW_INDEX = {column.name: position for position, column in enumerate(SWEEP_ROW_COLUMNS)}


def sweep_rows(
    conn: Connection, *, after_id: int, limit: int, due_by: date | None = None, changed_since: datetime | None = None
) -> Sequence[Row[Any]]:
    """`sweep_chunk` as plain rows (fields by position: `SWEEP_ROW_INDEX`), for the sweep's hot path: tags
    come as their JSON text, decoded only by a caller whose policies read them."""
    return conn.execute(_sweep_query(SWEEP_ROW_COLUMNS, after_id, limit, due_by, changed_since)).all()


def _sweep_query(
    columns: Sequence[Any], after_id: int, limit: int, due_by: date | None, changed_since: datetime | None
) -> Any:
    query = (
        select(*columns)
        .join(CUSTOMERS, CUSTOMERS.c.id == INVOICES.c.customer_id)
        .where(INVOICES.c.stage.not_in(CLOSED_STATES | PAUSED_STATES), INVOICES.c.id > after_id)
        .where(INVOICES.c.awaiting_stage.is_(None))  # waits for `dunning approve`
        .order_by(INVOICES.c.id)
        .limit(limit)
    )
    if due_by is not None:
        query = query.where(
            or_(
                INVOICES.c.next_action_on.is_(None),
                INVOICES.c.next_action_on <= due_by,
                INVOICES.c.updated_at >= changed_since,
            )
        )
    return query


def for_action(conn: Connection, number: str) -> RowMapping | None:
    """Invoice `number` with its customer's fields and its pause state, locked until commit on PostgreSQL
    (a collector action and a sweep must not both decide on it)."""
    query = for_update(
        conn,
        select(*ACTION_COLUMNS)
        .join(CUSTOMERS, CUSTOMERS.c.id == INVOICES.c.customer_id)
        .where(INVOICES.c.number == number),
        of=INVOICES,
    )
    return conn.execute(query).mappings().first()


# Built once (engine.store says why): `explain` (the web workspace's invoice page) asks for one customer's
# totals per view. The expanding IN renders one placeholder per id as `in_()` did; the sweep passes at most a
# chunk's customers (its chunk size, 5000 by default).
def _totals_statement(of_customers: bool) -> Select[Any]:
    overdue = INVOICES.c.due_on < bindparam("today")
    query = (
        select(
            INVOICES.c.customer_id,
            type_coerce(func.sum(INVOICES.c.open_amount), Money()),
            type_coerce(func.sum(case((overdue, INVOICES.c.open_amount), else_=0)), Money()),
            func.sum(case((overdue, 1), else_=0)),
        )
        .where(INVOICES.c.stage.not_in(CLOSED_STATES))
        .group_by(INVOICES.c.customer_id)
    )
    if of_customers:
        query = query.where(INVOICES.c.customer_id.in_(bindparam("customer_ids", expanding=True)))
    return query


_TOTALS_OF_ALL = _totals_statement(False)
_TOTALS_OF = _totals_statement(True)


def customer_totals(
    conn: Connection, today: date, customer_ids: Collection[str] | None = None
) -> dict[str, tuple[Decimal, Decimal, int]]:
    """Per customer (every one, or just `customer_ids`): open amount, overdue open amount and overdue invoice
    count on `today` — the customer.total_open / total_overdue / overdue_count facts. Shared with explain."""
    if customer_ids is None:
        rows = conn.execute(_TOTALS_OF_ALL, {"today": today})
    else:
        rows = conn.execute(_TOTALS_OF, {"today": today, "customer_ids": list(customer_ids)})
    return {row[0]: (row[1] or ZERO, row[2] or ZERO, int(row[3] or 0)) for row in rows}


def ids_by_number(conn: Connection, numbers: Iterable[str]) -> dict[str, int]:
    """Invoice number -> id, for the numbers that exist."""
    wanted = list(numbers)
    if not wanted:
        return {}
    return {
        number: invoice_id
        for invoice_id, number in conn.execute(
            select(INVOICES.c.id, INVOICES.c.number).where(INVOICES.c.number.in_(wanted))
        )
    }


def stages_by_number(conn: Connection, numbers: Iterable[str]) -> dict[str, str]:
    """Invoice number -> its stage, for the numbers that exist."""
    rows = conn.execute(select(INVOICES.c.number, INVOICES.c.stage).where(INVOICES.c.number.in_(list(numbers))))
    return {str(number): stage for number, stage in rows}


def open_amounts_by_due(conn: Connection, numbers: Iterable[str]) -> list[tuple[str, Decimal]]:
    """(number, open amount in the currency's minor units) of these invoices, oldest due first (how a promise
    over several is spread)."""
    rows = conn.execute(
        select(INVOICES.c.number, INVOICES.c.open_amount, INVOICES.c.currency)
        .where(INVOICES.c.number.in_(list(numbers)))
        .order_by(INVOICES.c.due_on, INVOICES.c.id)
    )
    return [(number, in_minor_units(open_amount, currency)) for number, open_amount, currency in rows]


# -- waking --------------------------------------------------------------------------------------------------


def wake(conn: Connection, *, invoice_ids: Iterable[int] = (), customer_ids: Iterable[str] = ()) -> None:
    """Make the next sweep look at these invoices (or all invoices of these customers) again.

    Call it in the same transaction as any change that could alter a decision: amounts, due dates, tags,
    customer fields, stage moves made outside the sweep.
    """
    invoice_list, customer_list = list(invoice_ids), list(customer_ids)
    if invoice_list:
        conn.execute(update(INVOICES).where(INVOICES.c.id.in_(invoice_list)).values(next_action_on=None))
    if customer_list:
        conn.execute(update(INVOICES).where(INVOICES.c.customer_id.in_(customer_list)).values(next_action_on=None))
