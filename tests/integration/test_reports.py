"""Every report figure against a small book computed by hand (SQLite and PostgreSQL), and the HTML page in a
real headless Chromium.

The book, swept daily from 2026-01-01 to 2026-03-31 under one policy (reminder at 1 day overdue, letter at
20, no spacing); reports as of 2026-03-31, period 2026-03-01..31 (31 days):

    inv  cust  cur  amount issued      due         what happens
    A1   C1    EUR  1000   2026-02-01  2026-03-03  paid 03-02 (on time, before any notice)
    A2   C1    EUR  2000   2026-02-15  2026-03-17  reminder 03-18; promise 500 by 03-25, kept by 500 paid 03-20
    B1   C2    EUR  3000   2026-01-01  2026-01-31  reminder 02-01, letter 02-20; promise 03-05 broken 03-14
    B2   C2    EUR  4000   2026-03-10  2026-04-09  plan 03-30: 2000 on 04-10, 2000 on 04-24
    B4   C2    EUR   600   2025-11-01  2025-12-01  reminder 01-01, letter 01-02
    W    C2    EUR   500   2026-01-05  2026-02-04  reminder 02-05, letter 02-24, written off 03-25
    C1x  C3    EUR   800   2025-09-01  2025-09-30  reminder 01-01, letter 01-02, disputed 03-28
    D1   C4    EUR   800   2026-03-20  2026-04-19  (current)
    P1   C1    EUR  1000   2026-01-01  2026-01-31  reminder 02-01, paid 02-05
    P2   C4    EUR  2000   2026-01-01  2026-01-20  reminder 01-21, letter 02-09, paid 02-20
    X1   C3    CNY 10000   2026-03-01  2026-03-31  (due today)

Customers: C1 Acme (A, enterprise, alice), C2 Bolt (D, smb, bob), C3 Cato (no grade, segment or owner),
C4 Dove (B, smb, alice).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest

from engine.actions import Collector, parse_installments
from engine.reports.figures import build, flatten, load_book
from engine.reports.html import render
from tests.conftest import Book, at

POLICY = """\
name: simple
stages:
  - {name: reminder, after_days: 1, channels: [email]}
  - {name: letter, after_days: 20, channels: [letter]}
