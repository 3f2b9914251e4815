"""Inbound mail applied to the book: bounces, auto-replies and replies read back into each invoice.

Each message is read (engine.inbound.parse), matched, recorded and applied in ONE write transaction, keyed
by its Message-ID and its mailbox UID (engine.store.inbound): a crash before the commit leaves it unread, a
second daemon finds it processed. Matching, in order: In-Reply-To / References to our notices' Message-IDs
(`reference`), invoice numbers in the subject or body (`invoice_number`), the sender's address to a
customer's (`sender`); a bounce without our Message-ID is matched by its failed recipient (`recipient`).

Effects:
- hard bounce (5.x.x): the notice fails, the stage's fallback is queued, the address is flagged so later
  notices to it are held ("held: ..." in `dunning outbox`) until the customer's address changes;
  a soft one (4.x.x) is recorded only;
- auto-reply: recorded; with `inbound.hold_until_return`, an out-of-office return date holds notices till then;
- reply: a `reply` event on each matched invoice, a `reply` task for the customer's owner, and notices held
  for `inbound.pause_business_days`; suggested intents wait for `dunning inbound confirm`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from engine.clock import iso, local_day
from engine.config import InboundSettings
from engine.errors import InboundError, NotFound
from engine.inbound.parse import AUTO_REPLY, BOUNCE, DISPUTE, PAYMENT_CLAIM, PROMISE, Inbound, read_message
from engine.inbound.sources import FolderSource, ImapSource, Source
from engine.policy.model import CLOSED_STATES
from engine.store import inbound as store
from engine.store.events import append_events

if TYPE_CHECKING:
    from engine.app import Dunning

MATCHED, UNMATCHED, ASSIGNED, CONFIRMED = "matched", "unmatched", "assigned", "confirmed"
#: Notices re-read at each look-up below the highest id already hashed (ids may commit out of order).
DIGEST_OVERLAP = 1000


@dataclass
class Match:
    invoices: list[dict[str, Any]] = field(default_factory=list)
    customer: dict[str, Any] | None = None
    notification: dict[str, Any] | None = None
    by: str | None = None


@dataclass
class FetchReport:
    processed: int = 0
    duplicates: int = 0
    by_kind: dict[str, int] = field(default_factory=dict)
    unmatched: int = 0
    messages: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "processed": self.processed,
            "duplicates": self.duplicates,
            "by_kind": self.by_kind,
            "unmatched": self.unmatched,
            "messages": self.messages,
        }


def add_business_days(day: date, days: int) -> date:
    while days > 0:
        day += timedelta(days=1)
        if day.weekday() < 5:
            days -= 1
    return day


class Mailroom:
    """Reads the configured sources and applies what came in."""

    def __init__(self, dunning: Dunning):
        self.app = dunning
        self.settings: InboundSettings = dunning.settings.inbound or InboundSettings()
        #: Message-ID local part -> notification ids, for the notices seen so far (grown as new ones appear).
        self._digests: dict[str, set[int]] = {}
        self._digested_up_to = 0

    # -- reading -------------------------------------------------------------------------------------

    def sources(self) -> list[Source]:
        found: list[Source] = []
        if self.settings.folder is not None:
            folder = self.settings.folder
            if not folder.is_absolute():
                folder = self.app.settings.base_dir / folder
            found.append(FolderSource(folder, self.settings.move_to))
        if self.settings.imap is not None:
            found.append(ImapSource(self.settings.imap, base_dir=self.app.settings.base_dir))
        if not found:
            raise InboundError(
                "no inbound source is configured: set `inbound.folder` (a drop folder or maildir) "
                "or `inbound.imap` in the configuration"
            )
        return found

    def fetch(self, sources: Iterable[Source] | None = None, *, limit: int | None = None) -> FetchReport:
        """Read every source once; each message is committed before the source may move or flag it."""
        report = FetchReport()
        for source in list(sources) if sources is not None else self.sources():
            try:
                for item in source.messages(self._known):
                    result = self.process(item.raw, mailbox=item.mailbox, uid=item.uid)
                    source.done(item)
                    if result.get("duplicate"):
                        report.duplicates += 1
                        continue
                    report.processed += 1
                    report.by_kind[result["kind"]] = report.by_kind.get(result["kind"], 0) + 1
                    report.unmatched += result["status"] == UNMATCHED
                    report.messages.append(result)
                    if limit is not None and report.processed >= limit:
                        return report
            finally:
                source.close()
        return report

    def _known(self, mailbox: str) -> set[str]:
        with self.app.repo.read() as session:
            return store.known_uids(session.connection(), mailbox)

    def process(self, raw: bytes, *, mailbox: str, uid: str) -> dict[str, Any]:
        """Read, match, record and apply one message (nothing if it was processed before)."""
        now = self.app.clock.now()
        message = read_message(raw, today=local_day(now, self.app.settings.zone))
        with self.app.repo.write() as session:
            conn = session.connection()
            if store.seen(conn, mailbox, uid, message.message_id):
                return {"duplicate": True, "message_id": message.message_id, "mailbox": mailbox, "uid": uid}
            match = self._match(conn, message)
            status = MATCHED if match.invoices or match.notification else UNMATCHED
            new_id = store.record_message(
                conn,
                {
                    "message_id": message.message_id[:255],
                    "mailbox": mailbox[:255],
                    "uid": uid[:255],
                    "kind": message.kind,
                    "status": status,
                    "match_by": match.by,
                    "sender": message.sender,
                    "subject": message.subject,
                    "customer_id": match.customer["id"] if match.customer else None,
                    "invoice_ids": [inv["id"] for inv in match.invoices],
                    "notification_id": match.notification["id"] if match.notification else None,
                    "content_hash": message.content_hash,
                    "data": _data(message),
                    "raw": raw,
                    "received_at": now,
                },
            )
            if new_id is None:  # another reader committed it between our check and our insert
                return {"duplicate": True, "message_id": message.message_id, "mailbox": mailbox, "uid": uid}
            self._apply(conn, new_id, message, match, now)
            return _shape(store.get_message(conn, new_id) or {}, match.invoices)

    # -- matching ------------------------------------------------------------------------------------

    def _match(self, conn: Any, message: Inbound) -> Match:
        match = Match()
        notices = self._notices_named(conn, message.references)
        if notices:
            match.notification = notices[0]
            ids = [
                i for n in notices for i in ([n["invoice_id"]] if n["invoice_id"] else []) + (n["invoice_ids"] or [])
            ]
            match.invoices = store.invoices_by_ids(conn, list(dict.fromkeys(ids)))
            match.by = "reference"
        if not match.invoices:
            found = store.invoices_by_numbers(conn, list(message.candidates))
            if found:
                match.invoices, match.by = found, "invoice_number"
        if message.kind == BOUNCE and match.notification is None and message.bounce and message.bounce.recipient:
            latest = store.latest_notice_to(conn, message.bounce.recipient)
            if latest is not None:
                match.notification, match.by = latest, match.by or "recipient"
                if not match.invoices:
                    ids = ([latest["invoice_id"]] if latest["invoice_id"] else []) + (latest["invoice_ids"] or [])
                    match.invoices = store.invoices_by_ids(conn, ids)
        if not match.invoices and message.kind != BOUNCE and message.sender:
            customers = store.customers_by_email(conn, message.sender)
            if len(customers) == 1:
                match.customer = customers[0]
                match.invoices = store.open_invoices_of(conn, customers[0]["id"], sorted(CLOSED_STATES))
                match.by = "sender"
        if match.customer is None:
            customer_id = (
                match.invoices[0]["customer_id"]
                if match.invoices
                else match.notification["customer_id"]
                if match.notification
                else None
            )
            match.customer = store.customer(conn, customer_id) if customer_id else None
        return match

    def _notices_named(self, conn: Any, message_ids: Iterable[str]) -> list[dict[str, Any]]:
        wanted = {mid.strip("<>").split("@", 1)[0].lower() for mid in message_ids}
        if not wanted:
            return []
        # A little overlap: on PostgreSQL a notice committed just now may carry an id below one read before.
        for notice_id, key in store.email_notice_keys(conn, max(self._digested_up_to - DIGEST_OVERLAP, 0)):
            self._digests.setdefault(store.digest_of(key), set()).add(notice_id)
            self._digested_up_to = max(self._digested_up_to, notice_id)
        return store.notification_rows(conn, [i for digest in wanted for i in self._digests.get(digest, ())])

    # -- effects -------------------------------------------------------------------------------------

    def _apply(self, conn: Any, message_row: int, message: Inbound, match: Match, now: datetime) -> None:
        events: list[dict[str, Any]] = []
        customer = match.customer
        base = {
            "message": message_row,
            "message_id": message.message_id,
            "sender": message.sender,
            "subject": message.subject,
            "content_hash": message.content_hash,
            "match_by": match.by,
        }

        def each_invoice(kind: str, data: dict[str, Any]) -> None:
            for inv in match.invoices:
                events.append(
                    {
                        "at": now,
                        "recorded_at": now,
                        "kind": kind,
                        "invoice_id": inv["id"],
                        "customer_id": inv["customer_id"],
                        "actor": "system",
                        "data": {"invoice": inv["number"], **base, **data},
                    }
                )

        if message.kind == BOUNCE and message.bounce is not None:
            bounce = message.bounce
            each_invoice(
                "bounce",
                {
                    "status": bounce.status,
                    "permanent": bounce.permanent,
                    "recipient": bounce.recipient,
                    "diagnostic": bounce.diagnostic,
                },
            )
            notice = match.notification
            if bounce.permanent and notice is not None:
                self._hard_bounce(
                    conn,
                    message_row,
                    notice,
                    bounce.recipient or notice["recipient"],
                    bounce.status,
                    now,
                    events,
                    match,
                )
        elif message.kind == AUTO_REPLY:
            each_invoice("auto_reply", {"returns_on": message.returns_on.isoformat() if message.returns_on else None})
            if self.settings.hold_until_return and message.returns_on and customer is not None:
                store.add_hold(
                    conn,
                    kind=store.OUT_OF_OFFICE,
                    customer_id=customer["id"],
                    message=message_row,
                    until=self._start_of(message.returns_on),
                    now=now,
                    reason=f"out of office until {message.returns_on} (auto-reply {message_row})",
                )
        else:
            each_invoice(
                "reply", {"first_lines": message.first_lines, "intents": [i.as_dict() for i in message.intents]}
            )
            if match.invoices and customer is not None:
                self._reply_task(conn, message_row, message, match, now)
                days = self.settings.pause_business_days
                if days:
                    until_day = add_business_days(local_day(now, self.app.settings.zone), days)
                    for inv in match.invoices:
                        if inv["stage"] in CLOSED_STATES:
                            continue
                        store.add_hold(
                            conn,
                            kind=store.REPLY_PAUSE,
                            customer_id=inv["customer_id"],
                            invoice_id=inv["id"],
                            until=self._start_of(until_day),
                            message=message_row,
                            now=now,
                            reason=f"reply {message_row} from {message.sender} is being read "
                            f"(paused until {until_day})",
                        )
        append_events(conn, events)

    def _start_of(self, day: date) -> datetime:
        return datetime.combine(day, time(0, 0), self.app.settings.zone)

    def _hard_bounce(
        self,
        conn: Any,
        message_row: int,
        notice: Mapping[str, Any],
        address: str | None,
        status: str,
        now: datetime,
        events: list[dict[str, Any]],
        match: Match,
    ) -> None:
        error = f"hard bounce {status} from {address} (inbound message {message_row})"
        covered = match.invoices or []
        if store.fail_notification(conn, notice["id"], error):
            for inv in covered:
                events.append(
                    {
                        "at": now,
                        "recorded_at": now,
                        "kind": "delivery",
                        "invoice_id": inv["id"],
                        "customer_id": notice["customer_id"],
                        "actor": "system",
                        "data": {
                            "invoice": inv["number"],
                            "key": notice["key"],
                            "channel": notice["channel"],
                            "recipient": notice["recipient"],
                            "stage": notice["stage"],
                            "status": "failed",
                            "error": error,
                        },
                    }
                )
            if notice.get("fallback"):
                customer = match.customer or store.customer(conn, notice["customer_id"]) or {}
                field_name = self.app.recipients.get(notice["fallback"], "email")
                recipient = notice["customer_id"] if field_name == "id" else customer.get(field_name)
                queued = store.queue_fallback(conn, notice, recipient, field_name, now)
                if queued is not None:
                    for inv in covered:
                        events.append(
                            {
                                "at": now,
                                "recorded_at": now,
                                "kind": "notification",
                                "invoice_id": inv["id"],
                                "customer_id": notice["customer_id"],
                                "actor": "system",
                                "data": {
                                    "invoice": inv["number"],
                                    "key": queued["key"],
                                    "channel": queued["channel"],
                                    "recipient": recipient,
                                    "stage": notice["stage"],
                                    "repeat": notice["repeat_no"],
                                    "policy": notice["policy"],
                                    "fallback_for": notice["key"],
                                    "rule": f"fallback: {notice['channel']} hard-bounced ({notice['key']})",
                                },
                            }
                        )
        if address:
            store.add_hold(
                conn,
                kind=store.BOUNCED_ADDRESS,
                customer_id=notice["customer_id"],
                address=address,
                message=message_row,
                now=now,
                reason=f"{address} hard-bounced ({status}, inbound message {message_row}); "
                "change the customer's email (dunning import customers) to send again",
            )

    def _reply_task(self, conn: Any, message_row: int, message: Inbound, match: Match, now: datetime) -> None:
        customer = match.customer or {}
        store.create_task(
            conn,
            key=f"reply:{message.message_id}"[:255],
            customer=customer,
            invoice_ids=[inv["id"] for inv in match.invoices],
            stage=match.invoices[0]["stage"],
            now=now,
            details={
                "contact": {
                    k: customer.get(k) for k in ("id", "name", "phone", "email", "address", "owner", "language")
                },
                "invoices": [{"number": inv["number"]} for inv in match.invoices],
                "history": [],
                "message": message_row,
                "sender": message.sender,
                "subject": message.subject,
                "first_lines": message.first_lines,
                "intents": [i.as_dict() for i in message.intents],
            },
        )

    # -- triage --------------------------------------------------------------------------------------

    def list(self, *, unmatched: bool = False, limit: int = 500, before_id: int | None = None) -> list[dict[str, Any]]:
        """Received messages newest first: the latest `limit`, or those below `before_id` (a page's last)."""
        with self.app.repo.read() as session:
            conn = session.connection()
            rows = store.list_messages(conn, unmatched=unmatched, limit=limit, before_id=before_id)
            ids = sorted({i for row in rows for i in row["invoice_ids"] or []})
            invoices = {inv["id"]: inv for inv in store.invoices_by_ids(conn, ids)}
            return [_shape(row, [invoices[i] for i in row["invoice_ids"] or [] if i in invoices]) for row in rows]

    def get(self, message_row: int) -> dict[str, Any]:
        with self.app.repo.read() as session:
            conn = session.connection()
            row = store.get_message(conn, message_row)
            if row is None:
                raise NotFound(f"no inbound message {message_row}; `dunning inbound list` shows them")
            return _shape(row, store.invoices_by_ids(conn, row["invoice_ids"] or []))

    def raw(self, message_row: int) -> bytes:
        with self.app.repo.read() as session:
            row = store.get_message(session.connection(), message_row, raw=True)
        if row is None:
            raise NotFound(f"no inbound message {message_row}; `dunning inbound list` shows them")
        return bytes(row["raw"])

    def assign(self, message_row: int, number: str, *, actor: str) -> dict[str, Any]:
        """A person matches an unmatched (or wrongly matched) message to an invoice; its effects apply then."""
        now = self.app.clock.now()
        with self.app.repo.write() as session:
            conn = session.connection()
            row = store.get_message(conn, message_row, raw=True, lock=True)
            if row is None:
                raise NotFound(f"no inbound message {message_row}; `dunning inbound list` shows them")
            invoices = store.invoices_by_numbers(conn, [number])
            if not invoices:
                raise NotFound(f"no invoice numbered {number!r}; `dunning status --json` lists the open ones")
            if invoices[0]["id"] in (row["invoice_ids"] or []):
                raise InboundError(f"inbound message {message_row} is already matched to {number}")
            message = read_message(bytes(row["raw"]), today=local_day(now, self.app.settings.zone))
            match = Match(invoices=invoices, customer=store.customer(conn, invoices[0]["customer_id"]), by="manual")
            store.update_message(
                conn,
                message_row,
                {
                    "status": ASSIGNED,
                    "match_by": "manual",
                    "invoice_ids": [*(row["invoice_ids"] or []), invoices[0]["id"]],
                    "customer_id": invoices[0]["customer_id"],
                },
            )
            self._apply(conn, message_row, message, match, now)
            append_events(
                conn,
                [
                    {
                        "at": now,
                        "recorded_at": now,
                        "kind": "inbound_assigned",
                        "invoice_id": invoices[0]["id"],
                        "customer_id": invoices[0]["customer_id"],
                        "actor": actor,
                        "data": {"invoice": number, "message": message_row},
                    }
                ],
            )
        return self.get(message_row)

    def confirm(
        self,
        message_row: int,
        *,
        actor: str,
        intent: str | None = None,
        amount: Decimal | None = None,
        on: date | None = None,
    ) -> dict[str, Any]:
        """Turn a reply's suggested intent into the collector action it names, recorded under `actor`:
        promise → `promise` (amount and date from the reply unless given), dispute → `dispute`,
        payment_claim → a note (the payment itself arrives through an import)."""
        from engine.actions import Collector

        shown = self.get(message_row)
        with self.app.repo.read() as session:
            conn = session.connection()
            row = store.get_message(conn, message_row) or {}
            shown["invoices"] = store.invoices_by_ids(conn, row.get("invoice_ids") or [])
        if shown["status"] == CONFIRMED:
            raise InboundError(f"inbound message {message_row} was confirmed already by {shown['confirmed_by']}")
        if not shown["invoices"]:
            raise InboundError(
                f"inbound message {message_row} matches no invoice; "
                f"`dunning inbound assign {message_row} --invoice NUMBER` first"
            )
        intents = {i["kind"]: i for i in shown["intents"]}
        chosen = intent or next(iter(intents), None)
        if chosen is None or chosen not in intents:
            raise InboundError(
                f"inbound message {message_row} suggests {', '.join(intents) or 'nothing'}; name one with --intent"
            )
        suggestion = intents[chosen]
        collector = Collector(self.app, actor=actor)
        numbers = [inv["number"] for inv in shown["invoices"] if inv["stage"] not in CLOSED_STATES]
        if not numbers:
            raise InboundError(f"every invoice inbound message {message_row} matches is closed; nothing to confirm")
        phrase = suggestion["phrase"]
        if chosen == PROMISE:
            by = on or (date.fromisoformat(suggestion["on"]) if suggestion["on"] else None)
            if by is None:
                raise InboundError(f"the reply names no date for its promise ({phrase!r}); give --on YYYY-MM-DD")
            remaining = (
                amount if amount is not None else (Decimal(suggestion["amount"]) if suggestion["amount"] else None)
            )
            for inv in shown["invoices"]:
                if inv["number"] not in numbers:
                    continue
                part = (
                    Decimal(str(inv["open_amount"]))
                    if remaining is None
                    else min(remaining, Decimal(str(inv["open_amount"])))
                )
                if part <= 0:
                    break
                collector.promise(inv["number"], part, by, f"reply {message_row}: {phrase}")
                if remaining is not None:
                    remaining -= part
        elif chosen == DISPUTE:
            for number in numbers:
                collector.dispute(number, f"reply {message_row}: {phrase}")
        elif chosen == PAYMENT_CLAIM:
            for number in numbers:
                collector.note(number, f"payment claimed by reply {message_row}: {phrase}")
        now = self.app.clock.now()
        with self.app.repo.write() as session:
            conn = session.connection()
            store.update_message(conn, message_row, {"status": CONFIRMED, "confirmed_at": now, "confirmed_by": actor})
            append_events(
                conn,
                [
                    {
                        "at": now,
                        "recorded_at": now,
                        "kind": "reply_confirmed",
                        "invoice_id": inv["id"],
                        "customer_id": inv["customer_id"],
                        "actor": actor,
                        "data": {"invoice": inv["number"], "message": message_row, "intent": chosen},
                    }
                    for inv in shown["invoices"]
                    if inv["number"] in numbers
                ],
            )
        return self.get(message_row)


def _data(message: Inbound) -> dict[str, Any]:
    bounce = message.bounce
    return {
        "first_lines": message.first_lines,
        "intents": [i.as_dict() for i in message.intents],
        "returns_on": message.returns_on.isoformat() if message.returns_on else None,
        "bounce": None
        if bounce is None
        else {
            "status": bounce.status,
            "permanent": bounce.permanent,
            "recipient": bounce.recipient,
            "diagnostic": bounce.diagnostic,
            "original_message_id": bounce.original_message_id,
            "standard": bounce.standard,
        },
        "sent_at": iso(message.sent_at),
        "references": list(message.references)[:20],
    }


def _shape(row: Mapping[str, Any], invoices: list[Mapping[str, Any]]) -> dict[str, Any]:
    data = row.get("data") or {}
    return {
        "id": row.get("id"),
        "message_id": row.get("message_id"),
        "kind": row.get("kind"),
        "status": row.get("status"),
        "match_by": row.get("match_by"),
        "sender": row.get("sender"),
        "subject": row.get("subject"),
        "received_at": iso(row.get("received_at")),
        "customer_id": row.get("customer_id"),
        "invoices": [
            {
                "number": inv["number"],
                "stage": inv["stage"],
                **({"open_amount": str(inv["open_amount"])} if "open_amount" in inv else {}),
            }
            for inv in invoices
        ],
        "notification_id": row.get("notification_id"),
        "first_lines": data.get("first_lines"),
        "intents": data.get("intents", []),
        "bounce": data.get("bounce"),
        "returns_on": data.get("returns_on"),
        "content_hash": row.get("content_hash"),
        "mailbox": row.get("mailbox"),
        "uid": row.get("uid"),
        "confirmed_by": row.get("confirmed_by"),
        "confirmed_at": iso(row.get("confirmed_at")),
    }
