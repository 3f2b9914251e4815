"""Charges against figures computed by hand (the arithmetic is in each test's comment), with the shipped rates."""

from __future__ import annotations

import textwrap
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest

from engine.charges import (
    Allocation,
    ChargeCase,
    ChargeTerms,
    CompensationRule,
    Fee,
    InterestRule,
    RateBook,
    RateUnit,
    compute_charges,
    round_minor,
)
from engine.charges.rates import check_rate_file
from engine.errors import ChargesError, PolicyError
from engine.policy.loader import check_policies, load_policies

RATES = Path(__file__).resolve().parents[2] / "rules" / "rates"
D = Decimal


def book() -> RateBook:
    return RateBook(RATES)


def statutory(law: str, **extra: object) -> ChargeTerms:
    return ChargeTerms(interest=InterestRule(True, law), compensation=CompensationRule(True, law), **extra)  # type: ignore[arg-type]


def case(
    amount: str,
    due: str,
    as_of: str,
    *,
    currency: str = "EUR",
    payments: tuple[tuple[str, str], ...] = (),
    **extra: object,
) -> ChargeCase:
    return ChargeCase(
        number="INV-1",
        currency=currency,
        principal=D(amount),
        due_on=date.fromisoformat(due),
        as_of=date.fromisoformat(as_of),
        payments=tuple((date.fromisoformat(d), D(a)) for d, a in payments),
        **extra,  # type: ignore[arg-type]
    )


WORKED = dict(amount="10000.00", due="2026-01-31", as_of="2026-03-02", payments=(("2026-02-15", "4000.00"),))


def test_the_worked_example_of_the_eu_directive() -> None:
    # ECB rate on 1 January 2026: 2.15 -> 10.15% a year.
    # 1-14 Feb on 10,000 = 10000 * 0.1015 * 14 / 365 = 14210/365 = 38.931507
    # 15 Feb-2 Mar on 6,000 = 6000 * 0.1015 * 16 / 365 = 9744/365 = 26.695890; sum 65.627397 -> 65.63
    statement = compute_charges(statutory("EU"), case(**WORKED), book())  # type: ignore[arg-type]
    assert [
        (p.first.isoformat(), p.last.isoformat(), p.days, p.principal, p.rate, p.interest) for p in statement.periods
    ] == [
        ("2026-02-01", "2026-02-14", 14, D("10000.00"), D("10.15"), D("38.931507")),
        ("2026-02-15", "2026-03-02", 16, D("6000.00"), D("10.15"), D("26.695890")),
    ]
    assert statement.interest == D("65.63")
    assert statement.compensation == D("40.00")
    assert statement.principal_open == D("6000.00")
    assert statement.total_due == D("6105.63")
    assert statement.basis.startswith("Directive 2011/7/EU")
    shape = statement.as_dict()
    assert list(shape) == [
        "number",
        "currency",
        "as_of",
        "principal_open",
        "interest",
        "compensation",
        "fees",
        "total_due",
        "basis",
        "periods",
    ]
    assert shape["periods"][0]["rate_unit"] == "percent_per_year"  # type: ignore[index]


def test_eu_rate_is_the_one_on_the_first_day_of_each_half_year() -> None:
    # Due 31 May 2025. June: ECB rate on 1 Jan 2025 = 3.15 -> 11.15: 10000*0.1115*30/365 = 33450/365 = 91.643836
    # (the cuts of 5 Feb, 12 Mar, 23 Apr and 11 Jun 2025 change nothing inside the half-year).
    # 1-10 July: rate on 1 Jul 2025 = 2.15 -> 10.15: 10000*0.1015*10/365 = 10150/365 = 27.808219; 119.452055
    statement = compute_charges(statutory("EU"), case("10000.00", "2025-05-31", "2025-07-10"), book())
    assert [(p.first.isoformat(), p.days, p.rate, p.interest) for p in statement.periods] == [
        ("2025-06-01", 30, D("11.15"), D("91.643836")),
        ("2025-07-01", 10, D("10.15"), D("27.808219")),
    ]
    assert statement.interest == D("119.45")
    assert statement.total_due == D("10159.45")


