"""Writes of the customer view (engine.claims): a customer's "I have paid" claim and its task for the owner."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime
from typing import Any

from sqlalchemy import insert

from engine.store.database import Repository
from engine.store.events import append_events
from engine.store.models import Task, TaskStatus

TASKS = Task.__table__  # type: ignore[attr-defined]
CLAIM_TASK = "claim"


def record_claim(
    repo: Repository, *, invoice: Mapping[str, Any], reference: str, pause_until: date | None, actor: str, now: datetime
) -> int:
    """One transaction: the `payment_claimed` event and a `claim` task for the customer's owner; the task id."""
    data = {
        "invoice": invoice["number"],
        "reference": reference,
        "amount": str(invoice["open_amount"]),
        "currency": invoice["currency"],
        "paused_until": pause_until.isoformat() if pause_until else None,
    }
    with repo.write() as session:
        conn = session.connection()
        append_events(
            conn,
            [
                {
                    "at": now,
                    "recorded_at": now,
                    "kind": "payment_claimed",
                    "invoice_id": invoice["id"],
                    "customer_id": invoice["customer_id"],
                    "actor": actor,
                    "data": data,
                }
            ],
        )
        result = conn.execute(
            insert(TASKS),
            {
                "key": f"claim:{invoice['number']}:{now.timestamp():.6f}",
                "notification_id": None,
                "kind": CLAIM_TASK,
                "customer_id": invoice["customer_id"],
                "owner": invoice.get("owner"),
                "stage": invoice["stage"],
                "invoice_ids": [invoice["id"]],
                "status": TaskStatus.OPEN,
                "created_at": now,
                "details": {
                    "contact": {
                        "id": invoice["customer_id"],
                        "name": invoice.get("customer_name"),
                        "owner": invoice.get("owner"),
                    },
                    "invoices": [
                        {
                            "number": invoice["number"],
                            "currency": invoice["currency"],
                            "amount": str(invoice["amount"]),
                            "open_amount": str(invoice["open_amount"]),
                            "due_on": str(invoice["due_on"]),
                        }
                    ],
                    "history": [
                        {
                            "at": now.isoformat(),
                            "invoice": invoice["number"],
                            "summary": f"customer says it is paid; reference {reference}",
                        }
                    ],
                    "claim": {"reference": reference},
                    "notices_so_far": 0,
                },
            },
        )
    key = result.inserted_primary_key
    assert key is not None  # an INSERT of one row always has it
    return int(key[0])
