"""The SQL behind statements of account: the customer, its payments in a period, customers with open items, and
the outbox rows of a scheduled statement run.

The open invoices themselves (with what their charges depend on) come from `engine.store.charges.charge_rows`.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, insert, select

from engine.policy.model import CLOSED_STATES
from engine.store.events import append_events
from engine.store.models import Customer, Event, Invoice, Notification, Payment

INVOICES = Invoice.__table__  # type: ignore[attr-defined]
PAYMENTS = Payment.__table__  # type: ignore[attr-defined]
CUSTOMERS = Customer.__table__  # type: ignore[attr-defined]
NOTIFICATIONS = Notification.__table__  # type: ignore[attr-defined]
EVENTS = Event.__table__  # type: ignore[attr-defined]
#: The outbox's stage and policy names of a scheduled statement (templates: rules/templates/statement[.zh].txt).
STATEMENT_STAGE = "statement"
STATEMENT_POLICY = "statements"


def customer_row(conn: Connection, customer_id: str) -> dict[str, Any] | None:
    """The customer's fields, or None when there is no such customer."""
    row = conn.execute(select(CUSTOMERS).where(CUSTOMERS.c.id == customer_id)).mappings().first()
    return dict(row) if row is not None else None


def payments_between(conn: Connection, customer_id: str, first: date, last: date) -> list[dict[str, Any]]:
    """Payments on any invoice of the customer dated `first` to `last` inclusive, oldest first."""
    query = (
        select(
            INVOICES.c.number.label("invoice"),
            INVOICES.c.currency,
            PAYMENTS.c.paid_on,
            PAYMENTS.c.amount,
            PAYMENTS.c.reference,
        )
        .join(INVOICES, INVOICES.c.id == PAYMENTS.c.invoice_id)
        .where(INVOICES.c.customer_id == customer_id, PAYMENTS.c.paid_on >= first, PAYMENTS.c.paid_on <= last)
        .order_by(PAYMENTS.c.paid_on, PAYMENTS.c.id)
    )
    return [dict(r) for r in conn.execute(query).mappings()]


def credits_between(conn: Connection, customer_id: str, start: datetime, end: datetime) -> list[dict[str, Any]]:
    """Credits on the customer's invoices recorded from `start` up to (not including) `end`, oldest first: each
    re-import that lowered an invoice's amount (a credit note booked against it), with the amount before and
    after (the `update` event's `changes.amount`)."""
    query = (
        select(INVOICES.c.number, INVOICES.c.currency, EVENTS.c.at, EVENTS.c.data)
        .join(INVOICES, INVOICES.c.id == EVENTS.c.invoice_id)
        .where(
            INVOICES.c.customer_id == customer_id,
            EVENTS.c.kind == "update",
            EVENTS.c.at >= start,
            EVENTS.c.at < end,
        )
        .order_by(EVENTS.c.id)
    )
    found = []
    for number, currency, at, data in conn.execute(query):
        change = ((data or {}).get("changes") or {}).get("amount")
        if not change or len(change) != 2:
            continue
        before, after = Decimal(str(change[0])), Decimal(str(change[1]))
        if after < before:
            found.append({"invoice": number, "currency": currency, "at": at, "before": before, "after": after})
    return found


def customers_with_open_items(conn: Connection) -> list[str]:
    """Ids of every customer with at least one open invoice, in id order."""
    query = (
        select(INVOICES.c.customer_id)
        .distinct()
        .where(INVOICES.c.stage.not_in(CLOSED_STATES))
        .order_by(INVOICES.c.customer_id)
    )
    return list(conn.execute(query).scalars())


def open_items_by_customer(conn: Connection) -> dict[str, list[int]]:
    """Every customer with open invoices: the ids of those invoices, oldest due first."""
    found: dict[str, list[int]] = {}
    query = (
        select(INVOICES.c.customer_id, INVOICES.c.id)
        .where(INVOICES.c.stage.not_in(CLOSED_STATES))
        .order_by(INVOICES.c.customer_id, INVOICES.c.due_on, INVOICES.c.id)
    )
    for customer_id, invoice_id in conn.execute(query):
        found.setdefault(customer_id, []).append(invoice_id)
    return found


def customer_fields(conn: Connection, customer_ids: list[str]) -> dict[str, dict[str, Any]]:
    """The stored fields of these customers, by id."""
    found: dict[str, dict[str, Any]] = {}
    for start in range(0, len(customer_ids), 5000):
        chunk = customer_ids[start : start + 5000]
        for row in conn.execute(select(CUSTOMERS).where(CUSTOMERS.c.id.in_(chunk))).mappings():
            found[row["id"]] = dict(row)
    return found


def queue_notices(conn: Connection, notices: list[dict[str, Any]], events: list[dict[str, Any]]) -> int:
    """Insert the outbox rows whose key is not there yet, and the events of those; returns how many were new."""
    if not notices:
        return 0
    keys = [n["key"] for n in notices]
    known: set[str] = set()
    for start in range(0, len(keys), 5000):
        known.update(
            conn.execute(
                select(NOTIFICATIONS.c.key).where(NOTIFICATIONS.c.key.in_(keys[start : start + 5000]))
            ).scalars()
        )
    fresh = [n for n in notices if n["key"] not in known]
    if fresh:
        conn.execute(insert(NOTIFICATIONS), fresh)
        append_events(conn, [e for e in events if e["data"]["key"] not in known])
    return len(fresh)
