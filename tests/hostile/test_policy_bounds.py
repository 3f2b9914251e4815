"""Every number and name in a policy has a documented bound that `policy check` enforces as a located problem,
so a policy that passes the check cannot crash a sweep (issue 11, defect 4): no date out of range, no C int
overflow, no name longer than its database column, no arithmetic that overflows; and a value that still cannot
be computed (written into the database by hand) holds that one invoice instead of failing every sweep."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest
from sqlalchemy import text

from engine.errors import Problem
from engine.policy.loader import check_policies
from engine.policy.model import MAX_DAYS, MAX_REPEATS, MAX_STAGES, POLICY_NAME_LENGTH, STAGE_NAME_LENGTH
from engine.store.models import Invoice
from engine.sweep import HELD_LISTED, SweepReport
from tests.conftest import Book, at

CHANNELS = {"email", "letter", "log", "memory"}
LOCATED = re.compile(r"^(?P<file>.+):(?P<line>\d+):(?P<column>\d+): ")


def problems_of(tmp_path: Path, policy: str) -> list[Problem]:
    path = tmp_path / "house.yaml"
    path.write_text(textwrap.dedent(policy), encoding="utf-8")
    return [p for p in check_policies(path, known_channels=CHANNELS) if p.severity == "error"]


def policy(*, top: str = "", stage: str = "", name: str = "house", stage_name: str = "reminder") -> str:
    return f"name: {name}\n{top}stages:\n  - {{name: {stage_name}, after_days: 1, channels: [email]{stage}}}\n"


HUGE = 10**10  # past a C int, and 27 million years of days

OVER = {
    "after_days": (policy(stage=f", after_days: {HUGE}").replace("after_days: 1, ", ""), 3, "after_days"),
    "negative after_days": (policy(stage=f", after_days: -{HUGE}").replace("after_days: 1, ", ""), 3, "after_days"),
    "every_days": (policy(stage=f", repeat: {{every_days: {HUGE}, max: 2}}"), 3, "repeat.every_days"),
    "repeat max": (policy(stage=f", repeat: {{every_days: 7, max: {HUGE}}}"), 3, "repeat.max"),
    "min_days_between_stages": (policy(top=f"min_days_between_stages: {HUGE}\n"), 2, "min_days_between_stages"),
    "grace_days": (policy(top=f"grace_days: {HUGE}\n"), 2, "grace_days"),
}


@pytest.mark.parametrize("case", sorted(OVER))
def test_a_number_over_its_bound_is_a_located_problem(tmp_path: Path, case: str) -> None:
    text, line, key = OVER[case]
    [problem] = problems_of(tmp_path, text)
    assert (problem.line, problem.message.split(" ")[0]) == (line, key), problem
    assert "the limit of" in problem.message and "(100 years)" in problem.message or "repeats" in problem.message
    assert str(problem).startswith(f"{tmp_path / 'house.yaml'}:{line}:")


def test_the_bounds_themselves_are_accepted(tmp_path: Path) -> None:
    at_the_limit = (
        f"name: {'p' * POLICY_NAME_LENGTH}\nmin_days_between_stages: {MAX_DAYS}\ngrace_days: {MAX_DAYS}\nstages:\n"
        f"  - {{name: {'s' * STAGE_NAME_LENGTH}, after_days: -{MAX_DAYS}, channels: [email]}}\n"
        f"  - {{name: late, after_days: {MAX_DAYS}, channels: [email], repeat: {{every_days: {MAX_DAYS}, "
        f"max: {MAX_REPEATS}}}}}\n"
    )
    assert problems_of(tmp_path, at_the_limit) == []


def test_names_longer_than_their_database_columns_are_refused(tmp_path: Path) -> None:
    # On PostgreSQL a longer name failed the sweep's UPDATE (value too long for type character varying(64))
    long_stage = problems_of(tmp_path, policy(stage_name="s" * (STAGE_NAME_LENGTH + 1)))
    assert [p.message.split(";")[0] for p in long_stage] == [f"name is {STAGE_NAME_LENGTH + 1} characters long"]
    long_policy = problems_of(tmp_path, policy(name="p" * (POLICY_NAME_LENGTH + 1)))
    assert [(p.line, p.message.split(";")[0]) for p in long_policy] == [
        (1, f"name is {POLICY_NAME_LENGTH + 1} characters long")
    ]


def test_the_name_bounds_are_the_database_columns() -> None:
    columns = Invoice.__table__.c  # type: ignore[attr-defined]
    assert columns.stage.type.length == columns.awaiting_stage.type.length == STAGE_NAME_LENGTH
    assert columns.policy.type.length == POLICY_NAME_LENGTH


def test_too_many_stages_is_a_located_problem(tmp_path: Path) -> None:
    stages = "".join(f"  - {{name: s{i}, after_days: {i}, channels: [email]}}\n" for i in range(MAX_STAGES + 1))
    [problem] = problems_of(tmp_path, f"name: house\nstages:\n{stages}")
    assert problem.line == 3 and problem.message.startswith(f"stages has {MAX_STAGES + 1:,} stages; the limit is")


@pytest.mark.parametrize(
    "charges, phrase",
    [
        ("{interest: {rate_per_year: .inf}}", "rate_per_year inf is over the limit of 10"),
        ("{interest: {rate_per_day: 2.5}}", "rate_per_day 2.5 is over the limit of 0.1"),
        ("{fees: [{stage: reminder, amount: 1.0e+300}]}", "amount 1e+300 is over the limit of 1,000,000,000"),
        ("{compensation: {amount: .inf}}", "at most 1,000,000,000"),
    ],
)
def test_charges_beyond_their_bounds_are_located_problems(tmp_path: Path, charges: str, phrase: str) -> None:
    # An infinite rate or compensation passed the check and ended every sweep in decimal.InvalidOperation.
    [problem] = problems_of(tmp_path, policy(top=f"charges: {charges}\n"))
    assert problem.line == 2 and phrase in problem.message, problem


@pytest.mark.parametrize(
    "when, phrase",
    [
        ("invoice.amount * 1e999999999 > 1", "`1e999999999` is over the limit of 10^15"),
        ("invoice.open_amount > 1e-99", "more than 28 digits after the point"),
        (" * ".join(["invoice.amount"] * 4) + " > 1", "can grow to about 10^120"),
    ],
)
def test_overflowing_arithmetic_is_a_located_problem(tmp_path: Path, when: str, phrase: str) -> None:
    [problem] = problems_of(tmp_path, policy(stage=f', when: "{when}"'))
    assert problem.line == 3 and phrase in problem.message, problem
    column = len("  - {name: reminder, after_days: 1, channels: [email], when: ") + 1
    assert problem.column > column  # inside the expression, at the offending number or product


def test_a_policy_at_its_bounds_sweeps(make_book, database_url: str) -> None:  # type: ignore[no-untyped-def]
    # The longest names fit the columns (PostgreSQL enforces them), and days a century away are "never".
    stage = "s" * STAGE_NAME_LENGTH
    book: Book = make_book(
        {
            "house.yaml": f"""\
            name: {"p" * POLICY_NAME_LENGTH}
            days: business
            min_days_between_stages: {MAX_DAYS}
            stages:
              - {{name: {stage}, after_days: 1, channels: [email], repeat: {{every_days: {MAX_DAYS}, max: 2}}}}
              - {{name: late, after_days: {MAX_DAYS}, channels: [email]}}
            """
        }
    )
    book.customers({"id": "C1", "name": "Acme"})
    book.invoice("I1", "C1", "100.00", due_on="2026-02-02")
    book.run("2026-02-10")
    book.run("2026-02-11")
    assert book.stage("I1") == stage


@pytest.mark.postgres
def test_a_value_that_cannot_be_computed_holds_that_invoice_and_the_sweep_goes_on(
    make_book, caplog: pytest.LogCaptureFixture, database_url: str
) -> None:  # type: ignore[no-untyped-def]
    # PostgreSQL's numeric takes 'NaN'; an amount edited by hand to it made `>=` raise decimal.InvalidOperation,
    # every sweep failed and the daemon retried forever.
    if not database_url.startswith("postgresql"):
        pytest.skip("only PostgreSQL stores a NaN amount")
    book: Book = make_book(
        {
            "house.yaml": """\
            name: house
            stages:
              - {name: reminder, after_days: 1, channels: [email]}
              - {name: big, after_days: 1, channels: [email], when: "invoice.open_amount >= 1000"}
            catch_up: jump
            """
        }
    )
    book.customers({"id": "C1", "name": "Acme"})
    book.invoice("BAD", "C1", "100.00", due_on="2026-02-02")
    book.invoice("GOOD", "C1", "5000.00", due_on="2026-02-02")
    with book.app.repo.write() as session:
        session.connection().execute(text("UPDATE invoices SET open_amount = 'NaN' WHERE number = 'BAD'"))
    with caplog.at_level("WARNING"):
        report = book.run("2026-02-10").as_dict()
    assert book.stage("GOOD") == "big" and book.stage("BAD") == "current"
    assert "BAD" in caplog.text and "house.yaml:4:" in caplog.text and "not a number" in caplog.text
    # the report says so too: an operator reading `run --json` or the daemon's log sees the held invoice
    assert report["held"] == 1 and report["held_invoices"] == ["BAD"] and report["transitions"] == 1
    again = book.run("2026-02-11")  # looked at again (and held again) by the next sweep, which completes as well
    assert book.stage("BAD") == "current"
    assert again.sweep.held == 1 and again.sweep.held_invoices == ["BAD"]


RULES = Path(__file__).resolve().parents[2] / "rules"


@pytest.mark.parametrize(
    "file, old, new, phrase",
    [
        ("credit.yaml", "window_days: 365", f"window_days: {HUGE}", "window_days 10000000000 is over the limit"),
        ("credit.yaml", "limit: 500000,", "limit: .inf,", "limit must be an amount in the credit currency, got inf"),
        ("credit.yaml", "payment_terms_days: 60}", f"payment_terms_days: {HUGE}}}", "over the limit of 36,500 days"),
        ("warnings.yaml", "name: near_limit", "name: " + "w" * 129, "name is 129 characters long; the limit is 128"),
    ],
)
def test_credit_rule_numbers_and_names_have_bounds_too(
    tmp_path: Path, file: str, old: str, new: str, phrase: str
) -> None:
    from engine.credit.rules import check_rule_files

    shipped = (RULES / file).read_text(encoding="utf-8")
    assert old in shipped
    (tmp_path / file).write_text(shipped.replace(old, new, 1), encoding="utf-8")
    problems = [p for p in check_rule_files(tmp_path) if p.severity == "error"]
    assert len(problems) == 1 and phrase in problems[0].message, problems
    assert LOCATED.match(str(problems[0]))


def test_the_warning_name_bound_is_the_database_column() -> None:
    from engine.credit.rules import WARNING_NAME_LENGTH
    from engine.store.models import CreditWarning

    assert CreditWarning.__table__.c.rule.type.length == WARNING_NAME_LENGTH  # type: ignore[attr-defined]


@pytest.mark.postgres
def test_a_credit_rule_that_cannot_be_computed_leaves_that_customer_as_it_is(
    make_book, caplog: pytest.LogCaptureFixture, database_url: str
) -> None:  # type: ignore[no-untyped-def]
    # A credit limit of 'NaN' (by hand, on PostgreSQL) makes `customer.utilisation >= 0.9` raise
    # decimal.InvalidOperation in the early warnings after every sweep.
    if not database_url.startswith("postgresql"):
        pytest.skip("only PostgreSQL stores a NaN amount")
    book: Book = make_book(
        {
            "90-default.yaml": "name: default\nstages:\n  - {name: reminder, after_days: 1, channels: [email]}\n",
            "credit.yaml": (RULES / "credit.yaml").read_text(encoding="utf-8"),
            "warnings.yaml": (RULES / "warnings.yaml").read_text(encoding="utf-8"),
        }
    )
    book.customers(
        {"id": "C1", "name": "Acme", "credit_limit": "1000"}, {"id": "C2", "name": "Bolt", "credit_limit": "1000"}
    )
    book.invoice("A1", "C1", "5000", "2026-02-02", currency="CNY")
    book.invoice("B1", "C2", "5000", "2026-02-02", currency="CNY")
    with book.app.repo.write() as session:
        session.connection().execute(text("UPDATE customers SET credit_limit = 'NaN' WHERE id = 'C1'"))
    with caplog.at_level("WARNING"):
        book.run("2026-02-10")
    assert book.stage("A1") == book.stage("B1") == "reminder"
    assert "customer C1" in caplog.text and "warnings.yaml:" in caplog.text and "not a number" in caplog.text
    open_warnings = {(w["customer_id"], w["rule"]) for w in book.app.credit.warnings(open_only=True)}
    assert ("C2", "near_limit") in open_warnings and not any(c == "C1" for c, _ in open_warnings)


@pytest.mark.postgres
def test_an_applies_to_that_cannot_be_computed_skips_that_invoice_in_the_sweep(
    make_book, caplog: pytest.LogCaptureFixture, database_url: str
) -> None:  # type: ignore[no-untyped-def]
    if not database_url.startswith("postgresql"):
        pytest.skip("only PostgreSQL stores a NaN amount")
    book: Book = make_book(
        {
            "10-big.yaml": 'name: big\napplies_to: "invoice.open_amount > 1000"\n'
            "stages:\n  - {name: call, after_days: 1, channels: [phone]}\n",
            "90-default.yaml": "name: default\nstages:\n  - {name: reminder, after_days: 1, channels: [email]}\n",
        }
    )
    book.customers({"id": "C1", "name": "Acme"})
    book.invoice("BAD", "C1", "100.00", due_on="2026-02-02")
    book.invoice("GOOD", "C1", "5000.00", due_on="2026-02-02")
    with book.app.repo.write() as session:
        session.connection().execute(text("UPDATE invoices SET open_amount = 'NaN' WHERE number = 'BAD'"))
    with caplog.at_level("WARNING", logger="dunning.sweep"):
        report = book.run("2026-02-10").sweep
    assert book.stage("GOOD") == "call" and book.stage("BAD") == "current"
    assert "invoice BAD" in caplog.text and "10-big.yaml:2:" in caplog.text and "skipped" in caplog.text
    assert report.held == 1 and report.held_invoices == ["BAD"]


@pytest.mark.postgres
@pytest.mark.parametrize("fast_first", [True, False])
def test_both_sweep_paths_count_the_held_invoices_alike(make_book, database_url: str, fast_first: bool) -> None:  # type: ignore[no-untyped-def]
    # Held by an applies_to (NaN amount), by a remembered stage condition (NaN open amount, the hot path's
    # memo) and by a condition reading the stage (never remembered): each path counts all three, every sweep.
    if not database_url.startswith("postgresql"):
        pytest.skip("only PostgreSQL stores a NaN amount")
    book: Book = make_book(
        {
            "10-big.yaml": 'name: big\napplies_to: "invoice.amount > 1000"\n'
            "stages:\n  - {name: call, after_days: 1, channels: [phone]}\n",
            "20-staged.yaml": """\
            name: staged
            applies_to: "'staged' in customer.tags"
            stages:
              - {name: reminder, after_days: 1, channels: [email]}
              - {name: letter, after_days: 1, channels: [letter],
                 when: "invoice.stage == 'reminder' and invoice.open_amount >= 1000"}
            """,
            "90-default.yaml": """\
            name: default
            catch_up: jump
            stages:
              - {name: reminder, after_days: 1, channels: [email]}
              - {name: large, after_days: 1, channels: [email], when: "invoice.open_amount >= 1000"}
            """,
        }
    )
    book.customers({"id": "C1", "name": "Acme"}, {"id": "C2", "name": "Bolt", "tags": "staged"})
    for number, customer in [("Z-GOOD", "C1"), ("Z-AMOUNT", "C1"), ("A-OPEN", "C1"), ("M-STAGED", "C2")]:
        book.invoice(number, customer, "100.00", due_on="2026-02-02")
    book.invoice("B-GOOD", "C2", "200.00", due_on="2026-02-02")
    with book.app.repo.write() as session:
        conn = session.connection()
        conn.execute(text("UPDATE invoices SET amount = 'NaN' WHERE number = 'Z-AMOUNT'"))
        conn.execute(text("UPDATE invoices SET open_amount = 'NaN' WHERE number IN ('A-OPEN', 'M-STAGED')"))
    held = ["A-OPEN", "M-STAGED", "Z-AMOUNT"]
    for day, fast in (("2026-02-10", fast_first), ("2026-02-11", not fast_first)):
        book.clock.at = at(day)
        sweeper = book.sweeper(fast=fast, chunk_size=2)  # the held invoices span chunks
        assert sweeper.fast is fast
        report = sweeper.run(at(day)).as_dict()
        assert (report["held"], report["held_invoices"]) == (3, held), (day, fast)
    assert {n: book.stage(n) for n in ("Z-GOOD", "B-GOOD", *held)} == {
        "Z-GOOD": "reminder",
        "B-GOOD": "reminder",
        **dict.fromkeys(held, "current"),
    }


def test_a_sweep_report_names_the_first_held_invoices_in_order_and_counts_them_all() -> None:
    report = SweepReport(as_of=at("2026-02-10"))
    assert report.as_dict()["held"] == 0 and report.as_dict()["held_invoices"] == []
    numbers = [f"INV-{n:03}" for n in range(HELD_LISTED + 5)]
    for number in reversed(numbers):  # chunks come in id order, which need not be number order
        report.count_held(number)
    assert report.held == HELD_LISTED + 5 and report.held_invoices == numbers[:HELD_LISTED]
    summary = report.held_summary()
    assert summary.startswith(f"{HELD_LISTED + 5} invoice(s) held: a rule could not be computed on their values")
    assert "INV-000, INV-001" in summary and f"({HELD_LISTED} of {HELD_LISTED + 5} named)" in summary


def test_an_integer_of_thousands_of_digits_stays_a_located_problem(tmp_path: Path) -> None:
    # Past Python's 4,300-digit int conversion limit (issue 11, defect 5): located, never a traceback.
    [problem] = problems_of(tmp_path, policy(stage=", after_days: " + "1" * 4400).replace("after_days: 1, ", ""))
    assert (problem.line, problem.column) == (3, 53) and "this number has 4400 digits" in problem.message, problem
