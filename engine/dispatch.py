"""Dispatch: claim outbox rows, render, hand them to their channels, record each outcome.

A claim is a lease: the row turns `sending` with `claimed_until`; a dispatcher that dies mid-send leaves
rows whose lease expires and that the next dispatch takes over, so nothing is lost. The only duplicates
possible are messages handed to a channel whose outcome was not yet recorded. A channel that fails does
not hold up the others: every message is sent and recorded on its own.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections import Counter
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from channels.base import Channel, Message, Receipt
from engine.clock import Clock, SystemClock, iso
from engine.config import DispatchSettings
from engine.contact import ContactGate
from engine.currencies import in_minor_units
from engine.errors import DeliveryError, PermanentDeliveryError, TransientDeliveryError
from engine.store import outbox, senders
from engine.store.database import Repository
from engine.store.events import append_events, new_event
from engine.store.inbound import hold_claimed
from engine.store.models import NotificationStatus
from engine.templates import Renderer, TemplateProblem


@dataclass
class DispatchReport:
    sent: Counter[str] = field(default_factory=Counter)
    failed: Counter[str] = field(default_factory=Counter)
    retrying: Counter[str] = field(default_factory=Counter)
    #: Rows that dead senders had left mid-send, put back to be sent again before this run claimed any.
    recovered: int = 0

    def merge(self, other: DispatchReport) -> None:
        self.sent.update(other.sent)
        self.failed.update(other.failed)
        self.retrying.update(other.retrying)
        self.recovered += other.recovered

    def as_dict(self) -> dict[str, Any]:
        return {
            "sent": dict(self.sent),
            "failed": dict(self.failed),
            "retrying": dict(self.retrying),
            "recovered": self.recovered,
        }


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
        gate: ContactGate | None = None,
        recipients: Mapping[str, str] | None = None,
        enrich: Callable[[Mapping[str, Any], dict[str, Any], str | None], None] | None = None,
        link_maker: Callable[[str], str] | None = None,
    ):
        #: Adds charges, total due, deadline, contact and pay link to each context (engine.notice_context).
        self.enrich = enrich
        self.clock = clock or SystemClock()
        #: customer id -> the customer's signed page link (engine.web.links), offered to templates as
        #: `customer_link`; None (no `web.public_url`) leaves it None.
        self.link_maker = link_maker
        #: channel name -> customer field it is addressed to (for fallback notifications)
        self.recipients = dict(recipients or {})
        #: Quiet hours and the contact cap (engine.contact); None sends whatever is due.
        self.gate = gate
        self.held_whole_batch = False
        self.repo = repo
        self.channels = channels
        self.renderer = renderer
        self.settings = settings
        self.company = dict(company)

    def run(self, now: datetime, *, limit: int | None = None) -> DispatchReport:
        """Send everything due at `now` (batch after batch) and return what happened.

        One event loop serves the whole run, so channels keep their connections from batch to batch;
        every channel is closed (`aclose`) when the run ends, however it ends."""
        return asyncio.run(self._run(now, limit))

    async def _run(self, now: datetime, limit: int | None) -> DispatchReport:
        report = DispatchReport()
        try:
            # One of the database's live senders from before the first claim until the last outcome is
            # recorded; coming in alone, it first puts back what dead senders left mid-send (engine.store.senders).
            with senders.sending(self.repo) as report.recovered:
                await self._claim_and_deliver(now, limit, report)
        finally:
            await self.aclose()
        return report

    async def _claim_and_deliver(self, now: datetime, limit: int | None, report: DispatchReport) -> None:
        handled = 0
        while limit is None or handled < limit:
            size = self.settings.batch_size if limit is None else min(self.settings.batch_size, limit - handled)
            batch = self.claim(now, size)
            if not batch:
                if self.held_whole_batch:  # the gate put a full batch back; more may be due behind it
                    continue
                break
            handled += len(batch)
            await self._deliver(batch, now, report=report)

    async def aclose(self) -> None:
        """Close every channel; one that fails to close does not keep the others open."""
        for channel in self.channels.values():
            try:
                await channel.aclose()
            except Exception:
                pass

    def claim(self, now: datetime, size: int) -> list[dict[str, Any]]:
        # A lease is between processes, which share only the real clock: never `now` (a past --as-of, or a
        # daemon's virtual clock), or another sender would take over rows this one is still sending.
        wall = SystemClock().now()
        lease_until = wall + timedelta(seconds=self.settings.lease_seconds)
        with self.repo.write() as session:
            conn = session.connection()
            claimed = outbox.claim(conn, now, size, lease_until, wall)
            self.held_whole_batch = False
            if not claimed:
                return []
            # Notices to a hard-bounced address, or paused by a reply, wait (engine.replies).
            claimed = hold_claimed(conn, claimed, now)
            if self.gate is None:
                return claimed
            # Held rows go back to pending, due at their next allowed instant, in this same transaction.
            allowed = self.gate.hold(conn, claimed, now)
            self.held_whole_batch = not allowed
            return allowed

    async def _deliver(
        self, batch: list[dict[str, Any]], now: datetime, *, report: DispatchReport | None = None
    ) -> list[Outcome]:
        """Send a claimed batch. With `report`, each outcome is recorded as soon as it comes in (together with
        those that came in while the previous recording committed), so a crash can duplicate only messages
        really in flight: handed to their channel, not yet recorded — at most twice `concurrency` per channel,
        since a send waits for room while that many of its channel's are sending or unrecorded."""
        gates: dict[str, asyncio.Semaphore] = {}
        rooms: dict[str, asyncio.Semaphore] = {}

        def room(channel: str) -> asyncio.Semaphore:
            return rooms.setdefault(channel, asyncio.Semaphore(2 * self.settings.concurrency))

        async def one(row: dict[str, Any]) -> Outcome:
            gate = gates.setdefault(row["channel"], asyncio.Semaphore(self.settings.concurrency))
            async with gate:
                if report is not None:
                    await room(row["channel"]).acquire()  # given back once the outcome is committed
                return await self._deliver_one(row, now)

        if report is None:
            return list(await asyncio.gather(*(one(row) for row in batch)))
        outcomes: list[Outcome] = []
        sending = {asyncio.ensure_future(one(row)) for row in batch}
        unrecorded: list[Outcome] = []
        # One recording at a time, in a worker thread, so the sends go on while it commits; what comes in
        # meanwhile is recorded by the next one.
        recording: asyncio.Future[DispatchReport] | None = None
        committing: list[Outcome] = []
        # A batch that takes longer than its lease keeps it: the rows not yet recorded are leased again every
        # third of the lease, so no other sender takes over what this live one is still sending.
        unsettled = {row["id"] for row in batch}
        renew_every = self.settings.lease_seconds / 3
        renew_at = time.monotonic() + renew_every
        try:
            while sending or unrecorded or recording is not None:
                watched: set[asyncio.Future[Any]] = {*sending, *([recording] if recording is not None else [])}
                done, _ = await asyncio.wait(
                    watched, timeout=max(0.0, renew_at - time.monotonic()), return_when=asyncio.FIRST_COMPLETED
                )
                if time.monotonic() >= renew_at:
                    self.renew_leases(unsettled)
                    renew_at = time.monotonic() + renew_every
                if recording is not None and recording in done:
                    report.merge(recording.result())
                    for outcome in committing:
                        room(outcome.row["channel"]).release()
                        unsettled.discard(outcome.row["id"])
                    recording, committing = None, []
                for task in done & sending:
                    sending.discard(task)
                    unrecorded.append(task.result())
                if recording is None and unrecorded:
                    outcomes += unrecorded
                    committing, unrecorded = unrecorded, []
                    recording = asyncio.ensure_future(asyncio.to_thread(self.record, committing, now))
        finally:
            for task in sending:  # only when recording failed: the rest stay claimed, their leases run out
                task.cancel()
            if recording is not None and not recording.done():
                await asyncio.wait([recording])  # a commit under way finishes; it cannot be taken back
        return outcomes

    def renew_leases(self, ids: Collection[int]) -> None:
        """Lease the rows among `ids` still being sent for another `lease_seconds`, from now (real time)."""
        if not ids:
            return
        until = SystemClock().now() + timedelta(seconds=self.settings.lease_seconds)
        with self.repo.write() as session:
            outbox.renew_leases(session.connection(), ids, until)

    async def _deliver_one(self, row: dict[str, Any], now: datetime) -> Outcome:
        channel = self.channels.get(row["channel"])
        name = row["channel"]
        if channel is None:
            return Outcome(
                row,
                NotificationStatus.FAILED,
                error=f"no channel named {name!r} is configured; add it under `channels:` in the config",
            )
        if row.get("invoice_ids") and not row.get("group"):
            return Outcome(
                row,
                NotificationStatus.CANCELLED,
                error="every invoice of this grouped notice was closed before sending",
            )
        try:
            message = self.message_for(row, now)
        except TemplateProblem as exc:
            return Outcome(row, NotificationStatus.FAILED, error=str(exc))
        content_hash = hashlib.sha256(f"{message.subject}\n{message.body}".encode()).hexdigest()
        try:
            receipt = await channel.send(message)
        except PermanentDeliveryError as exc:
            return Outcome(row, NotificationStatus.FAILED, error=str(exc), content_hash=content_hash)
        except (TransientDeliveryError, DeliveryError, OSError, TimeoutError) as exc:
            return self._retry_or_fail(row, now, f"{type(exc).__name__}: {exc}", content_hash)
        except Exception as exc:  # a channel bug must not lose the notification or stop the others
            return self._retry_or_fail(row, now, f"channel {name!r} crashed: {type(exc).__name__}: {exc}", content_hash)
        return Outcome(row, NotificationStatus.SENT, receipt=receipt, content_hash=content_hash)

    def _retry_or_fail(self, row: dict[str, Any], now: datetime, error: str, content_hash: str) -> Outcome:
        attempts = row["attempts"]  # read after the claim counted this attempt
        if attempts >= self.settings.max_attempts:
            return Outcome(
                row,
                NotificationStatus.FAILED,
                error=f"gave up after {attempts} attempts: {error}",
                content_hash=content_hash,
            )
        delay = min(self.settings.backoff_seconds * 2 ** (attempts - 1), self.settings.max_backoff_seconds)
        return Outcome(
            row,
            NotificationStatus.PENDING,
            error=error,
            retry_at=now + timedelta(seconds=delay),
            content_hash=content_hash,
        )

    def message_for(self, row: Mapping[str, Any], now: datetime) -> Message:
        customer = {
            "id": row["customer_id"],
            "name": row["c_name"],
            "email": row["c_email"],
            "phone": row["c_phone"],
            "address": row["c_address"],
            "owner": row["c_owner"],
            "language": row["c_language"],
        }
        as_of_day = row["created_at"].date()
        if row.get("group"):  # a grouped notice: every still-open invoice of the customer it lists
            invoices = [
                {
                    **inv,
                    "amount": in_minor_units(inv["amount"], inv["currency"]),
                    "open_amount": in_minor_units(inv["open_amount"], inv["currency"]),
                    "days_overdue": (as_of_day - inv["due_on"]).days,
                }
                for inv in row["group"]
            ]
        elif row["invoice_id"] is None:  # about the customer itself (credit holds, early warnings)
            invoices = []
        else:
            invoices = [
                {
                    "number": row["i_number"],
                    "amount": in_minor_units(row["i_amount"], row["i_currency"]),
                    "open_amount": in_minor_units(row["i_open_amount"], row["i_currency"]),
                    "currency": row["i_currency"],
                    "issued_on": row["i_issued_on"],
                    "due_on": row["i_due_on"],
                    "days_overdue": (as_of_day - row["i_due_on"]).days,
                }
            ]
        invoice = invoices[0] if invoices else None
        totals: dict[str, Any] = {}
        for item in invoices:
            totals[item["currency"]] = totals.get(item["currency"], 0) + item["open_amount"]
        context = {
            "customer": customer,
            "invoice": invoice,
            "invoices": invoices,
            "stage": row["stage"],
            "policy": row["policy"],
            "repeat": row["repeat_no"],
            "company": self.company,
            "as_of": row["created_at"],
            "totals": totals,
            "grouped": bool(row.get("group")),
            "customer_link": self.link_maker(str(row["customer_id"])) if self.link_maker else None,
        }
        channel = self.channels.get(row["channel"])
        if self.enrich is not None:
            self.enrich(row, context, getattr(channel, "type_name", None))
        rendered = self.renderer.render_parts(
            row["stage"],
            row["channel"],
            context,
            language=row["c_language"],
            html=bool(getattr(channel, "wants_html", False)),
            policy=row["policy"],
        )
        return Message(
            notification_id=row["id"],
            key=row["key"],
            channel=row["channel"],
            recipient=row["recipient"],
            subject=rendered.subject,
            body=rendered.text,
            stage=row["stage"],
            policy=row["policy"],
            customer=customer,
            invoices=tuple(invoices),
            repeat_no=row["repeat_no"],
            html=rendered.html,
            language=rendered.language,
            context=context,
            grouped=bool(row.get("group")),
        )

    def _queue_fallback(
        self, conn: Any, row: Mapping[str, Any], now: datetime, recorded_at: datetime, events: list[dict[str, Any]]
    ) -> None:
        """The stage's fallback for a notification that failed for good: a new outbox row with its own
        key, written in the transaction that records the failure."""
        channel = row["fallback"]
        field_name = self.recipients.get(channel, "email")
        recipient = outbox.recipient_of(row, field_name)
        key = outbox.fallback_key(row["key"], channel)
        stand_in = outbox.notification(
            key=key,
            invoice_id=row["invoice_id"],
            invoice_ids=row.get("invoice_ids"),
            customer_id=row["customer_id"],
            policy=row["policy"],
            stage=row["stage"],
            channel=channel,
            repeat_no=row["repeat_no"],
            recipient=recipient,
            recipient_field=field_name,
            created_at=row["created_at"],
            due_at=now,
            fallback=None,
            fallback_of=row["id"],
            sweep_id=row.get("sweep_id"),
        )
        if not outbox.queue_once(conn, stand_in):
            return
        for invoice_id, number in _covered(row):
            events.append(
                new_event(
                    "notification",
                    at=now,
                    recorded_at=recorded_at,
                    invoice_id=invoice_id,
                    customer_id=row["customer_id"],
                    number=number,
                    data={
                        "key": key,
                        "channel": channel,
                        "recipient": recipient,
                        "stage": row["stage"],
                        "repeat": row["repeat_no"],
                        "policy": row["policy"],
                        "rule": f"fallback: {row['channel']} failed ({row['key']})",
                        "fallback_for": row["key"],
                    },
                )
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
                    "status": outcome.status,
                    "claimed_until": None,
                    "content_hash": outcome.content_hash,
                    "error": outcome.error,
                }
                if outcome.status == NotificationStatus.SENT:
                    values.update(sent_at=now, receipt=outcome.receipt.reference if outcome.receipt else None)
                    report.sent[channel] += 1
                elif outcome.status == NotificationStatus.PENDING:
                    values["next_attempt_at"] = outcome.retry_at
                    report.retrying[channel] += 1
                elif outcome.status == NotificationStatus.FAILED:
                    report.failed[channel] += 1
                # Only a row still ours is settled: a paid invoice's notice may have been cancelled meanwhile.
                settled = outbox.record_outcome(conn, row["id"], values)
                # a grouped notice is about several invoices: each one's history gets the delivery
                for invoice_id, number in _covered(row):
                    events.append(
                        new_event(
                            "delivery",
                            at=now,
                            recorded_at=recorded_at,
                            invoice_id=invoice_id,
                            customer_id=row["customer_id"],
                            number=number,
                            data={
                                "key": row["key"],
                                "channel": channel,
                                "recipient": row["recipient"],
                                "stage": row["stage"],
                                "status": "retrying"
                                if outcome.status == NotificationStatus.PENDING
                                else outcome.status,
                                "attempt": row["attempts"],
                                "receipt": outcome.receipt.reference if outcome.receipt else None,
                                "error": outcome.error,
                                "retry_at": iso(outcome.retry_at),
                                "content_hash": outcome.content_hash,
                            },
                        )
                    )
                if settled and outcome.status == NotificationStatus.FAILED and row.get("fallback"):
                    self._queue_fallback(conn, row, now, recorded_at, events)
            append_events(conn, events)
        return report


def _covered(row: Mapping[str, Any]) -> list[tuple[int | None, str | None]]:
    """The invoices a claimed notification is about: a grouped notice's still-open ones, else its own."""
    return [(inv["id"], inv["number"]) for inv in row.get("group") or ()] or [(row["invoice_id"], row["i_number"])]
