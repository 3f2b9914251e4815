"""The reads behind a statement of account: the customer, its payments in a period, customers with open items.

The open invoices themselves (with what their charges depend on) come from `engine.store.charges.charge_rows`.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from sqlalchemy import Connection, select

from engine.policy.model import CLOSED_STATES
from engine.store.models import Customer, Invoice, Payment

INVOICES = Invoice.__table__  # type: ignore[attr-defined]
PAYMENTS = Payment.__table__  # type: ignore[attr-defined]
CUSTOMERS = Customer.__table__  # type: ignore[attr-defined]


def customer_row(conn: Connection, customer_id: str) -> dict[str, Any] | None:
    """The customer's fields, or None when there is no such customer."""
    row = conn.execute(select(CUSTOMERS).where(CUSTOMERS.c.id == customer_id)).mappings().first()
    return dict(row) if row is not None else None


def payments_between(conn: Connection, customer_id: str, first: date, last: date) -> list[dict[str, Any]]:
    """Payments on any invoice of the customer dated `first` to `last` inclusive, oldest first."""
    query = (
        select(INVOICES.c.number.label("invoice"), INVOICES.c.currency, PAYMENTS.c.paid_on, PAYMENTS.c.amount,
               PAYMENTS.c.reference)
        .join(INVOICES, INVOICES.c.id == PAYMENTS.c.invoice_id)
        .where(INVOICES.c.customer_id == customer_id, PAYMENTS.c.paid_on >= first, PAYMENTS.c.paid_on <= last)
        .order_by(PAYMENTS.c.paid_on, PAYMENTS.c.id)
    )
    return [dict(r) for r in conn.execute(query).mappings()]


def customers_with_open_items(conn: Connection) -> list[str]:
    """Ids of every customer with at least one open invoice, in id order."""
    query = (
        select(INVOICES.c.customer_id).distinct()
        .where(INVOICES.c.stage.not_in(CLOSED_STATES)).order_by(INVOICES.c.customer_id)
    )
    return list(conn.execute(query).scalars())
