"""`dunning charges` and `status --json`'s charges_due in real subprocesses: the documented JSON."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.acceptance.test_cli import Cli

RATES = Path(__file__).resolve().parents[2] / "rules" / "rates"


@pytest.fixture
def cli(tmp_path: Path, database_url: str) -> Cli:
    cli = Cli(tmp_path, database_url)
    shutil.copytree(RATES, tmp_path / "rules" / "rates")
    cli.write(
        "rules/90-default.yaml",
        """\
        name: default
        stages:
          - {name: reminder, after_days: 3, channels: [email]}
        charges:
          interest: {basis: statutory, jurisdiction: EU}
          compensation: statutory
        """,
    )
    cli.write("customers.csv", "id,name,email\nC1,Acme GmbH,ap@acme.example\n")
    cli.write(
        "invoices.csv",
        "number,customer_id,currency,amount,issued_on,due_on\nINV-1,C1,EUR,10000.00,2026-01-01,2026-01-31\n",
    )
    cli.write("payments.csv", "invoice,amount,paid_on,reference\nINV-1,4000.00,2026-02-15,BANK-1\n")
    for kind in ("customers", "invoices", "payments"):
        cli("import", kind, f"{kind}.csv")
    return cli


def test_charges_json_is_the_documented_shape(cli: Cli) -> None:
    assert cli.json("charges", "INV-1", "--as-of", "2026-03-02") == {
        "number": "INV-1",
        "currency": "EUR",
        "as_of": "2026-03-02",
        "principal_open": 6000,
        "interest": 65.63,
        "compensation": 40,
        "fees": 0,
        "total_due": 6105.63,
        "basis": "Directive 2011/7/EU art. 2(6): ECB main refinancing rate on the first day of the half-year "
        "+ 8 points; Directive 2011/7/EU art. 6: fixed compensation of 40",
        "periods": [
            {
                "from": "2026-02-01",
                "to": "2026-02-14",
                "days": 14,
                "principal": 10000,
                "rate": 10.15,
                "rate_unit": "percent_per_year",
                "interest": 38.931507,
            },
            {
                "from": "2026-02-15",
                "to": "2026-03-02",
                "days": 16,
                "principal": 6000,
                "rate": 10.15,
                "rate_unit": "percent_per_year",
                "interest": 26.69589,
            },
        ],
    }
    text = cli("charges", "INV-1", "--as-of", "2026-03-02").stdout
    assert "total due: 6,105.63 EUR" in text and "38.931507" in text


def test_status_json_has_charges_due_and_errors_are_clear(cli: Cli) -> None:
    [row] = cli.json("status", "--as-of", "2026-03-02")
    assert row["charges_due"] == 105.63 and row["open_amount"] == 6000
    missing = cli("charges", "INV-9", ok=False)
    assert missing.returncode == 1 and "no invoice numbered 'INV-9'" in missing.stderr
    (cli.folder / "rules" / "rates" / "ecb.yaml").write_text("- {from: 2026-06-01, rate: 2.0}\n")
    failed = cli("charges", "INV-1", "--as-of", "2026-03-02", ok=False)
    assert failed.returncode == 1
    message = failed.stderr.replace("\n", "")
    assert "no reference rate known for 2026-01-01 in " in message and message.endswith("rules/rates/ecb.yaml")


def test_statement_json_and_pdf(cli: Cli) -> None:
    result = cli("statement", "C1", "--as-of", "2026-03-02", "--from", "2026-02-01", "--pdf", "st.pdf", "--json")
    assert json.loads(result.stdout) == {
        "customer": {
            "id": "C1",
            "name": "Acme GmbH",
            "address": None,
            "email": "ap@acme.example",
            "language": None,
            "owner": None,
        },
        "as_of": "2026-03-02",
        "from": "2026-02-01",
        "pay_link": None,
        "currencies": [
            {
                "currency": "EUR",
                "invoices": [
                    {
                        "number": "INV-1",
                        "issued_on": "2026-01-01",
                        "due_on": "2026-01-31",
                        "days_overdue": 30,
                        "amount": 10000,
                        "open_amount": 6000,
                        "interest": 65.63,
                        "compensation": 40,
                        "fees": 0,
                        "total_due": 6105.63,
                        "basis": "Directive 2011/7/EU art. 2(6): ECB main refinancing rate on the first day of the "
                        "half-year + 8 points; Directive 2011/7/EU art. 6: fixed compensation of 40",
                    }
                ],
                "payments": [{"invoice": "INV-1", "paid_on": "2026-02-15", "amount": 4000, "reference": "BANK-1"}],
                "credits": [],
                "aging": {"current": 0, "1_30": 6000, "31_60": 0, "61_90": 0, "over_90": 0},
                "open_amount": 6000,
                "charges": 105.63,
                "total_due": 6105.63,
            }
        ],
    }
    assert (cli.folder / "st.pdf").read_bytes().startswith(b"%PDF")
    text = cli("statement", "C1", "--as-of", "2026-03-02").stdout
    assert "total due: 6,105.63 EUR" in text
    bad = cli("statement", "C9", ok=False)
    assert bad.returncode == 1 and "no customer with id 'C9'" in bad.stderr
    early = cli("statement", "C1", "--as-of", "2026-03-02", "--from", "2026-04-01", ok=False)
    assert early.returncode == 1 and "--from 2026-04-01 is after the statement date 2026-03-02" in early.stderr


def test_history_local_shows_company_times_in_the_table_and_the_json(cli: Cli) -> None:
    cli.write("config.yaml", "timezone: Asia/Shanghai\n")
    cli("run", "--as-of", "2026-02-04T09:30:00+08:00")  # 01:30 UTC
    [utc] = [e for e in cli.json("history", "INV-1") if e["kind"] == "transition"]
    [local] = [e for e in cli.json("history", "INV-1", "--local") if e["kind"] == "transition"]
    assert (utc["at"], local["at"]) == ("2026-02-04T01:30:00Z", "2026-02-04T09:30:00+08:00")
    [payment] = [e for e in cli.json("history", "INV-1", "--local") if e["kind"] == "payment"]
    assert payment["at"] == "2026-02-15T08:00:00+08:00"  # midnight UTC of the payment day, read in Shanghai
    table = cli("history", "INV-1", "--local").stdout
    assert "2026-02-04 09:30 CST  transition" in table
    assert "2026-02-04T01:30:00Z  transition" in cli("history", "INV-1").stdout


def test_report_charges_in_json_csv_and_html(cli: Cli) -> None:
    # the worked example: 65.63 interest and 40 compensation arise from 1 Feb to 2 Mar; under principal_first
    # the payment of 15 Feb lowers the principal and pays no charge
    report = cli.json("report", "charges", "--from", "2026-02-01", "--to", "2026-03-02")
    assert {k: report[k] for k in ("report", "as_of", "period_start", "period_end")} == {
        "report": "charges",
        "as_of": "2026-03-02",
        "period_start": "2026-02-01",
        "period_end": "2026-03-02",
    }
    [eur] = report["sections"]
    assert {k: v for k, v in eur.items() if k != "invoices"} == {
        "currency": "EUR",
        "interest_billed": 65.63,
        "compensation_billed": 40,
        "fees_billed": 0,
        "interest_collected": 0,
        "compensation_collected": 0,
        "fees_collected": 0,
        "billed": 105.63,
        "collected": 0,
        "outstanding": 105.63,
    }
    assert [(i["invoice"], i["customer_id"], i["billed"]) for i in eur["invoices"]] == [("INV-1", "C1", 105.63)]
    csv_text = cli("report", "charges", "--from", "2026-02-01", "--to", "2026-03-02", "--csv").stdout
    assert "EUR,totals,,billed,105.63" in csv_text and "EUR,invoices,INV-1,interest_billed,65.63" in csv_text
    cli("report", "charges", "--to", "2026-03-02", "--html", "charges.html")  # --from: the 1st of the month
    page = (cli.folder / "charges.html").read_text(encoding="utf-8")
    assert "Charges billed and collected" in page and "period from 2026-03-01" in page
    assert "INV-1" in page and "Directive 2011/7/EU" in page
    # accrued to 28 Feb: 38.931507 + 6000 * 10.15% * 14 / 365 (23.358904) = 62.290411 -> 62.29; to 2 Mar 65.63
    assert '<td class="n">3.34</td>' in page
