"""Charges of stored invoices (SQLite and PostgreSQL): fees recorded as `charge` events when a stage is entered,
the interest of every notice in its event, payments and disputes from the book, `status` charges_due."""

from __future__ import annotations

import shutil
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path

import pytest

from engine.actions import Collector
from engine.charging import charges_due, invoice_charges
from engine.errors import ChargesError

RATES = Path(__file__).resolve().parents[2] / "rules" / "rates"

CHARGING_POLICY = """\
name: eu
stages:
  - {name: reminder, after_days: 3, channels: [email]}
  - {name: letter, after_days: 20, channels: [letter]}
charges:
  interest: {basis: statutory, jurisdiction: EU}
  compensation: statutory
  fees:
    - {stage: letter, amount: 25}
"""


@pytest.fixture
def book(make_book, tmp_path: Path):  # type: ignore[no-untyped-def]
    shutil.copytree(RATES, tmp_path / "rules" / "rates")
    book = make_book({"90-eu.yaml": CHARGING_POLICY}, timezone="Europe/Berlin")
    book.customers({"id": "C1", "name": "Acme GmbH"})
    book.invoice("INV-1", "C1", "10000.00", "2026-01-31")
    return book


def test_the_worked_example_from_the_book(book) -> None:  # type: ignore[no-untyped-def]
    book.pay("INV-1", "4000.00", "2026-02-15")
    statement = invoice_charges(book.app, "INV-1", datetime(2026, 3, 2, 0, 0, tzinfo=timezone.utc))
    assert (statement.principal_open, statement.interest, statement.compensation, statement.total_due) == (
        Decimal("6000.00"),
        Decimal("65.63"),
        Decimal("40.00"),
        Decimal("6105.63"),
    )


def test_a_stage_fee_is_a_charge_event_and_every_notice_records_its_interest(book) -> None:  # type: ignore[no-untyped-def]
    book.run("2026-02-04")  # reminder: 4 days overdue: 10000 * 0.1015 * 4 / 365 = 11.123288 -> 11.12
    book.run("2026-02-21")  # letter: 21 days: 10000 * 0.1015 * 21 / 365 = 58.397260 -> 58.40, and the fee
    history = book.app.history("INV-1")
    notices = [(e["stage"], e["interest"], e["charges_due"]) for e in history if e["kind"] == "notification"]
    # the letter's notice claims the fee charged on entering its stage: 58.40 + 40 + 25
    assert notices == [("reminder", "11.12", "51.12"), ("letter", "58.40", "123.40")]
    assert [e["kind"] for e in history][-3:] == ["transition", "charge", "notification"]
    charges = [e for e in history if e["kind"] == "charge"]
    assert [(e["charge"], e["stage"], e["amount"], e["currency"], e["at"][:10]) for e in charges] == [
        ("fee", "letter", "25.00", "EUR", "2026-02-21")
    ]
    statement = invoice_charges(book.app, "INV-1", datetime(2026, 2, 21, 12, tzinfo=timezone.utc))
    assert (statement.interest, statement.compensation, statement.fees, statement.total_due) == (
        Decimal("58.40"),
        Decimal("40.00"),
        Decimal("25.00"),
        Decimal("10123.40"),
    )
    assert charges_due(book.app, datetime(2026, 2, 21, 12, tzinfo=timezone.utc)) == {"INV-1": Decimal("123.40")}


