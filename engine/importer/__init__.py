"""Loading customers, invoices and payments from CSV or JSON Lines: all or nothing.

An import runs in two phases. First every row is read and checked — its shape, each value, and what it refers
to in the database — and *every* problem is collected, located the way compilers do it: `FILE:ROW: column:
problem`, where ROW is the line in the file (the CSV header is line 1; a quoted value spanning lines keeps the
count right). If there is any problem, ImportRejected carries them all and nothing is written. Otherwise
everything is written in one write transaction with set-based statements — `BulkWriter` (one executemany per
table and shape) and the event log's `append_events` — because a row-by-row ORM load of a large book is an
order of magnitude slower (100k rows: ~8.7 s with `session.add`, ~0.85 s with Core executemany). Existing rows
are read in bulk (`IN` lists of a few thousand keys), never one query per row.

The existing rows an import refers to are read inside that same write transaction, so a sweep running at the
same time cannot change an invoice between the check and the write.

Re-importing is safe: an identical customer or invoice changes nothing, a changed one is updated and the change
recorded as an event, and a payment is recognised again by its dedupe key (invoice + reference, or invoice +
amount + date without a reference). Anything that changes an invoice or a customer clears `next_action_on`, so
the next sweep looks at the invoices concerned again.
"""

from __future__ import annotations

import csv
import difflib
import gc
import io
import itertools
import json
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, time, timezone, tzinfo
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, available_timezones

from sqlalchemy import Connection, bindparam, func, select, type_coerce, update
from sqlalchemy.sql import Select

from engine.store.events import append_events
from engine.clock import Clock, SystemClock, out_of_range
from engine.currencies import is_currency, minor_units, unknown_currency_message
from engine.errors import DunningError, IllegalTransition, ImportRejected, RowProblem
from engine.policy.machine import Case, machine_for_invoice
from engine.store.models import Customer, Invoice, Money, Notification, NotificationStatus, Payment
from engine.policy.model import CLOSED_STATES, CURRENT, PAID, PolicySet
from engine.store.database import BulkWriter, Repository
from engine.sweep import wake
from engine.templates import is_known_locale

CUSTOMERS = Customer.__table__  # type: ignore[attr-defined]
INVOICES = Invoice.__table__  # type: ignore[attr-defined]
PAYMENTS = Payment.__table__  # type: ignore[attr-defined]
NOTIFICATIONS = Notification.__table__  # type: ignore[attr-defined]

KINDS = ("customers", "invoices", "payments")
COLUMNS: dict[str, tuple[str, ...]] = {
    "customers": ("id", "name", "email", "phone", "address", "credit_grade", "segment", "owner", "language",
                  "timezone", "tags", "credit_limit", "industry", "region"),
    "invoices": ("number", "customer_id", "currency", "amount", "issued_on", "due_on", "tags"),
    "payments": ("invoice", "amount", "paid_on", "reference"),
}
REQUIRED: dict[str, tuple[str, ...]] = {
    "customers": ("id", "name"),
    "invoices": ("number", "customer_id", "currency", "amount", "issued_on", "due_on"),
    "payments": ("invoice", "amount", "paid_on"),
}

#: Money is stored as integer ten-thousandths on SQLite (a signed 64-bit integer), so stay well below 9.2e14.
_MAX_AMOUNT = Decimal(10) ** 14
#: Key columns are VARCHAR(64) in the schema; PostgreSQL would refuse longer values mid-transaction.
_KEY_LENGTH = 64
#: The dedupe key is VARCHAR(255): invoice number (<= 64) + "|ref:" + reference must fit.
_REFERENCE_LENGTH = 180
#: Rows per `IN (...)` lookup: far below SQLite's 32766 bound parameters, and few round trips.
_CHUNK = 5000
#: Rows read, checked and written at a time by a streamed file import (`Importer.import_file`).
STREAM_ROWS = 20000

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


@dataclass
class ImportReport:
    """What one import did. `closed` counts invoices that a payment in this import paid in full."""

    kind: str
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    closed: int = 0
    rows: int = 0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def payment_dedupe_key(invoice: str, amount: Decimal, paid_on: date, reference: str | None) -> str:
    """What recognises a payment again: its reference, or without one its amount and date."""
    if reference:
        return f"{invoice}|ref:{reference}"
    return f"{invoice}|{format(amount.normalize(), 'f')}|{paid_on.isoformat()}"