def test_uk_base_rate_fixed_per_half_year_and_fixed_sums_by_band() -> None:
    # Base rate on 30 June 2025 = 4.25 (the cut to 4.00 on 7 Aug changes nothing before 2026) -> 12.25%:
    #   1 Jul-31 Dec 2025: 5000 * 0.1225 * 184 / 365 = 112700/365 = 308.767123
    # Base rate on 31 Dec 2025 = 4.00 -> 12.00%: 1-31 Jan 2026: 5000 * 0.12 * 31 / 365 = 18600/365 = 50.958904
    # 359.726027 -> 359.73; a debt of 5,000 (under 10,000) carries the fixed sum of 70.
    statement = compute_charges(statutory("UK"), case("5000.00", "2025-06-30", "2026-01-31", currency="GBP"), book())
    assert [(p.first.isoformat(), p.last.isoformat(), p.rate, p.interest) for p in statement.periods] == [
        ("2025-07-01", "2025-12-31", D("12.25"), D("308.767123")),
        ("2026-01-01", "2026-01-31", D("12.00"), D("50.958904")),
    ]
    assert (statement.interest, statement.compensation, statement.total_due) == (D("359.73"), D("70.00"), D("5429.73"))
    bands = {
        amount: compute_charges(
            statutory("UK"), case(amount, "2026-01-31", "2026-02-01", currency="GBP"), book()
        ).compensation
        for amount in ("999.99", "1000.00", "9999.99", "10000.00")
    }
    assert bands == {"999.99": D("40.00"), "1000.00": D("70.00"), "9999.99": D("70.00"), "10000.00": D("100.00")}


def test_de_basiszinssatz_plus_nine_points() -> None:
    # Basiszinssatz on 1 Jul 2025 = 1.27 -> 10.27%: 16 Jul-14 Aug = 30 days:
    # 2000 * 0.1027 * 30 / 365 = 6162/365 = 16.882192 -> 16.88; Pauschale 40.
    statement = compute_charges(statutory("DE"), case("2000.00", "2025-07-15", "2025-08-14"), book())
    assert [(p.days, p.rate, p.interest) for p in statement.periods] == [(30, D("10.27"), D("16.882192"))]
    assert (statement.interest, statement.compensation, statement.total_due) == (D("16.88"), D("40.00"), D("2056.88"))
    assert "§288" in statement.basis


def test_cn_five_ten_thousandths_a_day_rounded_half_up() -> None:
    # 2-31 Mar = 30 days: 8800.50 * 0.0005 * 30 = 132.0075 -> 132.01 (half up); no statutory fixed sum.
    terms = ChargeTerms(interest=InterestRule(True, "CN"))
    statement = compute_charges(terms, case("8800.50", "2026-03-01", "2026-03-31", currency="CNY"), book())
    assert [(p.days, p.rate, p.unit, p.interest) for p in statement.periods] == [
        (30, D("0.05"), RateUnit.PER_DAY, D("132.007500"))
    ]
    assert (statement.interest, statement.compensation, statement.total_due) == (D("132.01"), D("0.00"), D("8932.51"))


def test_cn_agreed_rate_never_below_the_lpr() -> None:
    # Agreed 2% a year, LPR 3.10 from 21 Oct 2024 and 3.00 from 20 May 2025: due 30 Apr 2025, as of 31 May:
    # 1-19 May at 3.10: 100000 * 0.031 * 19 / 365 = 58900/365 = 161.369863; 20-31 May at 3.00:
    # 100000 * 0.03 * 12 / 365 = 36000/365 = 98.630137; 259.999999... -> 260.00
    terms = ChargeTerms(interest=InterestRule(False, "CN", D("2"), RateUnit.PER_YEAR))
    statement = compute_charges(terms, case("100000.00", "2025-04-30", "2025-05-31", currency="CNY"), book())
    assert [(p.days, p.rate, p.interest) for p in statement.periods] == [
        (19, D("3.10"), D("161.369863")),
        (12, D("3.00"), D("98.630137")),
    ]
    assert statement.interest == D("260.00")


