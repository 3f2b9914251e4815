"""Charges: the money the law (or the contract) lets a creditor claim on top of the principal.

Pure: no database, no clock. `compute_charges(terms, case, tables)` gives a `ChargeStatement`; `RateBook` reads
the reference rate files (`rules/rates/*.yaml`) once per book and hands out their tables (a use case makes
one book per run, so edits to the files count from the next run). The policy key `charges:` is
read by `engine.charges.spec`.
"""

from __future__ import annotations

from pathlib import Path

from engine.charges.compute import compute_charges
from engine.charges.model import (
    Allocation,
    ChargeCase,
    ChargeStatement,
    ChargeTerms,
    CompensationRule,
    Fee,
    InterestRule,
    Period,
    RateUnit,
)
from engine.charges.money import minor_units, round_minor
from engine.charges.rates import RateTable, load_rate_table

__all__ = [
    "Allocation",
    "ChargeCase",
    "ChargeStatement",
    "ChargeTerms",
    "CompensationRule",
    "Fee",
    "InterestRule",
    "Period",
    "RateBook",
    "RateTable",
    "RateUnit",
    "compute_charges",
    "minor_units",
    "round_minor",
]


class RateBook:
    """The rate tables of one rates folder, each file read once (a missing or bad file: ChargesError)."""

    def __init__(self, folder: Path):
        self.folder = folder
        self._tables: dict[str, RateTable] = {}

    def __call__(self, name: str) -> RateTable:
        table = self._tables.get(name)
        if table is None:
            table = self._tables[name] = load_rate_table(self.folder / name)
        return table
