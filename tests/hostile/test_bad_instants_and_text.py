"""Values that used to end in a traceback are refused with a located message, and nothing is written
(issue 11, defects 7 and 15): lone surrogates and NUL bytes in imported text, dates Python cannot shift
by a time zone, an --as-of far in the future (a typo), an unreachable or empty database."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from tests.acceptance.test_cli import Cli


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    cli = Cli(tmp_path, f"sqlite:///{tmp_path / 'dunning.db'}")
    cli.write("config.yaml", "timezone: Asia/Shanghai\n")
    cli.env["DUNNING_CONFIG"] = str(tmp_path / "config.yaml")
    cli.write("rules/house.yaml", "name: house\nstages:\n  - {name: reminder, after_days: 1, channels: [log]}\n")
    cli.write("customers.csv", "id,name\nC1,Acme\n")
    cli.write(
        "invoices.csv", "number,customer_id,currency,amount,issued_on,due_on\nI1,C1,EUR,10.00,2026-01-01,2026-01-31\n"
    )
    cli("import", "customers", "customers.csv")
    cli("import", "invoices", "invoices.csv")
    return cli


def rows(cli: Cli, table: str) -> int:
    with sqlite3.connect(cli.folder / "dunning.db") as db:
        return int(db.execute(f"SELECT count(*) FROM {table}").fetchone()[0])


@pytest.mark.parametrize(("text", "code"), [("bad \ud800 half", "U+D800"), ("nul\x00byte", "U+0000")])
def test_unstorable_characters_in_jsonl_are_row_errors(cli: Cli, text: str, code: str) -> None:
    path = cli.folder / "c.jsonl"
    path.write_text(json.dumps({"id": "C2", "name": text}) + "\n", encoding="utf-8")
    result = cli("import", "customers", "c.jsonl", ok=False)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert f"c.jsonl:1: name: contains the character {code} at position" in result.stderr
    assert rows(cli, "customers") == 1


def test_a_payment_dated_year_one_in_a_utc_plus_zone(cli: Cli) -> None:
    cli.write("p.csv", "invoice,amount,paid_on\nI1,1.00,0001-01-01\n")
    result = cli("import", "payments", "p.csv", ok=False)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "p.csv:2: paid_on: 0001-01-01 is outside the supported range 1900-01-01 to 9000-12-31" in result.stderr
    assert rows(cli, "payments") == 0


def test_as_of_at_the_end_of_time(cli: Cli) -> None:
    result = cli("run", "--as-of", "9999-12-31", "--allow-future", ok=False)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "outside the supported range" in result.stderr
    assert rows(cli, "sweeps") == 0


def test_a_typo_in_the_year_is_refused_and_blocks_nothing(cli: Cli) -> None:
    result = cli("run", "--as-of", "3026-01-05", ok=False)
    assert result.returncode == 1
    assert "--as-of 3026-01-05 is" in result.stderr and "--allow-future" in result.stderr
    assert rows(cli, "sweeps") == 0
    cli("run", "--as-of", "2026-03-01")  # the real sweep still runs
    assert rows(cli, "sweeps") == 1


def test_allow_future_lets_a_planned_sweep_through(cli: Cli) -> None:
    cli.write("config.yaml", "timezone: Asia/Shanghai\nmax_future_days: 0\n")
    assert cli("run", "--as-of", "2999-01-01", ok=False).returncode == 1
    cli("run", "--as-of", "2999-01-01", "--allow-future")
    refused = cli("run", "--as-of", "2998-12-31", "--allow-future", ok=False)  # earlier than the latest sweep
    assert "restore the database from the backup" in refused.stderr


def test_unreachable_server_for_db_current(tmp_path: Path) -> None:
    cli = Cli(tmp_path, "postgresql+psycopg://postgres@127.0.0.1:1/test")
    result = cli("db", "current", ok=False)
    assert result.returncode == 1 and "Traceback" not in result.stderr and "sqlalche.me" not in result.stderr
    assert result.stderr.startswith("error: cannot open the database postgresql+psycopg://postgres@127.0.0.1:1/test")


def test_db_check_on_an_empty_database(tmp_path: Path) -> None:
    cli = Cli(tmp_path, f"sqlite:///{tmp_path / 'empty.db'}")
    result = cli("db", "check", ok=False)
    assert result.returncode == 1
    assert result.stdout.strip() == "the database is empty (no dunning tables); create it with `dunning db upgrade`"
