"""Reading import files: CSV (a header row, then one row per record) or JSON Lines, as located raw records.

Nothing is converted here: a record is the line it starts on and its column -> raw value mapping. Shape
problems (malformed CSV, unknown or missing columns, lines that are not JSON objects) are collected on the
`Source`, located as `FILE:ROW: column: problem` (ROW is the line in the file; the CSV header is line 1).
"""

from __future__ import annotations

import csv
import difflib
import io
import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from engine.errors import DunningError, ImportRejected, RowProblem

KINDS = ("customers", "invoices", "payments")
COLUMNS: dict[str, tuple[str, ...]] = {
    "customers": (
        "id",
        "name",
        "email",
        "phone",
        "address",
        "credit_grade",
        "segment",
        "owner",
        "language",
        "timezone",
        "tags",
        "credit_limit",
        "industry",
        "region",
    ),
    "invoices": ("number", "customer_id", "currency", "amount", "issued_on", "due_on", "tags"),
    "payments": ("invoice", "amount", "paid_on", "reference"),
}
REQUIRED: dict[str, tuple[str, ...]] = {
    "customers": ("id", "name"),
    "invoices": ("number", "customer_id", "currency", "amount", "issued_on", "due_on"),
    "payments": ("invoice", "amount", "paid_on"),
}


@dataclass
class Source:
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


def is_jsonl(path: Path, text: str) -> bool:
    if path.suffix.lower() in (".jsonl", ".ndjson"):
        return True
    return text.lstrip()[:1] == "{"


def read_csv(text: str, label: str, kind: str) -> Source:
    source = Source(label, kind)
    # newline="" leaves line ends to the csv module, so quoted values may span lines.
    source.records.extend(csv_records(io.StringIO(text, newline=""), source))
    return source


def csv_records(lines: Iterable[str], source: Source) -> Iterator[tuple[int, dict[str, Any]]]:
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
            source.problem(
                start,
                "(row)",
                f"malformed CSV ({exc}); quote values that contain commas, quotes or "
                'line breaks, and double any quote inside them ("")',
            )
            previous_line = reader.line_num
            continue
        previous_line = reader.line_num
        if not "".join(row).strip():
            continue  # blank lines, and the all-empty rows spreadsheets leave at the end
        if header is None:
            header = [_column_name(cell) for cell in row]
            if not any(name in columns for name in header):
                source.problem(
                    start,
                    "(header)",
                    f"the first line names no known column (it reads "
                    f"{','.join(row)[:60]!r}); expected a header row such as "
                    f"{','.join(columns)}",
                )
                return
            seen: set[str] = set()
            for index, name in enumerate(header):
                if not name:
                    source.problem(
                        start,
                        f"(column {index + 1})",
                        "empty column name in the header; name the column or remove the extra comma",
                    )
                elif name in seen:
                    source.problem(start, name, f"column '{name}' appears twice in the header; keep one")
                elif name not in columns:
                    source.problem(start, name, _unknown_column(name, columns))
                else:
                    positions.append((index, name))
                seen.add(name)
            absent = [name for name in required if name not in seen]
            for name in absent:
                source.problem(
                    start, name, f"missing required column '{name}'; the header must name {', '.join(required)}"
                )
            source.absent = frozenset(absent)
            continue
        if len(row) != len(header):
            source.problem(
                start,
                "(row)",
                f'has {len(row)} fields but the header has {len(header)}; quote values that contain a comma ("a, b")',
            )
            continue
        yield start, {name: row[index] for index, name in positions}
    if header is None and not source.problems:
        source.problem(
            1, "(file)", f"the file is empty; expected a header row ({','.join(columns)}) and then one row per line"
        )


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not allowed in JSON")


def read_jsonl(text: str, label: str, kind: str) -> Source:
    source = Source(label, kind)
    # split("\n"), not splitlines(): JSON strings may hold U+2028 and friends, which splitlines() breaks on.
    source.records.extend(jsonl_records(text.split("\n"), source))
    return source


def jsonl_records(lines: Iterable[str], source: Source) -> Iterator[tuple[int, dict[str, Any]]]:
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
            source.problem(
                number,
                "(line)",
                f"not valid JSON ({reason}); expected one JSON object per line "
                f"with the keys {', '.join(COLUMNS[kind])}",
            )
            continue
        record = _mapping_record(source, number, value)
        if record is not None:
            found = True
            yield record
    if not found and not source.problems:
        source.problem(
            1,
            "(file)",
            f"the file is empty; expected one JSON object per line with the keys {', '.join(COLUMNS[kind])}",
        )


class LineReader:
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
                raise ImportRejected(
                    self.label,
                    [
                        RowProblem(
                            self.label,
                            number,
                            "(file)",
                            f"byte 0x{raw[exc.start]:02x} is not UTF-8; save the file as UTF-8 (in Excel: CSV UTF-8)",
                        )
                    ],
                ) from None

    def json_lines(self) -> Iterator[str]:
        # Binary lines end at b"\n" only, as text.split("\n") did: U+2028 inside a JSON string is no line end.
        for line in self:
            yield line[:-1] if line.endswith("\n") else line


def add_mapping(source: Source, number: int, value: Any) -> None:
    record = _mapping_record(source, number, value)
    if record is not None:
        source.records.append(record)


def _mapping_record(source: Source, number: int, value: Any) -> tuple[int, dict[str, Any]] | None:
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
