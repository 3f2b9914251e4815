"""Collector actions, the audit log and the reports through the `dunning` CLI in real subprocesses."""

from __future__ import annotations

import csv
import io
import json
import sqlite3
from pathlib import Path

import pytest

from tests.acceptance.test_cli import Cli

POLICY = """\
name: house
min_days_between_stages: 0
grace_days: 2
stages:
  - {name: reminder, after_days: 1, channels: [email]}
  - {name: phone, after_days: 10, channels: [phone]}
  - {name: letter, after_days: 20, channels: [letter]}
  - {name: legal, after_days: 40, channels: [legal], approval: required}
"""


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    # SQLite only: each CLI call costs a process start, and tests/integration runs the same actions on both
    # databases already.
    cli = Cli(tmp_path, f"sqlite:///{tmp_path / 'dunning.db'}")
    cli.env["DUNNING_ACTOR"] = "ops-bot"
    cli.write("rules/house.yaml", POLICY)
    cli.write(
        "customers.csv",
        """\
        id,name,email,phone,address,credit_grade,segment,owner,language,timezone,tags
        C1,Acme GmbH,ap@acme.example,+49 30 1234,1 Main St,A,enterprise,alice,en,Europe/Berlin,
        C2,北京远航物流,cw@yuanhang.example,+86 10 5555,2 Ring Rd,D,smb,chen,zh,Asia/Shanghai,
        """,
    )
    cli.write(
        "invoices.csv",
        """\
        number,customer_id,currency,amount,issued_on,due_on,tags
        DIS,C1,EUR,1000.00,2026-02-01,2026-03-01,
        PRO,C1,EUR,2000.00,2026-02-01,2026-03-01,
        PLN,C2,EUR,3000.00,2026-02-01,2026-03-01,
        LEG,C2,EUR,4000.00,2026-01-01,2026-01-10,
        MOV,C2,EUR,500.00,2026-02-01,2026-03-01,
        WO,C1,EUR,700.00,2026-02-01,2026-03-01,
        """,
    )
    cli("import", "customers", "customers.csv")
    cli("import", "invoices", "invoices.csv")
    return cli


def stages(cli: Cli) -> dict[str, str]:
    return {row["number"]: row["stage"] for row in cli.json("status")}


