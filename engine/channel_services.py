"""What the engine lends its channels through `ChannelContext`: the case-file source and the task sink.

Channels never import the store; these two adapters are the narrow doors they get instead, each over the
installation's `Repository`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from channels.base import CaseFile
from engine.currencies import in_minor_units
from engine.store.channel_records import create_task, event_summary
from engine.store.database import Repository
from engine.store.queries import case_records

__all__ = ["StoreCaseFiles", "StoreTaskSink"]


class StoreCaseFiles:
    """The `legal` channel's case-file source: the customer, invoices, history and deliveries on record."""

    def __init__(self, repo: Repository):
        self.repo = repo

    def case_file(self, customer_id: str, numbers: Sequence[str]) -> CaseFile:
        records = case_records(self.repo, customer_id, numbers)
        history = []
        for event in records.events:
            data = dict(event["data"] or {})
            history.append(
                {
                    "at": event["at"],
                    "kind": event["kind"],
                    "actor": event["actor"],
                    "invoice": data.get("invoice"),
                    "summary": event_summary(event["kind"], data),
                    "data": data,
                }
            )
        invoices = {
            number: {
                **invoice,
                "amount": in_minor_units(invoice["amount"], invoice["currency"]),
                "open_amount": in_minor_units(invoice["open_amount"], invoice["currency"]),
            }
            for number, invoice in records.invoices.items()
        }
        return CaseFile(records.customer, invoices, history, records.deliveries)


class StoreTaskSink:
    """The `phone` / `visit` channels' task sink: one write transaction per task; collectors work the tasks
    through engine.tasks."""

    def __init__(self, repo: Repository):
        self.repo = repo

    def make_task(
        self,
        *,
        key: str,
        kind: str,
        notification_id: int | None,
        stage: str,
        customer: Mapping[str, Any],
        invoices: Sequence[Mapping[str, Any]],
        now: datetime,
    ) -> tuple[int, bool]:
        with self.repo.write() as session:
            return create_task(
                session.connection(),
                key=key,
                kind=kind,
                notification_id=notification_id,
                stage=stage,
                customer=customer,
                invoices=invoices,
                now=now,
            )
