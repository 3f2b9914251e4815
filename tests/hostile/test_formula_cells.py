"""Spreadsheet formula injection: every CSV written for people neutralises cells that a spreadsheet would run
(issue 11, defect 8): audit export, report --csv and the legal case files."""

from __future__ import annotations

import csv
import io
from decimal import Decimal
from pathlib import Path

import pytest

from channels.legal import _csv as case_file_csv
from engine.spreadsheet import safe_cell
from tests.acceptance.test_cli import Cli

HOSTILE = [
    '=HYPERLINK("http://evil.example","Pay here")',
    "=cmd|' /C calc'!A0",
    "+1+2",
    "-2+3",
    "@SUM(A1:A2)",
    "\tleading tab",
    "\rleading return",
]


@pytest.mark.parametrize("text", HOSTILE)
def test_formula_text_is_neutralised(text: str) -> None:
    assert safe_cell(text) == "'" + text


@pytest.mark.parametrize("value", ["-12.50", "+3", "0.5", "plain", "", None, Decimal("-4.20"), -7, "a=b"])
def test_numbers_and_plain_text_stay(value: object) -> None:
    assert safe_cell(value) == value


def cells(text: str) -> list[str]:
    return [cell for row in csv.reader(io.StringIO(text)) for cell in row]


def dangerous(text: str) -> list[str]:
    return [
        c
        for c in cells(text)
        if c.startswith(("=", "+", "@", "\t", "\r"))
        or (c.startswith("-") and not c.lstrip("-").replace(".", "", 1).isdigit())
    ]


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    cli = Cli(tmp_path, f"sqlite:///{tmp_path / 'dunning.db'}")
    cli.write(
        "rules/house.yaml",
        """\
        name: house
        stages:
          - {name: reminder, after_days: 1, channels: [log]}
        """,
    )
    ids = ["=1+2", "@SUM(A1)", "+cmd|' /C calc'!A0", "-2+3", "=HYPERLINK(x)"]
    cli.write("customers.csv", "id,name,owner\n" + "".join(f"{cid},Customer {i},{cid}\n" for i, cid in enumerate(ids)))
    cli.write(
        "invoices.csv",
        "number,customer_id,currency,amount,issued_on,due_on\n"
        + "".join(f"={i}+{i},{cid},EUR,100.00,2026-01-01,2026-02-01\n" for i, cid in enumerate(ids)),
    )
    cli("import", "customers", "customers.csv")
    cli("import", "invoices", "invoices.csv")
    cli("run", "--as-of", "2026-03-01")
    return cli


def test_audit_export_csv(cli: Cli) -> None:
    text = cli("audit", "export", "--format", "csv").stdout
    assert "'=HYPERLINK(x)" in text and "'=0+0" in text
    assert dangerous(text) == []


def test_report_csv(cli: Cli) -> None:
    text = cli("report", "owners", "--as-of", "2026-03-01", "--csv").stdout
    assert "'=HYPERLINK(x)" in text and "'@SUM(A1)" in text
    assert dangerous(text) == []


def test_legal_case_files() -> None:
    text = case_file_csv(
        [{"customer": name, "amount": Decimal("-1.00")} for name in HOSTILE], ["customer", "amount"]
    ).decode("utf-8-sig")
    assert dangerous(text) == []
    assert cells(text)[-1] == "-1.00"
