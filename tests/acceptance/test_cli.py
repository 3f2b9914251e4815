"""The `dunning` command line in real subprocesses: the contract integrators and outside tests rely on."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.conftest import CANONICAL_POLICY, DEFAULT_POLICY

DUNNING = shutil.which("dunning", path=str(Path(sys.executable).parent)) or "dunning"


class Cli:
    def __init__(self, folder: Path, database_url: str):
        self.folder = folder
        self.env = {**os.environ, "DUNNING_CONFIG": "", "DUNNING_DATABASE_URL": database_url}
        self.env.pop("DUNNING_CONFIG")

    def __call__(self, *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [DUNNING, *args], cwd=self.folder, env=self.env, capture_output=True, text=True, timeout=120
        )
        if ok and result.returncode != 0:
            raise AssertionError(
                f"dunning {' '.join(args)} exited {result.returncode}:\n{result.stdout}\n{result.stderr}"
            )
        return result

    def json(self, *args: str) -> object:
        return json.loads(self(*args, "--json").stdout)

    def write(self, name: str, text: str) -> Path:
        path = self.folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text), encoding="utf-8")
        return path


@pytest.fixture
def cli(tmp_path: Path, database_url: str) -> Cli:
    cli = Cli(tmp_path, database_url)
    cli.write("rules/10-standard.yaml", CANONICAL_POLICY)
    cli.write("rules/90-default.yaml", DEFAULT_POLICY)
    cli.write(
        "customers.csv",
        """\
        id,name,email,phone,address,credit_grade,segment,owner,language,timezone,tags
        C1,Acme GmbH,ap@acme.example,+49 30 1234,1 Main St,A,enterprise,alice,en,Europe/Berlin,key;vip
        C2,北京远航物流,cw@yuanhang.example,,2 Ring Rd,D,smb,chen,zh,Asia/Shanghai,
        """,
    )
    cli.write(
        "invoices.csv",
        """\
        number,customer_id,currency,amount,issued_on,due_on,tags
        INV-1,C1,EUR,20000.00,2026-01-30,2026-03-01,
        INV-2,C2,CNY,8800.50,2026-01-30,2026-03-01,export
        INV-3,C1,EUR,120.00,2026-02-04,2026-03-06,
        """,
    )
    return cli


def test_full_cycle_through_the_cli(cli: Cli) -> None:
    assert "valid" in cli("policy", "check").stdout
    assert "2 new" in cli("import", "customers", "customers.csv").stdout
    assert "3 new" in cli("import", "invoices", "invoices.csv").stdout

    cli("run", "--as-of", "2026-02-26")
    cli("run", "--as-of", "2026-03-04")
    status = cli.json("status")
    by_number = {row["number"]: row for row in status}
    assert set(by_number) == {"INV-1", "INV-2", "INV-3"}
    assert by_number["INV-1"] == {
        "number": "INV-1",
        "customer_id": "C1",
        "stage": "reminder",
        "open_amount": 20000,
        "currency": "EUR",
        "policy": "standard",
        "days_overdue": 3,
        "charges_due": 0,
    }
    assert by_number["INV-2"]["stage"] == "reminder" and by_number["INV-2"]["policy"] == "fallback"
    assert by_number["INV-3"]["stage"] == "courtesy"

    history = cli.json("history", "INV-1")
    assert [e["kind"] for e in history] == ["import", "transition", "notification", "transition", "notification"]
    transition = history[3]
    assert {k: transition[k] for k in ("from", "to", "policy")} == {
        "from": "courtesy",
        "to": "reminder",
        "policy": "standard",
    }
    assert transition["at"] == "2026-03-04T00:00:00Z" and len(transition["policy_hash"]) == 64
    assert transition["rule"] == "reminder: after_days 3"
    notice = history[4]
    assert {k: notice[k] for k in ("channel", "recipient", "stage", "status")} == {
        "channel": "email",
        "recipient": "ap@acme.example",
        "stage": "reminder",
        "status": "sent",
    }

    outbox = cli.json("outbox")
    assert {(n["invoice"], n["stage"], n["channel"], n["status"]) for n in outbox} == {
        ("INV-1", "courtesy", "email", "sent"),
        ("INV-1", "reminder", "email", "sent"),
        ("INV-2", "reminder", "email", "sent"),
        ("INV-3", "courtesy", "email", "sent"),
    }
    assert all(
        set(n) >= {"invoice", "stage", "channel", "recipient", "status", "created_at", "sent_at"} for n in outbox
    )
    # the log channel recorded what was rendered
    log = (cli.folder / "out" / "notifications.log").read_text(encoding="utf-8")
    assert "北京远航物流" in log and "INV-1" in log

    cli.write(
        "payments.csv",
        """\
        invoice,amount,paid_on,reference
        INV-1,5000.00,2026-03-05,BANK-1
        INV-3,120.00,2026-03-05,BANK-2
        """,
    )
    assert "1 invoice(s) paid in full" in cli("import", "payments", "payments.csv").stdout
    status = {row["number"]: row for row in cli.json("status")}
    assert "INV-3" not in status and status["INV-1"]["open_amount"] == 15000
    assert cli.json("history", "INV-3")[-1]["to"] == "paid"


def test_run_is_idempotent_and_refuses_the_past(cli: Cli) -> None:
    cli("import", "customers", "customers.csv")
    cli("import", "invoices", "invoices.csv")
    first = json.loads(cli("run", "--as-of", "2026-03-10T09:00:00+00:00", "--json").stdout)
    again = json.loads(cli("run", "--as-of", "2026-03-10T09:00:00+00:00", "--json").stdout)
    assert first["transitions"] == 3 and again["already_swept"] and again["transitions"] == 0
    assert sum(again["dispatch"]["sent"].values()) == 0
    refused = cli("run", "--as-of", "2026-03-09", ok=False)
    assert refused.returncode == 1
    assert "refusing to sweep" in refused.stderr and "Traceback" not in refused.stderr


@pytest.mark.postgres
def test_run_reports_the_invoices_it_held(cli: Cli, database_url: str) -> None:
    # An amount set to NaN by hand (only PostgreSQL stores one) holds its invoice: the warnings say which rule,
    # and the report says how many and which, so an operator reading `run` output sees it.
    if not database_url.startswith("postgresql"):
        pytest.skip("only PostgreSQL stores a NaN amount")
    from sqlalchemy import create_engine, text

    cli.write(
        "rules/05-huge.yaml",
        'name: huge\napplies_to: "invoice.amount > 1000000"\n'
        "stages:\n  - {name: call, after_days: 1, channels: [phone]}\n",
    )
    cli("import", "customers", "customers.csv")
    cli("import", "invoices", "invoices.csv")
    engine = create_engine(database_url)
    with engine.begin() as conn:
        conn.execute(text("UPDATE invoices SET amount = 'NaN' WHERE number IN ('INV-3', 'INV-2')"))
    engine.dispose()
    first = cli("run", "--as-of", "2026-03-10T09:00:00+00:00", "--json")
    report = json.loads(first.stdout)
    assert report["held"] == 2 and report["held_invoices"] == ["INV-2", "INV-3"]
    assert report["invoices_seen"] == 3 and report["transitions"] == 1  # INV-1 goes on
    assert "invoice INV-3" in first.stderr and "05-huge.yaml:2:" in first.stderr
    human = cli("run", "--as-of", "2026-03-11T09:00:00+00:00").stdout
    assert "2 invoice(s) held: a rule could not be computed on their values (see the warnings): INV-2, INV-3" in human


def test_bad_import_lists_every_row_and_writes_nothing(cli: Cli) -> None:
    cli("import", "customers", "customers.csv")
    cli.write(
        "bad.csv",
        """\
        number,customer_id,currency,amount,issued_on,due_on,colour
        INV-9,C1,EUR,100.00,2026-01-01,2026-02-01,red
        """,
    )
    result = cli("import", "invoices", "bad.csv", ok=False)
    assert result.returncode == 1 and "bad.csv:1: colour: unknown column" in result.stderr
    cli.write(
        "bad2.csv",
        """\
        number,customer_id,currency,amount,issued_on,due_on,tags
        INV-9,C1,EUR,100.00,2026-01-01,2026-02-01,
        INV-10,NOPE,EUR,100.00,2026-01-01,2026-02-01,
        INV-11,C1,EUR,-5,2026-01-01,2026-02-01,
        INV-12,C1,EUR,100.00,2026-13-01,2026-02-01,
        INV-9,C1,EUR,100.00,2026-01-01,2026-02-01,
        """,
    )
    result = cli("import", "invoices", "bad2.csv", ok=False)
    assert result.returncode == 1
    for expected in (
        "bad2.csv:3: customer_id:",
        "bad2.csv:4: amount:",
        "bad2.csv:5: issued_on:",
        "bad2.csv:6: number:",
    ):
        assert expected in result.stderr, result.stderr
    assert "nothing was imported" in result.stderr
    assert cli.json("status") == []


def test_policy_check_reports_file_line_column(cli: Cli) -> None:
    cli.write(
        "broken/p.yaml",
        """\
        name: broken
        stages:
          - name: reminder
            after_days: 3
            channels: [emial]
        """,
    )
    result = cli("policy", "check", "broken", ok=False)
    assert result.returncode == 1
    assert "broken/p.yaml:5:" in result.stderr and "emial" in result.stderr and "email" in result.stderr
    cli.write("syntax/p.yaml", "name: x\nstages: [\n")
    result = cli("policy", "check", "syntax", ok=False)
    assert result.returncode == 1 and "syntax/p.yaml:" in result.stderr and "Traceback" not in result.stderr


def test_a_broken_policy_stops_the_run_with_located_errors(cli: Cli) -> None:
    cli.write("rules/10-standard.yaml", CANONICAL_POLICY.replace("after_days: 15", "after_days: fifteen"))
    result = cli("run", "--as-of", "2026-03-01", ok=False)
    assert result.returncode == 1
    assert "10-standard.yaml:" in result.stderr and "after_days" in result.stderr and "Traceback" not in result.stderr


def test_policy_schema_is_json_schema(cli: Cli) -> None:
    schema = json.loads(cli("policy", "schema").stdout)
    assert "stages" in schema["properties"]
