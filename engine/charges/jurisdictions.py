"""The late-payment law of each jurisdiction: reference rate, margin, reference day, fixed compensation, basis.

EU  Directive 2011/7/EU       ECB main refinancing rate on 1 Jan / 1 Jul + 8 points; 40 compensation
UK  Late Payment Act 1998     Bank of England base rate on 31 Dec / 30 Jun before the half-year + 8;
                              40 / 70 / 100 for debts under 1,000 / under 10,000 / 10,000 or more
DE  §288 BGB                  Basiszinssatz on 1 Jan / 1 Jul + 9 points (between businesses); 40 Pauschale
CN  SME payments regulation   an agreed rate (never below the 1-year LPR), else 0.05% per day
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

__all__ = ["JURISDICTIONS", "Jurisdiction", "half_year_start"]


def half_year_start(day: date) -> date:
    """1 January for January–June, 1 July for July–December."""
    return date(day.year, 1 if day.month <= 6 else 7, 1)


def _first_day_of_half_year(day: date) -> date:
    return half_year_start(day)


def _day_before_half_year(day: date) -> date:
    # 31 December before January–June, 30 June before July–December.
    return date(day.year - 1, 12, 31) if day.month <= 6 else date(day.year, 6, 30)


def _flat(amount: str) -> Callable[[Decimal], Decimal]:
    return lambda _debt: Decimal(amount)


def _uk_bands(debt: Decimal) -> Decimal:
    if debt < 1000:
        return Decimal(40)
    if debt < 10000:
        return Decimal(70)
    return Decimal(100)


@dataclass(frozen=True)
class Jurisdiction:
    code: str
    #: The rate file under rules/rates/ (None: no reference rate; CN's statutory rate is a daily one).
    rate_file: str | None
    #: Points added to the reference rate.
    margin: Decimal
    #: The day whose reference rate holds for the half-year `day` lies in (None: the rate of the day itself).
    reference_day: Callable[[date], date] | None
    #: The fixed compensation for a debt of this size (None: the law sets none).
    compensation: Callable[[Decimal], Decimal] | None
    interest_basis: str
    compensation_basis: str
    #: A statutory rate per day (percent) instead of a reference rate.
    daily_rate: Decimal | None = None


JURISDICTIONS: dict[str, Jurisdiction] = {
    "EU": Jurisdiction(
        code="EU",
        rate_file="ecb.yaml",
        margin=Decimal(8),
        reference_day=_first_day_of_half_year,
        compensation=_flat("40"),
        interest_basis="Directive 2011/7/EU art. 2(6): ECB main refinancing rate on the first day of the "
        "half-year + 8 points",
        compensation_basis="Directive 2011/7/EU art. 6: fixed compensation of 40",
    ),
    "UK": Jurisdiction(
        code="UK",
        rate_file="boe.yaml",
        margin=Decimal(8),
        reference_day=_day_before_half_year,
        compensation=_uk_bands,
        interest_basis="Late Payment of Commercial Debts (Interest) Act 1998: Bank of England base rate "
        "fixed for the half-year + 8%",
        compensation_basis="Late Payment of Commercial Debts (Interest) Act 1998 s. 5A: fixed sum of 40 / 70 / 100",
    ),
    "DE": Jurisdiction(
        code="DE",
        rate_file="bundesbank.yaml",
        margin=Decimal(9),
        reference_day=_first_day_of_half_year,
        compensation=_flat("40"),
        interest_basis="§288 Abs. 2 BGB: Basiszinssatz (§247 BGB) + 9 Prozentpunkte",
        compensation_basis="§288 Abs. 5 BGB: Pauschale von 40",
    ),
    "CN": Jurisdiction(
        code="CN",
        rate_file=None,
        margin=Decimal(0),
        reference_day=None,
        compensation=None,
        interest_basis="保障中小企业款项支付条例 (2025 revision): 0.05% of the unpaid amount per day",
        compensation_basis="",
        daily_rate=Decimal("0.05"),
    ),
}
#: CN: an agreed yearly rate is never below the 1-year Loan Prime Rate of the day.
LPR_FILE = "lpr.yaml"
CN_AGREED_BASIS = "保障中小企业款项支付条例 (2025 revision): the agreed rate, not below the 1-year LPR"
