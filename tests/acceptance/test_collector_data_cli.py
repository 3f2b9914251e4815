"""What collectors record must survive and stay in order, through the `dunning` CLI in real subprocesses: a
task outcome's `wrong_contact` tag across re-imports of the customers, `tasks done --at`, and actions dated
before the latest sweep (refused, saying what that sweep is and how to go on)."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from tests.acceptance.test_cli import Cli
from tests.conftest import CANONICAL_POLICY, DEFAULT_POLICY

CUSTOMERS = """\
id,name,email,phone,address,credit_grade,owner,tags
C1,Acme GmbH,ap@acme.example,+49 30 1234,1 Main St,A,alice,key
C2,Bolt Ltd,ap@bolt.example,+44 20 5555,2 High St,B,bob,
"""
LATEST = "2026-03-16T09:00:00Z"


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    # SQLite only (each call is a process start); the tags are read back from the file.
    cli = Cli(tmp_path, f"sqlite:///{tmp_path / 'dunning.db'}")
    cli.write("rules/10-standard.yaml", CANONICAL_POLICY)
    cli.write("rules/90-default.yaml", DEFAULT_POLICY)
    cli.write("config.yaml", "channels:\n  phone: {type: phone, recipient: phone}\n")
    cli.write("customers.csv", CUSTOMERS)
    cli.write(
        "invoices.csv",
        """\
        number,customer_id,currency,amount,issued_on,due_on,tags
        INV-1,C1,EUR,1200.00,2026-02-01,2026-03-01,
        INV-2,C2,EUR,800.00,2026-02-01,2026-03-01,
        """,
    )
    cli("import", "customers", "customers.csv")
    cli("import", "invoices", "invoices.csv")
    cli("run", "--as-of", "2026-03-04T09:00:00Z")
    cli("run", "--as-of", LATEST)  # the phone stage: a call for each owner
    return cli


def tags(cli: Cli, customer: str) -> list[str]:
    with sqlite3.connect(cli.folder / "dunning.db") as db:
        (value,) = db.execute("SELECT tags FROM customers WHERE id = ?", (customer,)).fetchone()
    return list(json.loads(value))


def task_of(cli: Cli, owner: str) -> str:
    (task,) = cli.json("tasks", "--owner", owner)
    return str(task["id"])


def customer_updates(cli: Cli, customer: str) -> list[dict[str, object]]:
    return [e for e in cli.json("history", "--customer", customer) if e["kind"] == "update"]


def test_a_reimport_keeps_the_wrong_contact_tag_until_the_contact_is_corrected(cli: Cli) -> None:
    cli("tasks", "done", task_of(cli, "alice"), "--outcome", "wrong_contact", "--note", "number disconnected")
    assert tags(cli, "C1") == ["key", "wrong_contact"]

    # The nightly export of the ERP knows nothing of the call: the same file changes nothing.
    assert "0 updated, 2 unchanged" in cli("import", "customers", "customers.csv").stdout
    assert tags(cli, "C1") == ["key", "wrong_contact"]
    assert customer_updates(cli, "C1") == []

    # The file's own tags still count; the action's tag stays beside them.
    cli.write("customers.csv", CUSTOMERS.replace("alice,key", "alice,key;vip"))
    assert "1 updated" in cli("import", "customers", "customers.csv").stdout
    assert tags(cli, "C1") == ["key", "vip", "wrong_contact"]

    # A corrected phone number answers the wrong contact: the tag goes, and the update says so.
    cli.write("customers.csv", CUSTOMERS.replace("alice,key", "alice,key;vip").replace("+49 30 1234", "+49 30 9999"))
    assert "1 updated" in cli("import", "customers", "customers.csv").stdout
    assert tags(cli, "C1") == ["key", "vip"]
    last = customer_updates(cli, "C1")[-1]["changes"]
    assert last == {"phone": ["+49 30 1234", "+49 30 9999"], "tags": [["key", "vip", "wrong_contact"], ["key", "vip"]]}
    # ... and once gone it is an ordinary tag no more: the next import does not bring it back.
    assert "0 updated" in cli("import", "customers", "customers.csv").stdout
    assert tags(cli, "C1") == ["key", "vip"]


def test_tasks_done_takes_at_with_the_checks_of_every_action(cli: Cli) -> None:
    task = task_of(cli, "alice")
    result = cli("tasks", "done", task, "--outcome", "no_answer", "--at", "16 March", ok=False)
    assert result.returncode == 1 and "cannot read '16 March' as a date or time" in result.stderr
    result = cli("tasks", "done", task, "--outcome", "no_answer", "--at", "2026-03-10T10:00:00Z", ok=False)
    assert result.returncode == 1
    assert f"before the latest sweep ({LATEST})" in result.stderr and "or later" in result.stderr
    assert cli.json("tasks", "--owner", "alice")[0]["status"] == "open"  # nothing recorded

    done = cli.json("tasks", "done", task, "--outcome", "no_answer", "--at", "2026-03-16T14:30:00Z")
    assert done["done_at"] == "2026-03-16T14:30:00Z"
    outcome = [e for e in cli.json("history", "INV-1") if e["kind"] == "task_outcome"]
    assert [e["at"] for e in outcome] == ["2026-03-16T14:30:00Z"]

    cli(
        "tasks",
        "done",
        task_of(cli, "bob"),
        "--outcome",
        "promised",
        "--amount",
        "800",
        "--by",
        "2026-03-30",
        "--at",
        "2026-03-17",
    )
    promise = [e for e in cli.json("history", "INV-2") if e["kind"] == "promise"]
    assert [e["at"] for e in promise] == ["2026-03-17T00:00:00Z"]


def test_an_action_dated_before_the_latest_sweep_is_refused(cli: Cli) -> None:
    before = cli.json("history", "INV-2")
    for action in (
        ["promise", "INV-2", "--amount", "800", "--by", "2026-03-30"],
        ["dispute", "INV-2", "--reason", "wrong quantity"],
        ["note", "INV-2", "called on the 12th"],
    ):
        result = cli(*action, "--at", "2026-03-12T10:00:00Z", ok=False)
        assert result.returncode == 1, action
        assert (
            f"invoice INV-2: the action is dated 2026-03-12T10:00:00Z, before the latest sweep ({LATEST})"
            in result.stderr
        )
        assert f"record it as of {LATEST} or later" in result.stderr
    assert cli.json("history", "INV-2") == before
    assert {r["number"]: r["stage"] for r in cli.json("status")}["INV-2"] == "phone"

    cli("promise", "INV-2", "--amount", "800", "--by", "2026-03-30", "--at", LATEST)  # at the sweep: in order
    assert {r["number"]: r["stage"] for r in cli.json("status")}["INV-2"] == "promised"
