"""`simulate`, `policy diff`, `explain` and `policy check --format json` in real subprocesses."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.acceptance.test_cli import Cli
from tests.conftest import CANONICAL_POLICY, DEFAULT_POLICY


def book(tmp_path: Path, database_url: str) -> Cli:
    cli = Cli(tmp_path, database_url)
    cli.write("rules/10-standard.yaml", CANONICAL_POLICY)
    cli.write("rules/90-default.yaml", DEFAULT_POLICY)
    cli.write(
        "customers.csv",
        """\
        id,name,email,phone,address,credit_grade
        C1,Acme GmbH,ap@acme.example,+49 30 1234,1 Main St,A
        C2,Bolt Ltd,ap@bolt.example,+44 20 1234,2 High St,
        """,
    )
    cli.write(
        "invoices.csv",
        """\
        number,customer_id,currency,amount,issued_on,due_on,tags
        INV-1,C1,EUR,12000.00,2026-01-30,2026-03-01,
        INV-2,C2,EUR,800.00,2026-01-30,2026-03-01,
        """,
    )
    cli("import", "customers", "customers.csv")
    cli("import", "invoices", "invoices.csv")
    cli("run", "--as-of", "2026-03-04T09:00")
    return cli


@pytest.fixture
def cli(tmp_path: Path, database_url: str) -> Cli:
    return book(tmp_path, database_url)


def test_simulate_and_explain(cli: Cli) -> None:
    before = cli.json("outbox")
    text = cli("simulate", "--from", "2026-03-05", "--to", "2026-06-05").stdout
    assert "Nothing was written or sent" in text and "per week" in text
    assert "entering legal (12,000.00 EUR)" in text
    data = json.loads(cli("simulate", "--from", "2026-03-05", "--to", "2026-06-05", "--json", "--by", "week").stdout)
    assert data["total"]["legal"] == {"invoices": 1, "amount": {"EUR": 12000}}
    assert len(data["periods"]) == 14
    legal = [e for e in data["invoices"]["INV-1"]["timeline"] if e["kind"] == "transition" and e["to"] == "legal"]
    assert legal == [
        {
            "day": "2026-05-30",
            "kind": "transition",
            "from": "letter",
            "to": "legal",
            "rule": "legal: after_days 90 and invoice.open_amount >= 10000",
            "policy": "standard",
            "skipped": [{"stage": "visit", "reason": "condition not met: invoice.open_amount >= 50000"}],
            "open_amount": 12000,
        }
    ]
    assert cli.json("outbox") == before
    assert "already swept" in cli("simulate", "--from", "2026-03-04", ok=False).stderr

    # explain, on the same book (subprocesses are slow: one book for both commands)
    text = cli("explain", "INV-1").stdout
    assert "Policy: standard — its applies_to" in text
    assert "Stage: reminder since 2026-03-04" in text
    assert "Next: reminder is sent again (repeat 1) on 2026-03-11 by email." in text
    assert "visit (at 60 days overdue) will be skipped as things stand: invoice.open_amount is 12,000.00" in text
    data = cli.json("explain", "INV-2", "--as-of", "2026-03-25")
    assert data["policy"] == "fallback" and data["next"]["stage"] == "final" and data["next"]["on"] == "2026-03-25"


def test_policy_diff_lists_what_changes(tmp_path: Path) -> None:
    # `diff` is two simulations (storage covered above on both databases); SQLite keeps this test quick.
    cli = book(tmp_path, f"sqlite:///{tmp_path / 'dunning.db'}")
    cli.write("new/10-standard.yaml", CANONICAL_POLICY.replace("after_days: 90", "after_days: 75"))
    cli.write("new/90-default.yaml", DEFAULT_POLICY.replace("after_days: 20", "after_days: 10"))
    text = cli("policy", "diff", "rules", "new", "--as-of", "2026-03-05", "--horizon", "90").stdout
    assert "2 invoice(s) of 2 customer(s) treated differently" in text
    assert "INV-1 (C1): legal 15 day(s) earlier (2026-05-30 -> 2026-05-15)" in text
    assert "INV-2 (C2): final 10 day(s) earlier (2026-03-21 -> 2026-03-11)" in text
    data = json.loads(cli("policy", "diff", "rules", "new", "--as-of", "2026-03-05", "--json").stdout)
    assert data["invoices_affected"] == 2 and data["customers"] == ["C1", "C2"]
    assert data["stages"]["legal"] == {"earlier": 1, "later": 0, "added": 0, "dropped": 0}


def test_policy_check_json_for_editors_and_ci(tmp_path: Path) -> None:
    cli = Cli(tmp_path, f"sqlite:///{tmp_path / 'd.db'}")
    cli.write(
        "rules/90-default.yaml",
        """\
        name: default
        stages:
          - {name: reminder, after_days: 3, channels: [emial]}
          - {name: legal, after_days: 60, channels: [legal]}
        """,
    )
    result = cli("policy", "check", "--format", "json", ok=False)
    assert result.returncode == 1
    problems = json.loads(result.stdout)
    assert [(p["line"], p["severity"]) for p in problems] == [(3, "error"), (4, "warning")]
    assert set(problems[0]) == {"file", "line", "column", "severity", "message"}
    assert problems[0]["message"].endswith("did you mean 'email'?")
    assert "no amount floor" in problems[1]["message"]
    cli.write(
        "rules/90-default.yaml", "name: default\nstages:\n  - {name: reminder, after_days: 3, channels: [email]}\n"
    )
    assert json.loads(cli("policy", "check", "--format", "json").stdout) == []


def test_policy_check_refuses_what_would_crash_a_sweep(tmp_path: Path) -> None:
    # Each of these passed `policy check` and then ended every sweep in a traceback (issue 11, defect 4).
    cli = Cli(tmp_path, f"sqlite:///{tmp_path / 'dunning.db'}")
    cli.write(
        "rules/90-default.yaml",
        """\
        name: default
        min_days_between_stages: 10000000000
        stages:
          - {name: reminder, after_days: 3, channels: [email], when: "invoice.amount * 1e999999999 > 1"}
          - {name: letter, after_days: 30, channels: [letter], repeat: {every_days: 10000000000, max: 2}}
        """,
    )
    result = cli("policy", "check", "--format", "json", ok=False)
    assert result.returncode == 1
    problems = [(p["line"], p["column"], p["message"]) for p in json.loads(result.stdout)]
    assert [(line, message.split(" is ")[0]) for line, _, message in problems] == [
        (2, "min_days_between_stages 10000000000"),
        (4, "invalid expression in when of stage 'reminder': `1e999999999`"),
        (5, "repeat.every_days 10000000000"),
    ]
    assert problems[1][1] == 80  # the column of 1e999999999 inside the quoted condition
    cli.write(
        "rules/90-default.yaml", "name: default\nstages:\n  - {name: reminder, after_days: 3, channels: [email]}\n"
    )
    assert json.loads(cli("policy", "check", "--format", "json").stdout) == []
