"""Checking import values: each cell converted to its type (amounts, dates, currencies, e-mail, time zones,
tags) or a problem saying what is wrong and what is expected, and the checks across a row that need no
database (decimal places of the currency, due date after issue date, duplicate keys in the file).
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from functools import cache, lru_cache
from typing import Any
from zoneinfo import ZoneInfo, available_timezones

from engine.clock import out_of_range
from engine.currencies import is_currency, minor_units, unknown_currency_message
from engine.importer.read import COLUMNS, REQUIRED, Source
from engine.templates import is_known_locale

#: Money is stored as integer ten-thousandths on SQLite (a signed 64-bit integer), so stay well below 9.2e14.
_MAX_AMOUNT = Decimal(10) ** 14
#: Key columns are VARCHAR(64) in the schema; PostgreSQL would refuse longer values mid-transaction.
_KEY_LENGTH = 64
#: The dedupe key is VARCHAR(255): invoice number (<= 64) + "|ref:" + reference must fit.
_REFERENCE_LENGTH = 180

# re.ASCII: `\d` would also take Arabic-Indic or fullwidth digits, which Decimal() reads as numbers.
_AMOUNT_RE = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)\Z", re.ASCII)
_THOUSANDS_RE = re.compile(r"[+-]?\d{1,3}(?:,\d{3})+(?:\.\d*)?\Z", re.ASCII)
_GROUPED_RE = re.compile(r"\d[ '_\u00a0\u202f]\d")
_DATE_RE = re.compile(r"\d{4}-\d{2}-\d{2}\Z", re.ASCII)
_CURRENCY_RE = re.compile(r"[A-Za-z]{3}\Z")
# Deliberately simple: one address, something@domain.tld, no spaces or list separators.
_EMAIL_RE = re.compile(r"[^@\s,;<>]+@[^@\s,;<>.]+(?:\.[^@\s,;<>.]+)+\Z")

_AMOUNT_HINT = "expected a plain decimal such as 1234.50"
_DATE_HINT = "expected a date as YYYY-MM-DD such as 2026-03-31"


def payment_dedupe_key(invoice: str, amount: Decimal, paid_on: date, reference: str | None) -> str:
    """What recognises a payment again: its reference, or without one its amount and date."""
    if reference:
        return f"{invoice}|ref:{reference}"
    return f"{invoice}|{format(amount.normalize(), 'f')}|{paid_on.isoformat()}"


_UNSEEN = object()


class _Bad(Exception):
    """A value that cannot be used; the message says what is wrong and what is expected."""


def _show(value: Any) -> str:
    if isinstance(value, str):
        return repr(value)
    return json.dumps(value) if isinstance(value, (bool, list, dict)) else repr(value)


#: Text no database column may hold: NUL (PostgreSQL refuses it) and lone surrogates (not encodable as UTF-8).
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def _text(value: Any) -> str:
    if isinstance(value, str):
        bad = _UNSTORABLE.search(value)
        if bad:
            raise _Bad(
                f"contains the character U+{ord(bad.group()):04X} at position {bad.start() + 1}, which cannot "
                "be stored (a NUL byte or half of a UTF-16 surrogate pair); fix the export that wrote it"
            )
        return value.strip()
    # A JSON Lines file may well write a numeric id as a number.
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    raise _Bad(f"expected text, got {_show(value)}")


def _key(value: Any) -> str:
    text = _text(value)
    if len(text) > _KEY_LENGTH:
        raise _Bad(f"{text[:20]!r}... is {len(text)} characters long; expected at most {_KEY_LENGTH}")
    return text


def _amount(value: Any) -> Decimal:
    if isinstance(value, bool):
        raise _Bad(f"{_show(value)} is not an amount; {_AMOUNT_HINT}")
    if isinstance(value, Decimal):
        amount = value
    elif isinstance(value, int):
        amount = Decimal(value)
    elif isinstance(value, float):
        # repr() is the shortest text that reads back as this float: 0.1, not 0.1000000000000000055511...
        amount = Decimal(repr(value))
    elif isinstance(value, str):
        text = value.strip()
        if not _AMOUNT_RE.match(text):
            raise _Bad(_amount_text_problem(text))
        amount = Decimal(text)
    else:
        raise _Bad(f"{_show(value)} is not an amount; {_AMOUNT_HINT}")
    if not amount.is_finite():
        raise _Bad(f"{_show(value)} is not an amount; {_AMOUNT_HINT}")
    if amount < 0:
        raise _Bad(f"negative amount {amount}; amounts must be greater than zero")
    if amount == 0:
        raise _Bad(f"zero amount {amount}; amounts must be greater than zero")
    if amount >= _MAX_AMOUNT:
        raise _Bad(f"amount {amount} is too large; expected less than 10^14")
    return amount


def _amount_text_problem(text: str) -> str:
    lowered = text.lower().lstrip("+-")
    if lowered in ("nan", "snan", "inf", "infinity"):
        return f"{text!r} is not an amount; {_AMOUNT_HINT}"
    if _THOUSANDS_RE.match(text):
        plain = text.replace(",", "")
        return (
            f"{text!r} has a thousands separator, which is ambiguous (',' is the decimal mark in many "
            f"locales); write it without separators: {plain}"
        )
    if "," in text:
        return (
            f"{text!r} has a comma: decimal commas and thousands separators are ambiguous between locales; "
            f"{_AMOUNT_HINT} (a '.' as the decimal mark, no separators)"
        )
    if _GROUPED_RE.search(text):
        return f"{text!r} groups its digits; write it without separators, {_AMOUNT_HINT}"
    return f"{text!r} is not a number; {_AMOUNT_HINT} (no currency symbol, no exponent)"


def decimals(amount: Decimal) -> int:
    """Significant decimal places: 100.50 has 1 (the trailing zero adds no precision), 100 has 0."""
    exponent = amount.normalize().as_tuple().exponent
    return max(0, -exponent) if isinstance(exponent, int) else 0


def too_precise(amount: Decimal, currency: str) -> bool:
    # Quantizing is exact for a value that fits the currency's minor unit, and much cheaper than counting places.
    return amount.quantize(_quantum(currency)) != amount


@cache
def _quantum(currency: str) -> Decimal:
    return Decimal(1).scaleb(-minor_units(currency))


def _currency(value: Any) -> str:
    text = _text(value)
    if not _CURRENCY_RE.match(text):
        raise _Bad(f"{text!r} is not a currency code; expected a 3-letter ISO 4217 code such as EUR, USD or JPY")
    if not is_currency(text.upper()):
        raise _Bad(unknown_currency_message(text))
    return text.upper()


def _language(value: Any) -> str:
    """A locale babel knows (en, en-GB, zh-CN, zh_Hans_CN): it becomes an email header and picks templates."""
    text = _text(value)
    if text:
        if not is_known_locale(text):
            raise _Bad(f"{text[:40]!r} is not a language; expected a locale such as en, en-GB or zh-CN")
    return text


def _date(value: Any) -> date:
    if isinstance(value, str):
        return _date_text(value.strip())
    if isinstance(value, datetime):
        raise _Bad(f"{value.isoformat()} is a date and time; {_DATE_HINT}")
    if isinstance(value, date):
        problem = out_of_range(value)
        if problem:
            raise _Bad(problem)
        return value
    raise _Bad(f"{_show(value)} is not a date; {_DATE_HINT}")


@lru_cache(maxsize=4096)
def _date_text(text: str) -> date:
    # Cached: a large file repeats the same few hundred dates, and parsing them is a hot spot of an import.
    if not _DATE_RE.match(text):
        raise _Bad(f"{text!r} is not a date; {_DATE_HINT}")
    try:
        day = date.fromisoformat(text)
    except ValueError:
        raise _Bad(f"{text!r} is not a valid date (no such day); {_DATE_HINT}") from None
    problem = out_of_range(day)
    if problem:
        raise _Bad(problem)
    return day


def _tags(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        items: Sequence[Any] = value.split(";")
    elif isinstance(value, (list, tuple)):
        items = value
        if not all(isinstance(item, str) for item in items):
            raise _Bad(f"tags must be text, got {_show(list(items))}; expected a list of strings")
    else:
        raise _Bad(
            f"{_show(value)} are not tags; expected tags separated by ';' such as key;vip, or a JSON list of strings"
        )
    # A tuple, so that equal tags can be shared between rows and converted once; JSON writes it as an array.
    return tuple(dict.fromkeys(tag for tag in (item.strip() for item in items) if tag))


def _email(value: Any) -> str:
    text = _text(value)
    if not _EMAIL_RE.match(text):
        raise _Bad(f"{text!r} is not an email address; expected one address such as ap@example.com")
    return text


def _timezone(value: Any) -> str:
    text = _text(value)
    try:
        ZoneInfo(text)
    except (ValueError, KeyError, OSError):
        close = difflib.get_close_matches(text, _zone_names(), n=1)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        raise _Bad(f"unknown time zone {text!r}; expected an IANA name such as Europe/Berlin{hint}") from None
    return text


@lru_cache(maxsize=1)
def _zone_names() -> tuple[str, ...]:
    return tuple(sorted(available_timezones()))


def _credit_limit(value: Any) -> Decimal:
    # A limit of 0 is a real decision (no credit at all), unlike an invoice amount of 0.
    if isinstance(value, (str, int)) and not isinstance(value, bool) and str(value).strip() in ("0", "0.0", "0.00"):
        return Decimal(0)
    return _amount(value)


_PARSERS: dict[str, Callable[[Any], Any]] = {
    "credit_limit": _credit_limit,
    "industry": _text,
    "region": _text,
    "id": _key,
    "name": _text,
    "email": _email,
    "phone": _text,
    "address": _text,
    "credit_grade": _text,
    "segment": _text,
    "owner": _text,
    "language": _language,
    "timezone": _timezone,
    "tags": _tags,
    "number": _key,
    "customer_id": _key,
    "currency": _currency,
    "amount": _amount,
    "issued_on": _date,
    "due_on": _date,
    "invoice": _key,
    "paid_on": _date,
    "reference": _text,
}
_HINTS = {
    "amount": _AMOUNT_HINT,
    "credit_limit": _AMOUNT_HINT,
    "issued_on": _DATE_HINT,
    "due_on": _DATE_HINT,
    "paid_on": _DATE_HINT,
    "currency": "expected a 3-letter ISO 4217 code such as EUR",
}


def json_safe(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, (date, datetime)):
        return value.isoformat()
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


@dataclass
class Row:
    """One row with its values converted; `bad` names the columns whose value could not be used."""

    line: int
    values: dict[str, Any]
    bad: set[str]

    def ok(self, column: str) -> bool:
        return column in self.values and column not in self.bad


def check_rows(source: Source, first_seen: dict[str, int] | None = None) -> list[Row]:
    """Convert every value, recording a problem for each bad one; cross-row checks that need no database.

    `first_seen` (key -> row) carries the duplicate check across the chunks of a streamed file."""
    kind, columns, required = source.kind, COLUMNS[source.kind], REQUIRED[source.kind]
    rows: list[Row] = []
    first_seen = {} if first_seen is None else first_seen
    unique = {"customers": "id", "invoices": "number"}.get(kind)
    # Values repeat (dates, currencies, customers, tags): each distinct text is converted once per import.
    # Not worth it for the unique keys.
    parsers = [
        (
            name,
            _PARSERS[name],
            name in required,
            name in source.absent,
            None if name in ("id", "number", "reference") else {},
        )
        for name in columns
    ]
    for line, raw in source.records:
        values: dict[str, Any] = {}
        bad: set[str] = set()
        for name, parse, needed, absent, memo in parsers:
            value = raw.get(name, _UNSEEN)
            if value is _UNSEEN:
                if needed:
                    if not absent:
                        source.problem(line, name, f"missing; every {kind[:-1]} row needs a value for {name}")
                    bad.add(name)
                continue
            text = value.__class__ is str
            if text:
                value = value.strip()
                if memo is not None:
                    converted = memo.get(value, _UNSEEN)
                    if converted is not _UNSEEN:
                        values[name] = converted
                        continue
            if value is None or value == "":
                if needed:
                    hint = _HINTS.get(name)
                    source.problem(line, name, f"missing value; {name} is required" + (f" ({hint})" if hint else ""))
                    bad.add(name)
                else:
                    # An empty optional cell clears the field: the file is the truth for the columns it has.
                    values[name] = () if name == "tags" else None
                continue
            try:
                converted = parse(value)
            except _Bad as exc:
                source.problem(line, name, str(exc))
                bad.add(name)
                continue
            if memo is not None and text:
                memo[value] = converted
            values[name] = converted
        row = Row(line, values, bad)
        if kind == "invoices":
            _check_invoice(source, row)
        elif kind == "payments" and row.ok("reference") and len(values["reference"] or "") > _REFERENCE_LENGTH:
            source.problem(
                line,
                "reference",
                f"reference is {len(values['reference'])} characters long; expected at most {_REFERENCE_LENGTH}",
            )
            bad.add("reference")
        if unique and row.ok(unique):
            key = values[unique]
            if key in first_seen:
                source.problem(
                    line,
                    unique,
                    f"duplicate {unique} {key!r}: already on row {first_seen[key]} of "
                    f"this file; each {kind[:-1]} may appear once",
                )
                bad.add(unique)
            else:
                first_seen[key] = line
        rows.append(row)
    return rows


def _check_invoice(source: Source, row: Row) -> None:
    values = row.values
    if row.ok("amount") and row.ok("currency") and too_precise(values["amount"], values["currency"]):
        source.problem(
            row.line,
            "amount",
            f"{values['amount']} has {decimals(values['amount'])} decimal places; "
            f"{values['currency']} allows at most {minor_units(values['currency'])}",
        )
        row.bad.add("amount")
    if row.ok("issued_on") and row.ok("due_on") and values["due_on"] < values["issued_on"]:
        source.problem(
            row.line,
            "due_on",
            f"due date {values['due_on']} is before the issue date "
            f"{values['issued_on']}; expected due_on on or after issued_on",
        )
        row.bad.add("due_on")