def test_dispute_days_count_unless_the_policy_stops_them(book, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    collector = Collector(book.app, actor="alice")
    collector.dispute("INV-1", "goods damaged", at=datetime(2026, 2, 9, 23, 30, tzinfo=timezone.utc))  # 10 Feb local
    collector.resolve_dispute("INV-1", "credit agreed", at=datetime(2026, 2, 20, 9, tzinfo=timezone.utc))
    as_of = datetime(2026, 3, 2, 12, tzinfo=timezone.utc)
    # 1 Feb-2 Mar = 30 days on 10,000: 10000 * 0.1015 * 30 / 365 = 83.424658 -> 83.42
    assert invoice_charges(book.app, "INV-1", as_of).interest == Decimal("83.42")
    policy = tmp_path / "rules" / "90-eu.yaml"
    policy.write_text(CHARGING_POLICY + "  interest_during_dispute: false\n", encoding="utf-8")
    del book.app.policies  # the cached PolicySet: read the edited file
    # 10-19 Feb paused (10 days): 20 days bear interest: 10000 * 0.1015 * 20 / 365 = 55.616438 -> 55.62
    statement = invoice_charges(book.app, "INV-1", as_of)
    assert [(p.first.isoformat(), p.days) for p in statement.periods] == [("2026-02-01", 9), ("2026-02-20", 11)]
    assert statement.interest == Decimal("55.62")


def test_a_missing_rate_is_an_error_naming_the_file_and_does_not_stop_the_sweep(book, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "rules" / "rates" / "ecb.yaml").write_text("- {from: 2026-06-01, rate: 2.0}\n", encoding="utf-8")
    with pytest.raises(ChargesError, match=r"no reference rate known for 2026-01-01 in .*ecb\.yaml"):
        invoice_charges(book.app, "INV-1", datetime(2026, 3, 2, 12, tzinfo=timezone.utc))
    book.run("2026-02-04")
    [notice] = [e for e in book.app.history("INV-1") if e["kind"] == "notification"]
    assert "ecb.yaml" in notice["charges_error"]


APPROVAL_POLICY = CHARGING_POLICY.replace(
    "{name: letter, after_days: 20, channels: [letter]}",
    "{name: letter, after_days: 20, channels: [letter], approval: required}",
)


def _fees(book) -> list[tuple[str, str, str, str]]:  # type: ignore[no-untyped-def]
    return [
        (e["stage"], e["amount"], e["actor"], e["at"][:10]) for e in book.app.history("INV-1") if e["kind"] == "charge"
    ]


def test_an_approval_into_a_stage_charges_its_fee_once(make_book, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    shutil.copytree(RATES, tmp_path / "rules" / "rates")
    book = make_book({"90-eu.yaml": APPROVAL_POLICY}, timezone="Europe/Berlin")
    book.customers({"id": "C1", "name": "Acme GmbH"})
    book.invoice("INV-1", "C1", "10000.00", "2026-01-31")
    book.run("2026-02-04")  # reminder
    book.run("2026-02-21")  # the letter awaits approval: no fee yet
    assert _fees(book) == []
    Collector(book.app, actor="maria").approve("INV-1", at=datetime(2026, 2, 23, 9, tzinfo=timezone.utc))
    book.run("2026-02-24")  # the invoice is in the letter stage already: the sweep charges nothing more
    assert _fees(book) == [("letter", "25.00", "maria", "2026-02-23")]
    [notice] = [e for e in book.app.history("INV-1") if e["kind"] == "notification" and e["stage"] == "letter"]
    # 23 days on 10,000: 10000 * 0.1015 * 23 / 365 = 63.958904 -> 63.96; + 40 compensation + 25 fee
    assert (notice["interest"], notice["charges_due"]) == ("63.96", "128.96")
    statement = invoice_charges(book.app, "INV-1", datetime(2026, 2, 23, 12, tzinfo=timezone.utc))
    assert (statement.fees, statement.total_due) == (Decimal("25.00"), Decimal("10128.96"))


def test_a_manual_move_charges_the_stage_fee_and_never_twice(book) -> None:  # type: ignore[no-untyped-def]
    collector = Collector(book.app, actor="alice")
    collector.move("INV-1", "letter", "phone unreachable", at=datetime(2026, 2, 10, 9, tzinfo=timezone.utc))
    assert _fees(book) == [("letter", "25.00", "alice", "2026-02-10")]
    collector.move("INV-1", "reminder", "wrong stage", at=datetime(2026, 2, 11, 9, tzinfo=timezone.utc))
    collector.move("INV-1", "letter", "back again", at=datetime(2026, 2, 12, 9, tzinfo=timezone.utc))
    book.run("2026-02-25")
    assert _fees(book) == [("letter", "25.00", "alice", "2026-02-10")]  # entering it again charges nothing
    assert invoice_charges(book.app, "INV-1", datetime(2026, 2, 25, 12, tzinfo=timezone.utc)).fees == Decimal("25.00")


def test_a_move_back_then_the_sweep_entering_the_stage_again_charges_nothing_more(book) -> None:  # type: ignore[no-untyped-def]
    book.run("2026-02-04")
    book.run("2026-02-21")  # the sweep enters letter: the fee
    Collector(book.app, actor="alice").move(
        "INV-1", "reminder", "customer called", at=datetime(2026, 2, 22, 9, tzinfo=timezone.utc)
    )
    book.run("2026-03-20")  # the sweep escalates to letter again
    transitions = [e["to"] for e in book.app.history("INV-1") if e["kind"] == "transition"]
    assert transitions.count("letter") == 2
    assert _fees(book) == [("letter", "25.00", "system", "2026-02-21")]


def test_a_move_under_a_policy_without_fees_for_that_stage_charges_nothing(book) -> None:  # type: ignore[no-untyped-def]
    Collector(book.app, actor="alice").move(
        "INV-1", "reminder", "early", at=datetime(2026, 2, 10, 9, tzinfo=timezone.utc)
    )
    assert _fees(book) == []


def test_explain_shows_what_the_invoice_owes_and_the_legal_basis(book) -> None:  # type: ignore[no-untyped-def]
    from engine.authoring.explain import explain_invoice

    book.pay("INV-1", "4000.00", "2026-02-15")
    book.run("2026-02-04")
    book.run("2026-02-21")  # letter: the 25 fee
    found = explain_invoice(book.app, "INV-1", datetime(2026, 3, 2, 12, tzinfo=timezone.utc))
    # the worked example (65.63 interest, 40 compensation) plus the letter's fee
    assert found.charges is not None
    assert {k: v for k, v in found.charges.items() if k != "basis"} == {
        "principal_open": Decimal("6000.00"),
        "interest": Decimal("65.63"),
        "compensation": Decimal("40.00"),
        "fees": Decimal("25.00"),
        "total_due": Decimal("6130.63"),
    }
    assert "Directive 2011/7/EU" in found.charges["basis"] and "letter 25" in found.charges["basis"]
    line = next(line for line in found.lines() if line.startswith("Charges:"))
    assert line.startswith(
        "Charges: principal open 6,000.00 + interest 65.63 + compensation 40.00 + fees 25.00 = total due 6,130.63 EUR"
        " (Directive 2011/7/EU"
    )
    assert found.as_dict()["charges"] == found.charges


def test_explain_without_charges_in_the_policy_shows_none(make_book) -> None:  # type: ignore[no-untyped-def]
    from engine.authoring.explain import explain_invoice

    book = make_book()
    book.customers({"id": "C1", "name": "Acme"})
    book.invoice("INV-1", "C1", "100.00", "2026-01-31")
    found = explain_invoice(book.app, "INV-1", datetime(2026, 3, 2, 12, tzinfo=timezone.utc))
    assert found.charges is None and not any(line.startswith("Charges:") for line in found.lines())


def test_the_charges_report_bills_and_collects_by_period(make_book, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from datetime import date

    from engine.reports.charges import charges_report

    shutil.copytree(RATES, tmp_path / "rules" / "rates")
    book = make_book(
        {"90-eu.yaml": CHARGING_POLICY + "  allocation: fees_interest_principal\n"}, timezone="Europe/Berlin"
    )
    book.customers({"id": "C1", "name": "Acme GmbH"})
    book.invoice("INV-1", "C1", "10000.00", "2026-01-31")
    book.run("2026-02-04")
    book.pay("INV-1", "4000.00", "2026-02-15")
    book.run("2026-02-21")  # letter: the 25 fee on 21 February

    def report(first: date, last: date) -> dict:  # type: ignore[type-arg]
        return charges_report(book.app.repo, book.app.policies, book.app.settings.zone, first, last)

    [february] = report(date(2026, 2, 1), date(2026, 2, 28))["sections"]
    # The payment of 15 Feb pays the 40 compensation, then the interest due that day (1-14 Feb on 10,000:
    # 38.931507 -> 38.93), then 3,921.07 of principal: 6,078.93 bears interest from 15 Feb.
    # 15-28 Feb: 6078.93 * 10.15% * 14 / 365 = 23.666190; accrued to 28 Feb: 62.597697 -> 62.60.
    figures = {k: v for k, v in february.items() if k not in ("currency", "invoices")}
    assert figures == {
        "interest_billed": Decimal("62.60"),
        "compensation_billed": Decimal("40.00"),
        "fees_billed": Decimal("25.00"),
        "interest_collected": Decimal("38.93"),
        "compensation_collected": Decimal("40.00"),
        "fees_collected": Decimal("0.00"),
        "billed": Decimal("127.60"),
        "collected": Decimal("78.93"),
        "outstanding": Decimal("48.67"),  # 62.60 - 38.93 interest + 25 fee
    }
    [line] = february["invoices"]
    assert (line["invoice"], line["customer_id"], line["billed"]) == ("INV-1", "C1", Decimal("127.60"))
    assert "Directive 2011/7/EU" in line["basis"]

    [march] = report(date(2026, 3, 1), date(2026, 3, 31))["sections"]
    # 15 Feb-31 Mar on 6,078.93: 45 days = 76.069898; accrued to 31 Mar: 38.931507 + 76.069898 = 115.00;
    # billed in March = 115.00 - 62.60; nothing paid in March.
    assert (march["interest_billed"], march["compensation_billed"], march["fees_billed"]) == (
        Decimal("52.40"),
        Decimal("0.00"),
        Decimal("0.00"),
    )
    assert (march["collected"], march["outstanding"]) == (Decimal("0.00"), Decimal("101.07"))  # 115 - 38.93 + 25
    [both] = report(date(2026, 2, 1), date(2026, 3, 31))["sections"]
    assert both["billed"] == february["billed"] + march["billed"]  # consecutive periods add up
    assert report(date(2026, 1, 1), date(2026, 1, 31))["sections"] == []  # not yet overdue: nothing to show


def test_a_write_off_ends_the_charges_in_the_report(book) -> None:  # type: ignore[no-untyped-def]
    from datetime import date

    from engine.reports.charges import charges_report

    Collector(book.app, actor="cfo").write_off("INV-1", "insolvent", at=datetime(2026, 3, 10, 11, tzinfo=timezone.utc))

    def report(first: date, last: date) -> list:  # type: ignore[type-arg]
        return charges_report(book.app.repo, book.app.policies, book.app.settings.zone, first, last)["sections"]

    # 1-28 Feb on 10,000: 77.863014 -> 77.86 accrued; to 10 Mar (38 days): 105.671233 -> 105.67
    [march] = report(date(2026, 3, 1), date(2026, 3, 31))
    assert (march["interest_billed"], march["compensation_billed"], march["outstanding"]) == (
        Decimal("27.81"),  # 105.67 - 77.86: nothing after the write-off day
        Decimal("0.00"),
        Decimal("0"),
    )
    [february] = report(date(2026, 2, 1), date(2026, 2, 28))  # before the write-off: still due then
    assert (february["billed"], february["outstanding"]) == (Decimal("117.86"), Decimal("117.86"))
    assert report(date(2026, 4, 1), date(2026, 4, 30)) == []