# -- values ----------------------------------------------------------------------------------------------------


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
            raise _Bad(f"contains the character U+{ord(bad.group()):04X} at position {bad.start() + 1}, which cannot "
                       "be stored (a NUL byte or half of a UTF-16 surrogate pair); fix the export that wrote it")
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
        return (f"{text!r} has a thousands separator, which is ambiguous (',' is the decimal mark in many "
                f"locales); write it without separators: {plain}")
    if "," in text:
        return (f"{text!r} has a comma: decimal commas and thousands separators are ambiguous between locales; "
                f"{_AMOUNT_HINT} (a '.' as the decimal mark, no separators)")
    if _GROUPED_RE.search(text):
        return f"{text!r} groups its digits; write it without separators, {_AMOUNT_HINT}"
    return f"{text!r} is not a number; {_AMOUNT_HINT} (no currency symbol, no exponent)"


def _decimals(amount: Decimal) -> int:
    """Significant decimal places: 100.50 has 1 (the trailing zero adds no precision), 100 has 0."""
    exponent = amount.normalize().as_tuple().exponent
    return max(0, -exponent) if isinstance(exponent, int) else 0


def _too_precise(amount: Decimal, currency: str) -> bool:
    # Quantizing is exact for a value that fits the currency's minor unit, and much cheaper than counting places.
    return amount.quantize(_quantum(currency)) != amount


@lru_cache(maxsize=None)
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
        raise _Bad(f"{_show(value)} are not tags; expected tags separated by ';' such as key;vip, "
                   "or a JSON list of strings")
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
    "credit_limit": _credit_limit, "industry": _text, "region": _text,
    "id": _key, "name": _text, "email": _email, "phone": _text, "address": _text, "credit_grade": _text,
    "segment": _text, "owner": _text, "language": _language, "timezone": _timezone, "tags": _tags,
    "number": _key, "customer_id": _key, "currency": _currency, "amount": _amount, "issued_on": _date,
    "due_on": _date, "invoice": _key, "paid_on": _date, "reference": _text,
}
_HINTS = {
    "amount": _AMOUNT_HINT, "credit_limit": _AMOUNT_HINT, "issued_on": _DATE_HINT, "due_on": _DATE_HINT, "paid_on": _DATE_HINT,
    "currency": "expected a 3-letter ISO 4217 code such as EUR",
}


def _json_safe(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, (date, datetime)):
        return value.isoformat()
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


def _money(amount: Decimal, currency: str) -> str:
    """An amount as text with the currency's decimals (stored amounts carry 4 places)."""
    return str(amount.quantize(_quantum(currency)))


# -- reading ---------------------------------------------------------------------------------------------------


@dataclass
class _Source:
    """Rows as read, before their values are checked."""

    label: str
    kind: str
    records: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    problems: list[RowProblem] = field(default_factory=list)
    #: Required columns a CSV header lacks: reported once at the header, not again on every row.
    absent: frozenset[str] = frozenset()

    def problem(self, row: int, column: str, message: str) -> None:
        self.problems.append(RowProblem(self.label, row, column, message))


def _unknown_column(name: str, columns: Sequence[str]) -> str:
    close = difflib.get_close_matches(name, columns, n=1)
    hint = f"; did you mean '{close[0]}'?" if close else ""
    return f"unknown column '{name}'; expected one of {', '.join(columns)}{hint}"


def _column_name(raw: Any) -> str:
    # A second BOM (a file saved twice by a careless tool) or stray spaces should not make a column unknown.
    return str(raw).replace("\ufeff", "").strip().lower()


def _is_jsonl(path: Path, text: str) -> bool:
    if path.suffix.lower() in (".jsonl", ".ndjson"):
        return True
    return text.lstrip()[:1] == "{"


def _read_csv(text: str, label: str, kind: str) -> _Source:
    source = _Source(label, kind)
    # newline="" leaves line ends to the csv module, so quoted values may span lines.
    source.records.extend(_csv_records(io.StringIO(text, newline=""), source))
    return source


