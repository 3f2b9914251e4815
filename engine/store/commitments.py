"""Promises to pay and payment-plan installments: the rows a collector action writes and a sweep settles."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, CursorResult, RowMapping, Table, insert, select, update

from engine.store.bulk import update_commitments
from engine.store.models import Commitment, Invoice, Payment

COMMITMENTS: Table = Commitment.__table__  # type: ignore[attr-defined]
INVOICES: Table = Invoice.__table__  # type: ignore[attr-defined]
PAYMENTS: Table = Payment.__table__  # type: ignore[attr-defined]

OPEN, KEPT, BROKEN, MISSED, CANCELLED = "open", "kept", "broken", "missed", "cancelled"


def add_promise(
    conn: Connection,
    *,
    invoice_id: int,
    amount: Decimal,
    since_on: date,
    due_on: date,
    grace_until: date,
    at: datetime,
    actor: str,
) -> None:
    """A promise to pay `amount` by `due_on` (broken after `grace_until`), counting payments from `since_on`."""
    conn.execute(
        insert(COMMITMENTS),
        {
            "invoice_id": invoice_id,
            "kind": "promise",
            "plan_id": None,
            "seq": 0,
            "amount": amount,
            "cumulative": amount,
            "since_on": since_on,
            "due_on": due_on,
            "grace_until": grace_until,
            "status": OPEN,
            "created_at": at,
            "actor": actor,
        },
    )


def add_plan(
    conn: Connection,
    *,
    invoice_id: int,
    since_on: date,
    at: datetime,
    actor: str,
    installments: Sequence[tuple[date, Decimal, date]],
) -> int:
    """A payment plan of (due on, amount, grace until) installments in date order; the plan's id (that of
    its first installment)."""
    cumulative = Decimal(0)
    plan_id: int | None = None
    for seq, (due_on, amount, grace) in enumerate(installments, start=1):
        cumulative += amount
        result = conn.execute(
            insert(COMMITMENTS),
            {
                "invoice_id": invoice_id,
                "kind": "installment",
                "plan_id": plan_id,
                "seq": seq,
                "amount": amount,
                "cumulative": cumulative,
                "since_on": since_on,
                "due_on": due_on,
                "grace_until": grace,
                "status": OPEN,
                "created_at": at,
                "actor": actor,
            },
        )
        if plan_id is None:
            plan_id = _new_id(result)
            conn.execute(update(COMMITMENTS).where(COMMITMENTS.c.id == plan_id).values(plan_id=plan_id))
    assert plan_id is not None, "a plan has at least one installment"
    return plan_id


def cancel_open(conn: Connection, invoice_id: int, at: datetime, status: str = CANCELLED) -> int:
    """Close an invoice's open commitments with `status`; how many there were."""
    result = conn.execute(
        update(COMMITMENTS)
        .where(COMMITMENTS.c.invoice_id == invoice_id, COMMITMENTS.c.status == OPEN)
        .values(status=status, resolved_at=at)
    )
    return int(result.rowcount or 0)


def open_commitments(conn: Connection) -> Sequence[RowMapping]:
    """Every open commitment with its invoice's number, customer, stage, policy, pause state and currency,
    by invoice and then in installment order."""
    return (
        conn.execute(
            select(
                COMMITMENTS,
                INVOICES.c.number,
                INVOICES.c.customer_id,
                INVOICES.c.stage,
                INVOICES.c.policy,
                INVOICES.c.resume_stage,
                INVOICES.c.paused_since,
                INVOICES.c.paused_days,
                INVOICES.c.currency,
            )
            .join(INVOICES, INVOICES.c.id == COMMITMENTS.c.invoice_id)
            .where(COMMITMENTS.c.status == OPEN)
            .order_by(COMMITMENTS.c.invoice_id, COMMITMENTS.c.seq, COMMITMENTS.c.id)
        )
        .mappings()
        .all()
    )


def payments_since(conn: Connection, invoice_ids: Collection[int], since: date) -> list[tuple[int, date, Decimal]]:
    """(invoice id, paid on, amount) of these invoices' payments dated `since` or later, oldest first."""
    rows = conn.execute(
        select(PAYMENTS.c.invoice_id, PAYMENTS.c.paid_on, PAYMENTS.c.amount)
        .where(PAYMENTS.c.invoice_id.in_(list(invoice_ids)), PAYMENTS.c.paid_on >= since)
        .order_by(PAYMENTS.c.paid_on, PAYMENTS.c.id)
    )
    return [(invoice_id, paid_on, amount) for invoice_id, paid_on, amount in rows]


def is_last_installment(conn: Connection, plan_id: int, seq: int) -> bool:
    """Whether installment `seq` is its plan's last (nothing after it)."""
    later = conn.execute(
        select(COMMITMENTS.c.id).where(COMMITMENTS.c.plan_id == plan_id, COMMITMENTS.c.seq > seq).limit(1)
    ).first()
    return later is None


def resolve(conn: Connection, statuses: Sequence[dict[str, Any]]) -> None:
    """Write settled commitments (id, status, resolved_at, resolved_on)."""
    if statuses:
        update_commitments(conn, statuses)


def _new_id(result: CursorResult[Any]) -> int:
    key = result.inserted_primary_key
    assert key is not None, "an INSERT of one row reports its primary key"
    return int(key[0])
