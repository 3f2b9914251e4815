"""ISO 4217: the currencies an invoice may be in, and how many decimals (minor units) each allows.

The table is the standard's list of active codes (list one, as amended by 2025) with their minor units.
Fund codes and precious metals without minor units (XAU, XDR, XTS …) are left out on purpose: no invoice is
written in them. Babel's CLDR data is not used here because CLDR's digits are display conventions (it
shows HUF and TWD without decimals, for example), while ISO 4217 says what an amount may legally carry.
"""

from __future__ import annotations

import difflib
from decimal import ROUND_HALF_UP, Decimal

_BY_DIGITS = {
    0: "BIF CLP DJF GNF ISK JPY KMF KRW PYG RWF UGX UYI VND VUV XAF XOF XPF",
    3: "BHD IQD JOD KWD LYD OMR TND",
    4: "CLF UYW",
    2: (
        "AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BMD BND BOB BOV BRL BSD BTN BWP BYN BZD "
        "CAD CDF CHE CHF CHW CNY COP COU CRC CUP CVE CZK DKK DOP DZD EGP ERN ETB EUR FJD FKP GBP GEL GHS "
        "GIP GMD GTQ GYD HKD HNL HTG HUF IDR ILS INR IRR JMD KES KGS KHR KPW KYD KZT LAK LBP LKR LRD LSL "
        "MAD MDL MGA MKD MMK MNT MOP MRU MUR MVR MWK MXN MXV MYR MZN NAD NGN NIO NOK NPR NZD PAB PEN PGK "
        "PHP PKR PLN QAR RON RSD RUB SAR SBD SCR SDG SEK SGD SHP SLE SOS SRD SSP STN SVC SYP SZL THB TJS "
        "TMT TOP TRY TTD TWD TZS UAH USD USN UYU UZS VED VES WST XCD XCG YER ZAR ZMW ZWG"
    ),
}

#: Every active ISO 4217 code with its minor units.
MINOR_UNITS: dict[str, int] = {code: digits for digits, codes in _BY_DIGITS.items() for code in codes.split()}


def is_currency(code: str) -> bool:
    """Whether `code` (upper case) is an active ISO 4217 currency."""
    return code in MINOR_UNITS


def minor_units(code: str) -> int:
    """Decimals the currency allows: 0 for JPY or XOF, 3 for BHD, 2 for most; 2 for a code not in the table
    (values already stored keep being readable; new ones are refused at import)."""
    return MINOR_UNITS.get(code, 2)


def unknown_currency_message(text: str) -> str:
    """The problem text for a code that is not an active ISO 4217 currency, with a did-you-mean."""
    close = difflib.get_close_matches(text.upper(), MINOR_UNITS, n=1)
    hint = f"; did you mean {close[0]}?" if close else ""
    return f"{text!r} is not an ISO 4217 currency code (such as EUR, USD, CNY or JPY){hint}"


def in_minor_units(amount: Decimal, currency: str) -> Decimal:
    """The amount with exactly the currency's decimals, as a person reads it (stored amounts carry 4 places:
    47496.9300 EUR -> 47496.93, 5000.0000 JPY -> 5000); an amount with more decimals is rounded half up."""
    return amount.quantize(Decimal(1).scaleb(-minor_units(currency)), rounding=ROUND_HALF_UP)


def money_text(amount: Decimal, currency: str) -> str:
    """`in_minor_units` as text: `47496.93` (never `47496.9300`), what messages and JSON strings show."""
    return str(in_minor_units(amount, currency))
