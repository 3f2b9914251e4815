"""Collection incentives (rules/incentives.yaml as shipped) against a small book computed by hand.

Period 2026-03-01..31. Bands: on time 2%, 1-30 days late 1.5%, 31-90 1%, over 90 0.5%; bonus 0.5% of all
collected when ≥ 80% of it came on time; cap 50,000; clawback on.

    owner  inv  cur  amount  due         paid                 days late  band     commission
    alice  I1   CNY    1000  2026-03-10  1000 on 03-10         0         on_time  20.00
    alice  I2   CNY    2000  2026-02-20  2000 on 03-05        13         1-30     30.00
    alice  I3   CNY     500  2026-01-01   500 on 03-15        73         31-90     5.00
    alice  I4   CNY     300  2025-11-01   300 on 03-20       139         over_90   1.50
    bob    J1   CNY   10000  2026-03-31  10000 on 03-01        0         on_time 200.00
    bob    J2   CNY    1000  2026-02-01   400 on 02-15 (before the period), written off 03-25: clawback 400 × 1.5% = 6.00
    =SUM…  K1   EUR     100  2026-03-01   100 on 03-02         1         1-30      1.50

    alice: collected 3800, on time 1000 / 3800 = 0.2632 → no bonus; total 56.50.
    bob: collected 10000, all on time → bonus 50.00; 200 + 50 − 6 clawback = 244.00 (with cap 100: 100 − 6 = 94).
"""

from __future__ import annotations

import csv
import io
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest

from engine.actions import Collector
from engine.credit.incentives import as_csv, as_html
from engine.errors import CreditRefused
from tests.conftest import Book, at

RULES = Path(__file__).resolve().parents[2] / "rules"
POLICY = "name: house\nstages:\n  - {name: reminder, after_days: 1, channels: [email]}\n"
D = Decimal


def make(make_book, incentives: str) -> Book:  # type: ignore[no-untyped-def]
    book = make_book({"90-house.yaml": POLICY, "incentives.yaml": incentives})
    book.customers(
        {"id": "CA", "name": "Alpha", "owner": "alice"},
        {"id": "CB", "name": "Beta", "owner": "bob"},
        {"id": "CN", "name": "Nemo", "owner": "=SUM(A1)"},
    )
    for number, customer, amount, due, currency in (
        ("I1", "CA", "1000", "2026-03-10", "CNY"),
        ("I2", "CA", "2000", "2026-02-20", "CNY"),
        ("I3", "CA", "500", "2026-01-01", "CNY"),
        ("I4", "CA", "300", "2025-11-01", "CNY"),
        ("J1", "CB", "10000", "2026-03-31", "CNY"),
        ("J2", "CB", "1000", "2026-02-01", "CNY"),
        ("K1", "CN", "100", "2026-03-01", "EUR"),
    ):
        book.invoice(number, customer, amount, due, "2025-10-01", currency=currency)
    for number, amount, day in (
        ("I1", "1000", "2026-03-10"),
        ("I2", "2000", "2026-03-05"),
        ("I3", "500", "2026-03-15"),
        ("I4", "300", "2026-03-20"),
        ("J1", "10000", "2026-03-01"),
        ("J2", "400", "2026-02-15"),
        ("K1", "100", "2026-03-02"),
    ):
        book.pay(number, amount, day)
    Collector(book.app, actor="cfo").write_off("J2", "insolvent", at=at("2026-03-25"))
    return book


