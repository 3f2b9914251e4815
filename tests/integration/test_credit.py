"""Credit management against a small book computed by hand (SQLite and PostgreSQL).

Credit policy: the issue's canonical credit.yaml (rules/credit.yaml as shipped), window 365 days, currency CNY.
Sweeps on 06-02, 06-14, 06-26 and 06-30; scores as of 2026-06-30, window (2025-06-30, 2026-06-30].

    cust  grade  inv  amount  issued      due         what happens
    C1    B      A1     1000  2026-02-01  2026-03-01  paid 03-01 (0 days late)
    (limit 1000) A2     3000  2026-03-01  2026-04-01  paid 04-11 (10 days late)
                 A3      950  2026-06-15  2026-07-20  open, not due
    C2    A      B1     2000  2026-04-01  2026-05-01  paid 06-20 (50 days late)
                 B2     1000  2026-05-01  2026-06-01  promise 500 by 06-10 on 06-05, broken at the 06-14 sweep
                 B3     1000  2026-06-15  2026-07-15  open, not due
    C3    -      (no invoices)
    C4    -      D1   200000  2026-05-01  2026-06-01  open; legal stage (>= 100000 at 25 days) on 06-26
                 D2      100  2026-05-01  2026-06-02  open
                 D3      100  2026-05-01  2026-06-03  open

    C1: avg_days_late (1000·0 + 3000·10) / 4000 = 7.5 → 30; on_time 1/2 = 0.5 → 10; promises 0 → 15;
        overdue_share 0 / 950 = 0 → 15; score 70 → B.
    C2: avg_days_late 50 → 0; on_time 0/2 → 0; promises 1 → 5; overdue_share 1000 / 2000 = 0.5 → 0; 5 → D.
    C3: no invoice due in the window → no_history_grade C, score null.
    C4: avg_days_late null (nothing paid) → the catch-all band, 0; on_time 0/3 → 0; promises 0 → 15;
        overdue_share 1 → 0; 15 → D.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest

from engine.actions import Collector
from engine.errors import CreditRefused
from tests.conftest import Book, at

RULES = Path(__file__).resolve().parents[2] / "rules"
GOOD = """\
name: good
applies_to: "customer.credit_grade in ['A', 'B']"
stages:
  - {name: reminder, after_days: 1, channels: [email]}
"""
STRICT = """\
name: strict
applies_to: "customer.credit_grade in ['C', 'D']"
stages:
  - {name: reminder, after_days: 1, channels: [email]}
  - {name: legal, after_days: 25, when: "invoice.open_amount >= 100000", channels: [legal]}
