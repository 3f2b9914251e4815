"""Invoices waiting for an `approval: required` stage, through the `dunning` CLI in real subprocesses:
`approvals`, `explain` and `simulate` must all show the wait."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.acceptance.test_cli import Cli

POLICY = """\
name: house
min_days_between_stages: 0
stages:
  - {name: reminder, after_days: 1, channels: [email]}
  - {name: legal, after_days: 40, channels: [legal], approval: required}
"""


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    # SQLite only: each CLI call costs a process start; the store query is the web approvals page's too.
    cli = Cli(tmp_path, f"sqlite:///{tmp_path / 'dunning.db'}")
    cli.env["DUNNING_ACTOR"] = "ops-bot"
    cli.write("rules/house.yaml", POLICY)
    cli.write(
        "customers.csv",
        """\
        id,name,email,owner
        C1,Acme GmbH,ap@acme.example,alice
        C2,Bolt Ltd,ap@bolt.example,
        """,
    )
    cli.write(
        "invoices.csv",
        """\
        number,customer_id,currency,amount,issued_on,due_on
        LEG,C1,EUR,4000.00,2026-01-01,2026-01-10
        LATE,C2,EUR,900.00,2026-01-01,2026-01-15
        NEW,C2,EUR,100.00,2026-02-01,2026-03-01
        """,
    )
    cli("import", "customers", "customers.csv")
    cli("import", "invoices", "invoices.csv")
    return cli


def test_simulate_counts_the_invoices_that_would_wait_for_an_approval(cli: Cli) -> None:
    data = json.loads(cli("simulate", "--from", "2026-02-15", "--to", "2026-02-28", "--json").stdout)
    # LEG is due for legal on 02-19, LATE on 02-24; nobody approves in a simulation, so neither enters it.
    assert data["total"]["legal"] == {"invoices": 0, "amount": {}}
    assert data["total"]["awaiting_approval"] == {"invoices": 2, "stages": {"legal": 2}, "amount": {"EUR": 4900}}
    assert data["invoices_awaiting_approval_at_start"] == 0
    by_day = {p["from"]: p["awaiting_approval"]["invoices"] for p in data["periods"]}
    assert by_day["2026-02-19"] == 1 and by_day["2026-02-24"] == 1
    waits = [e for e in data["invoices"]["LEG"]["timeline"] if e["kind"] == "approval_requested"]
    assert [(w["day"], w["from"], w["to"]) for w in waits] == [("2026-02-19", "reminder", "legal")]

    text = cli("simulate", "--from", "2026-02-15", "--to", "2026-02-28").stdout
    assert "2 invoice(s) starting to wait for an approval (4,900.00 EUR), none approved" in text
