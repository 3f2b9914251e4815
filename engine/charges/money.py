"""Currency minor units and the one rounding rule of charges: half up, once, to the currency's minor unit."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

from engine.currencies import minor_units as iso_minor_units

__all__ = ["PERIOD_QUANTUM", "minor_units", "round_minor", "round_period"]

#: Interest periods keep six decimals; only the totals are rounded to money.
PERIOD_QUANTUM = Decimal("0.000001")


def minor_units(currency: str) -> int:
    """Decimals of the currency's minor unit (ISO 4217): 2 for EUR, 0 for JPY, 3 for KWD."""
    return iso_minor_units(currency.upper())


def round_minor(amount: Decimal, currency: str) -> Decimal:
    """`amount` rounded half up to the currency's minor unit (65.627397 EUR -> 65.63)."""
    return amount.quantize(Decimal(1).scaleb(-minor_units(currency)), rounding=ROUND_HALF_UP)


def round_period(amount: Decimal) -> Decimal:
    return amount.quantize(PERIOD_QUANTUM, rounding=ROUND_HALF_UP)