"""
FALLBACK = STRICT.replace("name: strict\napplies_to: \"customer.credit_grade in ['C', 'D']\"\n", "name: fallback\n")
D = Decimal


@pytest.fixture
def book(make_book) -> Book:  # type: ignore[no-untyped-def]
    book = make_book(
        {
            "10-good.yaml": GOOD,
            "20-strict.yaml": STRICT,
            "90-default.yaml": FALLBACK,
            "credit.yaml": (RULES / "credit.yaml").read_text(encoding="utf-8"),
            "warnings.yaml": (RULES / "warnings.yaml").read_text(encoding="utf-8"),
        }
    )
    book.customers(
        {"id": "C1", "name": "Acme", "credit_grade": "B", "owner": "alice", "credit_limit": "1000"},
        {"id": "C2", "name": "Bolt", "credit_grade": "A", "owner": "bob"},
        {"id": "C3", "name": "Cato"},
        {"id": "C4", "name": "Dove", "owner": "alice"},
    )
    for number, customer, amount, issued, due in (
        ("A1", "C1", "1000", "2026-02-01", "2026-03-01"),
        ("A2", "C1", "3000", "2026-03-01", "2026-04-01"),
        ("A3", "C1", "950", "2026-06-15", "2026-07-20"),
        ("B1", "C2", "2000", "2026-04-01", "2026-05-01"),
        ("B2", "C2", "1000", "2026-05-01", "2026-06-01"),
        ("B3", "C2", "1000", "2026-06-15", "2026-07-15"),
        ("D1", "C4", "200000", "2026-05-01", "2026-06-01"),
        ("D2", "C4", "100", "2026-05-01", "2026-06-02"),
        ("D3", "C4", "100", "2026-05-01", "2026-06-03"),
    ):
        book.invoice(number, customer, amount, due, issued, currency="CNY")
    book.pay("A1", "1000", "2026-03-01")
    book.pay("A2", "3000", "2026-04-11")
    book.run("2026-06-02")
    Collector(book.app, actor="bob").promise("B2", D("500"), date(2026, 6, 10), at=at("2026-06-05"))
    book.run("2026-06-14")  # after 06-10 + 3 grace days: broken
    book.pay("B1", "2000", "2026-06-20")
    book.run("2026-06-26")
    book.run("2026-06-30")
    return book


def scores(book: Book, day: str = "2026-06-30") -> dict[str, dict]:
    return {a.customer_id: a.as_dict() for a in book.app.credit.score(date.fromisoformat(day))}


def test_scores_grades_and_factors_match_the_hand_computation(book: Book) -> None:
    got = scores(book)
    assert got["C1"] == {
        "customer_id": "C1",
        "grade": "B",
        "score": 70,
        "source": "import",
        "limit": D("1000.0000"),
        "payment_terms_days": 45,
        "factors": [
            {"name": "paid_late_days", "measure": "avg_days_late", "value": D("7.5"), "points": 30},
            {"name": "on_time", "measure": "on_time_share", "value": D("0.5"), "points": 10},
            {"name": "promises", "measure": "broken_promises", "value": 0, "points": 15},
            {"name": "overdue_now", "measure": "overdue_share", "value": D("0"), "points": 15},
        ],
    }
    c2 = got["C2"]
    assert (c2["grade"], c2["score"], c2["limit"], c2["payment_terms_days"]) == ("A", 5, D("500000"), 60)
    assert [(f["value"], f["points"]) for f in c2["factors"]] == [(D("50"), 0), (D("0"), 0), (1, 5), (D("0.5"), 0)]
    assert got["C3"]["score"] is None and got["C3"]["grade"] is None and got["C3"]["source"] == "import"
    c4 = got["C4"]
    assert c4["score"] == 15
    assert [(f["value"], f["points"]) for f in c4["factors"]] == [(None, 0), (D("0"), 0), (0, 15), (D("1"), 0)]


def test_review_dry_run_changes_nothing_then_apply_records_and_redecides_the_policy(book: Book) -> None:
    planned = book.app.credit.review(at("2026-06-30", 10))
    assert [(c["customer_id"], c["old"], c["new"], c["score"]) for c in planned] == [
        ("C2", "A", "D", 5),
        ("C3", None, "C", None),
        ("C4", None, "D", 15),
    ]
    assert scores(book)["C2"]["grade"] == "A"  # a dry run
    assert not [e for e in book.app.history(customer="C2") if e["kind"] == "grade_changed"]

    book.app.credit.review(at("2026-06-30", 10), apply=True, actor="carol")
    after = scores(book)
    assert {c: (s["grade"], s["source"]) for c, s in after.items()} == {
        "C1": ("B", "score"),
        "C2": ("D", "score"),
        "C3": ("C", "score"),
        "C4": ("D", "score"),
    }
    assert after["C2"]["limit"] == D("0") and after["C2"]["payment_terms_days"] == 0
    changed = [e for e in book.app.history(customer="C2") if e["kind"] == "grade_changed"]
    assert len(changed) == 1
    event = changed[0]
    assert (event["old"], event["new"], event["source"], event["score"], event["actor"]) == (
        "A",
        "D",
        "score",
        5,
        "carol",
    )
    import hashlib

    expected = hashlib.sha256((book.root / "rules" / "credit.yaml").read_bytes()).hexdigest()
    assert event["credit_policy_hash"] == expected
    assert [f["points"] for f in event["factors"]] == [0, 0, 5, 0]
    assert book.app.credit.review(at("2026-06-30", 11)) == []  # nothing left to change

    # the grade change re-decides the governing policy at the next sweep (C2 was 'good', A)
    policies = {i["number"]: i["policy"] for i in book.app.open_invoices()}
    assert policies["B2"] == "good"
    book.run("2026-07-01")
    policies = {i["number"]: i["policy"] for i in book.app.open_invoices()}
    assert policies["B2"] == "strict"


def test_manual_grade_is_sticky_until_its_day(book: Book) -> None:
    desk = book.app.credit
    with pytest.raises(CreditRefused, match="did you mean 'B'"):
        desk.set_grade("C2", "b", reason="guarantee")
    with pytest.raises(CreditRefused, match="needs a reason"):
        desk.set_grade("C2", "B", reason=" ")
    book.clock.at = at("2026-06-30", 12)
    desk.set_grade("C2", "B", reason="parent company guarantee", until=date(2026, 7, 31), actor="carol")
    assert scores(book)["C2"]["source"] == "manual"
    assert [c["customer_id"] for c in desk.review(at("2026-07-05"), apply=True)] == ["C3", "C4"]
    assert scores(book, "2026-07-05")["C2"]["grade"] == "B"
    changes = desk.review(at("2026-08-01"), apply=True)  # the override ended on 07-31
    # C1 on 08-01: A3 (due 07-20) overdue: 30 + on time 1/3 → 0 + 15 + overdue share 1 → 0 = 45 → C
    assert [(c["customer_id"], c["old"], c["new"], c["score"], c["source"]) for c in changes] == [
        ("C1", "B", "C", 45, "score"),
        ("C2", "B", "D", 5, "score"),
    ]
    manual = [e for e in book.app.history(customer="C2") if e["kind"] == "grade_changed"][0]
    assert (manual["source"], manual["reason"], manual["until"], manual["actor"]) == (
        "manual",
        "parent company guarantee",
        "2026-07-31",
        "carol",
    )


def test_credit_check_limits_headroom_and_reasons(book: Book) -> None:
    desk = book.app.credit
    book.clock.at = at("2026-06-30", 12)
    # C1: imported limit 1000 wins over grade B's 200000; open 950
    ok = desk.check("C1", D("50"))
    assert (ok["ok"], ok["limit"], ok["open"], ok["headroom"], ok["reasons"]) == (
        True,
        D("1000"),
        D("950"),
        D("50"),
        [],
    )
    over = desk.check("C1", D("50.01"))
    assert not over["ok"] and over["reasons"] == [
        "over limit: open 950.00 + order 50.01 exceeds the limit 1000.00 by 0.01"
    ]
    assert "no exchange rate" in desk.check("C1", D("1"), "USD")["reasons"][0]
    desk.review(at("2026-06-30", 10), apply=True)
    c4 = desk.check("C4", D("1"))
    assert c4["limit"] == D("0") and c4["headroom"] == D("-200200")
    assert c4["reasons"][0].startswith("over limit") and c4["reasons"][1] == "1 invoice(s) in legal collection"


def test_holds_and_early_warnings_at_every_sweep(book: Book) -> None:
    desk = book.app.credit

    # before the review: C4 is on hold (an invoice in legal since 06-26); warnings from the sweeps so far
    def raised() -> set[tuple[str, str]]:
        return {(w["customer_id"], w["rule"]) for w in desk.warnings(open_only=True)}

    assert raised() == {
        ("C1", "near_limit"),  # 950 / 1000 = 0.95 >= 0.9
        ("C1", "paying_later"),  # last 90 days 10 late, the 90 before 0
        ("C2", "broken_promise"),  # broken 06-14
        ("C4", "three_overdue"),
        ("C4", "large_overdue"),
    }
    holds = [e for e in book.app.history(customer="C4") if e["kind"] == "credit_hold"]
    assert len(holds) == 1 and holds[0]["at"].startswith("2026-06-26")
    desk.review(at("2026-06-30", 10), apply=True)
    book.run("2026-07-01")
    assert ("C2", "grade_dropped") in raised()  # A -> D
    assert [e["kind"] for e in book.app.history(customer="C2") if e["kind"].startswith("credit_")] == ["credit_hold"]

    # raised once; acknowledged ones are not raised again while the condition holds
    near = next(w for w in desk.warnings() if w["rule"] == "near_limit")
    desk.acknowledge(near["id"], note="called alice", actor="alice")
    book.run("2026-07-02")
    assert [w["status"] for w in desk.warnings() if w["rule"] == "near_limit"] == ["acknowledged"]
    with pytest.raises(CreditRefused, match="not open"):
        desk.acknowledge(near["id"], note="again")
    # the condition clears (A3 paid), then holds again (a new invoice): raised anew
    book.pay("A3", "950", "2026-07-02")
    book.run("2026-07-03")
    assert [w["status"] for w in desk.warnings() if w["rule"] == "near_limit"] == ["cleared"]
    book.invoice("A4", "C1", "990", "2026-08-01", "2026-07-03", currency="CNY")
    book.run("2026-07-04")
    statuses = [(w["status"], w["acknowledged_by"]) for w in desk.warnings() if w["rule"] == "near_limit"]
    assert statuses == [("cleared", "alice"), ("open", None)]
    kinds = [e["kind"] for e in book.app.history(customer="C1") if e["kind"].startswith("warning_")]
    assert kinds.count("warning_raised") == 3 and "warning_acknowledged" in kinds and "warning_cleared" in kinds


def test_customer_credit_fields_reach_policy_expressions(make_book) -> None:  # type: ignore[no-untyped-def]
    policy = """\
    name: watch
    applies_to: "customer.utilisation >= 0.5 and customer.credit_limit == 1000 and customer.open_warnings == 0"
    stages:
      - {name: early_call, after_days: -10, channels: [phone]}
    """
    fallback = GOOD.replace("applies_to: \"customer.credit_grade in ['A', 'B']\"\n", "").replace("good", "fallback")
    book = make_book(
        {
            "10-watch.yaml": policy,
            "90-default.yaml": fallback,
            "credit.yaml": (RULES / "credit.yaml").read_text(encoding="utf-8"),
        }
    )
    book.customers(
        {"id": "C1", "name": "Acme", "credit_grade": "B", "credit_limit": "1000"},
        {"id": "C2", "name": "Bolt", "credit_grade": "B"},
    )
    book.invoice("X1", "C1", "600", "2026-01-20", "2026-01-01", currency="CNY")
    book.invoice("X2", "C2", "600", "2026-01-20", "2026-01-01", currency="CNY")
    book.run("2026-01-12")
    policies = {i["number"]: (i["policy"], i["stage"]) for i in book.app.open_invoices()}
    assert policies == {"X1": ("watch", "early_call"), "X2": ("fallback", "current")}


def test_a_sweep_reads_the_credit_facts_only_when_a_policy_does(make_book, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from engine.credit.desk import CreditDesk
    from engine.policy.loader import load_policies

    calls: list[int] = []
    facts = CreditDesk.sweep_facts

    def counted(self, conn, today, ids):  # type: ignore[no-untyped-def]
        calls.append(len(ids))
        return facts(self, conn, today, ids)

    monkeypatch.setattr(CreditDesk, "sweep_facts", counted)
    fallback = GOOD.replace("applies_to: \"customer.credit_grade in ['A', 'B']\"\n", "").replace("good", "fallback")
    book = make_book({"10-good.yaml": GOOD, "90-default.yaml": fallback})  # they read customer.credit_grade only
    book.customers({"id": "C1", "name": "Acme", "credit_grade": "B", "credit_limit": "1000"})
    book.invoice("X1", "C1", "600", "2026-01-20", "2026-01-01")
    book.run("2026-01-12")
    assert calls == []
    rules = book.settings.rules_path
    (rules / "10-good.yaml").write_text(
        GOOD.replace("customer.credit_grade in ['A', 'B']", "customer.credit_limit >= 500")
    )
    book.app.policies = load_policies(rules, known_channels=book.settings.channel_settings().keys())  # type: ignore[misc]
    book.run("2026-01-13")
    assert calls, "a policy reading customer.credit_limit gets the credit desk's facts"


def test_holds_and_warnings_reach_people_through_the_channels(make_book) -> None:  # type: ignore[no-untyped-def]
    from channels.memory import MemoryChannel

    warnings = """\
    warnings:
      - {name: two_overdue, when: "customer.overdue_count >= 2", severity: high,
         notify: [owner, risk@acme.example, email]}
    """
    credit = (RULES / "credit.yaml").read_text(encoding="utf-8").replace("notify: [owner]", "notify: [owner, phone]")
    book = make_book({"90-default.yaml": FALLBACK, "credit.yaml": credit, "warnings.yaml": warnings})
    book.customers(
        {"id": "C1", "name": "Acme", "credit_grade": "D", "owner": "ops@acme.example", "email": "ap@customer.example"}
    )
    book.invoice("X1", "C1", "100", "2026-01-05", "2026-01-01", currency="CNY")
    book.invoice("X2", "C1", "100", "2026-01-06", "2026-01-01", currency="CNY")
    book.run("2026-01-10")
    about_customer = sorted((m.stage, m.channel, m.recipient) for m in MemoryChannel.sent if not m.invoices)
    assert about_customer == [
        ("credit_hold", "email", "ops@acme.example"),
        ("credit_hold", "phone", "+1 555 0100"),
        ("credit_warning", "email", "ap@customer.example"),
        ("credit_warning", "email", "ops@acme.example"),
        ("credit_warning", "email", "risk@acme.example"),
    ]
    warning = next(m for m in MemoryChannel.sent if m.stage == "credit_warning")
    assert warning.subject == "Early warning for Acme (C1): two_overdue"
    book.run("2026-01-11")  # nothing new: raised once, held once
    assert len([m for m in MemoryChannel.sent if not m.invoices]) == 5
    queued = [e for e in book.app.history(customer="C1") if e["kind"] == "notification" and e.get("invoice") is None]
    assert len(queued) == 5 and {e["status"] for e in queued} == {"sent"}