"""
AS_OF = date(2026, 3, 31)
SWEEP_DAYS = (
    "2026-01-01",
    "2026-01-02",
    "2026-01-21",
    "2026-02-01",
    "2026-02-05",
    "2026-02-09",
    "2026-02-20",
    "2026-02-24",
    "2026-03-14",
    "2026-03-18",
    "2026-03-31",
)
D = Decimal


@pytest.fixture
def book(make_book) -> Book:  # type: ignore[no-untyped-def]
    book = make_book({"simple.yaml": POLICY})
    book.customers(
        {"id": "C1", "name": "Acme", "credit_grade": "A", "segment": "enterprise", "owner": "alice"},
        {"id": "C2", "name": "Bolt", "credit_grade": "D", "segment": "smb", "owner": "bob"},
        {"id": "C3", "name": "Cato"},
        {"id": "C4", "name": "Dove", "credit_grade": "B", "segment": "smb", "owner": "alice"},
    )
    for number, customer, amount, issued, due in (
        ("A1", "C1", "1000", "2026-02-01", "2026-03-03"),
        ("A2", "C1", "2000", "2026-02-15", "2026-03-17"),
        ("B1", "C2", "3000", "2026-01-01", "2026-01-31"),
        ("B2", "C2", "4000", "2026-03-10", "2026-04-09"),
        ("B4", "C2", "600", "2025-11-01", "2025-12-01"),
        ("W", "C2", "500", "2026-01-05", "2026-02-04"),
        ("C1x", "C3", "800", "2025-09-01", "2025-09-30"),
        ("D1", "C4", "800", "2026-03-20", "2026-04-19"),
        ("P1", "C1", "1000", "2026-01-01", "2026-01-31"),
        ("P2", "C4", "2000", "2026-01-01", "2026-01-20"),
    ):
        book.invoice(number, customer, amount, due_on=due, issued_on=issued)
    book.invoice("X1", "C3", "10000", due_on="2026-03-31", issued_on="2026-03-01", currency="CNY")
    payments = {
        "2026-02-05": ("P1", "1000"),
        "2026-02-20": ("P2", "2000"),
        "2026-03-02": ("A1", "1000"),
        "2026-03-20": ("A2", "500"),
    }
    collector = Collector(book.app, actor="alice")
    actions = {
        "2026-03-05": lambda: collector.promise("B1", D(3000), date(2026, 3, 10), at=at("2026-03-05", 10)),
        "2026-03-18": lambda: collector.promise("A2", D(500), date(2026, 3, 25), at=at("2026-03-18", 10)),
        "2026-03-25": lambda: collector.write_off("W", "insolvent", at=at("2026-03-25", 10)),
        "2026-03-28": lambda: collector.dispute("C1x", "never delivered", at=at("2026-03-28", 10)),
        "2026-03-30": lambda: collector.plan(
            "B2", parse_installments("2026-04-10:2000,2026-04-24:2000"), at=at("2026-03-30", 10)
        ),
    }
    # Sweeping only on the days something happens gives what daily sweeps would (no spacing, one stage due
    # at a time) at a fraction of the cost.
    for text in sorted({*SWEEP_DAYS, *payments, *actions}):
        if text in payments:
            book.pay(payments[text][0], payments[text][1], text)
        book.app.sweeper().run(at(text))
        if text in actions:
            actions[text]()
    return book


def report(book: Book, name: str, **kwargs):  # type: ignore[no-untyped-def]
    data = load_book(book.app.repo, book.settings.zone, AS_OF, {"reminder": 0, "letter": 1})
    return build(name, data, **kwargs)


def section(result: dict, currency: str) -> dict:
    return next(s for s in result["sections"] if s["currency"] == currency)


def test_the_book_went_as_described(book: Book) -> None:
    assert book.stage("B1") == "letter" and book.stage("C1x") == "disputed" and book.stage("B2") == "promised"
    assert book.stage("A2") == "reminder" and book.stage("W") == "written_off"
    assert [e["kind"] for e in book.app.history("B1") if e["kind"].startswith("promise")] == [
        "promise",
        "promise_broken",
    ]


def test_aging(book: Book) -> None:
    eur = section(report(book, "aging"), "EUR")
    assert [(b["bucket"], b["amount"], b["invoices"]) for b in eur["buckets"]] == [
        ("current", D(4800), 2),
        ("1-30", D(1500), 1),
        ("31-60", D(3000), 1),
        ("61-90", D(0), 0),
        ("91-180", D(600), 1),
        ("180+", D(800), 1),
    ]
    assert (eur["total_open"], eur["overdue_amount"], eur["overdue_share"]) == (D(10700), D(5900), D("0.5514"))
    assert (eur["invoices_open"], eur["invoices_overdue"], eur["invoices_overdue_share"]) == (6, 4, D("0.6667"))
    assert (eur["customers_open"], eur["customers_overdue"], eur["customers_overdue_share"]) == (4, 3, D("0.75"))
    owners = {g["key"]: (g["open"], g["overdue"]) for g in eur["by_owner"]}
    assert owners == {"alice": (D(2300), D(1500)), "bob": (D(7600), D(3600)), "(none)": (D(800), D(800))}
    assert {g["key"]: g["open"] for g in eur["by_credit_grade"]} == {
        "A": D(1500),
        "D": D(7600),
        "B": D(800),
        "(none)": D(800),
    }
    assert {g["key"]: g["open"] for g in eur["by_segment"]} == {"enterprise": D(1500), "smb": D(8400), "(none)": D(800)}
    c2 = next(g for g in eur["by_customer"] if g["key"] == "C2")
    assert c2["buckets"]["current"] == D(4000) and c2["buckets"]["91-180"] == D(600) and c2["name"] == "Bolt"
    cny = section(report(book, "aging"), "CNY")
    assert (cny["total_open"], cny["overdue_amount"], cny["overdue_share"]) == (D(10000), D(0), D(0))
    # configurable buckets
    custom = section(report(book, "aging", buckets=(60, 120)), "EUR")
    assert [(b["bucket"], b["amount"]) for b in custom["buckets"]] == [
        ("current", D(4800)),
        ("1-60", D(4500)),
        ("61-120", D(600)),
        ("120+", D(800)),
    ]


def test_kpis(book: Book) -> None:
    result = report(book, "kpis", since=date(2026, 3, 1))
    eur = section(result, "EUR")
    assert eur["days_in_period"] == 31
    assert (eur["opening_receivables"], eur["closing_receivables"], eur["closing_current_receivables"]) == (
        D(7900),
        D(10700),
        D(4800),
    )
    assert (eur["credit_sales"], eur["collected"], eur["written_off"]) == (D(4800), D(1500), D(500))
    assert eur["dso"] == D("69.10")  # 10700 / 4800 * 31
    assert eur["average_days_to_pay"] == D("29.00")  # A1: 02-01 -> 03-02
    assert (eur["invoices_due"], eur["invoices_paid_on_time"], eur["timeliness_rate"]) == (2, 1, D("0.5"))
    assert eur["timeliness_rate_amount"] == D("0.3333")  # 1000 of 3000
    assert eur["cei"] == D("25.32")  # (7900 + 4800 - 10700) / (7900 + 4800 - 4800) * 100
    assert eur["bad_debt_rate"] == D("0.1042")  # 500 / 4800
    assert (eur["average_receivables"], eur["receivables_turnover"]) == (D("9300.00"), D("0.52"))
    cny = section(result, "CNY")
    assert (cny["dso"], cny["cei"], cny["timeliness_rate"], cny["receivables_turnover"]) == (
        D("31.00"),
        None,
        D(0),
        D("2.00"),
    )


def test_effectiveness(book: Book) -> None:
    result = report(book, "effectiveness")
    stages = {s["stage"]: s for s in result["stages"]}
    reminder, letter = stages["reminder"], stages["letter"]
    assert [s["stage"] for s in result["stages"]] == ["reminder", "letter"]
    assert (reminder["reached"], reminder["matured_7"], reminder["paid_within_7"]) == (7, 7, D("0.1429"))
    assert (reminder["matured_14"], reminder["paid_within_14"]) == (6, D("0.1667"))
    assert (reminder["matured_30"], reminder["paid_within_30"]) == (6, D("0.3333"))
    assert (letter["reached"], letter["paid_within_7"], letter["paid_within_14"], letter["paid_within_30"]) == (
        5,
        D(0),
        D("0.2"),
        D("0.2"),
    )
    channels = {(c["stage"], c["channel"]): c for c in result["channels"]}
    assert set(channels) == {("reminder", "email"), ("letter", "letter")}
    assert channels[("reminder", "email")]["paid_within_30"] == D("0.3333")
    assert (result["promises_kept"], result["promises_broken"], result["promise_kept_rate"]) == (1, 1, D("0.5"))
    assert result["installment_kept_rate"] is None
    assert result["average_days_first_reminder_to_payment"] == D("17.00")  # P1 4 days, P2 30 days


def test_owners(book: Book) -> None:
    rows = {r["owner"]: r for r in section(report(book, "owners", since=date(2026, 3, 1)), "EUR")["owners"]}
    assert (rows["alice"]["collected"], rows["alice"]["invoices_due"], rows["alice"]["on_time_rate"]) == (
        D(1500),
        2,
        D("0.5"),
    )
    assert (rows["alice"]["open"], rows["alice"]["overdue"]) == (D(2300), D(1500))
    assert (rows["bob"]["collected"], rows["bob"]["invoices_due"], rows["bob"]["on_time_rate"]) == (D(0), 0, None)
    assert (rows["(none)"]["open"], rows["(none)"]["overdue"]) == (D(800), D(800))


def test_forecast(book: Book) -> None:
    result = report(book, "forecast")
    rates = result["rates"]
    assert rates["on_time_rate"] == D("0.125")  # A1 of the 8 invoices due before 03-31
    assert rates["stage_paid_within_30"] == {"reminder": D("0.3333"), "letter": D("0.2")}
    assert rates["overall_paid_within_30"] == D("0.2727")  # 3 of 11 matured entries
    assert rates["promise_kept_rate"] == D("0.5") and rates["installment_kept_rate"] == D(1)
    eur = section(result, "EUR")
    weeks = eur["weeks"]
    assert (weeks[0]["start"], weeks[0]["end"], weeks[7]["end"]) == (
        date(2026, 4, 1),
        date(2026, 4, 7),
        date(2026, 5, 26),
    )
    # overdue, spread over 4 weeks: A2 1500 x .3333 / 4 = 124.99; B1 3000 x .2 / 4 = 150; B4 600 x .2 / 4 = 30
    assert [w["overdue"] for w in weeks] == [D("304.99")] * 4 + [D(0)] * 4
    assert [w["plans"] for w in weeks][:4] == [D(0), D(2000), D(0), D(2000)]
    assert weeks[2]["due_dates"] == D("100.00")  # D1 800 x .125, due 04-19
    assert [w["total"] for w in weeks][:4] == [D("304.99"), D("2304.99"), D("404.99"), D("2304.99")]
    assert eur["total"] == D("5319.96")
    assert not [i for i in eur["items"] if i["invoice"] in ("C1x", "W")]  # disputed, written off
    cny = section(result, "CNY")
    assert cny["weeks"][0]["due_dates"] == D("1250.00") and cny["total"] == D("1250.00")
    assert any(r["figure"] == "total" for r in flatten(result))


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def run_chromium(page: Path, profile: Path) -> tuple[str, str]:
    assert CHROMIUM is not None
    result = subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            f"--user-data-dir={profile}",
            "--enable-logging=stderr",
            "--v=0",
            "--dump-dom",
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout, result.stderr


def console_errors(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if "CONSOLE" in line or "Uncaught" in line]


@pytest.mark.skipif(
    CHROMIUM is None and os.environ.get("CI") != "true",
    reason="chromium is not installed (Debian: apt-get install chromium; .ci/run installs it)",
)
def test_html_report_opens_in_headless_chromium_with_its_charts(book: Book, tmp_path: Path) -> None:
    if not book.app.repo.url.startswith("sqlite"):
        pytest.skip("the page does not depend on the database; once is enough")
    pages = []
    for name in ("aging", "forecast"):
        page = tmp_path / f"{name}.html"
        page.write_text(render(report(book, name), company="Test Co"), encoding="utf-8")
        pages.append(page)
    broken = tmp_path / "broken.html"
    broken.write_text("<html><body><script>undefinedFunction();</script></body></html>", encoding="utf-8")
    # the detector works: a page whose script fails is caught
    assert console_errors(run_chromium(broken, tmp_path / "p0")[1])
    for index, page in enumerate(pages, start=1):
        dom, stderr = run_chromium(page, tmp_path / f"p{index}")
        assert console_errors(stderr) == [], stderr
        assert 'data-ready="1"' in dom
        charts = int(dom.split('data-charts="')[1].split('"')[0])
        assert charts >= 1 and dom.count("<svg") >= charts and "<rect" in dom
        assert "http://" not in dom.replace("http://www.w3.org/2000/svg", "")  # self-contained
