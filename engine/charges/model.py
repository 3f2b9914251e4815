"""What a policy's `charges:` key means, as plain immutable values (built by `engine.charges.spec`).

Nothing is charged unless a policy says so: a policy without `charges:` has `Policy.charges is None`.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from pathlib import Path

__all__ = [
    "Allocation",
    "ChargeCase",
    "ChargeTerms",
    "CompensationRule",
    "Fee",
    "InterestRule",
    "Period",
    "ChargeStatement",
]


class Allocation(enum.Enum):
    """How a payment is applied."""

    PRINCIPAL_FIRST = "principal_first"  # every payment lowers the principal; charges stay due
    FEES_INTEREST_PRINCIPAL = "fees_interest_principal"  # compensation and fees, then interest, then principal


class RateUnit(enum.Enum):
    PER_YEAR = "percent_per_year"
    PER_DAY = "percent_per_day"


@dataclass(frozen=True)
class InterestRule:
    """`statutory` (the jurisdiction's reference rate + margin) or a fixed rate (percent a year or a day).

    `rate` is in percent. With `jurisdiction: CN` a rate a year is never below the 1-year LPR of the day.
    """

    statutory: bool
    jurisdiction: str | None = None
    rate: Decimal | None = None
    unit: RateUnit = RateUnit.PER_YEAR


@dataclass(frozen=True)
class CompensationRule:
    """`statutory` (the jurisdiction's fixed sum) or a fixed amount, once per overdue invoice."""

    statutory: bool
    jurisdiction: str | None = None
    amount: Decimal | None = None


@dataclass(frozen=True)
class ChargeTerms:
    """A policy's charges: interest, fixed compensation, stage fees and how payments are allocated."""

    interest: InterestRule | None = None
    compensation: CompensationRule | None = None
    #: (stage, amount): a fixed fee when an invoice enters that stage.
    fees: tuple[tuple[str, Decimal], ...] = ()
    allocation: Allocation = Allocation.PRINCIPAL_FIRST
    interest_during_dispute: bool = True
    #: The folder holding ecb.yaml, boe.yaml, bundesbank.yaml and lpr.yaml (rules/rates next to the policy).
    rates_dir: Path = Path("rules/rates")

    def fee_for(self, stage: str) -> Decimal | None:
        """The fee charged when an invoice enters `stage`, if any."""
        total = sum((amount for name, amount in self.fees if name == stage), Decimal(0))
        return total if any(name == stage for name, _ in self.fees) else None


@dataclass(frozen=True)
class Fee:
    """A fee that was added (a `charge` event): on `on`, for entering `stage`."""

    on: date
    amount: Decimal
    stage: str


@dataclass(frozen=True)
class ChargeCase:
    """What charges are computed from: one invoice, its payments and fees, up to and including `as_of`.

    `principal` is the amount open before any payment in `payments` (the invoice's open amount plus every
    payment recorded against it). `paused` lists inclusive (first, last) days of disputes.
    """

    number: str
    currency: str
    principal: Decimal
    due_on: date
    as_of: date
    payments: tuple[tuple[date, Decimal], ...] = ()
    fees: tuple[Fee, ...] = ()
    paused: tuple[tuple[date, date], ...] = ()


@dataclass(frozen=True)
class Period:
    """Interest on one principal at one rate: `first` to `last` inclusive; `interest` keeps 6 decimals."""

    first: date
    last: date
    days: int
    principal: Decimal
    rate: Decimal
    unit: RateUnit
    interest: Decimal

    def as_dict(self) -> dict[str, object]:
        return {
            "from": self.first,
            "to": self.last,
            "days": self.days,
            "principal": self.principal,
            "rate": self.rate,
            "rate_unit": self.unit.value,
            "interest": self.interest,
        }


@dataclass(frozen=True)
class ChargeStatement:
    """What the customer owes on one invoice at `as_of`: money fields rounded once, half up, to minor units."""

    number: str
    currency: str
    as_of: date
    principal_open: Decimal
    interest: Decimal
    compensation: Decimal
    fees: Decimal
    basis: str
    periods: tuple[Period, ...] = ()
    #: what payments paid of the charges up to `as_of` (only under `fees_interest_principal`); `interest`,
    #: `compensation` and `fees` above are what is still due after them
    interest_collected: Decimal = Decimal(0)
    compensation_collected: Decimal = Decimal(0)
    fees_collected: Decimal = Decimal(0)

    @property
    def charges(self) -> Decimal:
        """Interest + compensation + fees still due."""
        return self.interest + self.compensation + self.fees

    @property
    def total_due(self) -> Decimal:
        return self.principal_open + self.charges

    @property
    def collected(self) -> Decimal:
        """Charges paid by payments up to `as_of`."""
        return self.interest_collected + self.compensation_collected + self.fees_collected

    def as_dict(self) -> dict[str, object]:
        """The documented JSON shape of `dunning charges NUMBER --json`."""
        return {
            "number": self.number,
            "currency": self.currency,
            "as_of": self.as_of,
            "principal_open": self.principal_open,
            "interest": self.interest,
            "compensation": self.compensation,
            "fees": self.fees,
            "total_due": self.total_due,
            "basis": self.basis,
            "periods": [p.as_dict() for p in self.periods],
        }
