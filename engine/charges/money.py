"""Currency minor units and the one rounding rule of charges: half up, once, to the currency's minor unit."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

__all__ = ["PERIOD_QUANTUM", "minor_units", "round_minor", "round_period"]

#: ISO 4217 currencies whose minor unit is not 1/100 (all others have two decimals).
_EXPONENTS = {
    "BIF": 0, "CLP": 0, "DJF": 0, "GNF": 0, "ISK": 0, "JPY": 0, "KMF": 0, "KRW": 0, "PYG": 0, "RWF": 0,
    "UGX": 0, "UYI": 0, "VND": 0, "VUV": 0, "XAF": 0, "XOF": 0, "XPF": 0,
    "BHD": 3, "IQD": 3, "JOD": 3, "KWD": 3, "LYD": 3, "OMR": 3, "TND": 3,
    "CLF": 4, "UYW": 4,
}
#: Interest periods keep six decimals; only the totals are rounded to money.
PERIOD_QUANTUM = Decimal("0.000001")


def minor_units(currency: str) -> int:
    """Decimals of the currency's minor unit: 2 for EUR, 0 for JPY, 3 for KWD."""
    return _EXPONENTS.get(currency.upper(), 2)


def round_minor(amount: Decimal, currency: str) -> Decimal:
    """`amount` rounded half up to the currency's minor unit (65.627397 EUR -> 65.63)."""
    return amount.quantize(Decimal(1).scaleb(-minor_units(currency)), rounding=ROUND_HALF_UP)


def round_period(amount: Decimal) -> Decimal:
    return amount.quantize(PERIOD_QUANTUM, rounding=ROUND_HALF_UP)