def _csv_records(lines: Iterable[str], source: _Source) -> Iterator[tuple[int, dict[str, Any]]]:
    """The records of CSV text given line by line (line ends kept), as they are read; problems go to `source`."""
    columns, required = COLUMNS[source.kind], REQUIRED[source.kind]
    reader = csv.reader(lines, strict=True)
    header: list[str] | None = None
    positions: list[tuple[int, str]] = []
    previous_line = 0
    while True:
        # A record starts on the line after the previous one ended; line_num is where this one ends.
        start = previous_line + 1
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            source.problem(start, "(row)", f"malformed CSV ({exc}); quote values that contain commas, quotes or "
                                           'line breaks, and double any quote inside them ("")')
            previous_line = reader.line_num
            continue
        previous_line = reader.line_num
        if not "".join(row).strip():
            continue  # blank lines, and the all-empty rows spreadsheets leave at the end
        if header is None:
            header = [_column_name(cell) for cell in row]
            if not any(name in columns for name in header):
                source.problem(start, "(header)", f"the first line names no known column (it reads "
                                                  f"{','.join(row)[:60]!r}); expected a header row such as "
                                                  f"{','.join(columns)}")
                return
            seen: set[str] = set()
            for index, name in enumerate(header):
                if not name:
                    source.problem(start, f"(column {index + 1})",
                                   "empty column name in the header; name the column or remove the extra comma")
                elif name in seen:
                    source.problem(start, name, f"column '{name}' appears twice in the header; keep one")
                elif name not in columns:
                    source.problem(start, name, _unknown_column(name, columns))
                else:
                    positions.append((index, name))
                seen.add(name)
            absent = [name for name in required if name not in seen]
            for name in absent:
                source.problem(start, name, f"missing required column '{name}'; the header must name "
                                            f"{', '.join(required)}")
            source.absent = frozenset(absent)
            continue
        if len(row) != len(header):
            source.problem(start, "(row)", f"has {len(row)} fields but the header has {len(header)}; quote "
                                           'values that contain a comma ("a, b")')
            continue
        yield start, {name: row[index] for index, name in positions}
    if header is None and not source.problems:
        source.problem(1, "(file)", f"the file is empty; expected a header row ({','.join(columns)}) and then "
                                    "one row per line")


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not allowed in JSON")


def _read_jsonl(text: str, label: str, kind: str) -> _Source:
    source = _Source(label, kind)
    # split("\n"), not splitlines(): JSON strings may hold U+2028 and friends, which splitlines() breaks on.
    source.records.extend(_jsonl_records(text.split("\n"), source))
    return source


def _jsonl_records(lines: Iterable[str], source: _Source) -> Iterator[tuple[int, dict[str, Any]]]:
    """The records of JSON Lines given line by line, as they are read; problems go to `source`."""
    kind = source.kind
    found = False
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line, parse_float=Decimal, parse_constant=_reject_constant)
        except ValueError as exc:
            reason = f"{exc.msg} at column {exc.colno}" if isinstance(exc, json.JSONDecodeError) else str(exc)
            source.problem(number, "(line)", f"not valid JSON ({reason}); expected one JSON object per line "
                                             f"with the keys {', '.join(COLUMNS[kind])}")
            continue
        record = _mapping_record(source, number, value)
        if record is not None:
            found = True
            yield record
    if not found and not source.problems:
        source.problem(1, "(file)", f"the file is empty; expected one JSON object per line with the keys "
                                    f"{', '.join(COLUMNS[kind])}")


class _LineReader:
    """A file's lines decoded as UTF-8 one at a time (bounded memory), counting the bytes read for a
    progress bar. A byte that is not UTF-8 rejects the import with its line, as reading it whole would."""

    def __init__(self, path: Path, label: str):
        self.label = label
        try:
            self._file = path.open("rb")
            self.size = path.stat().st_size
        except FileNotFoundError:
            raise DunningError(f"cannot read {label}: no such file; check the path") from None
        except OSError as exc:
            raise DunningError(f"cannot read {label}: {exc.strerror or exc}; check the path and permissions") from None
        self.position = 0
        head = self._file.read(4096)
        self._file.seek(0)
        self.first = head.decode("utf-8-sig", errors="replace")

    def close(self) -> None:
        self._file.close()

    def __iter__(self) -> Iterator[str]:
        number = 0
        for raw in self._file:
            number += 1
            self.position += len(raw)
            try:
                yield raw.decode("utf-8-sig" if number == 1 else "utf-8")
            except UnicodeDecodeError as exc:
                raise ImportRejected(self.label, [RowProblem(
                    self.label, number, "(file)",
                    f"byte 0x{raw[exc.start]:02x} is not UTF-8; save the file as UTF-8 (in Excel: CSV UTF-8)",
                )]) from None

    def json_lines(self) -> Iterator[str]:
        # Binary lines end at b"\n" only, as text.split("\n") did: U+2028 inside a JSON string is no line end.
        for line in self:
            yield line[:-1] if line.endswith("\n") else line


def _add_mapping(source: _Source, number: int, value: Any) -> None:
    record = _mapping_record(source, number, value)
    if record is not None:
        source.records.append(record)


def _mapping_record(source: _Source, number: int, value: Any) -> tuple[int, dict[str, Any]] | None:
    columns = COLUMNS[source.kind]
    if not isinstance(value, Mapping):
        source.problem(number, "(line)", f"expected an object of column to value, got {type(value).__name__}")
        return None
    values: dict[str, Any] = {}
    for key, item in value.items():
        name = _column_name(key)
        if name in columns:
            values[name] = item
        else:
            source.problem(number, name or "(empty)", _unknown_column(name, columns))
    return number, values


# -- checking --------------------------------------------------------------------------------------------------