def test_fees_interest_principal_allocation() -> None:
    # The worked example, payments applied to compensation (40), then interest due so far (38.93), then principal:
    # 4000 - 40 - 38.93 = 3921.07 -> principal 6078.93 from 15 Feb: 6078.93 * 0.1015 * 16 / 365 = 27.047075.
    # Interest accrued 38.931507 + 27.047075 = 65.978582 -> 65.98, less 38.93 paid = 27.05; due 6,105.98.
    terms = statutory("EU", allocation=Allocation.FEES_INTEREST_PRINCIPAL)
    statement = compute_charges(terms, case(**WORKED), book())  # type: ignore[arg-type]
    assert statement.periods[1].principal == D("6078.93")
    assert statement.periods[1].interest == D("27.047075")
    assert (statement.principal_open, statement.interest, statement.compensation) == (
        D("6078.93"),
        D("27.05"),
        D("0.00"),
    )
    assert statement.total_due == D("6105.98")


def test_fees_and_a_fully_paid_principal_stop_interest() -> None:
    # Paid in full on 15 Feb: interest only for 1-14 Feb (38.93), compensation 40 and the letter fee 25 stay due.
    terms = ChargeTerms(
        interest=InterestRule(True, "EU"), compensation=CompensationRule(True, "EU"), fees=(("letter", D("25")),)
    )
    statement = compute_charges(
        terms,
        case(
            "10000.00",
            "2026-01-31",
            "2026-03-02",
            payments=(("2026-02-15", "10000.00"),),
            fees=(Fee(date(2026, 2, 10), D("25"), "letter"),),
        ),
        book(),
    )
    assert len(statement.periods) == 1 and statement.periods[0].interest == D("38.931507")
    assert (
        statement.principal_open,
        statement.interest,
        statement.compensation,
        statement.fees,
        statement.total_due,
    ) == (D("0.00"), D("38.93"), D("40.00"), D("25.00"), D("103.93"))


def test_paused_dispute_days_bear_no_interest_only_when_the_policy_says_so() -> None:
    # Dispute 20-24 Feb paused: 38.931507 + 6000*0.1015*5/365 (8.342466) + 6000*0.1015*6/365 (10.010959)
    # = 57.284932 -> 57.28. With interest during disputes (the default) it stays 65.63.
    paused = ((date(2026, 2, 20), date(2026, 2, 24)),)
    during = compute_charges(statutory("EU"), case(**WORKED, paused=paused), book())  # type: ignore[arg-type]
    assert during.interest == D("65.63")
    stopped = compute_charges(statutory("EU", interest_during_dispute=False), case(**WORKED, paused=paused), book())  # type: ignore[arg-type]
    assert [p.days for p in stopped.periods] == [14, 5, 6]
    assert stopped.interest == D("57.28")


def test_not_yet_due_means_no_charges() -> None:
    statement = compute_charges(statutory("EU"), case("100.00", "2026-03-01", "2026-03-01"), book())
    assert (statement.interest, statement.compensation, statement.total_due, statement.periods) == (
        D("0.00"),
        D("0.00"),
        D("100.00"),
        (),
    )


def test_a_day_without_a_known_rate_names_the_file() -> None:
    with pytest.raises(ChargesError, match=r"no reference rate known for 2001-12-31 in .*boe\.yaml"):
        compute_charges(statutory("UK"), case("100.00", "2002-01-31", "2002-02-28", currency="GBP"), book())


def test_minor_units() -> None:
    assert round_minor(D("1234.5"), "JPY") == D("1235")
    assert round_minor(D("1.0005"), "KWD") == D("1.001")
    assert round_minor(D("0.125"), "EUR") == D("0.13")


def test_shipped_rate_files_are_valid_and_bad_ones_are_located(tmp_path: Path) -> None:
    for name in ("ecb.yaml", "boe.yaml", "bundesbank.yaml", "lpr.yaml"):
        table, problems = check_rate_file(RATES / name)
        assert table is not None and problems == [], name
    bad = tmp_path / "ecb.yaml"
    bad.write_text("- {from: 2025-01-01, rate: 2.0}\n- {from: 2024-01-01, rate: x}\n- {frm: 2026-01-01, rate: 1}\n")
    _table, problems = check_rate_file(bad)
    assert [str(p) for p in problems] == [
        f"{bad}:2:28: rate in entry 2 must be a number (percent a year), got 'x'",
        f"{bad}:3:4: unknown key 'frm' in entry 3; an entry has only from: and rate:",
        f"{bad}:3:3: from in entry 3 must be a date (YYYY-MM-DD), got an empty value",
    ]


