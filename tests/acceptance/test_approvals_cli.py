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


def test_approvals_lists_the_waiting_invoices_and_explain_says_they_wait(cli: Cli) -> None:
    cli("run", "--as-of", "2026-02-20")  # LEG enters reminder; legal is due for it the next day
    text = cli("explain", "LEG").stdout
    assert "enters legal on" not in text
    assert "Next: due for legal on 2026-02-21 (legal: after_days 40), a stage that needs an approval" in text
    assert "`dunning approve LEG`" in text
    assert cli.json("explain", "LEG")["next"]["approval"] == {
        "required": True,
        "waiting_since": None,
        "approve": "dunning approve LEG",
    }
    assert cli.json("approvals") == []

    cli("run", "--as-of", "2026-02-21")
    cli("run", "--as-of", "2026-02-25")  # LATE starts waiting too, later
    assert cli.json("approvals") == [
        {
            "number": "LEG",
            "customer_id": "C1",
            "customer_name": "Acme GmbH",
            "amount": 4000,
            "open_amount": 4000,
            "currency": "EUR",
            "due_on": "2026-01-10",
            "stage": "reminder",
            "awaiting_stage": "legal",
            "waiting_since": "2026-02-21T00:00:00Z",
            "policy": "house",
            "owner": "alice",
        },
        {
            "number": "LATE",
            "customer_id": "C2",
            "customer_name": "Bolt Ltd",
            "amount": 900,
            "open_amount": 900,
            "currency": "EUR",
            "due_on": "2026-01-15",
            "stage": "reminder",
            "awaiting_stage": "legal",
            "waiting_since": "2026-02-25T00:00:00Z",
            "policy": "house",
            "owner": None,
        },
    ]
    table = cli("approvals").stdout
    assert "2 invoice(s) awaiting approval" in table and "LEG" in table and "LATE" in table

    text = cli("explain", "LEG").stdout
    assert "Next: waiting since 2026-02-21 for an approval to enter legal (legal: after_days 40)" in text
    assert "nothing more will happen" not in text
    data = cli.json("explain", "LEG")
    assert data["next"]["approval"]["waiting_since"] == "2026-02-21" and data["next"]["on"] == "2026-02-21"

    cli("approve", "LEG", "--at", "2026-02-25T10:00:00Z")
    assert [row["number"] for row in cli.json("approvals")] == ["LATE"]