def test_collector_actions_reports_and_audit_through_the_cli(cli: Cli, tmp_path: Path) -> None:
    cli("run", "--as-of", "2026-03-02")
    cli("dispute", "DIS", "--reason", "wrong quantity", "--actor", "alice", "--at", "2026-03-02T10:00:00Z")
    cli("promise", "PRO", "--amount", "2000", "--by", "2026-03-05", "--at", "2026-03-02T10:00:00Z")
    cli("plan", "PLN", "--installments", "2026-03-10:1500,2026-03-20:1500", "--at", "2026-03-02T10:00:00Z")
    cli("note", "MOV", "customer asked for a copy", "--actor", "chen")
    cli(
        "move",
        "MOV",
        "--to",
        "letter",
        "--reason",
        "second copy ignored",
        "--actor",
        "chen",
        "--at",
        "2026-03-02T11:00:00Z",
    )
    refused = cli("move", "MOV", "--to", "nowhere", "--reason", "x", ok=False)
    assert refused.returncode == 1 and "has no stage 'nowhere'" in refused.stderr and "Traceback" not in refused.stderr
    cli("write-off", "WO", "--reason", "customer insolvent", "--actor", "cfo", "--at", "2026-03-02T12:00:00Z")
    illegal = cli("dispute", "WO", "--reason", "late", ok=False)
    assert illegal.returncode == 1 and "written off" in illegal.stderr
    cli.write(
        "payments.csv",
        """\
        invoice,amount,paid_on,reference
        PLN,1500.00,2026-03-09,BANK-1
        """,
    )
    cli("import", "payments", "payments.csv")
    # 03-09: the first installment is kept; PRO's promise (by 03-05, grace 2 days) is broken: it resumes and
    # moves on to the next stage at once
    cli("run", "--as-of", "2026-03-09")
    now = stages(cli)
    assert (now["PRO"], now["PLN"], now["DIS"], now["MOV"]) == ("phone", "promised", "disputed", "letter")
    assert "WO" not in now
    cli("dispute", "DIS", "--resolve", "--note", "credit note issued", "--at", "2026-03-12T10:00:00Z")
    cli("run", "--as-of", "2026-03-23")  # PLN's second installment missed after its 03-22 grace day
    now = stages(cli)
    assert now["DIS"] in ("reminder", "phone") and now["PLN"] != "promised"

    # LEG climbs one stage per sweep; legal needs approval
    assert now["LEG"] == "letter"
    cli("run", "--as-of", "2026-03-24")  # legal is due: the decision is recorded, the invoice waits
    cli("approve", "LEG", "--actor", "cfo", "--at", "2026-03-24T10:00:00Z")
    leg = cli.json("history", "LEG")
    [wait] = [e for e in leg if e["kind"] == "approval_requested"]
    assert wait["to"] == "legal" and wait["from"] == "letter"
    assert leg[-2]["kind"] == "transition" and leg[-2]["to"] == "legal" and leg[-2]["actor"] == "cfo"
    assert leg[-1]["kind"] == "notification" and leg[-1]["stage"] == "legal" and leg[-1]["status"] == "pending"

    # history per customer keeps the JSON keys of per-invoice history
    customer = cli.json("history", "--customer", "C1")
    assert {e["invoice"] for e in customer if "invoice" in e} >= {"DIS", "PRO", "WO"}
    assert all({"kind", "at", "actor"} <= set(e) for e in customer)
    actors = {(e["kind"], e["actor"]) for e in customer}
    assert ("dispute", "alice") in actors and ("write_off", "cfo") in actors and ("promise", "ops-bot") in actors
    assert {"promise", "promise_broken", "transition"} <= {e["kind"] for e in customer if e.get("invoice") == "PRO"}

    # the audit log: intact, exportable with filters
    verified = json.loads(cli("audit", "verify", "--json").stdout)
    assert verified["ok"] and verified["events"] > 30 and len(verified["head"]) == 64
    replayed = json.loads(cli("audit", "verify", "--state", "--json").stdout)  # every action agrees with its log
    assert replayed["ok"] and replayed["mismatches"] == [] and replayed["invoices_checked"] == 6
    exported = cli("audit", "export", "--format", "csv", "--actor", "chen").stdout
    rows = list(csv.DictReader(io.StringIO(exported)))
    assert rows and {r["actor"] for r in rows} == {"chen"}
    assert list(rows[0]) == [
        "id",
        "at",
        "recorded_at",
        "kind",
        "actor",
        "invoice",
        "customer_id",
        "stage",
        "channel",
        "reason",
        "details",
        "prev_hash",
        "hash",
    ]
    assert {r["kind"] for r in rows} >= {"note", "override", "transition", "notification"}
    lines = cli(
        "audit", "export", "--format", "jsonl", "--channel", "legal", "--from", "2026-03-24", "--to", "2026-03-24"
    ).stdout.splitlines()
    assert lines and all(json.loads(line)["channel"] == "legal" for line in lines)

    # reports: JSON, CSV and an HTML page
    aging = cli.json("report", "aging", "--as-of", "2026-03-23")
    eur = aging["sections"][0]
    assert eur["currency"] == "EUR" and eur["total_open"] == 1000 + 2000 + 1500 + 4000 + 500
    kpis_csv = cli("report", "kpis", "--as-of", "2026-03-23", "--from", "2026-03-01", "--csv").stdout
    figures = {(r["currency"], r["figure"]): r["value"] for r in csv.DictReader(io.StringIO(kpis_csv))}
    # the write-off event records the amount in minor units
    assert figures[("EUR", "written_off")] == "700.00" and ("EUR", "cei") in figures
    page = tmp_path / "forecast.html"
    cli("report", "forecast", "--as-of", "2026-03-23", "--html", str(page))
    assert "<svg" in page.read_text(encoding="utf-8")
    cli("report", "kpis", "--as-of", "2026-03-23", "--html", str(page))
    assert "Trends over the last 12 months" in page.read_text(encoding="utf-8")  # the kpis page ends with them


def test_audit_verify_names_the_tampered_event(cli: Cli) -> None:
    if not cli.env["DUNNING_DATABASE_URL"].startswith("sqlite"):
        pytest.skip("tampers with the SQLite file directly")
    cli("run", "--as-of", "2026-03-05")
    assert "intact" in cli("audit", "verify").stdout
    db = sqlite3.connect(cli.env["DUNNING_DATABASE_URL"].removeprefix("sqlite:///"), isolation_level=None)
    [(event_id, data)] = db.execute("SELECT id, data FROM events WHERE kind = 'import' AND data LIKE '%\"WO\"%'")
    db.execute("UPDATE events SET data = ? WHERE id = ?", (data.replace("700.00", "70.00"), event_id))
    db.close()
    result = cli("audit", "verify", ok=False)
    assert result.returncode == 1 and f"broken at event {event_id}" in result.stderr
