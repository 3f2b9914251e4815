"""Dispatch: claim outbox rows, render, hand them to their channels, record each outcome.

A claim is a lease: the row turns `sending` with `claimed_until`; a dispatcher that dies mid-send leaves
rows whose lease expires and that the next dispatch takes over, so nothing is lost. The only duplicates
possible are messages handed to a channel whose outcome was not yet recorded. A channel that fails does
not hold up the others: every message is sent and recorded on its own.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, or_, select, update

from channels.base import Channel, Message, Receipt
from engine.audit import append_events
from engine.clock import Clock, SystemClock, iso
from engine.config import DispatchSettings
from engine.errors import DeliveryError, PermanentDeliveryError, TransientDeliveryError
from engine.models import Customer, Event, Invoice, Notification, NotificationStatus
from engine.repository import Repository
from engine.templates import Renderer, TemplateProblem

NOTIFICATIONS = Notification.__table__  # type: ignore[attr-defined]
INVOICES = Invoice.__table__  # type: ignore[attr-defined]
CUSTOMERS = Customer.__table__  # type: ignore[attr-defined]
EVENTS = Event.__table__  # type: ignore[attr-defined]


@dataclass
class DispatchReport:
    sent: Counter[str] = field(default_factory=Counter)
    failed: Counter[str] = field(default_factory=Counter)
    retrying: Counter[str] = field(default_factory=Counter)

    def merge(self, other: DispatchReport) -> None:
        self.sent.update(other.sent)
        self.failed.update(other.failed)
        self.retrying.update(other.retrying)

    def as_dict(self) -> dict[str, Any]:
        return {"sent": dict(self.sent), "failed": dict(self.failed), "retrying": dict(self.retrying)}


@dataclass(frozen=True)
class Outcome:
    row: Mapping[str, Any]  # the claimed notification
    status: str
    receipt: Receipt | None = None
    error: str | None = None
    retry_at: datetime | None = None
    content_hash: str | None = None


class Dispatcher:
    def __init__(
        self,
        repo: Repository,
        channels: Mapping[str, Channel],
        renderer: Renderer,
        settings: DispatchSettings,
        company: Mapping[str, Any],
        clock: Clock | None = None,
    ):
        self.clock = clock or SystemClock()
        self.repo = repo
        self.channels = channels
        self.renderer = renderer
        self.settings = settings
        self.company = dict(company)

    def run(self, now: datetime, *, limit: int | None = None) -> DispatchReport:
        """Send everything due at `now` (batch after batch) and return what happened."""
        report = DispatchReport()
        handled = 0
        while limit is None or handled < limit:
            size = self.settings.batch_size if limit is None else min(self.settings.batch_size, limit - handled)
            batch = self.claim(now, size)
            if not batch:
                break
            handled += len(batch)
            outcomes = asyncio.run(self._deliver(batch, now))
            report.merge(self.record(outcomes, now))
        return report

    def claim(self, now: datetime, size: int) -> list[dict[str, Any]]:
        lease_until = now + timedelta(seconds=self.settings.lease_seconds)
        due = or_(
            and_(
                NOTIFICATIONS.c.status == NotificationStatus.PENDING,
                NOTIFICATIONS.c.due_at <= now,
                or_(NOTIFICATIONS.c.next_attempt_at.is_(None), NOTIFICATIONS.c.next_attempt_at <= now),
            ),
            # abandoned by a dispatcher that died mid-send
            and_(NOTIFICATIONS.c.status == NotificationStatus.SENDING, NOTIFICATIONS.c.claimed_until < now),
        )
        with self.repo.write() as session:
            conn = session.connection()
            query = select(NOTIFICATIONS.c.id).where(due).order_by(NOTIFICATIONS.c.id).limit(size)
            if self.repo.dialect == "postgresql":
                query = query.with_for_update(skip_locked=True)
            ids = list(conn.execute(query).scalars())
            if not ids:
                return []
            conn.execute(
                update(NOTIFICATIONS)
                .where(NOTIFICATIONS.c.id.in_(ids))
                .values(
                    status=NotificationStatus.SENDING,
                    claimed_until=lease_until,
                    attempts=NOTIFICATIONS.c.attempts + 1,
                )
            )
            rows = conn.execute(
                select(
                    NOTIFICATIONS,
                    INVOICES.c.number.label("i_number"),
                    INVOICES.c.amount.label("i_amount"),
                    INVOICES.c.open_amount.label("i_open_amount"),
                    INVOICES.c.currency.label("i_currency"),
                    INVOICES.c.issued_on.label("i_issued_on"),
                    INVOICES.c.due_on.label("i_due_on"),
                    CUSTOMERS.c.name.label("c_name"),
                    CUSTOMERS.c.email.label("c_email"),
                    CUSTOMERS.c.phone.label("c_phone"),
                    CUSTOMERS.c.address.label("c_address"),
                    CUSTOMERS.c.owner.label("c_owner"),
                    CUSTOMERS.c.language.label("c_language"),
                )
                .join(INVOICES, INVOICES.c.id == NOTIFICATIONS.c.invoice_id)
                .join(CUSTOMERS, CUSTOMERS.c.id == NOTIFICATIONS.c.customer_id)
                .where(NOTIFICATIONS.c.id.in_(ids))
                .order_by(NOTIFICATIONS.c.id)
            ).mappings().all()
            return [dict(row) for row in rows]

    async def _deliver(self, batch: list[dict[str, Any]], now: datetime) -> list[Outcome]:
        gates: dict[str, asyncio.Semaphore] = {}

        async def one(row: dict[str, Any]) -> Outcome:
            gate = gates.setdefault(row["channel"], asyncio.Semaphore(self.settings.concurrency))
            async with gate:
                return await self._deliver_one(row, now)

        return list(await asyncio.gather(*(one(row) for row in batch)))

    async def _deliver_one(self, row: dict[str, Any], now: datetime) -> Outcome:
        channel = self.channels.get(row["channel"])
        name = row["channel"]
        if channel is None:
            return Outcome(row, NotificationStatus.FAILED,
                           error=f"no channel named {name!r} is configured; add it under `channels:` in the config")
        try:
            message = self.message_for(row, now)
        except TemplateProblem as exc:
            return Outcome(row, NotificationStatus.FAILED, error=str(exc))
        content_hash = hashlib.sha256(f"{message.subject}\n{message.body}".encode()).hexdigest()
        try:
            receipt = await channel.send(message)
        except PermanentDeliveryError as exc:
            return Outcome(row, NotificationStatus.FAILED, error=str(exc), content_hash=content_hash)
        except (TransientDeliveryError, DeliveryError, OSError, asyncio.TimeoutError) as exc:
            return self._retry_or_fail(row, now, f"{type(exc).__name__}: {exc}", content_hash)
        except Exception as exc:  # a channel bug must not lose the notification or stop the others
            return self._retry_or_fail(row, now, f"channel {name!r} crashed: {type(exc).__name__}: {exc}",
                                       content_hash)
        return Outcome(row, NotificationStatus.SENT, receipt=receipt, content_hash=content_hash)

    def _retry_or_fail(self, row: dict[str, Any], now: datetime, error: str, content_hash: str) -> Outcome:
        attempts = row["attempts"]  # read after the claim counted this attempt
        if attempts >= self.settings.max_attempts:
            return Outcome(row, NotificationStatus.FAILED,
                           error=f"gave up after {attempts} attempts: {error}", content_hash=content_hash)
        delay = min(self.settings.backoff_seconds * 2 ** (attempts - 1), self.settings.max_backoff_seconds)
        return Outcome(row, NotificationStatus.PENDING, error=error,
                       retry_at=now + timedelta(seconds=delay), content_hash=content_hash)

    def message_for(self, row: Mapping[str, Any], now: datetime) -> Message:
        customer = {
            "id": row["customer_id"], "name": row["c_name"], "email": row["c_email"], "phone": row["c_phone"],
            "address": row["c_address"], "owner": row["c_owner"], "language": row["c_language"],
        }
        as_of_day = row["created_at"].date()
        invoice = {
            "number": row["i_number"], "amount": row["i_amount"], "open_amount": row["i_open_amount"],
            "currency": row["i_currency"], "issued_on": row["i_issued_on"], "due_on": row["i_due_on"],
            "days_overdue": (as_of_day - row["i_due_on"]).days,
        }
        context = {
            "customer": customer, "invoice": invoice, "invoices": [invoice], "stage": row["stage"],
            "policy": row["policy"], "repeat": row["repeat_no"], "company": self.company,
            "as_of": row["created_at"],
        }
        subject, body = self.renderer.render(row["stage"], row["channel"], context)
        return Message(
            notification_id=row["id"], key=row["key"], channel=row["channel"], recipient=row["recipient"],
            subject=subject, body=body, stage=row["stage"], policy=row["policy"], customer=customer,
            invoices=(invoice,), repeat_no=row["repeat_no"],
        )

    def record(self, outcomes: list[Outcome], now: datetime) -> DispatchReport:
        report = DispatchReport()
        events: list[dict[str, Any]] = []
        recorded_at = self.clock.now()
        with self.repo.write() as session:
            conn = session.connection()
            for outcome in outcomes:
                row = outcome.row
                channel = row["channel"]
                values: dict[str, Any] = {
                    "status": outcome.status, "claimed_until": None, "content_hash": outcome.content_hash,
                    "error": outcome.error,
                }
                if outcome.status == NotificationStatus.SENT:
                    values.update(sent_at=now, receipt=outcome.receipt.reference if outcome.receipt else None)
                    report.sent[channel] += 1
                elif outcome.status == NotificationStatus.PENDING:
                    values["next_attempt_at"] = outcome.retry_at
                    report.retrying[channel] += 1
                else:
                    report.failed[channel] += 1
                # Only a row still ours is settled: a paid invoice's notice may have been cancelled meanwhile.
                conn.execute(
                    update(NOTIFICATIONS)
                    .where(NOTIFICATIONS.c.id == row["id"], NOTIFICATIONS.c.status == NotificationStatus.SENDING)
                    .values(**values)
                )
                events.append({
                    "at": now, "recorded_at": recorded_at, "kind": "delivery", "invoice_id": row["invoice_id"],
                    "customer_id": row["customer_id"], "actor": "system",
                    "data": {
                        "invoice": row["i_number"], "key": row["key"], "channel": channel,
                        "recipient": row["recipient"], "stage": row["stage"],
                        "status": "retrying" if outcome.status == NotificationStatus.PENDING else outcome.status,
                        "attempt": row["attempts"],
                        "receipt": outcome.receipt.reference if outcome.receipt else None,
                        "error": outcome.error, "retry_at": iso(outcome.retry_at),
                        "content_hash": outcome.content_hash,
                    },
                })
            append_events(conn, events)
        return report
