"""Reference rates as data: `rules/rates/<name>.yaml`, a YAML list of `{from: DATE, rate: PERCENT}` entries.

A rate is in force from its date until the next entry's date; the last one stays in force until a newer entry
is added. The files ship with the known history and are edited by the user; nothing is ever fetched at run
time. A day before the first entry has no known rate: asking for it is a `ChargesError` naming the file.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from pathlib import Path

from engine.errors import ChargesError, Problem
from engine.yamlsource import Located, load_located_file, show_value

__all__ = ["RateTable", "check_rate_file", "load_rate_table"]


@dataclass(frozen=True)
class RateTable:
    """One reference rate's history: `starts[i]` is the first day `rates[i]` (percent a year) is in force."""

    file: str
    starts: tuple[date, ...]
    rates: tuple[Decimal, ...]

    def rate_on(self, day: date) -> Decimal:
        """The rate in force on `day`; ChargesError when the file knows no rate that early."""
        position = bisect.bisect_right(self.starts, day) - 1
        if position < 0:
            first = self.starts[0].isoformat() if self.starts else "no entries"
            raise ChargesError(
                f"no reference rate known for {day.isoformat()} in {self.file} (first entry: {first}); "
                f"add the rate in force on that day as {{from: {day.isoformat()}, rate: PERCENT}} to {self.file}"
            )
        return self.rates[position]

    def changes_between(self, first: date, last: date) -> list[date]:
        """The days in (first, last] on which a new rate comes into force."""
        return [start for start in self.starts if first < start <= last]


def check_rate_file(path: Path) -> tuple[RateTable | None, list[Problem]]:
    """Read and check one rate file; every problem is located in it (FILE:LINE:COLUMN)."""
    located = load_located_file(path)
    if not located.parsed:
        return None, list(located.problems)
    problems = list(located.problems)
    data = located.data
    if not isinstance(data, list) or not data:
        problems.append(
            located.problem(
                (),
                f"a rate file is a list of entries such as - {{from: 2025-06-11, rate: 2.15}}, got {show_value(data)}",
            )
        )
        return None, problems
    entries: list[tuple[date, Decimal]] = []
    for index, entry in enumerate(data):
        parsed = _entry(located, index, entry, problems)
        if parsed is None:
            continue
        if entries and parsed[0] <= entries[-1][0]:
            problems.append(
                located.problem(
                    (index, "from"),
                    f"entries must be in date order: {parsed[0].isoformat()} comes after "
                    f"{entries[-1][0].isoformat()}; sort the list by `from`",
                )
            )
            continue
        entries.append(parsed)
    if any(p.severity == "error" for p in problems):
        return None, problems
    return RateTable(str(path), tuple(d for d, _ in entries), tuple(r for _, r in entries)), problems


def load_rate_table(path: Path) -> RateTable:
    """The rate table in `path`; ChargesError (listing the located problems) when it is missing or invalid."""
    table, problems = check_rate_file(path)
    if table is None:
        lines = "; ".join(str(p) for p in problems)
        raise ChargesError(f"the reference rate file {path} cannot be used: {lines}")
    return table


def _entry(located: Located, index: int, entry: object, problems: list[Problem]) -> tuple[date, Decimal] | None:
    if not isinstance(entry, dict):
        problems.append(
            located.problem(
                (index,),
                f"entry {index + 1} must be a mapping such as "
                f"{{from: 2025-06-11, rate: 2.15}}, got {show_value(entry)}",
            )
        )
        return None
    unknown = [key for key in entry if key not in ("from", "rate")]
    for key in unknown:
        problems.append(
            located.problem(
                (index, key), f"unknown key '{key}' in entry {index + 1}; an entry has only from: and rate:", at="key"
            )
        )
    start, rate = entry.get("from"), entry.get("rate")
    ok = not unknown
    if not isinstance(start, date):
        where = (index, "from") if "from" in entry else (index,)
        problems.append(
            located.problem(where, f"from in entry {index + 1} must be a date (YYYY-MM-DD), got {show_value(start)}")
        )
        ok = False
    if isinstance(rate, bool) or not isinstance(rate, int | float):
        where = (index, "rate") if "rate" in entry else (index,)
        problems.append(
            located.problem(
                where, f"rate in entry {index + 1} must be a number (percent a year), got {show_value(rate)}"
            )
        )
        ok = False
    if not ok:
        return None
    assert isinstance(start, date) and isinstance(rate, int | float)
    return start, Decimal(str(rate))
