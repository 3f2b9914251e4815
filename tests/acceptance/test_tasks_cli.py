"""`dunning tasks` and `dunning tasks done` in real subprocesses: the collector's call list."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import pytest

from tests.acceptance.test_cli import Cli
from tests.conftest import CANONICAL_POLICY, DEFAULT_POLICY


@pytest.fixture
def cli(tmp_path: Path, database_url: str) -> Cli:
    cli = Cli(tmp_path, database_url)
    cli.write("rules/10-standard.yaml", CANONICAL_POLICY)
    cli.write("rules/90-default.yaml", DEFAULT_POLICY)
    cli.write(
        "config.yaml",
        """\
        channels:
          phone: {type: phone, recipient: phone}
          visit: {type: visit, recipient: address}
        """,
    )
    cli.write(
        "customers.csv",
        """\
        id,name,email,phone,address,credit_grade,segment,owner,language,timezone,tags
        C1,Acme GmbH,ap@acme.example,+49 30 1234,1 Main St,A,,alice,en,,
        C2,北京示例科技,cw@bj.example,+86 10 5555,北京市朝阳区,B,,bob,zh,,
        """,
    )
    cli.write(
        "invoices.csv",
        """\
        number,customer_id,currency,amount,issued_on,due_on,tags
        INV-1,C1,EUR,1200.00,2026-02-01,2026-03-01,
        INV-2,C2,CNY,8800.00,2026-02-01,2026-03-01,
        """,
    )
    cli("import", "customers", "customers.csv")
    cli("import", "invoices", "invoices.csv")
    cli("run", "--as-of", "2026-03-04T09:00:00Z")
    cli("run", "--as-of", "2026-03-16T09:00:00Z")  # the phone stage: a call for each owner
    return cli


def test_collectors_list_and_complete_their_calls(cli: Cli) -> None:
    tasks = cli.json("tasks")
    assert sorted((t["owner"], t["kind"]) for t in tasks) == [("alice", "phone"), ("bob", "phone")]
    (alice,) = cli.json("tasks", "--owner", "alice")
    assert alice["contact"]["phone"] == "+49 30 1234" and alice["invoices"][0]["number"] == "INV-1"
    # mistakes are refused with a clear message, and change nothing
    result = cli("tasks", "done", str(alice["id"]), "--outcome", "maybe", ok=False)
    assert result.returncode == 1 and "unknown outcome 'maybe'" in result.stderr
    result = cli("tasks", "done", str(alice["id"]), "--outcome", "promised", ok=False)
    assert result.returncode == 1 and "--amount" in result.stderr
    result = cli("tasks", "done", "999", "--outcome", "paid", ok=False)
    assert result.returncode == 1 and "no task 999" in result.stderr
    table = cli("tasks", "--owner", "bob").stdout
    assert "北京示例科技" in table and "INV-2" in table

    by = (date.today() + timedelta(days=30)).isoformat()  # the collector records it now, for a future date
    cli(
        "tasks",
        "done",
        str(alice["id"]),
        "--outcome",
        "promised",
        "--amount",
        "1200",
        "--by",
        by,
        "--note",
        "paying end of month",
    )
    assert cli.json("tasks", "--owner", "alice") == []
    history = cli.json("history", "INV-1")
    kinds = [e["kind"] for e in history]
    assert "promise" in kinds and kinds[-1] == "task_outcome"
    status = {row["number"]: row["stage"] for row in cli.json("status")}
    assert status["INV-1"] == "promised"

    (bob,) = cli.json("tasks", "--owner", "bob")
    cli("tasks", "done", str(bob["id"]), "--outcome", "disputed", "--note", "wrong quantity delivered")
    assert {row["number"]: row["stage"] for row in cli.json("status")}["INV-2"] == "disputed"
    done = cli.json("tasks", "--all")
    assert sorted(t["outcome"] for t in done) == ["disputed", "promised"]


def test_tasks_show_amounts_in_the_currencys_minor_units(cli: Cli) -> None:
    (alice,) = cli.json("tasks", "--owner", "alice")
    assert (alice["invoices"][0]["amount"], alice["invoices"][0]["open_amount"]) == ("1200.00", "1200.00")
    assert "INV-1: 1,200.00 EUR open" in cli("tasks", "--owner", "alice").stdout
