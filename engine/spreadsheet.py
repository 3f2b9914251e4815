"""CSV for people: every file dunning writes for a spreadsheet goes through `SafeDictWriter`.

A cell that begins with `=`, `+`, `-`, `@`, a tab or a carriage return is a formula to Excel, LibreOffice and
Google Sheets: a customer named `=HYPERLINK("http://evil.example","Pay here")` or `=cmd|' /C calc'!A0` would
run when finance opens the export. As OWASP's "CSV Injection" page recommends, such a cell is written with a
leading apostrophe, which spreadsheets show as text. Plain numbers (`-12.50`) stay numbers.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Mapping
from typing import Any

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_PLAIN_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?\Z", re.ASCII)


def safe_cell(value: Any) -> Any:
    """The value as it may stand in a spreadsheet cell: text that would start a formula gets a `'`."""
    if isinstance(value, str) and value.startswith(_FORMULA_START) and not _PLAIN_NUMBER.match(value):
        return "'" + value
    return value


class SafeDictWriter(csv.DictWriter):  # type: ignore[type-arg]
    """`csv.DictWriter` whose rows are neutralised cell by cell (the header is ours, so it is written as is)."""

    def writerow(self, rowdict: Mapping[str, Any]) -> Any:
        return super().writerow({key: safe_cell(value) for key, value in rowdict.items()})
