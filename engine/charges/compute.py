"""Interest by periods, fixed compensation, fees and the allocation of payments: exact decimals, no I/O.

Interest is simple, per calendar day, from the day after the due date up to and including the as-of day, on
the principal open on each day (a payment dated P lowers it from day P on). A period is a run of days with one
principal and one rate; its interest keeps 6 decimals. The totals are rounded once, half up, to the
currency's minor unit. Daily rate = yearly rate / 365; a rate per day is applied as is.
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from typing import Protocol

from engine.charges.jurisdictions import CN_AGREED_BASIS, JURISDICTIONS, LPR_FILE, half_year_start
from engine.charges.model import (
    Allocation,
    ChargeCase,
    ChargeStatement,
    ChargeTerms,
    CompensationRule,
    InterestRule,
    Period,
    RateUnit,
)
from engine.charges.money import round_minor, round_period
from engine.charges.rates import RateTable

__all__ = ["TableSource", "compute_charges"]

ZERO = Decimal(0)
DAYS_PER_YEAR = Decimal(365)
ONE_DAY = timedelta(days=1)

#: Gives the rate table of a file name under the policy's rates folder ("ecb.yaml" -> RateTable).
TableSource = Callable[[str], RateTable]


class _Rate(Protocol):
    unit: RateUnit
    basis: str

    def rate_on(self, day: date) -> Decimal: ...

    def changes(self, first: date, last: date) -> list[date]: ...


@dataclass(frozen=True)
class _Fixed:
    rate: Decimal
    unit: RateUnit
    basis: str

    def rate_on(self, day: date) -> Decimal:
        return self.rate

    def changes(self, first: date, last: date) -> list[date]:
        return []


@dataclass(frozen=True)
class _Statutory:
    """Reference rate on the half-year's reference day + margin: one rate for each half-year."""

    table: RateTable
    margin: Decimal
    reference_day: Callable[[date], date]
    basis: str
    unit: RateUnit = RateUnit.PER_YEAR

    def rate_on(self, day: date) -> Decimal:
        return self.table.rate_on(self.reference_day(day)) + self.margin

    def changes(self, first: date, last: date) -> list[date]:
        days = []
        start = half_year_start(first)
        while True:
            start = date(start.year, 7, 1) if start.month == 1 else date(start.year + 1, 1, 1)
            if start > last:
                return days
            days.append(start)


@dataclass(frozen=True)
class _AtLeastLpr:
    """CN: the agreed yearly rate, but never below the 1-year LPR in force that day."""

    agreed: Decimal
    lpr: RateTable
    basis: str
    unit: RateUnit = RateUnit.PER_YEAR

    def rate_on(self, day: date) -> Decimal:
        return max(self.agreed, self.lpr.rate_on(day))

    def changes(self, first: date, last: date) -> list[date]:
        return self.lpr.changes_between(first, last)


def _rate_source(rule: InterestRule, tables: TableSource) -> _Rate:
    if rule.statutory:
        law = JURISDICTIONS[rule.jurisdiction or ""]
        if law.daily_rate is not None:
            return _Fixed(law.daily_rate, RateUnit.PER_DAY, law.interest_basis)
        assert law.rate_file is not None and law.reference_day is not None
        return _Statutory(tables(law.rate_file), law.margin, law.reference_day, law.interest_basis)
    assert rule.rate is not None
    if rule.jurisdiction == "CN" and rule.unit is RateUnit.PER_YEAR:
        return _AtLeastLpr(rule.rate, tables(LPR_FILE), f"{CN_AGREED_BASIS} ({_percent(rule.rate)}% a year)")
    per = "a year" if rule.unit is RateUnit.PER_YEAR else "a day"
    return _Fixed(rule.rate, rule.unit, f"agreed rate of {_percent(rule.rate)}% {per}")


def _compensation(rule: CompensationRule | None, debt: Decimal) -> tuple[Decimal, str]:
    if rule is None:
        return ZERO, ""
    if not rule.statutory:
        assert rule.amount is not None
        return rule.amount, "agreed compensation"
    law = JURISDICTIONS[rule.jurisdiction or ""]
    assert law.compensation is not None  # the spec refuses statutory compensation where the law sets none
    return law.compensation(debt), law.compensation_basis


