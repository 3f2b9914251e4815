"""What an import reads back before it writes: the existing customers, invoices and payments it refers to.

Read inside the import's own write transaction, so a sweep running at the same time cannot change an invoice
between the check and the write. Keys are looked up in bulk (`IN` lists of a few thousand), never one query
per row. The writes themselves are engine.store.bulk's (one executemany per table and shape).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, RowMapping, Table, func, select, type_coerce
from sqlalchemy.sql import Select

from engine.store.bulk import insert_invoices
from engine.store.models import Customer, Invoice, Money, Payment

CUSTOMERS: Table = Customer.__table__  # type: ignore[attr-defined]
INVOICES: Table = Invoice.__table__  # type: ignore[attr-defined]
PAYMENTS: Table = Payment.__table__  # type: ignore[attr-defined]

#: Keys per `IN (...)` lookup: far below SQLite's 32766 bound parameters, and few round trips.
CHUNK = 5000

#: What an invoice import compares a row with.
_INVOICE_COLUMNS = (
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
)
#: What a payment import needs of the invoice it pays.
_PAID_INVOICE_COLUMNS = (
    INVOICES.c.id,
    INVOICES.c.number,
    INVOICES.c.customer_id,
    INVOICES.c.currency,
    INVOICES.c.open_amount,
    INVOICES.c.stage,
    INVOICES.c.policy,
)


def _select_in(conn: Connection, query: Select[Any], column: Any, keys: Iterable[Any]) -> Iterator[RowMapping]:
    """Rows whose `column` is one of `keys`, a chunk of keys per statement."""
    unique = list(dict.fromkeys(keys))
    for start in range(0, len(unique), CHUNK):
        yield from conn.execute(query.where(column.in_(unique[start : start + CHUNK]))).mappings()


def customers_by_id(conn: Connection, ids: Iterable[str]) -> dict[str, RowMapping]:
    """The stored customers among `ids`, whole rows."""
    return {row["id"]: row for row in _select_in(conn, select(CUSTOMERS), CUSTOMERS.c.id, ids)}


def known_customer_ids(conn: Connection, ids: Iterable[str]) -> set[str]:
    return {row["id"] for row in _select_in(conn, select(CUSTOMERS.c.id), CUSTOMERS.c.id, ids)}


def invoices_by_number(conn: Connection, numbers: Iterable[str]) -> dict[str, RowMapping]:
    """The stored invoices among `numbers`: what an invoice row is compared with."""
    return {row["number"]: row for row in _select_in(conn, select(*_INVOICE_COLUMNS), INVOICES.c.number, numbers)}


def payable_invoices(conn: Connection, numbers: Iterable[str]) -> dict[str, dict[str, Any]]:
    """The stored invoices among `numbers` as mutable dicts: what a payment row is checked against."""
    return {
        row["number"]: dict(row) for row in _select_in(conn, select(*_PAID_INVOICE_COLUMNS), INVOICES.c.number, numbers)
    }


def paid_totals(conn: Connection, invoice_ids: Iterable[int]) -> dict[int, Decimal]:
    """Invoice id -> the sum of its recorded payments (only invoices that have any)."""
    paid_sum = type_coerce(func.sum(PAYMENTS.c.amount), Money())
    query = select(PAYMENTS.c.invoice_id, paid_sum.label("paid")).group_by(PAYMENTS.c.invoice_id)
    return {
        row["invoice_id"]: row["paid"] or Decimal(0)
        for row in _select_in(conn, query, PAYMENTS.c.invoice_id, invoice_ids)
    }


def known_payment_keys(conn: Connection, keys: Iterable[str]) -> set[str]:
    """The dedupe keys among `keys` that recorded payments already carry."""
    return {row["dedupe_key"] for row in _select_in(conn, select(PAYMENTS.c.dedupe_key), PAYMENTS.c.dedupe_key, keys)}


def add_invoices(conn: Connection, rows: Sequence[dict[str, Any]]) -> dict[str, int]:
    """Insert new invoices (one bulk statement); number -> the id each got.

    Ids only grow, so ours are above the highest before the insert; the number (unique) tells ours from any a
    concurrent writer might have committed meanwhile."""
    if not rows:
        return {}
    last_id = conn.execute(select(func.max(INVOICES.c.id))).scalar() or 0
    insert_invoices(conn, rows)
    numbers = {row["number"] for row in rows}
    written = conn.execute(select(INVOICES.c.id, INVOICES.c.number).where(INVOICES.c.id > last_id)).all()
    return {number: invoice_id for invoice_id, number in written if number in numbers}