POLICY = """\
    name: default
    stages:
      - {name: reminder, after_days: 3, channels: [email]}
      - {name: letter, after_days: 30, channels: [email]}
    charges:
    """


def _rules(tmp_path: Path, charges: str) -> Path:
    rules = tmp_path / "rules"
    (rules / "rates").mkdir(parents=True)
    for name in ("ecb.yaml", "boe.yaml"):
        (rules / "rates" / name).write_text((RATES / name).read_text())
    (rules / "90-default.yaml").write_text(textwrap.dedent(POLICY) + textwrap.indent(textwrap.dedent(charges), "  "))
    return rules


def test_policy_charges_are_parsed_into_terms(tmp_path: Path) -> None:
    rules = _rules(
        tmp_path,
        """\
        interest: {basis: statutory, jurisdiction: EU}
        compensation: statutory
        fees:
          - {stage: letter, amount: 25}
        allocation: fees_interest_principal
        """,
    )
    terms = load_policies(rules, known_channels=["email"]).default.charges
    assert terms is not None
    assert terms.interest == InterestRule(True, "EU")
    assert terms.compensation == CompensationRule(True, "EU")
    assert terms.fee_for("letter") == D("25") and terms.fee_for("reminder") is None
    assert terms.allocation is Allocation.FEES_INTEREST_PRINCIPAL
    assert terms.rates_dir == rules / "rates"
    plain = _rules(tmp_path / "b", "interest: {rate_per_year: 0.08}\ncompensation: {amount: 40}\n")
    terms = load_policies(plain, known_channels=["email"]).default.charges
    assert terms is not None and terms.interest == InterestRule(False, None, D("8"), RateUnit.PER_YEAR)
    assert terms.compensation == CompensationRule(False, amount=D("40"))


def test_policy_charges_mistakes_are_located_with_did_you_mean(tmp_path: Path) -> None:
    rules = _rules(
        tmp_path,
        """\
        interest: {basis: statutory, jurisdicton: EU}
        compensaton: statutory
        fees:
          - {stage: leter, amount: 25}
        allocation: principal_frist
        """,
    )
    file = rules / "90-default.yaml"
    assert [str(p) for p in check_policies(rules, known_channels=["email"])] == [
        f"{file}:6:21: statutory interest needs a jurisdiction: EU, UK, DE or CN, e.g. "
        "{basis: statutory, jurisdiction: EU}",
        f"{file}:6:32: unknown key 'jurisdicton' in charges.interest; did you mean 'jurisdiction'?",
        f"{file}:7:3: unknown key 'compensaton' in charges; did you mean 'compensation'?",
        f"{file}:9:15: fee for unknown stage 'leter'; did you mean 'letter'?",
        f"{file}:10:15: charges.allocation must be one of: principal_first, fees_interest_principal, "
        "got 'principal_frist'; did you mean 'principal_first'?",
    ]
    with pytest.raises(PolicyError):
        load_policies(rules, known_channels=["email"])


def test_policy_charges_need_a_law_and_its_rate_file(tmp_path: Path) -> None:
    rules = _rules(
        tmp_path,
        """\
        interest: {basis: statutory, jurisdiction: DE}
        compensation: statutry
        """,
    )
    file = rules / "90-default.yaml"
    assert [str(p) for p in check_policies(rules, known_channels=["email"])] == [
        f"{file}:6:46: DE interest needs the reference rates in {rules / 'rates' / 'bundesbank.yaml'}, which "
        "does not exist; copy it from dunning's rules/rates/ folder",
        f"{file}:7:17: charges.compensation must be statutory or {{amount: 40}}, got 'statutry'; "
        "did you mean 'statutory'?",
    ]
    cn = _rules(tmp_path / "cn", "interest: {basis: statutory, jurisdiction: CN}\ncompensation: statutory\n")
    assert [p.message for p in check_policies(cn, known_channels=["email"])] == [
        "the law of CN sets no fixed compensation; give an agreed sum such as {amount: 40} or remove compensation"
    ]
