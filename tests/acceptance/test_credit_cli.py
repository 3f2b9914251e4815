"""Credit management through the `dunning` CLI in real subprocesses: JSON shapes, exit codes, the audit trail."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.acceptance.test_cli import Cli

RULES = Path(__file__).resolve().parents[2] / "rules"
POLICY = """\
name: house
stages:
  - {name: reminder, after_days: 1, channels: [email]}
"""


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    cli = Cli(tmp_path, f"sqlite:///{tmp_path / 'dunning.db'}")
    cli.env["DUNNING_ACTOR"] = "carol"
    cli.write("rules/house.yaml", POLICY)
    cli.write("rules/credit.yaml", (RULES / "credit.yaml").read_text(encoding="utf-8"))
    cli.write("rules/warnings.yaml", (RULES / "warnings.yaml").read_text(encoding="utf-8"))
    cli.write("rules/incentives.yaml", (RULES / "incentives.yaml").read_text(encoding="utf-8"))
    cli.write(
        "customers.csv",
        """\
        id,name,credit_grade,owner,credit_limit,industry,region
        C1,Acme,A,alice,,construction,East
        C2,Bolt,,bob,5000,retail,North
        """,
    )
    cli.write(
        "invoices.csv",
        """\
        number,customer_id,currency,amount,issued_on,due_on,tags
        A1,C1,CNY,1000.00,2026-01-01,2026-02-01,
        B1,C2,CNY,4800.00,2026-02-01,2026-03-01,
        """,
    )
    cli.write("payments.csv", "invoice,amount,paid_on,reference\nA1,1000.00,2026-02-01,R1\n")
    for kind in ("customers", "invoices", "payments"):
        cli("import", kind, f"{kind}.csv")
    return cli


def test_score_review_set_check_and_warnings(cli: Cli) -> None:
    assert "policies are valid" in cli("policy", "check").stdout
    scores = cli.json("credit", "score", "--as-of", "2026-03-31")
    assert scores == [
        {
            "customer_id": "C1",
            "grade": "A",
            "score": 100,
            "source": "import",
            "limit": 500000,
            "payment_terms_days": 60,
            "factors": [
                {"name": "paid_late_days", "measure": "avg_days_late", "value": 0, "points": 40},
                {"name": "on_time", "measure": "on_time_share", "value": 1, "points": 30},
                {"name": "promises", "measure": "broken_promises", "value": 0, "points": 15},
                {"name": "overdue_now", "measure": "overdue_share", "value": 0, "points": 15},
            ],
        },
        # B1 unpaid and 30 days overdue: 0 + 0 + 15 + 0 = 15
        {
            "customer_id": "C2",
            "grade": None,
            "score": 15,
            "source": "import",
            "limit": 5000,
            "payment_terms_days": None,
            "factors": [
                {"name": "paid_late_days", "measure": "avg_days_late", "value": None, "points": 0},
                {"name": "on_time", "measure": "on_time_share", "value": 0, "points": 0},
                {"name": "promises", "measure": "broken_promises", "value": 0, "points": 15},
                {"name": "overdue_now", "measure": "overdue_share", "value": 1, "points": 0},
            ],
        },
    ]
    dry = cli("credit", "review", "--as-of", "2026-03-31")
    assert "C2  - -> D  (score 15, score)" in dry.stdout and "dry run" in dry.stdout
    cli("credit", "review", "--as-of", "2026-03-31T10:00", "--apply")
    kinds = [e["kind"] for e in cli.json("history", "--customer", "C2")]
    assert kinds.index("grade_changed") < kinds.index("credit_hold")  # holds follow the new grade at once

    check = cli("credit", "check", "C2", "--amount", "100", "--json", ok=False)
    assert check.returncode == 1
    import json

    assert json.loads(check.stdout) == {
        "customer_id": "C2",
        "ok": False,
        "limit": 5000,
        "open": 4800,
        "amount": 100,
        "headroom": 200,
        "reasons": ["the customer is on credit hold"],
    }  # grade D: held at review
    ok = cli("credit", "check", "C1", "--amount", "1000")
    assert "headroom 500000" in ok.stdout

    cli("credit", "set", "C2", "--grade", "C", "--reason", "new guarantee", "--until", "2099-12-31")
    assert cli.json("credit", "score", "--customer", "C2", "--as-of", "2026-03-31")[0]["source"] == "manual"
    bad = cli("credit", "set", "C2", "--grade", "E", "--reason", "x", ok=False)
    assert bad.returncode == 1 and "is not a grade" in bad.stderr

    cli("run", "--as-of", "2026-04-01")
    warnings = cli.json("warnings")
    assert {(w["customer_id"], w["rule"]) for w in warnings} >= {("C2", "near_limit")}  # 4800 / 5000 = 0.96
    first = warnings[0]
    assert set(first) == {
        "id",
        "rule",
        "customer_id",
        "severity",
        "status",
        "raised_at",
        "cleared_at",
        "acknowledged_by",
        "note",
    }
    cli("warnings", "ack", str(first["id"]), "--note", "called them")
    assert [w["id"] for w in cli.json("warnings", "--open")] == [w["id"] for w in warnings[1:]]
    kinds = [e["kind"] for e in cli.json("history", "--customer", first["customer_id"])]
    assert "warning_raised" in kinds and "warning_acknowledged" in kinds


def test_reports_incentives_and_credit(cli: Cli, tmp_path: Path) -> None:
    report = cli.json("report", "incentives", "--from", "2026-02-01", "--to", "2026-02-28")
    assert report["owners"] == [
        {
            "owner": "alice",
            "currency": "CNY",
            "collected": 1000,
            "by_band": {"on_time": 1000, "1-30": 0, "31-90": 0, "over_90": 0},
            "on_time_share": 1,
            "commission": 20,
            "bonus": 5,
            "cap_reduction": 0,
            "clawback": 0,
            "total": 25,
        }
    ]
    assert [p["invoice"] for p in report["payments"]] == ["A1"]
    csv_text = cli(
        "report", "incentives", "--from", "2026-02-01", "--to", "2026-02-28", "--csv", "--html", "incentives.html"
    ).stdout
    assert (
        csv_text.splitlines()[0] == "kind,owner,currency,invoice,customer_id,day,amount,days_late,band,rate,commission"
    )
    assert "<h2>Every payment</h2>" in (tmp_path / "incentives.html").read_text(encoding="utf-8")
    missing = cli("report", "incentives", "--from", "2026-02-01", ok=False)
    assert missing.returncode == 1 and "--from DATE --to DATE" in missing.stderr

    by = cli("report", "aging", "--as-of", "2026-03-31", "--by", "industry", "--csv").stdout.splitlines()
    assert by[0] == "industry,currency,section,key,figure,value"
    assert {line.split(",")[0] for line in by[1:]} == {"construction", "retail"}

    cli("credit", "review", "--as-of", "2026-03-31", "--apply")
    credit = cli.json("report", "credit", "--from", "2026-03-01", "--as-of", "2026-03-31")
    assert credit["grades"] == {"A": 1, "D": 1} and credit["migration"] == {"(none)": {"D": 1}}
    assert credit["utilisation"] == {"0-0.5": 1, "0.5-0.8": 0, "0.8-1": 1, "over_1": 0, "no_limit": 0}
    assert [c["customer_id"] for c in credit["on_hold"]] == ["C2"] and credit["over_limit"] == []


def test_reason_codes_on_actions_and_report_reasons(cli: Cli) -> None:
    bad = cli("dispute", "B1", "--reason", "late goods", "--reason-code", "delivery_problm", ok=False)
    assert bad.returncode == 1 and "did you mean 'delivery_problem'" in bad.stderr
    assert [e["kind"] for e in cli.json("history", "B1")].count("dispute") == 0  # refused before acting
    cli("dispute", "B1", "--reason", "late goods", "--reason-code", "delivery_problem")
    cli("dispute", "B1", "--resolve")
    cli("note", "B1", "cash is tight", "--reason-code", "cash_trouble")
    cli("write-off", "B1", "--reason", "gone", "--reason-code", "cash_trouble")
    report = cli.json("report", "reasons")
    assert report["codes"] == [
        {"code": "cash_trouble", "group": "customer", "currency": "CNY", "count": 2, "amount": 9600},
        {"code": "delivery_problem", "group": "internal", "currency": "CNY", "count": 1, "amount": 4800},
    ]
    assert report["groups"] == [
        {"group": "customer", "currency": "CNY", "count": 2, "amount": 9600},
        {"group": "internal", "currency": "CNY", "count": 1, "amount": 4800},
    ]
    events = [e for e in cli.json("history", "B1") if e["kind"] == "reason_code"]
    assert [(e["code"], e["for"], e["actor"]) for e in events] == [
        ("delivery_problem", "dispute", "carol"),
        ("cash_trouble", "note", "carol"),
        ("cash_trouble", "write_off", "carol"),
    ]