def test_commissions_bonus_clawback_by_owner_and_every_payment(make_book) -> None:  # type: ignore[no-untyped-def]
    book = make(make_book, (RULES / "incentives.yaml").read_text(encoding="utf-8"))
    report = book.app.credit.incentives(date(2026, 3, 1), date(2026, 3, 31))
    owners = {(o["owner"], o["currency"]): o for o in report["owners"]}
    assert owners[("alice", "CNY")] == {
        "owner": "alice",
        "currency": "CNY",
        "collected": D("3800"),
        "by_band": {"on_time": D("1000"), "1-30": D("2000"), "31-90": D("500"), "over_90": D("300")},
        "on_time_share": D("0.2632"),
        "commission": D("56.50"),
        "bonus": D("0"),
        "cap_reduction": D("0"),
        "clawback": D("0"),
        "total": D("56.50"),
    }
    bob = owners[("bob", "CNY")]
    assert (bob["collected"], bob["on_time_share"], bob["commission"], bob["bonus"], bob["clawback"], bob["total"]) == (
        D("10000"),
        D("1"),
        D("200.00"),
        D("50.00"),
        D("6.00"),
        D("244.00"),
    )
    none = owners[("=SUM(A1)", "EUR")]
    assert (none["commission"], none["total"]) == (D("1.50"), D("1.50"))
    # in order of owner, currency and payment day
    assert [(p["invoice"], p["days_late"], p["band"], p["commission"]) for p in report["payments"]] == [
        ("K1", 1, "1-30", D("1.50")),
        ("I2", 13, "1-30", D("30.00")),
        ("I1", 0, "on_time", D("20.00")),
        ("I3", 73, "31-90", D("5.00")),
        ("I4", 139, "over_90", D("1.50")),
        ("J1", 0, "on_time", D("200.00")),
    ]
    assert [(c["invoice"], c["written_off_on"], c["commission"]) for c in report["clawbacks"]] == [
        ("J2", date(2026, 3, 25), D("6.00"))
    ]
    # the February payment earned its commission in February's report, before the write-off
    february = book.app.credit.incentives(date(2026, 2, 1), date(2026, 2, 28))
    assert [(p["invoice"], p["commission"]) for p in february["payments"]] == [("J2", D("6.00"))]
    assert february["clawbacks"] == []

    rows = list(csv.DictReader(io.StringIO(as_csv(report))))
    assert {r["kind"] for r in rows} >= {"payment", "clawback", "commission", "bonus", "total", "collected_in_band"}
    assert next(r for r in rows if r["kind"] == "total" and r["owner"] == "bob")["amount"] == "244.00"
    assert {r["owner"] for r in rows} == {"alice", "bob", "'=SUM(A1)"}  # never a formula in a spreadsheet
    page = as_html(report, "Acme <Trading>")
    assert "Acme &lt;Trading&gt;" in page and "<script" not in page


def test_cap_and_the_cli(make_book, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    capped = (RULES / "incentives.yaml").read_text(encoding="utf-8").replace("cap: 50000", "cap: 100")
    book = make(make_book, capped)
    bob = next(
        o for o in book.app.credit.incentives(date(2026, 3, 1), date(2026, 3, 31))["owners"] if o["owner"] == "bob"
    )
    assert (bob["cap_reduction"], bob["total"]) == (D("150.00"), D("94.00"))
    with pytest.raises(CreditRefused, match="after --to"):
        book.app.credit.incentives(date(2026, 4, 1), date(2026, 3, 31))


def test_every_report_by_a_dimension(make_book) -> None:  # type: ignore[no-untyped-def]
    from engine.reports.dimensions import by_dimension
    from engine.reports.figures import ReportError, build, load_book

    book = make_book({"90-house.yaml": POLICY})
    book.customers(
        {"id": "C1", "name": "A", "industry": "steel", "region": "East"},
        {"id": "C2", "name": "B", "industry": "food", "region": "East"},
        {"id": "C3", "name": "C"},
    )
    for number, customer, amount in (("X1", "C1", "100"), ("X2", "C1", "50"), ("X3", "C2", "70"), ("X4", "C3", "5")):
        book.invoice(number, customer, amount, "2026-03-01", "2026-02-01")
    whole = load_book(book.app.repo, book.app.settings.zone, date(2026, 3, 31))
    result = by_dimension(whole, "industry", lambda b: build("aging", b))
    totals = {g["key"]: g["report"]["sections"][0]["total_open"] for g in result["groups"]}
    assert totals == {"food": D("70"), "steel": D("150"), "(none)": D("5")}
    assert list(totals) == ["food", "steel", "(none)"]
    region = by_dimension(whole, "region", lambda b: build("kpis", b, since=date(2026, 3, 1)))
    assert [g["key"] for g in region["groups"]] == ["East", "(none)"]
    with pytest.raises(ReportError, match="choose one of segment, industry, region, owner, credit_grade"):
        by_dimension(whole, "country", lambda b: build("aging", b))