def compute_charges(terms: ChargeTerms, case: ChargeCase, tables: TableSource) -> ChargeStatement:
    """What is owed on `case.number` at the end of `case.as_of` under `terms`.

    Raises ChargesError (from the rate table) when a reference rate the period needs is unknown.
    """
    currency = case.currency
    start, end = case.due_on + ONE_DAY, case.as_of
    by_day: dict[date, Decimal] = defaultdict(Decimal)
    for day, amount in case.payments:
        if day <= end:
            by_day[day] += amount
    principal = case.principal - sum((a for d, a in by_day.items() if d < start), ZERO)
    principal = max(principal, ZERO)
    source = _rate_source(terms.interest, tables) if terms.interest is not None else None
    late = end >= start and principal > 0
    compensation, compensation_basis = _compensation(terms.compensation, case.principal) if late else (ZERO, "")
    fees = [fee for fee in case.fees if fee.on <= end]

    accrual = _Accrual(source, terms.interest_during_dispute, case.paused)
    charges_paid = ZERO
    interest_paid = ZERO
    if end >= start:
        for first, after in _segments(start, end, by_day, source, case.paused):
            paid = by_day.get(first, ZERO) if first >= start else ZERO
            if paid:
                accrual.close()
                if terms.allocation is Allocation.FEES_INTEREST_PRINCIPAL:
                    charges_due = compensation + sum((f.amount for f in fees if f.on <= first), ZERO) - charges_paid
                    to_charges = min(paid, max(charges_due, ZERO))
                    interest_due = round_minor(accrual.total, currency) - interest_paid
                    to_interest = min(paid - to_charges, max(interest_due, ZERO))
                    charges_paid += to_charges
                    interest_paid += to_interest
                    paid -= to_charges + to_interest
                principal = max(principal - paid, ZERO)
            accrual.add(first, after, principal)
        accrual.close()

    fee_total = sum((f.amount for f in fees), ZERO)
    to_compensation = min(charges_paid, compensation)
    basis_parts = [source.basis if source is not None and accrual.periods else "", compensation_basis]
    if fees:
        basis_parts.append("fees: " + ", ".join(f"{f.stage} {f.amount}" for f in fees))
    return ChargeStatement(
        number=case.number,
        currency=currency,
        as_of=end,
        principal_open=round_minor(principal, currency),
        interest=round_minor(accrual.total, currency) - interest_paid if source is not None else ZERO,
        compensation=round_minor(compensation - to_compensation, currency),
        fees=round_minor(fee_total - (charges_paid - to_compensation), currency),
        basis="; ".join(part for part in basis_parts if part),
        periods=tuple(accrual.periods),
        interest_collected=interest_paid if source is not None else ZERO,
        compensation_collected=round_minor(to_compensation, currency),
        fees_collected=round_minor(charges_paid - to_compensation, currency),
    )


def _segments(
    start: date, end: date, payments: dict[date, Decimal], source: _Rate | None, paused: tuple[tuple[date, date], ...]
) -> list[tuple[date, date]]:
    """[first, after) runs of days between the days on which principal, rate or pause may change."""
    cuts = {start, end + ONE_DAY}
    cuts.update(day for day in payments if start < day <= end)
    if source is not None:
        cuts.update(source.changes(start, end))
    for first, last in paused:
        cuts.update(day for day in (first, last + ONE_DAY) if start < day <= end)
    ordered = sorted(cuts)
    return list(itertools.pairwise(ordered))


class _Accrual:
    """Collects periods, merging neighbours with the same principal and rate into one."""

    def __init__(self, source: _Rate | None, during_dispute: bool, paused: tuple[tuple[date, date], ...]):
        self.source = source
        self.during_dispute = during_dispute
        self.paused = paused
        self.periods: list[Period] = []
        self.total = ZERO
        self._open: tuple[date, date, Decimal, Decimal] | None = None  # first, after, principal, rate

    def add(self, first: date, after: date, principal: Decimal) -> None:
        if self.source is None or principal <= 0 or self._skipped(first):
            self.close()
            return
        rate = self.source.rate_on(first)
        if self._open is not None and self._open[1] == first and self._open[2:] == (principal, rate):
            self._open = (self._open[0], after, principal, rate)
            return
        self.close()
        self._open = (first, after, principal, rate)

    def close(self) -> None:
        if self._open is None or self.source is None:
            return
        first, after, principal, rate = self._open
        self._open = None
        days = (after - first).days
        divisor = DAYS_PER_YEAR if self.source.unit is RateUnit.PER_YEAR else Decimal(1)
        interest = round_period(principal * rate * days / (100 * divisor))
        self.periods.append(Period(first, after - ONE_DAY, days, principal, rate, self.source.unit, interest))
        self.total += interest

    def _skipped(self, day: date) -> bool:
        return not self.during_dispute and any(first <= day <= last for first, last in self.paused)


def _percent(value: Decimal) -> str:
    text = format(value.normalize(), "f")
    return text
