"""Amounts on the pages come from a currency format worked out once per locale and currency
(engine.web.i18n.money_format); their text must stay exactly what babel's format_currency writes."""

from __future__ import annotations

from decimal import Decimal

import pytest
from babel import Locale
from babel.numbers import format_currency, list_currencies

from engine.web.i18n import money_format, translator

AMOUNTS = [
    0,
    "0",
    "-0",
    "-0.00",
    "0.004",
    "0.005",
    "0.015",
    "-0.004",
    "-0.005",
    1,
    -1,
    "0.1",
    "1.005",
    "2.675",
    "999.995",
    "-999.995",
    "1234.5",
    "-1234.5",
    "99999.9999",
    "123456789.995",
    "-123456789012345678.125",
    "1E+3",
    "1.000E+2",
    "12345678901234567890123456789",  # more digits than the decimal context keeps
    "0.0000001",
    "7.77777",
    1234.5678,
    -0.1,
    10**15,
    Decimal("100000"),
    Decimal("-42.4242"),
]
#: Decimal places 0 (JPY), 2, 3 (BHD, KWD), 4 (CLF); an unknown code; one written in lower case.
CURRENCIES = ["USD", "EUR", "CNY", "GBP", "JPY", "KRW", "BHD", "KWD", "TND", "CLF", "CHF", "XXX", "ZZZ", "usd"]


def babel_or_error(amount: object, currency: str, locale: Locale) -> str | type[Exception]:
    try:
        return format_currency(Decimal(str(amount)), currency, locale=locale)
    except ArithmeticError as error:  # too many digits to round to the currency's places
        return type(error)


def ours_or_error(amount: object, currency: str, language: str) -> str | type[Exception]:
    try:
        return translator(language).money(amount, currency)
    except ArithmeticError as error:
        return type(error)


@pytest.mark.parametrize("language", ["en", "zh-CN"])
def test_money_is_written_as_babel_writes_it(language: str) -> None:
    t = translator(language)
    for currency in CURRENCIES:
        assert money_format(t.locale, currency) is not None
        for amount in AMOUNTS:
            expected = babel_or_error(amount, currency, t.locale)
            assert ours_or_error(amount, currency, language) == expected, (amount, currency)


@pytest.mark.parametrize("language", ["en", "zh-CN"])
def test_every_currency_babel_knows_is_written_as_babel_writes_it(language: str) -> None:
    t = translator(language)
    for currency in sorted(list_currencies()):
        for amount in ("0", "-0.5", "1234567.891", "-0.0049"):
            assert t.money(amount, currency) == format_currency(Decimal(amount), currency, locale=t.locale), currency


@pytest.mark.parametrize("locale", ["de_CH", "fr_FR", "ar_EG", "hi_IN", "ja_JP", "nl_NL", "de_DE", "he_IL"])
def test_other_locales_either_match_babel_or_are_left_to_it(locale: str) -> None:
    """Grouping of 3 then 2 (hi_IN), a negative pattern of its own (de_CH), the currency after the number."""
    parsed = Locale.parse(locale)
    for currency in CURRENCIES:
        formatter = money_format(parsed, currency)
        for amount in AMOUNTS:
            if formatter is None:
                continue
            try:
                ours: str | type[Exception] = formatter.apply(Decimal(str(amount)))
            except ArithmeticError as error:
                ours = type(error)
            assert ours == babel_or_error(amount, currency, parsed), (amount, currency)


def test_a_missing_amount_and_ones_that_are_not_numbers_are_still_written() -> None:
    t = translator("en")
    assert t.money(None, "EUR") == "–"
    for odd in ("Infinity", "-Infinity", "NaN"):
        assert t.money(odd, "EUR") == format_currency(Decimal(odd), "EUR", locale=t.locale)
