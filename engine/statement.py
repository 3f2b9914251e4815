"""Statement of account (对账单): every open invoice of a customer, per currency, with charges and aging.

`dunning statement CUSTOMER`, the `attach: [statement]` e-mail attachment and the monthly statement run
(`statements: {schedule: monthly, day: 1, channel: email}`; `queue_statements`) all read it from here. Money is rounded to each currency's minor unit; every currency has its own totals (amounts in
different currencies are never added up).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from engine.charges import round_minor
from engine.charging import Charging
from engine.clock import local_day
from engine.errors import ConfigError, DunningError, NotFound
from engine.notice_context import SECRET_ENV, pay_link
from engine.store.charges import charge_rows
from engine.store.events import new_event
from engine.store.models import NotificationStatus
from engine.store.statements import (
    STATEMENT_POLICY,
    STATEMENT_STAGE,
    credits_between,
    customer_fields,
    customer_row,
    customers_with_open_items,
    open_items_by_customer,
    payments_between,
    queue_notices,
)

if TYPE_CHECKING:
    from engine.app import Dunning

__all__ = [
    "AGING_BUCKETS",
    "STATEMENT_POLICY",
    "STATEMENT_STAGE",
    "CurrencySection",
    "StatementOfAccount",
    "customers_to_state",
    "queue_statements",
    "queue_statements_if_due",
    "statement_of_account",
]

ZERO = Decimal(0)
#: (name, first day overdue, last day overdue); "current" is not yet due.
AGING_BUCKETS: tuple[tuple[str, int, int | None], ...] = (
    ("current", -(10**6), 0),
    ("1_30", 1, 30),
    ("31_60", 31, 60),
    ("61_90", 61, 90),
    ("over_90", 91, None),
)


@dataclass
class CurrencySection:
    """One currency of a statement: its invoices, payments in the period, aging and totals."""

    currency: str
    invoices: list[dict[str, Any]] = field(default_factory=list)
    payments: list[dict[str, Any]] = field(default_factory=list)
    #: credit notes booked in the period as a lower invoice amount: {invoice, on, amount, amount_before, amount_after}
    credits: list[dict[str, Any]] = field(default_factory=list)
    aging: dict[str, Decimal] = field(default_factory=dict)
    open_amount: Decimal = ZERO
    charges: Decimal = ZERO
    total_due: Decimal = ZERO

    def as_dict(self) -> dict[str, Any]:
        return {
            "currency": self.currency,
            "invoices": self.invoices,
            "payments": self.payments,
            "credits": self.credits,
            "aging": self.aging,
            "open_amount": self.open_amount,
            "charges": self.charges,
            "total_due": self.total_due,
        }


@dataclass
class StatementOfAccount:
    customer: dict[str, Any]
    as_of: date
    since: date
    sections: list[CurrencySection]
    #: `company.payment_link` for the whole balance (one currency only), or None
    pay_link: str | None = None

    @property
    def invoices(self) -> list[dict[str, Any]]:
        return [invoice for section in self.sections for invoice in section.invoices]

    def as_dict(self) -> dict[str, Any]:
        """The documented JSON shape of `dunning statement CUSTOMER --json`."""
        return {
            "customer": self.customer,
            "as_of": self.as_of,
            "from": self.since,
            "currencies": [section.as_dict() for section in self.sections],
            "pay_link": self.pay_link,
        }


def statement_of_account(
    app: Dunning, customer_id: str, as_of: datetime | None = None, since: date | None = None
) -> StatementOfAccount:
    """The customer's statement at the end of the local day of `as_of` (default now); payments and credits
    from `since` (default the first day of that month) up to that day."""
    day = local_day(as_of or app.clock.now(), app.settings.zone)
    first = since or day.replace(day=1)
    if first > day:
        raise DunningError(
            f"--from {first.isoformat()} is after the statement date {day.isoformat()}; give a start on or before it"
        )
    charging = Charging(app.policies_if_valid(), app.settings.zone)
    with app.repo.read() as session:
        conn = session.connection()
        customer = customer_row(conn, customer_id)
        if customer is None:
            raise NotFound(f"no customer with id {customer_id!r}; check the id in your customers file")
        rows = charge_rows(conn, customer_id=customer_id)
        payments = payments_between(conn, customer_id, first, day)
        zone = app.settings.zone
        credits = credits_between(
            conn,
            customer_id,
            datetime.combine(first, time(0), tzinfo=zone),
            datetime.combine(day + timedelta(days=1), time(0), tzinfo=zone),
        )
        statements = [(row, charging.statement(row, day)) for row in rows]
    sections: dict[str, CurrencySection] = {}

    def section(currency: str) -> CurrencySection:
        if currency not in sections:
            sections[currency] = CurrencySection(currency, aging={name: ZERO for name, _, _ in AGING_BUCKETS})
        return sections[currency]

    for row, charges in statements:
        part = section(row.currency)
        overdue = (day - row.due_on).days
        open_amount = round_minor(row.open_amount, row.currency)
        part.invoices.append(
            {
                "number": row.number,
                "issued_on": row.issued_on,
                "due_on": row.due_on,
                "days_overdue": overdue,
                "amount": round_minor(row.amount, row.currency),
                "open_amount": open_amount,
                "interest": charges.interest,
                "compensation": charges.compensation,
                "fees": charges.fees,
                "total_due": open_amount + charges.charges,
                "basis": charges.basis,
            }
        )
        bucket = next(name for name, low, high in AGING_BUCKETS if overdue >= low and (high is None or overdue <= high))
        part.aging[bucket] += open_amount
        part.open_amount += open_amount
        part.charges += charges.charges
        part.total_due += open_amount + charges.charges
    for payment in payments:
        section(payment["currency"]).payments.append(
            {
                "invoice": payment["invoice"],
                "paid_on": payment["paid_on"],
                "amount": round_minor(payment["amount"], payment["currency"]),
                "reference": payment["reference"],
            }
        )
    for credit in credits:
        currency = credit["currency"]
        section(currency).credits.append(
            {
                "invoice": credit["invoice"],
                "on": local_day(credit["at"], app.settings.zone),
                "amount": round_minor(credit["before"] - credit["after"], currency),
                "amount_before": round_minor(credit["before"], currency),
                "amount_after": round_minor(credit["after"], currency),
            }
        )
    person = {k: customer.get(k) for k in ("id", "name", "address", "email", "language", "owner")}
    ordered = [sections[c] for c in sorted(sections)]
    link = None
    template = app.settings.company.model_dump().get("payment_link")
    if template and len(ordered) == 1 and ordered[0].total_due > 0:
        link = pay_link(
            str(template),
            os.environ.get(SECRET_ENV, ""),
            number=f"{customer_id}/{day.isoformat()}",
            customer=customer_id,
            amount=ordered[0].total_due,
            currency=ordered[0].currency,
        )
    return StatementOfAccount(person, day, first, ordered, link)


def customers_to_state(app: Dunning) -> list[str]:
    """Every customer with open items: who a scheduled statement run writes to."""
    with app.repo.read() as session:
        return customers_with_open_items(session.connection())


StatementSource = Callable[[str, datetime], StatementOfAccount]


def statement_key(customer_id: str, day: date, channel: str) -> str:
    """One statement per customer, month and channel: queuing the same month again changes nothing."""
    return f"statement/{customer_id}/{day:%Y-%m}/{channel}"


def queue_statements(app: Dunning, as_of: datetime) -> int:
    """Queue this month's statement for every customer with open items on the configured channel; returns how
    many were new (the daemon calls it after each scheduled sweep; `dunning statements queue` by hand)."""
    config = app.settings.statements
    channels = app.settings.channel_settings()
    if config.channel not in channels:
        known = ", ".join(sorted(channels))
        raise ConfigError(
            f"statements.channel is {config.channel!r}, which is no configured channel; use one of: {known}"
        )
    field_name = channels[config.channel].recipient
    day = local_day(as_of, app.settings.zone)
    recorded_at = app.clock.now()
    with app.repo.write() as session:
        conn = session.connection()
        items = open_items_by_customer(conn)
        customers = customer_fields(conn, list(items))
        notices, events = [], []
        for customer_id, invoice_ids in items.items():
            customer = customers.get(customer_id) or {}
            recipient = customer_id if field_name == "id" else customer.get(field_name)
            key = statement_key(customer_id, day, config.channel)
            status, error = NotificationStatus.PENDING, None
            if not recipient:
                status = NotificationStatus.FAILED
                error = (
                    f"customer {customer_id} has no {field_name}; add it (dunning import customers) so the "
                    f"{config.channel} channel can send the statement"
                )
            notices.append(
                {
                    "key": key,
                    "invoice_id": None,
                    "customer_id": customer_id,
                    "policy": STATEMENT_POLICY,
                    "stage": STATEMENT_STAGE,
                    "channel": config.channel,
                    "repeat_no": 0,
                    "recipient": recipient,
                    "status": status,
                    "attempts": 0,
                    "created_at": as_of,
                    "due_at": as_of,
                    "error": error,
                    "invoice_ids": invoice_ids,
                }
            )
            events.append(
                new_event(
                    "notification",
                    at=as_of,
                    recorded_at=recorded_at,
                    customer_id=customer_id,
                    data={
                        "key": key,
                        "channel": config.channel,
                        "recipient": recipient,
                        "stage": STATEMENT_STAGE,
                        "policy": STATEMENT_POLICY,
                        "invoices": len(invoice_ids),
                    },
                )
            )
        return queue_notices(conn, notices, events)


def queue_statements_if_due(app: Dunning, as_of: datetime) -> int:
    """`queue_statements` when the schedule says so: monthly, on any sweep on or after the configured day."""
    config = app.settings.statements
    if config.schedule != "monthly" or local_day(as_of, app.settings.zone).day < config.day:
        return 0
    return queue_statements(app, as_of)
