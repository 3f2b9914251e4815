"""The reads behind charges: invoices with their payments, fee events and dispute events, a few queries per batch.

`engine.charging` turns these rows into `engine.charges.ChargeCase`s; nothing here computes money.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from functools import cache
from typing import Any

from sqlalchemy import Connection, Select, bindparam, select

from engine.policy.model import CLOSED_STATES
from engine.store.models import Event, Invoice, Payment

INVOICES = Invoice.__table__  # type: ignore[attr-defined]
PAYMENTS = Payment.__table__  # type: ignore[attr-defined]
EVENTS = Event.__table__  # type: ignore[attr-defined]

#: Events that start or end a dispute (the days between bear no interest under interest_during_dispute: false).
DISPUTE_KINDS = ("dispute", "dispute_resolved", "override", "write_off")
#: The audit event of a fee added when an invoice entered a stage (engine.charging.fee_event).
CHARGE_KIND = "charge"
#: Rows per IN (...) list, well below SQLite's and PostgreSQL's parameter limits.
_CHUNK = 5000


@dataclass
class ChargeRow:
    """One invoice and what its charges depend on."""

    id: int
    number: str
    customer_id: str
    currency: str
    amount: Decimal
    open_amount: Decimal
    issued_on: date
    due_on: date
    stage: str
    policy: str | None
    payments: list[tuple[date, Decimal]] = field(default_factory=list)
    #: (at, data) of each `charge` event
    charges: list[tuple[datetime, dict[str, Any]]] = field(default_factory=list)
    #: (at, kind) of each dispute-related event, in order
    disputes: list[tuple[datetime, str]] = field(default_factory=list)


# Built once per shape (engine.store says why): charges are read for every notice a sweep queues and for the
# web workspace's invoice page.
@cache
def _invoices_statement(by_numbers: bool, of_customer: bool, open_only: bool) -> Select[Any]:
    query = select(
        INVOICES.c.id,
        INVOICES.c.number,
        INVOICES.c.customer_id,
        INVOICES.c.currency,
        INVOICES.c.amount,
        INVOICES.c.open_amount,
        INVOICES.c.issued_on,
        INVOICES.c.due_on,
        INVOICES.c.stage,
        INVOICES.c.policy,
    ).order_by(INVOICES.c.id)
    if by_numbers:
        query = query.where(INVOICES.c.number.in_(bindparam("numbers", expanding=True)))
    if of_customer:
        query = query.where(INVOICES.c.customer_id == bindparam("customer_id"))
    if open_only:
        query = query.where(INVOICES.c.stage.not_in(CLOSED_STATES))
    return query


_PAYMENTS = (
    select(PAYMENTS.c.invoice_id, PAYMENTS.c.paid_on, PAYMENTS.c.amount)
    .where(PAYMENTS.c.invoice_id.in_(bindparam("ids", expanding=True)))
    .order_by(PAYMENTS.c.paid_on, PAYMENTS.c.id)
)
_EVENTS = (
    select(EVENTS.c.invoice_id, EVENTS.c.at, EVENTS.c.kind, EVENTS.c.data)
    .where(EVENTS.c.invoice_id.in_(bindparam("ids", expanding=True)), EVENTS.c.kind.in_((CHARGE_KIND, *DISPUTE_KINDS)))
    .order_by(EVENTS.c.id)
)


def charge_rows(
    conn: Connection,
    *,
    numbers: Collection[str] | None = None,
    customer_id: str | None = None,
    open_only: bool = True,
) -> list[ChargeRow]:
    """Invoices (by number, of one customer, or every one) with their payments, charge and dispute events."""
    values: dict[str, Any] = {}
    if numbers is not None:
        values["numbers"] = list(numbers)
    if customer_id is not None:
        values["customer_id"] = customer_id
    query = _invoices_statement(numbers is not None, customer_id is not None, open_only)
    rows = {r["id"]: ChargeRow(**r) for r in conn.execute(query, values).mappings()}
    ids = list(rows)
    for start in range(0, len(ids), _CHUNK):
        chunk = {"ids": ids[start : start + _CHUNK]}
        for invoice_id, paid_on, amount in conn.execute(_PAYMENTS, chunk):
            rows[invoice_id].payments.append((paid_on, amount))
        for invoice_id, at, kind, data in conn.execute(_EVENTS, chunk):
            if kind == CHARGE_KIND:
                rows[invoice_id].charges.append((at, data or {}))
            else:
                rows[invoice_id].disputes.append((at, kind))
    return list(rows.values())


def fee_stages(conn: Connection, invoice_ids: Collection[int]) -> dict[int, set[str]]:
    """The stages whose fee each invoice was already charged (from its `charge` events), by invoice id."""
    charged: dict[int, set[str]] = {}
    ids = list(invoice_ids)
    for start in range(0, len(ids), _CHUNK):
        for invoice_id, data in conn.execute(
            select(EVENTS.c.invoice_id, EVENTS.c.data).where(
                EVENTS.c.invoice_id.in_(ids[start : start + _CHUNK]), EVENTS.c.kind == CHARGE_KIND
            )
        ):
            if (data or {}).get("charge") == "fee":
                charged.setdefault(invoice_id, set()).add(str(data.get("stage", "")))
    return charged
