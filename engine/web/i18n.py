"""The pages in English and 简体中文: the user's language setting, else the browser's Accept-Language.

Texts are written in English in the templates (`{{ _("Worklist") }}`) and looked up in `CATALOG` for other
languages (missing entries fall back to English; a test checks that every text the templates use has a
Chinese entry). Plurals follow the language's rules through babel (`ngettext(n, "{n} invoice",
"{n} invoices")`); dates, instants, amounts and percentages are formatted for the locale by babel.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import date, datetime, tzinfo
from decimal import Decimal
from typing import Any

from babel import Locale
from babel.dates import format_date, format_datetime
from babel.numbers import (
    format_compact_decimal,
    format_currency,
    format_decimal,
    format_percent,
    get_currency_precision,
    get_currency_symbol,
    get_decimal_symbol,
    get_group_symbol,
)

from engine.web.catalog import EN, ZH_CN

LANGUAGES = ("en", "zh-CN")
DEFAULT_LANGUAGE = "en"
CATALOG: dict[str, dict[str, str]] = {"en": EN, "zh-CN": ZH_CN}
LANGUAGE_NAMES = {"en": "English", "zh-CN": "简体中文"}


def supported(tag: str | None) -> str | None:
    """`zh`, `zh-cn`, `zh_Hans_CN` → `zh-CN`; `en-GB` → `en`; anything else → None."""
    if not tag:
        return None
    base = tag.strip().replace("_", "-").split("-")[0].lower()
    if base == "zh":
        return "zh-CN"  # the only Chinese we offer is simplified
    if base == "en":
        return "en"
    return None


def parse_accept_language(header: str | None) -> list[str]:
    """The header's language tags, most wanted first (q=0 dropped; malformed parts ignored)."""
    ranked: list[tuple[float, int, str]] = []
    for position, part in enumerate((header or "").split(",")):
        tag, _, params = part.strip().partition(";")
        quality = 1.0
        for param in params.split(";"):
            key, _, value = param.strip().partition("=")
            if key == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        if tag and tag != "*" and quality > 0:
            ranked.append((-quality, position, tag))
    return [tag for _, _, tag in sorted(ranked)]


def choose_language(setting: str | None, accept_language: str | None) -> str:
    """The user's own setting when it is one we offer, else the first offered language the browser asks
    for, else English."""
    chosen = supported(setting)
    if chosen:
        return chosen
    for tag in parse_accept_language(accept_language):
        chosen = supported(tag)
        if chosen:
            return chosen
    return DEFAULT_LANGUAGE


@dataclass(frozen=True)
class MoneyFormat:
    """A locale's standard currency pattern for one currency, with the currency symbol, decimal places and
    separators looked up once: babel's `format_currency` finds and applies them on every call, which made
    it the costliest part of a worklist row. `apply` does what `NumberPattern.apply` does for such a
    pattern, step by step, so its text is the same as babel's."""

    prefixes: tuple[str, str]  # for a positive and a negative amount, the currency already in place
    suffixes: tuple[str, str]
    digits: int
    quantum: Decimal
    int_min: int
    grouping: tuple[int, int]
    group: str
    decimal: str

    def apply(self, value: Decimal) -> str:
        negative = int(value.is_signed())
        value = abs(value).normalize()  # rounded to the decimal context's precision, as babel rounds it
        whole, _, fraction = f"{value.quantize(self.quantum):f}".partition(".")
        if len(whole) < self.int_min:
            whole = "0" * (self.int_min - len(whole)) + whole
        size, grouped = self.grouping[0], ""
        while len(whole) > size:
            grouped = self.group + whole[-size:] + grouped
            whole = whole[:-size]
            size = self.grouping[1]
        fraction = (fraction or "0").ljust(self.digits, "0")
        number = whole + grouped + (self.decimal + fraction if self.digits else "")
        return self.prefixes[negative] + number + self.suffixes[negative]


