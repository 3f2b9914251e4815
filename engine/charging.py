"""Charges for stored invoices: what `dunning charges`, `status --json` and the sweep's notices show.

The money comes from `engine.charges` (pure); the rows from `engine.store.charges`. Days are company-local:
an event's instant becomes the local date it happened on, and `as_of` is a local day counted in full.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta, tzinfo
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.charges import ChargeCase, ChargeStatement, ChargeTerms, Fee, RateBook, compute_charges, round_minor
from engine.clock import local_day
from engine.errors import ChargesError, NotFound
from engine.policy.model import Policy, PolicySet
from engine.store.charges import CHARGE_KIND, ChargeRow, charge_rows, fee_stages
from engine.store.events import new_event

if TYPE_CHECKING:
    from sqlalchemy import Connection

    from engine.app import Dunning

__all__ = [
    "CHARGE_KIND",
    "Charging",
    "StageEntry",
    "charges_due",
    "fee_event_data",
    "invoice_charges",
    "stage_fee_events",
]

ZERO = Decimal(0)
_DISPUTE_ENDS = frozenset({"dispute_resolved", "override", "write_off"})


def fee_event_data(terms: ChargeTerms | None, stage: str, currency: str) -> dict[str, Any] | None:
    """The `data` of the `charge` event for entering `stage`, or None when the policy charges no fee there."""
    fee = terms.fee_for(stage) if terms is not None else None
    if fee is None:
        return None
    return {"charge": "fee", "stage": stage, "amount": str(round_minor(fee, currency)), "currency": currency}


@dataclass(frozen=True)
class StageEntry:
    """An invoice entering a stage: by a sweep's escalation, an approval or a manual move."""

    invoice_id: int
    customer_id: str
    number: str
    currency: str
    terms: ChargeTerms | None
    stage: str
    at: datetime
    recorded_at: datetime
    actor: str = "system"


def stage_fee_events(conn: Connection, entries: Iterable[StageEntry]) -> list[dict[str, Any]]:
    """The `charge` events of the stage fees (`charges.fees`) the entries incur: the one path for the sweep,
    approvals and manual moves. A stage's fee is charged at most once per invoice, so entering it again (a
    move back and forth, a second move to the same stage) charges nothing more."""
    wanted = [(entry, data) for entry in entries if (data := fee_event_data(entry.terms, entry.stage, entry.currency))]
    if not wanted:
        return []
    charged = fee_stages(conn, {entry.invoice_id for entry, _ in wanted})
    events = []
    for entry, data in wanted:
        stages = charged.setdefault(entry.invoice_id, set())
        if entry.stage in stages:
            continue
        stages.add(entry.stage)
        events.append(
            new_event(
                CHARGE_KIND,
                at=entry.at,
                recorded_at=entry.recorded_at,
                invoice_id=entry.invoice_id,
                customer_id=entry.customer_id,
                actor=entry.actor,
                number=entry.number,
                data=data,
            )
        )
    return events