@dataclass
class _Row:
    """One row with its values converted; `bad` names the columns whose value could not be used."""

    line: int
    values: dict[str, Any]
    bad: set[str]

    def ok(self, column: str) -> bool:
        return column in self.values and column not in self.bad


def _check(source: _Source, first_seen: dict[str, int] | None = None) -> list[_Row]:
    """Convert every value, recording a problem for each bad one; cross-row checks that need no database.

    `first_seen` (key -> row) carries the duplicate check across the chunks of a streamed file."""
    kind, columns, required = source.kind, COLUMNS[source.kind], REQUIRED[source.kind]
    rows: list[_Row] = []
    first_seen = {} if first_seen is None else first_seen
    unique = {"customers": "id", "invoices": "number"}.get(kind)
    # Values repeat (dates, currencies, customers, tags): each distinct text is converted once per import.
    # Not worth it for the unique keys.
    parsers = [
        (name, _PARSERS[name], name in required, name in source.absent,
         None if name in ("id", "number", "reference") else {})
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
        row = _Row(line, values, bad)
        if kind == "invoices":
            _check_invoice(source, row)
        elif kind == "payments" and row.ok("reference") and len(values["reference"] or "") > _REFERENCE_LENGTH:
            source.problem(line, "reference", f"reference is {len(values['reference'])} characters long; "
                                              f"expected at most {_REFERENCE_LENGTH}")
            bad.add("reference")
        if unique and row.ok(unique):
            key = values[unique]
            if key in first_seen:
                source.problem(line, unique, f"duplicate {unique} {key!r}: already on row {first_seen[key]} of "
                                             f"this file; each {kind[:-1]} may appear once")
                bad.add(unique)
            else:
                first_seen[key] = line
        rows.append(row)
    return rows


def _check_invoice(source: _Source, row: _Row) -> None:
    values = row.values
    if row.ok("amount") and row.ok("currency") and _too_precise(values["amount"], values["currency"]):
        source.problem(row.line, "amount", f"{values['amount']} has {_decimals(values['amount'])} decimal places; "
                                           f"{values['currency']} allows at most {minor_units(values['currency'])}")
        row.bad.add("amount")
    if row.ok("issued_on") and row.ok("due_on") and values["due_on"] < values["issued_on"]:
        source.problem(row.line, "due_on", f"due date {values['due_on']} is before the issue date "
                                           f"{values['issued_on']}; expected due_on on or after issued_on")
        row.bad.add("due_on")


def _select_in(conn: Connection, query: Select[Any], column: Any, keys: Iterable[Any]) -> Iterator[Any]:
    """Rows whose `column` is one of `keys`, a chunk of keys per statement (bulk, never one query per row)."""
    unique = list(dict.fromkeys(keys))
    for start in range(0, len(unique), _CHUNK):
        yield from conn.execute(query.where(column.in_(unique[start : start + _CHUNK]))).mappings()


# -- the importer ----------------------------------------------------------------------------------------------


class Importer:
    """Imports customers, invoices and payments into `repo`, all or nothing.

    `zone` is the company time zone (a payment's effective instant is midnight of its date there); `policies`
    lets a settling payment name the policy version that governed the invoice; `actor` is written on every
    event.
    """

    def __init__(self, repo: Repository, *, zone: tzinfo, clock: Clock | None = None,
                 policies: PolicySet | None = None, actor: str = "system"):
        self.repo = repo
        self.zone = zone
        self.clock = clock or SystemClock()
        self.policies = policies
        self.actor = actor

    def import_file(self, kind: str, path: Path | str, *,
                    progress: Callable[[int, int], None] | None = None) -> ImportReport:
        """Import a CSV (header row) or JSON Lines file (.jsonl/.ndjson, or first character `{`).

        The file is streamed: read, checked and written STREAM_ROWS rows at a time inside one write
        transaction, so memory stays bounded however large it is (the duplicate-key check keeps one entry per
        row: ~100 bytes). Still all or nothing: after the first bad row nothing more is written, the rest is
        only checked, and ImportRejected lists every bad row once the whole file has been read — the
        transaction then rolls back. `progress(bytes_read, total_bytes)` is called after each chunk.

        Raises ImportRejected listing every bad row (nothing is written then), DunningError for an unreadable file.
        """
        _check_kind(kind)
        label = str(path)
        path = Path(path)
        reader = _LineReader(path, label)
        try:
            source = _Source(label, kind)
            if _is_jsonl(path, reader.first):
                records = _jsonl_records(reader.json_lines(), source)
            else:
                records = _csv_records(reader, source)
            return self._import_stream(source, records, reader, progress)
        finally:
            reader.close()

    def _import_stream(self, source: _Source, records: Iterator[tuple[int, dict[str, Any]]], reader: _LineReader,
                       progress: Callable[[int, int], None] | None) -> ImportReport:
        report = ImportReport(kind=source.kind, rows=0)
        first_seen: dict[str, int] = {}
        rejected = False
        with _collector_paused():
            now = self.clock.now()
            now = now.replace(tzinfo=timezone.utc) if now.tzinfo is None else now.astimezone(timezone.utc)
            plan = {"customers": self._customers, "invoices": self._invoices, "payments": self._payments}[source.kind]
            with self.repo.write() as session:
                conn = session.connection()
                while True:
                    source.records = list(itertools.islice(records, STREAM_ROWS))
                    if not source.records:
                        break
                    rows = _check(source, first_seen)
                    report.rows += len(rows)
                    try:
                        # Checks against the database come first; a plan writes only when no problem was found
                        # anywhere so far, so after the first one it only checks.
                        plan(conn, source, rows, now, report)
                    except ImportRejected:
                        rejected = True
                    if progress is not None:
                        progress(reader.position, reader.size)
                    if len(source.records) < STREAM_ROWS:
                        break
                source.records = []
                if rejected or source.problems:
                    self._reject_if_any(source)  # raises: the transaction rolls back
        if progress is not None:
            progress(reader.size, reader.size)
        return report

    def import_rows(self, kind: str, rows: Iterable[Mapping[str, Any]], source: str = "<rows>") -> ImportReport:
        """Import rows given as mappings of column to value (text, or already typed: Decimal, date, list).

        The checks are those of import_file; ROW in a problem is the 1-based position in `rows`.
        """
        _check_kind(kind)
        parsed = _Source(source, kind)
        for number, row in enumerate(rows, start=1):
            _add_mapping(parsed, number, row)
        return self._import(parsed)

    # -- the two phases --------------------------------------------------------------------------------------

    def _import(self, source: _Source) -> ImportReport:
        with _collector_paused():
            rows = _check(source)
            report = ImportReport(kind=source.kind, rows=len(rows))
            now = self.clock.now()
            now = now.replace(tzinfo=timezone.utc) if now.tzinfo is None else now.astimezone(timezone.utc)
            plan = {"customers": self._customers, "invoices": self._invoices, "payments": self._payments}[source.kind]
            with self.repo.write() as session:
                # Raising inside the transaction rolls it back: a rejected import leaves no trace.
                plan(session.connection(), source, rows, now, report)
        return report

    def _reject_if_any(self, source: _Source) -> None:
        if source.problems:
            # Stable sort: within a row, shape problems come before value problems, as they were found.
            raise ImportRejected(source.label, sorted(source.problems, key=lambda p: p.row))

    def _event(self, at: datetime, recorded_at: datetime, kind: str, invoice_id: int | None,
               customer_id: str | None, data: dict[str, Any]) -> dict[str, Any]:
        return {"at": at, "recorded_at": recorded_at, "kind": kind, "invoice_id": invoice_id,
                "customer_id": customer_id, "actor": self.actor, "data": data}

    def _policy_hash(self, name: str | None) -> str | None:
        policy = self.policies.by_name(name) if self.policies is not None and name else None
        return policy.hash if policy is not None else None

    def _fire(self, number: str, stage: str, policy: str | None, trigger: str) -> None:
        governing = self.policies.by_name(policy) if self.policies is not None and policy else None
        machine_for_invoice(governing, stage).fire(Case(number, stage), trigger)

    # -- customers -------------------------------------------------------------------------------------------

    def _customers(self, conn: Connection, source: _Source, rows: list[_Row], now: datetime,
                   report: ImportReport) -> None:
        existing = {
            row["id"]: row
            for row in _select_in(conn, select(CUSTOMERS), CUSTOMERS.c.id, (r.values["id"] for r in rows if r.ok("id")))
        }
        self._reject_if_any(source)
        inserts: list[dict[str, Any]] = []
        updates: list[dict[str, Any]] = []
        events: list[dict[str, Any]] = []
        for row in rows:
            values = row.values
            customer_id = values["id"]
            old = existing.get(customer_id)
            if old is None:
                inserts.append({name: values.get(name, () if name == "tags" else None) for name in COLUMNS["customers"]})
                data = {"customer": customer_id}
                data.update((name, _json_safe(value)) for name, value in values.items() if name != "id")
                events.append(self._event(now, now, "import", None, customer_id, data))
                report.created += 1
                continue
            changes: dict[str, list[Any]] = {}
            for name, value in values.items():
                before = tuple(old[name] or ()) if name == "tags" else old[name]
                if name != "id" and before != value:
                    changes[name] = [before, value]
            if not changes:
                report.unchanged += 1
                continue
            updates.append({"id": customer_id, **{name: new for name, (_, new) in changes.items()}})
            events.append(self._event(now, now, "update", None, customer_id, {
                "customer": customer_id, "changes": {name: _json_safe(pair) for name, pair in changes.items()},
            }))
            report.updated += 1
        BulkWriter(conn, CUSTOMERS).insert(inserts)
        BulkWriter(conn, CUSTOMERS).update(updates, key="id")
        # Customer fields feed the policies' decisions: their invoices need a fresh look at the next sweep.
        changed = [change["id"] for change in updates]
        for start in range(0, len(changed), _CHUNK):
            wake(conn, customer_ids=changed[start : start + _CHUNK])
        if events:
            append_events(conn, events)

    # -- invoices --------------------------------------------------------------------------------------------

    def _invoices(self, conn: Connection, source: _Source, rows: list[_Row], now: datetime,
                  report: ImportReport) -> None:
        columns = (INVOICES.c.id, INVOICES.c.number, INVOICES.c.customer_id, INVOICES.c.currency,
                   INVOICES.c.amount, INVOICES.c.open_amount, INVOICES.c.issued_on, INVOICES.c.due_on,
                   INVOICES.c.tags, INVOICES.c.stage, INVOICES.c.policy)
        existing = {
            row["number"]: row
            for row in _select_in(conn, select(*columns), INVOICES.c.number,
                                  (r.values["number"] for r in rows if r.ok("number")))
        }
        known_customers = {
            row["id"]
            for row in _select_in(conn, select(CUSTOMERS.c.id), CUSTOMERS.c.id,
                                  (r.values["customer_id"] for r in rows if r.ok("customer_id")))
        }
        for row in rows:
            if row.ok("customer_id") and row.values["customer_id"] not in known_customers:
                source.problem(row.line, "customer_id", f"no customer with id {row.values['customer_id']!r}; "
                                                        "import the customer first or correct the id")
                row.bad.add("customer_id")
        # What was already paid matters only where the amount changes: the open amount is recomputed from it.
        amount_changed = [
            existing[r.values["number"]]["id"] for r in rows
            if r.ok("number") and r.ok("amount") and r.values["number"] in existing
            and existing[r.values["number"]]["amount"] != r.values["amount"]
        ]
        paid_sum = type_coerce(func.sum(PAYMENTS.c.amount), Money())
        paid = {
            row["invoice_id"]: row["paid"] or Decimal(0)
            for row in _select_in(
                conn, select(PAYMENTS.c.invoice_id, paid_sum.label("paid")).group_by(PAYMENTS.c.invoice_id),
                PAYMENTS.c.invoice_id, amount_changed,
            )
        }

        inserts: list[dict[str, Any]] = []
        updates: list[dict[str, Any]] = []
        events: list[dict[str, Any]] = []
        cancel: list[int] = []
        for row in rows:
            if row.bad:
                continue
            values = row.values
            old = existing.get(values["number"])
            if old is None:
                inserts.append({
                    "number": values["number"], "customer_id": values["customer_id"],
                    "currency": values["currency"], "amount": values["amount"], "open_amount": values["amount"],
                    "issued_on": values["issued_on"], "due_on": values["due_on"], "tags": values.get("tags", ()),
                    # Spelled out: the bulk insert bypasses SQLAlchemy's Python-side column defaults.
                    "stage": CURRENT, "policy": None, "stage_repeats": 0, "paused_days": 0, "escalate_now": False,
                    "updated_at": now,
                })
                continue
            self._plan_invoice_update(source, row, old, paid.get(old["id"], Decimal(0)), now, updates, events,
                                      cancel, report)
        self._reject_if_any(source)

        if inserts:
            last_id = conn.execute(select(func.max(INVOICES.c.id))).scalar() or 0
            BulkWriter(conn, INVOICES).insert(inserts)
            # The events need the new ids. Ids only grow, so ours are above the highest before the insert; the
            # number (unique) tells ours from any a concurrent writer might have committed meanwhile.
            numbers = {values["number"] for values in inserts}
            ids = {
                number: invoice_id
                for invoice_id, number in conn.execute(
                    select(INVOICES.c.id, INVOICES.c.number).where(INVOICES.c.id > last_id)
                )
                if number in numbers
            }
            for values in inserts:
                events.append(self._event(now, now, "import", ids[values["number"]], values["customer_id"], {
                    "invoice": values["number"], "customer_id": values["customer_id"],
                    "currency": values["currency"], "amount": _money(values["amount"], values["currency"]),
                    "issued_on": values["issued_on"].isoformat(), "due_on": values["due_on"].isoformat(),
                    "tags": list(values["tags"]),
                }))
            report.created += len(inserts)
        BulkWriter(conn, INVOICES).update(updates, key="id")
        self._cancel_pending(conn, cancel, "invoice paid before sending")
        if events:
            append_events(conn, events)

    def _plan_invoice_update(self, source: _Source, row: _Row, old: Mapping[str, Any], paid: Decimal,
                             now: datetime, updates: list[dict[str, Any]], events: list[dict[str, Any]],
                             cancel: list[int], report: ImportReport) -> None:
        values = row.values
        number = values["number"]
        changes: dict[str, list[Any]] = {}
        for name in ("customer_id", "currency", "amount", "issued_on", "due_on", "tags"):
            before = tuple(old[name] or ()) if name == "tags" else old[name]
            if name in values and before != values[name]:
                changes[name] = [before, values[name]]
        if not changes:
            report.unchanged += 1
            return
        # next_action_on = NULL: the next sweep must look at a changed invoice again (see sweep.wake).
        change: dict[str, Any] = {"id": old["id"], **{name: new for name, (_, new) in changes.items()},
                                  "updated_at": now, "next_action_on": None}
        transition: dict[str, Any] | None = None
        if "amount" in changes:
            open_amount = values["amount"] - paid
            if open_amount < 0:
                source.problem(row.line, "amount", f"{values['amount']} is below the "
                                                   f"{_money(paid, old['currency'])} already paid on invoice "
                                                   f"{number}; expected at least that much")
                row.bad.add("amount")
                return
            change["open_amount"] = open_amount
            stage = old["stage"]
            # Keep the stage consistent with the new open amount: the machine's moves, never a direct write.
            if stage == PAID and open_amount > 0:
                transition = {"to": CURRENT, "trigger": "reopen", "rule": "amount raised above what was paid"}
            elif stage not in CLOSED_STATES and open_amount == 0:
                transition = {"to": PAID, "trigger": "pay", "rule": "amount lowered to what was already paid"}
            if transition is not None:
                try:
                    self._fire(number, stage, old["policy"], transition["trigger"])
                except IllegalTransition as exc:
                    source.problem(row.line, "amount", str(exc))
                    row.bad.add("amount")
                    return
                change.update(stage=transition["to"], stage_entered_at=now, stage_repeats=0, last_notice_at=None,
                              resume_stage=None, paused_since=None, awaiting_stage=None, escalate_now=False,
                              closed_at=now if transition["to"] == PAID else None)
                if transition["to"] == PAID:
                    cancel.append(old["id"])
        updates.append(change)
        shown = {
            name: [_money(old_value, old["currency"]), _money(new_value, values.get("currency", old["currency"]))]
            if name == "amount" else _json_safe([old_value, new_value])
            for name, (old_value, new_value) in changes.items()
        }
        customer_id = values.get("customer_id", old["customer_id"])
        events.append(self._event(now, now, "update", old["id"], customer_id, {"invoice": number, "changes": shown}))
        if transition is not None:
            events.append(self._event(now, now, "transition", old["id"], customer_id, {
                "invoice": number, "from": old["stage"], "to": transition["to"], "rule": transition["rule"],
                "policy": old["policy"], "policy_hash": self._policy_hash(old["policy"]),
            }))
        report.updated += 1

    # -- payments --------------------------------------------------------------------------------------------

    def _payments(self, conn: Connection, source: _Source, rows: list[_Row], now: datetime,
                  report: ImportReport) -> None:
        columns = (INVOICES.c.id, INVOICES.c.number, INVOICES.c.customer_id, INVOICES.c.currency,
                   INVOICES.c.open_amount, INVOICES.c.stage, INVOICES.c.policy)
        invoices = {
            row["number"]: dict(row)
            for row in _select_in(conn, select(*columns), INVOICES.c.number,
                                  (r.values["invoice"] for r in rows if r.ok("invoice")))
        }
        keys: dict[int, str] = {}
        for index, row in enumerate(rows):
            if row.ok("invoice") and row.ok("amount") and row.ok("paid_on") and "reference" not in row.bad:
                keys[index] = payment_dedupe_key(row.values["invoice"], row.values["amount"],
                                                 row.values["paid_on"], row.values.get("reference"))
        known_keys = {
            row["dedupe_key"]
            for row in _select_in(conn, select(PAYMENTS.c.dedupe_key), PAYMENTS.c.dedupe_key, keys.values())
        }

        payments: list[dict[str, Any]] = []
        events: list[dict[str, Any]] = []
        settled_by: dict[str, int] = {}  # invoice number -> the row of this file that paid it in full
        touched: dict[str, dict[str, Any]] = {}
        for index, row in enumerate(rows):
            values = row.values
            invoice = invoices.get(values["invoice"]) if row.ok("invoice") else None
            if row.ok("invoice") and invoice is None:
                source.problem(row.line, "invoice", f"no invoice numbered {values['invoice']!r}; import the "
                                                    "invoice first or correct the number")
                continue
            if invoice is None or index not in keys:
                continue
            key = keys[index]
            if key in known_keys:
                # Recorded already (in the database, or earlier in this file): re-importing a bank file is safe.
                report.unchanged += 1
                continue
            number, amount, currency = invoice["number"], values["amount"], invoice["currency"]
            if _too_precise(amount, currency):
                source.problem(row.line, "amount", f"{amount} has {_decimals(amount)} decimal places; invoice "
                                                   f"{number} is in {currency}, which allows at most "
                                                   f"{minor_units(currency)}")
                continue
            if invoice["stage"] in CLOSED_STATES:
                if number in settled_by:
                    message = (f"invoice {number} is paid in full by row {settled_by[number]} of this file; "
                               f"this payment of {amount} would overpay it")
                else:
                    state = "paid" if invoice["stage"] == PAID else "written off"
                    message = (f"invoice {number} is already {state}; a payment on it is refused (a repeat of a "
                               "recorded payment must carry the same reference)")
                source.problem(row.line, "invoice", message)
                continue
            if amount > invoice["open_amount"]:
                earlier = " after the earlier rows of this file" if number in touched else ""
                source.problem(row.line, "amount", f"payment of {amount} exceeds the open amount "
                                                   f"{_money(invoice['open_amount'], currency)} of invoice {number}"
                                                   f"{earlier}; expected at most that much")
                continue
            known_keys.add(key)
            invoice["open_amount"] -= amount
            touched[number] = invoice
            at = datetime.combine(values["paid_on"], time(0), tzinfo=self.zone)
            reference = values.get("reference")
            payments.append({"invoice_id": invoice["id"], "amount": amount, "paid_on": values["paid_on"],
                             "reference": reference, "dedupe_key": key, "recorded_at": now})
            events.append(self._event(at, now, "payment", invoice["id"], invoice["customer_id"], {
                "invoice": number, "amount": _money(amount, currency), "paid_on": values["paid_on"].isoformat(),
                "reference": reference, "open_amount": _money(invoice["open_amount"], currency),
            }))
            report.created += 1
            if invoice["open_amount"] == 0:
                try:
                    self._fire(number, invoice["stage"], invoice["policy"], "pay")
                except IllegalTransition as exc:
                    source.problem(row.line, "invoice", str(exc))
                    continue
                events.append(self._event(at, now, "transition", invoice["id"], invoice["customer_id"], {
                    "invoice": number, "from": invoice["stage"], "to": PAID,
                    "rule": "payment settled the open amount", "policy": invoice["policy"],
                    "policy_hash": self._policy_hash(invoice["policy"]),
                }))
                invoice["stage"] = PAID
                invoice["closed_at"] = at
                settled_by[number] = row.line
                report.closed += 1
        self._reject_if_any(source)

        BulkWriter(conn, PAYMENTS).insert(payments)
        updates = []
        for invoice in touched.values():
            # next_action_on = NULL: a smaller open amount can change what the next sweep decides.
            change = {"id": invoice["id"], "open_amount": invoice["open_amount"], "updated_at": now,
                      "next_action_on": None}
            if "closed_at" in invoice:
                change.update(stage=PAID, closed_at=invoice["closed_at"], stage_entered_at=invoice["closed_at"],
                              stage_repeats=0, resume_stage=None, paused_since=None, awaiting_stage=None,
                              escalate_now=False)
            updates.append(change)
        BulkWriter(conn, INVOICES).update(updates, key="id")
        self._cancel_pending(conn, [invoice["id"] for invoice in touched.values() if "closed_at" in invoice],
                             "invoice paid before sending")
        if events:
            append_events(conn, events)

    def _cancel_pending(self, conn: Connection, invoice_ids: list[int], reason: str) -> None:
        """A closed invoice's queued notices must never go out."""
        if not invoice_ids:
            return
        conn.execute(
            update(NOTIFICATIONS)
            .where(NOTIFICATIONS.c.invoice_id == bindparam("b_invoice"),
                   NOTIFICATIONS.c.status == NotificationStatus.PENDING)
            .values(status=NotificationStatus.CANCELLED, error=reason),
            [{"b_invoice": invoice_id} for invoice_id in invoice_ids],
        )


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector for one import.

    An import builds a few hundred thousand small dicts, none of them cyclic; each allocation burst would
    otherwise set off collections that rescan all of them, about a quarter of the run time on a large file.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise DunningError(f"unknown import kind {kind!r}; expected one of {', '.join(KINDS)}")