@functools.lru_cache(maxsize=1024)
def money_format(locale: Locale, currency: str) -> MoneyFormat | None:
    """The locale's standard format for `currency`, or None where babel's general path is needed: a
    pattern with the currency's long name (its plural depends on the amount), quotes, significant digits,
    an exponent or scaling, or no number part."""
    pattern = locale.currency_formats["standard"]
    symbol = get_currency_symbol(currency, locale)
    group, decimal = get_group_symbol(locale), get_decimal_symbol(locale)
    affixes = (*pattern.prefix, *pattern.suffix)
    if (
        pattern.exp_prec
        or pattern.scale
        or "@" in pattern.pattern
        or not pattern.number_pattern
        or any("¤¤¤" in affix for affix in affixes)
        or any("'" in text for text in (*affixes, symbol, group, decimal))
    ):
        return None

    def placed(affix: str) -> str:
        return affix.replace("¤¤", currency.upper()).replace("¤", symbol)

    digits = get_currency_precision(currency)
    return MoneyFormat(
        prefixes=(placed(pattern.prefix[0]), placed(pattern.prefix[1])),
        suffixes=(placed(pattern.suffix[0]), placed(pattern.suffix[1])),
        digits=digits,
        quantum=Decimal(10) ** -digits,
        int_min=pattern.int_prec[0],
        grouping=pattern.grouping,
        group=group,
        decimal=decimal,
    )


class Translator:
    """Texts and formats of one language; templates get its methods as `_`, `ngettext`, `money`, …"""

    def __init__(self, language: str):
        self.language = language if language in LANGUAGES else DEFAULT_LANGUAGE
        self.locale = Locale.parse(self.language.replace("-", "_"))
        self.catalog = CATALOG.get(self.language, {})

    def gettext(self, text: str, **values: Any) -> str:
        translated = self.catalog.get(text) or EN.get(text, text)
        return translated.format(**values) if values else translated

    def ngettext(self, count: int, singular: str, plural: str, **values: Any) -> str:
        """The form for `count` by the language's plural rules; `{n}` in the text is the count."""
        form = self.locale.plural_form(abs(count))
        text = singular if form == "one" else plural
        return self.gettext(text, n=self.number(count), **values)

    def money(self, amount: Any, currency: str) -> str:
        if amount is None:
            return "–"
        value = Decimal(str(amount))
        formatter = money_format(self.locale, currency)
        if formatter is None or not value.is_finite():
            return format_currency(value, currency, locale=self.locale)
        return formatter.apply(value)

    def number(self, value: Any, digits: int | None = None) -> str:
        if value is None:
            return "–"
        if digits is not None:
            return format_decimal(
                Decimal(str(value)), format=f"#,##0.{'0' * digits}" if digits else "#,##0", locale=self.locale
            )
        return format_decimal(value, locale=self.locale)

    def percent(self, value: Any) -> str:
        """A fraction (0.25) as a percentage (25.0%)."""
        if value is None:
            return "–"
        return format_percent(Decimal(str(value)), format="#,##0.0%", locale=self.locale)

    def compact(self, value: float) -> str:
        """Axis labels: 1.2M / 120万."""
        return format_compact_decimal(value, locale=self.locale, fraction_digits=1)

    def date(self, value: Any, style: str = "medium") -> str:
        if value is None or value == "":
            return "–"
        if isinstance(value, str):
            value = date.fromisoformat(value[:10])
        if isinstance(value, datetime):
            value = value.date()
        return format_date(value, format=style, locale=self.locale)

    def datetime(self, value: Any, zone: tzinfo | None = None, style: str = "medium") -> str:
        if value is None or value == "":
            return "–"
        if isinstance(value, str):
            value = datetime.fromisoformat(value.replace("Z", "+00:00"))
        return format_datetime(value, format=style, tzinfo=zone, locale=self.locale)


@functools.lru_cache(maxsize=len(LANGUAGES))
def translator(language: str) -> Translator:
    return Translator(language)
