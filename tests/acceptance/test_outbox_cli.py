"""Read-only commands in a folder without a database, and what `outbox` tells about a waiting notice, through
the `dunning` CLI in real subprocesses."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from tests.acceptance.test_cli import Cli

#: Every command that only reads, as a user would first try it in a new folder.
READ_ONLY = [
    ["status"],
    ["status", "--json"],
    ["history", "INV-1"],
    ["outbox", "--json"],
    ["approvals"],
    ["explain", "INV-1"],
    ["simulate"],
    ["tasks"],
    ["audit", "verify"],
    ["report", "aging"],
]


def test_read_only_commands_in_an_empty_folder_say_there_is_no_database_and_create_none(tmp_path: Path) -> None:
    cli = Cli(tmp_path, f"sqlite:///{tmp_path / 'dunning.db'}")
    for command in READ_ONLY:
        result = cli(*command, ok=False)
        assert result.returncode == 1, (command, result.stdout, result.stderr)
        assert "no dunning database yet" in result.stderr, (command, result.stderr)
        assert "dunning import customers FILE" in result.stderr and "dunning db upgrade" in result.stderr
        assert "Traceback" not in result.stderr
        assert sorted(p.name for p in tmp_path.iterdir()) == [], command
    for command in (["db", "current"], ["db", "check"]):  # they report an empty database, and make none
        result = cli(*command, ok=False)
        assert result.returncode == 1 and "db upgrade" in result.stdout, (command, result.stdout)
        assert sorted(p.name for p in tmp_path.iterdir()) == [], command
    # an empty file (no tables) is no database either, and gets none
    (tmp_path / "dunning.db").touch()
    result = cli("status", ok=False)
    assert result.returncode == 1 and "has no dunning tables" in result.stderr
    with sqlite3.connect(tmp_path / "dunning.db") as db:
        assert db.execute("SELECT name FROM sqlite_master").fetchall() == []


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    cli = Cli(tmp_path, f"sqlite:///{tmp_path / 'dunning.db'}")
    cli.write(
        "rules/house.yaml",
        """\
        name: house
        stages:
          - {name: reminder, after_days: 1, channels: [email]}
        """,
    )
    cli.write("config.yaml", "contact_cap:\n  max: 1\n  per_days: 2\n")
    cli.write(
        "customers.csv",
        """\
        id,name,email
        C1,Acme GmbH,ap@acme.example
        C2,Bolt Ltd,ap@bolt.example
        """,
    )
    cli.write(
        "invoices.csv",
        """\
        number,customer_id,currency,amount,issued_on,due_on
        A1,C1,EUR,400.00,2026-01-01,2026-01-10
        A2,C1,EUR,500.00,2026-01-01,2026-01-10
        B1,C2,EUR,100.00,2026-01-01,2026-01-10
        """,
    )
    cli("import", "customers", "customers.csv")
    cli("import", "invoices", "invoices.csv")
    return cli


def test_outbox_shows_the_next_attempt_and_why_a_notice_waits_and_filters_by_invoice(cli: Cli) -> None:
    cli("run", "--as-of", "2026-02-20T09:00:00Z")  # three reminders; Acme may get one message per two days
    rows = {row["invoice"]: row for row in cli.json("outbox")}
    assert (rows["A1"]["status"], rows["A1"]["next_attempt_at"], rows["A1"]["held"]) == ("sent", None, None)
    held = rows["A2"]
    assert held["status"] == "pending"
    assert held["held"] == "contact cap (1 per 2 days)"
    assert held["next_attempt_at"] == "2026-02-22T09:00:00Z"  # two days after Acme's first message

    assert [row["invoice"] for row in cli.json("outbox", "--invoice", "A2")] == ["A2"]
    table = cli("outbox", "--invoice", "A2").stdout
    assert "1 notification(s) about A2" in table and "B1" not in table
    result = cli("outbox", "--invoice", "NOPE", ok=False)
    assert result.returncode == 1 and "no invoice numbered 'NOPE'" in result.stderr

    cli("dispatch", "--as-of", "2026-02-22T09:30:00Z")  # the cap lets it go: sent, and no reason left
    (sent,) = cli.json("outbox", "--invoice", "A2")
    assert (sent["status"], sent["held"], sent["next_attempt_at"], sent["error"]) == ("sent", None, None, None)