class Charging:
    """Charges of stored invoices under the policies in force. One instance reads each rate file once."""

    def __init__(self, policies: PolicySet | None, zone: tzinfo):
        self.policies = policies
        self.zone = zone
        self._books: dict[Path, RateBook] = {}

    def policy_of(self, row: ChargeRow) -> Policy | None:
        if self.policies is None:
            return None
        return (self.policies.by_name(row.policy) if row.policy else None) or self.policies.default

    def statement(self, row: ChargeRow, as_of: date) -> ChargeStatement:
        """What is owed on this invoice at the end of `as_of` (no charges when its policy has none)."""
        policy = self.policy_of(row)
        terms = policy.charges if policy is not None else None
        case = self.case(row, as_of)
        if terms is None:
            return compute_charges(ChargeTerms(), case, self._book(Path(".")))
        return compute_charges(terms, case, self._book(terms.rates_dir))

    def case(self, row: ChargeRow, as_of: date) -> ChargeCase:
        principal = row.open_amount + sum((amount for _, amount in row.payments), ZERO)
        fees = tuple(
            Fee(local_day(at, self.zone), Decimal(str(data["amount"])), str(data.get("stage", "")))
            for at, data in row.charges
            if data.get("charge") == "fee"
        )
        return ChargeCase(
            number=row.number,
            currency=row.currency,
            principal=principal,
            due_on=row.due_on,
            as_of=as_of,
            payments=tuple(row.payments),
            fees=fees,
            paused=self._paused(row.disputes, as_of),
        )

    def for_invoice(self, conn: Connection, number: str, as_of: date) -> ChargeStatement:
        rows = charge_rows(conn, numbers=[number], open_only=False)
        if not rows:
            raise NotFound(f"no invoice numbered {number!r}; `dunning status` lists the open ones")
        return self.statement(rows[0], as_of)

    def due_by_number(self, conn: Connection, as_of: date) -> dict[str, Decimal]:
        """Charges still due (interest + compensation + fees) on every open invoice, by number."""
        if not self._any_charges():
            return {}
        return {row.number: self.statement(row, as_of).charges for row in charge_rows(conn)}

    def price_notices(self, conn: Connection, events: Sequence[dict[str, Any]], today: date) -> None:
        """Write the interest figure (and charges due) into the data of each notification event in `events`
        whose policy charges something: what the notice claimed is then in the audit log."""
        if not self._any_charges():
            return
        notices = [e for e in events if e["kind"] == "notification" and self._charges_of(e) is not None]
        if not notices:
            return
        numbers = {e["data"]["invoice"] for e in notices}
        # Fees charged by this same batch (entering a stage) are not stored yet; the notice claims them too.
        pending_fees: dict[str, list[tuple[datetime, dict[str, Any]]]] = {}
        for event in events:
            if event["kind"] == CHARGE_KIND and event["data"].get("invoice") in numbers:
                pending_fees.setdefault(event["data"]["invoice"], []).append((event["at"], event["data"]))
        figures: dict[str, dict[str, str]] = {}
        for row in charge_rows(conn, numbers=numbers):
            row.charges.extend(pending_fees.get(row.number, []))
            try:
                found = self.statement(row, today)
            except ChargesError as exc:  # a missing rate must not stop the sweep; the event says what is wrong
                figures[row.number] = {"charges_error": str(exc)}
            else:
                figures[row.number] = {"interest": str(found.interest), "charges_due": str(found.charges)}
        for event in notices:
            event["data"].update(figures.get(event["data"]["invoice"], {}))

    # -- helpers -------------------------------------------------------------------------------

    def _any_charges(self) -> bool:
        return self.policies is not None and any(p.charges is not None for p in self.policies.policies)

    def _charges_of(self, event: Mapping[str, Any]) -> ChargeTerms | None:
        policy = self.policies.by_name(event["data"].get("policy", "")) if self.policies else None
        return policy.charges if policy is not None else None

    def _book(self, folder: Path) -> RateBook:
        book = self._books.get(folder)
        if book is None:
            book = self._books[folder] = RateBook(folder)
        return book

    def _paused(self, disputes: list[tuple[datetime, str]], as_of: date) -> tuple[tuple[date, date], ...]:
        spans: list[tuple[date, date]] = []
        began: date | None = None
        for at, kind in disputes:
            day = local_day(at, self.zone)
            if kind == "dispute" and began is None:
                began = day
            elif kind in _DISPUTE_ENDS and began is not None:
                if day > began:
                    spans.append((began, day - timedelta(days=1)))
                began = None
        if began is not None and began <= as_of:
            spans.append((began, as_of))
        return tuple(spans)


def invoice_charges(app: Dunning, number: str, as_of: datetime | None = None) -> ChargeStatement:
    """`dunning charges NUMBER`: the invoice's charges at the end of the local day of `as_of` (default now)."""
    charging = Charging(app.policies, app.settings.zone)
    day = local_day(as_of or app.clock.now(), app.settings.zone)
    with app.repo.read() as session:
        return charging.for_invoice(session.connection(), number, day)


def charges_due(app: Dunning, as_of: datetime) -> dict[str, Decimal]:
    """Charges due on every open invoice at the end of the local day of `as_of`, by number (`status --json`)."""
    charging = Charging(app.policies_if_valid(), app.settings.zone)
    with app.repo.read() as session:
        return charging.due_by_number(session.connection(), local_day(as_of, app.settings.zone))
