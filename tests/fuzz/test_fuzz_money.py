"""Any amount in any currency is written on the pages exactly as babel's format_currency writes it."""

from __future__ import annotations

from decimal import Decimal

from babel.numbers import format_currency
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.web.i18n import translator
from tests.fuzz.conftest import examples

AMOUNTS = st.one_of(
    st.decimals(allow_nan=False, allow_infinity=False),
    st.decimals(min_value=-(10**12), max_value=10**12, places=4),
    st.integers(min_value=-(10**20), max_value=10**20),
    st.floats(allow_nan=False, allow_infinity=False),
)
CURRENCIES = st.sampled_from(["USD", "EUR", "CNY", "JPY", "BHD", "CLF", "GBP", "KRW", "XXX"])


@settings(max_examples=examples(400))
@given(amount=AMOUNTS, currency=CURRENCIES, language=st.sampled_from(["en", "zh-CN"]))
def test_money_matches_babel(amount: object, currency: str, language: str) -> None:
    t = translator(language)
    try:
        expected: str | type[Exception] = format_currency(Decimal(str(amount)), currency, locale=t.locale)
    except ArithmeticError as error:  # more digits than the decimal context can round to the currency's places
        expected = type(error)
    try:
        written: str | type[Exception] = t.money(amount, currency)
    except ArithmeticError as error:
        written = type(error)
    assert written == expected
