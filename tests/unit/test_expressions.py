"""Tests of engine.policy.expressions: the safe, typed expression language of policies."""

from __future__ import annotations

import builtins
import pickle
from collections.abc import Mapping
from datetime import date
from decimal import Decimal
from typing import Any

import pytest

from engine.errors import ExpressionError
from engine.policy.expressions import (
    FIELDS,
    CompiledExpression,
    Field,
    FieldType,
    compile_expression,
)
from engine.policy.model import Expression


def ev(source: str, facts: Mapping[str, Any] | None = None) -> bool:
    return compile_expression(source).evaluate(facts or {})


def rejected(source: str, **kwargs: Any) -> ExpressionError:
    with pytest.raises(ExpressionError) as info:
        compile_expression(source, **kwargs)
    return info.value


@pytest.fixture
def flag_field(monkeypatch: pytest.MonkeyPatch) -> str:
    """The registry has no BOOLEAN field yet; add one for the duration of a test."""
    name = "invoice.disputed"
    field = Field(name, FieldType.BOOLEAN, "Whether the invoice is disputed.")
    monkeypatch.setitem(FIELDS, name, field)
    return name


# --- the registry ------------------------------------------------------------------------------


def test_registry_lists_every_documented_field_with_its_type() -> None:
    expected = {
        "invoice.number": FieldType.TEXT,
        "invoice.amount": FieldType.DECIMAL,
        "invoice.open_amount": FieldType.DECIMAL,
        "invoice.paid_amount": FieldType.DECIMAL,
        "invoice.currency": FieldType.TEXT,
        "invoice.days_overdue": FieldType.INTEGER,
        "invoice.issued_on": FieldType.DATE,
        "invoice.due_on": FieldType.DATE,
        "invoice.tags": FieldType.TEXT_LIST,
        "invoice.stage": FieldType.TEXT,
        "customer.id": FieldType.TEXT,
        "customer.name": FieldType.TEXT,
        "customer.credit_grade": FieldType.TEXT,
        "customer.segment": FieldType.TEXT,
        "customer.owner": FieldType.TEXT,
        "customer.language": FieldType.TEXT,
        "customer.timezone": FieldType.TEXT,
        "customer.tags": FieldType.TEXT_LIST,
        "customer.total_open": FieldType.DECIMAL,
        "customer.total_overdue": FieldType.DECIMAL,
        "customer.overdue_count": FieldType.INTEGER,
        "customer.industry": FieldType.TEXT,
        "customer.region": FieldType.TEXT,
        "customer.credit_limit": FieldType.DECIMAL,
        "customer.utilisation": FieldType.DECIMAL,
        "customer.previous_grade": FieldType.TEXT,
        "customer.grade_changed_days_ago": FieldType.INTEGER,
        "customer.open_warnings": FieldType.INTEGER,
        **{
            f"credit.{name}": FieldType.DECIMAL
            for name in (
                "avg_days_late",
                "on_time_share",
                "overdue_share",
                "days_to_pay",
                "days_late_last_90",
                "days_late_prior_90",
            )
        },
        **{
            f"credit.{name}": FieldType.INTEGER
            for name in (
                "broken_promises",
                "disputes",
                "relationship_days",
                "days_since_last_payment",
                "broken_promises_last_30",
                "legal_invoices",
            )
        },
        "credit.grade_dropped": FieldType.BOOLEAN,
    }
    assert {name: f.type for name, f in FIELDS.items()} == expected
    for name, f in FIELDS.items():
        assert f.name == name
        assert f.description and "\n" not in f.description
        assert f.root == name.split(".")[0]


def test_field_is_immutable() -> None:
    with pytest.raises(AttributeError):
        FIELDS["invoice.amount"].name = "x"  # type: ignore[misc]


# --- evaluation ------------------------------------------------------------------------------

A = {
    "invoice.amount": Decimal("1000.00"),
    "invoice.open_amount": Decimal("600.00"),
    "invoice.paid_amount": Decimal("400.00"),
    "invoice.currency": "EUR",
    "invoice.days_overdue": 45,
    "invoice.issued_on": date(2026, 1, 1),
    "invoice.due_on": date(2026, 1, 31),
    "invoice.tags": ("disputed-before", "export"),
    "invoice.stage": "reminder",
    "customer.credit_grade": "B",
    "customer.segment": "retail",
    "customer.tags": ("vip",),
    "customer.total_open": Decimal("5000"),
    "customer.overdue_count": 3,
}


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("invoice.open_amount >= 600", True),
        ("invoice.open_amount >= 600.01", False),
        ("invoice.open_amount > 599.99", True),
        ("invoice.open_amount == 600", True),
        ("invoice.open_amount != 600", False),
        ("invoice.open_amount < 600", False),
        ("invoice.open_amount <= 600", True),
        ("600 <= invoice.open_amount", True),
        ("600 < invoice.open_amount", False),
        ("invoice.days_overdue > 30", True),
        ("invoice.days_overdue > -5", True),
        ("invoice.days_overdue >= 45.5", False),
        ("customer.credit_grade == 'B'", True),
        ('customer.credit_grade == "B"', True),
        ("customer.credit_grade != 'B'", False),
        ("'B' == customer.credit_grade", True),
        ("invoice.paid_amount < invoice.amount", True),
        ("invoice.paid_amount + invoice.open_amount == invoice.amount", True),
        ("invoice.open_amount > invoice.amount * 0.5", True),
        ("invoice.open_amount > invoice.amount * 0.6", False),
        ("invoice.amount - invoice.paid_amount == 600", True),
        ("-invoice.days_overdue < -40", True),
        ("invoice.open_amount >= 5_00", True),
        ("invoice.open_amount >= 6e2", True),
        ("customer.overdue_count * 200 >= 600", True),
        ("invoice.amount > 100 and customer.segment == 'retail'", True),
        ("invoice.amount > 100 and customer.segment == 'smb'", False),
        ("invoice.amount > 5000 or customer.segment == 'retail'", True),
        ("invoice.amount > 5000 or customer.segment == 'smb'", False),
        ("not invoice.amount > 5000", True),
        ("not (invoice.amount > 5000 or customer.segment == 'retail')", False),
        ("(invoice.amount > 5000 or customer.segment == 'retail') and customer.overdue_count >= 3", True),
        ("true", True),
        ("false", False),
        ("True and invoice.amount > 1", True),
        ("invoice.amount > 1 and customer.credit_grade in ['A', 'B'] and 'vip' in customer.tags", True),
    ],
)
def test_truth_table(source: str, expected: bool) -> None:
    result = ev(source, A)
    assert result is expected


@pytest.mark.parametrize(
    ("source", "days", "expected"),
    [
        ("0 < invoice.days_overdue <= 30", 0, False),
        ("0 < invoice.days_overdue <= 30", 1, True),
        ("0 < invoice.days_overdue <= 30", 30, True),
        ("0 < invoice.days_overdue <= 30", 31, False),
        ("0 < invoice.days_overdue <= 30", -3, False),
        ("0 < invoice.days_overdue <= 30", None, False),
        ("-7 <= invoice.days_overdue < 0", -7, True),
        ("-7 <= invoice.days_overdue < 0", 0, False),
        ("1 <= invoice.days_overdue <= 10 <= customer.overdue_count", 5, False),
        ("30 >= invoice.days_overdue > 0", 30, True),
    ],
)
def test_comparison_chains(source: str, days: int | None, expected: bool) -> None:
    assert ev(source, {"invoice.days_overdue": days, "customer.overdue_count": 3}) is expected


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        # Every comparison with an unknown is false...
        ("customer.credit_grade == 'A'", False),
        ("customer.credit_grade in ['A', 'B']", False),
        ("invoice.open_amount >= 0", False),
        ("invoice.open_amount < 0", False),
        ("invoice.open_amount == 0", False),
        ("invoice.due_on < '2030-01-01'", False),
        ("'vip' in customer.tags", False),
        ("invoice.open_amount * 2 > 0", False),
        ("invoice.open_amount > invoice.amount", False),
        # ...except != and not in, which are true.
        ("customer.credit_grade != 'A'", True),
        ("customer.credit_grade not in ['A', 'B']", True),
        ("'vip' not in customer.tags", True),
        ("invoice.open_amount != invoice.amount", True),
        # null tests
        ("customer.credit_grade == null", True),
        ("customer.credit_grade != null", False),
        ("customer.credit_grade == None", True),
        ("null == customer.credit_grade", True),
        ("invoice.open_amount * 2 == null", True),
        # logic is two-valued
        ("not customer.credit_grade == 'A'", True),
        ("not invoice.open_amount >= 0", True),
        ("customer.credit_grade == 'A' or customer.credit_grade == null", True),
    ],
)
def test_unknown_values(source: str, expected: bool) -> None:
    explicit_none = {name: None for name in FIELDS}
    assert ev(source, explicit_none) is expected
    assert ev(source, {}) is expected  # missing from the facts counts as None


def test_null_test_on_known_value() -> None:
    assert ev("customer.credit_grade != null", {"customer.credit_grade": "A"}) is True
    assert ev("customer.credit_grade == null", {"customer.credit_grade": "A"}) is False
    assert ev("invoice.open_amount != invoice.amount", {"invoice.amount": Decimal(1)}) is True


@pytest.mark.parametrize(
    ("source", "grade", "expected"),
    [
        ("customer.credit_grade in ['A', 'B']", "A", True),
        ("customer.credit_grade in ['A', 'B']", "C", False),
        ("customer.credit_grade in ('A', 'B')", "B", True),
        ("customer.credit_grade in {'A', 'B'}", "B", True),
        ("customer.credit_grade in ['A']", "a", False),
        ("customer.credit_grade not in ['A', 'B']", "C", True),
        ("customer.credit_grade not in ['A', 'B']", "A", False),
    ],
)
def test_in_lists(source: str, grade: str, expected: bool) -> None:
    assert ev(source, {"customer.credit_grade": grade}) is expected


def test_in_numeric_lists_compare_by_value() -> None:
    assert ev("invoice.amount in [100, 200.5]", {"invoice.amount": Decimal("100.00")}) is True
    assert ev("invoice.amount in [100, 200.5]", {"invoice.amount": Decimal("200.50")}) is True
    assert ev("invoice.amount in [100, 200.5]", {"invoice.amount": Decimal("200.49")}) is False
    assert ev("invoice.days_overdue in [7, 14, -1]", {"invoice.days_overdue": -1}) is True
    assert ev("invoice.days_overdue not in [7, 14]", {"invoice.days_overdue": 8}) is True


@pytest.mark.parametrize(
    ("source", "tags", "expected"),
    [
        ("'vip' in customer.tags", ("vip", "eu"), True),
        ("'vip' in customer.tags", ("eu",), False),
        ("'vip' in customer.tags", (), False),
        ("'vip' in customer.tags", None, False),
        ("'vip' not in customer.tags", ("vip",), False),
        ("'vip' not in customer.tags", ("eu",), True),
        ("'vip' not in customer.tags", None, True),
        ("'VIP' in customer.tags", ("vip",), False),
        ("customer.segment in customer.tags", ("retail",), True),
        ("customer.segment not in customer.tags", ("retail",), False),
    ],
)
def test_tags(source: str, tags: tuple[str, ...] | None, expected: bool) -> None:
    assert ev(source, {"customer.tags": tags, "customer.segment": "retail"}) is expected


def test_tag_membership_with_unknown_item() -> None:
    facts = {"customer.tags": ("retail",), "customer.segment": None}
    assert ev("customer.segment in customer.tags", facts) is False
    assert ev("customer.segment not in customer.tags", facts) is True


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("invoice.due_on < '2026-02-01'", True),
        ("invoice.due_on <= '2026-01-31'", True),
        ("invoice.due_on < '2026-01-31'", False),
        ("invoice.due_on == '2026-01-31'", True),
        ("invoice.due_on != '2026-01-31'", False),
        ("'2026-01-01' <= invoice.due_on < '2026-02-01'", True),
        ("invoice.due_on in ['2026-01-31', '2026-02-28']", True),
        ("invoice.issued_on < invoice.due_on", True),
        ("invoice.issued_on == invoice.due_on", False),
    ],
)
def test_dates(source: str, expected: bool) -> None:
    facts = {"invoice.due_on": date(2026, 1, 31), "invoice.issued_on": date(2026, 1, 1)}
    assert ev(source, facts) is expected


def test_iso_date_literals_are_converted_at_compile_time() -> None:
    expr = compile_expression("invoice.due_on < '2026-01-31'")
    # A string in the facts would compare badly; the compiled literal must be a real date.
    assert expr.evaluate({"invoice.due_on": date(2025, 12, 31)}) is True
    assert expr.evaluate({"invoice.due_on": date(2026, 1, 31)}) is False


def test_decimal_precision() -> None:
    assert ev("invoice.open_amount >= 0.1", {"invoice.open_amount": Decimal("0.1")}) is True
    assert ev("invoice.open_amount == 0.1", {"invoice.open_amount": Decimal("0.10")}) is True
    assert ev("invoice.open_amount > 0.1", {"invoice.open_amount": Decimal("0.1")}) is False
    # 0.1 + 0.2 is exactly 0.3 here, unlike with floats.
    assert ev("invoice.open_amount == 0.1 + 0.2", {"invoice.open_amount": Decimal("0.3")}) is True
    # Digits beyond float precision are kept because literals are built from their text.
    precise = "invoice.open_amount > 0.10000000000000000001"
    assert ev(precise, {"invoice.open_amount": Decimal("0.1")}) is False
    assert ev(precise, {"invoice.open_amount": Decimal("0.10000000000000000002")}) is True
    assert ev("invoice.open_amount >= 50000", {"invoice.open_amount": Decimal("49999.99")}) is False


def test_evaluate_always_returns_a_bool() -> None:
    sources = [
        "invoice.open_amount >= 1",
        "customer.credit_grade in ['A']",
        "'vip' in customer.tags",
        "invoice.open_amount > invoice.paid_amount",
        "invoice.amount > 1 and customer.segment == 'retail'",
        "invoice.amount > 1 or customer.segment == 'retail'",
        "invoice.amount > 1 and customer.segment == 'retail' and invoice.days_overdue > 1",
        "not invoice.amount > 1",
    ]
    for source in sources:
        for facts in (A, {}):
            assert type(ev(source, facts)) is bool, source


def test_boolean_fields(flag_field: str) -> None:
    assert ev(flag_field, {flag_field: True}) is True
    assert ev(flag_field, {flag_field: False}) is False
    assert ev(flag_field, {}) is False
    assert ev(f"not {flag_field}", {flag_field: False}) is True
    assert ev(f"not {flag_field}", {}) is True
    assert ev(f"{flag_field} == true", {flag_field: True}) is True
    assert ev(f"{flag_field} == True", {flag_field: True}) is True
    assert ev(f"{flag_field} == false", {flag_field: False}) is True
    assert ev(f"{flag_field} != true", {}) is True
    assert ev(f"{flag_field} and invoice.amount > 1", {flag_field: True, "invoice.amount": Decimal(2)}) is True


def test_sources_may_span_lines_and_have_surrounding_space() -> None:
    source = "  invoice.amount > 1\n  and customer.segment == 'retail'\n"
    assert ev(source, A) is True


def test_fields_and_source() -> None:
    expr = compile_expression("0 < invoice.days_overdue <= 30 and 'vip' in customer.tags or true")
    assert expr.fields == frozenset({"invoice.days_overdue", "customer.tags"})
    assert expr.source == "0 < invoice.days_overdue <= 30 and 'vip' in customer.tags or true"
    assert compile_expression("true").fields == frozenset()


def test_satisfies_policy_expression_protocol_and_value_semantics() -> None:
    expr: Expression = compile_expression("invoice.amount > 1")
    assert isinstance(expr, CompiledExpression)
    assert expr == compile_expression("invoice.amount > 1")
    assert hash(expr) == hash(compile_expression("invoice.amount > 1"))
    assert expr != compile_expression("invoice.amount > 2")
    narrowed = compile_expression("customer.id == 'x'", roots=("customer",))
    assert compile_expression("customer.id == 'x'") != narrowed
    assert compile_expression("customer.id == 'x'", roots="customer") == narrowed
    assert compile_expression("true", roots={"customer", "invoice"}) == compile_expression("true")
    with pytest.raises(AttributeError):
        expr.source = "invoice.amount > 2"
    clone = pickle.loads(pickle.dumps(expr))
    assert clone == expr and clone.evaluate({"invoice.amount": Decimal(2)}) is True
    assert repr(expr) == "CompiledExpression('invoice.amount > 1')"


# --- rejections ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "offset", "fragment"),
    [
        # syntax
        ("", 0, "empty"),
        ("   ", 0, "empty"),
        ("invoice.amount = 1", 15, "`==`"),
        ("invoice.amount > ", 16, "ends too early"),
        ("(invoice.amount > 1", 0, "never closed"),
        ("invoice.amount > 1)", 18, "unmatched"),
        ("customer.id == 'abc", 15, "unterminated string"),
        ("invoice.amount > 1 && customer.id == 'x'", 19, "`and` / `or`"),
        ("invoice.amount > 1 AND customer.id == 'x'", 19, "`and` in lower case"),
        ("!invoice.amount", 0, "`not`"),
        # not a condition
        ("invoice.amount", 0, "must be a condition that is true or false, e.g. `invoice.amount >= 1000`"),
        ("customer.segment", 0, "e.g. `customer.segment == 'A'`"),
        ("'retail'", 0, "must be a condition"),
        ("null", 0, "must be a condition"),
        ("invoice.amount > 1 and invoice.open_amount", 23, "must be a condition"),
        ("not invoice.amount", 4, "must be a condition"),
        ("invoice.amount * 2", 0, "must be a condition"),
        ("['A']", 0, "must be a condition"),
        # unknown fields and names
        ("invoice.open_amont > 1", 0, "did you mean 'invoice.open_amount'?"),
        ("customer.open_amount > 1", 0, "did you mean 'invoice.open_amount'?"),
        ("Invoice.Amount > 1", 0, "did you mean 'invoice.amount'?"),
        ("customer.tag == 'x'", 0, "did you mean 'customer.tags'?"),
        ("invoice.days_overdue > 1 and customer.grade == 'A'", 29, "did you mean 'customer.credit_grade'?"),
        ("invoice.zzz > 1", 0, "invoice fields are: number, amount"),
        ("customer.open > 1", 0, "did you mean 'customer.total_open'?"),
        ("invoice.due > '2026-01-01'", 0, "did you mean 'invoice.due_on'?"),
        ("foo.bar > 1", 0, "fields start with invoice. or customer."),
        ("open_amount > 1", 0, "did you mean 'invoice.open_amount'?"),
        ("customer.segment == retail", 20, "in quotes, e.g. 'retail'"),
        ("invoice > 1", 0, "on its own is not a field"),
        ("TRUE", 0, "lower case"),
        ("invoice.open_amount.real > 1", 0, "is not a field"),
        # types
        ("invoice.amount > 'abc'", 17, "compare it with a number"),
        ("invoice.amount > '5'", 17, "without quotes: 5"),
        ("invoice.amount == true", 18, "is a number, but `true` is true or false"),
        ("customer.credit_grade == 1", 25, "in quotes: '1'"),
        ("invoice.due_on < 2026", 17, "'YYYY-MM-DD'"),
        ("invoice.due_on < 'soon'", 17, "is not a date"),
        ("invoice.due_on < '2026-02-30'", 17, "not a valid date"),
        ("invoice.due_on < '31.01.2026'", 17, "'YYYY-MM-DD'"),
        ("invoice.due_on in ['2026-01-01', 'x']", 33, "is not a date"),
        (
            "invoice.amount > customer.segment",
            17,
            "cannot compare invoice.amount (a number) with customer.segment (text)",
        ),
        ("invoice.due_on > invoice.amount", 17, "cannot compare"),
        ("customer.segment > 'a'", 17, "only be compared with `==`, `!=`, `in` or `not in`"),
        ("invoice.tags == 'x'", 0, "'vip' in invoice.tags"),
        ("invoice.tags in ['x']", 0, "'vip' in invoice.tags"),
        ("1 in customer.tags", 0, "put the tag in quotes"),
        ("invoice.amount in customer.tags", 0, "tags are text"),
        ("customer.credit_grade in ['A', 1]", 31, "in quotes"),
        ("customer.credit_grade in []", 25, "the list is empty"),
        ("customer.credit_grade in ['A', null]", 31, "null cannot be a list item"),
        ("customer.credit_grade in ['A', customer.id]", 31, "fixed values"),
        ("customer.credit_grade in 'AB'", 25, "must be a list"),
        ("customer.credit_grade in customer.segment", 25, "must be a list"),
        ("customer.credit_grade == ['A']", 22, "can only come after `in`"),
        ("1 < 2", 0, "two fixed values"),
        ("'invoice.amount' == 'x'", 0, "two fixed values"),
        ("'A' in ['A']", 0, "put a field before `in`"),
        ("invoice.amount < null", 15, "null (unknown) can only be tested with `==` or `!=`"),
        ("invoice.amount + 'x' > 1", 17, "works only on numbers"),
        ("customer.id + 'x' == 'y'", 0, "works only on numbers"),
        ("-customer.id == 'x'", 0, "works only on numbers"),
        ("(invoice.amount > 1) == true", 1, "is a condition and cannot be used as a value"),
        # constructs outside the language
        ("invoice.amount is None", 15, "`== null`"),
        ("invoice.amount / 2 > 1", 15, "`/` is not allowed"),
        ("invoice.amount ** 2 > 1", 15, "`**` is not allowed"),
        ("invoice.amount % 2 == 0", 15, "`%` is not allowed"),
        ("invoice.amount > 1 & customer.id == 'x'", 19, "`and` / `or`"),
        ("~invoice.amount > 1", 0, "`~` is not allowed"),
        ("invoice.tags[0] == 'x'", 0, "subscripts"),
        (
            "len(invoice.tags) > 1",
            0,
            "function calls like `len(invoice.tags)` are not allowed in policy expressions",
        ),
        ("[t for t in invoice.tags]", 0, "comprehensions"),
        ("{'a': 1}", 0, "dictionaries"),
        ("f'{invoice.amount}' == 'x'", 0, "f-strings"),
        ("invoice.amount if true else false", 0, "if/else expressions"),
        ("(x := 1)", 1, "assignments"),
        ("lambda: true", 0, "lambdas"),
        ("invoice.amount > b'1'", 17, "byte strings"),
        ("invoice.amount > 1j", 17, "complex numbers"),
        ("customer.credit_grade == ...", 25, "not allowed"),
    ],
)
def test_rejections(source: str, offset: int, fragment: str) -> None:
    error = rejected(source)
    assert fragment in error.message, error.message
    assert error.offset == offset, (error.offset, error.message)
    assert 0 <= error.offset <= len(source)
    assert str(error) == error.message


@pytest.mark.parametrize(
    "source",
    [
        "__import__('os')",
        "__import__('os').system('true')",
        "invoice.__class__",
        "invoice.__class__ == 'x'",
        "invoice.amount.__class__ == 'x'",
        "customer.__dict__ == null",
        "invoice._private == 1",
        "__builtins__ == null",
        "().__class__.__bases__[0].__subclasses__()",
        "[].__class__ == null",
        "open('/etc/passwd')",
        "eval('1')",
        "exec('x = 1')",
        "getattr(invoice, 'amount') > 1",
        "invoice.amount.__add__(1) > 1",
        "(lambda: 1)() == 1",
        "globals() == null",
        "type(invoice) == null",
        "'{0.__class__}'.format(invoice) == 'x'",
    ],
)
def test_escape_attempts_are_rejected(source: str) -> None:
    error = rejected(source)
    assert "not allowed" in error.message or "unknown" in error.message, error.message


def test_no_eval_or_exec_is_ever_used(monkeypatch: pytest.MonkeyPatch) -> None:
    def forbidden(*args: object, **kwargs: object) -> None:
        raise AssertionError("eval/exec must never run")

    monkeypatch.setattr(builtins, "eval", forbidden)
    monkeypatch.setattr(builtins, "exec", forbidden)
    expr = compile_expression("invoice.amount > 1 and customer.credit_grade in ['A', 'B']")
    assert expr.evaluate({"invoice.amount": Decimal(2), "customer.credit_grade": "A"}) is True
    assert expr.explain({})


def test_unknown_field_suggestion_with_restricted_roots() -> None:
    error = rejected("customer.open_amount > 1", roots=("customer",))
    assert "'invoice.open_amount' exists, but 'invoice' fields are not available here" in error.message
    assert error.offset == 0


def test_roots_restrict_the_fields() -> None:
    expr = compile_expression("customer.credit_grade in ['A', 'B']", roots=("customer",))
    assert expr.evaluate({"customer.credit_grade": "A"}) is True
    error = rejected("customer.segment == 'x' and invoice.amount > 1", roots=("customer",))
    assert error.message == "'invoice' fields are not available here; use one of: customer.*"
    assert error.offset == 28
    error = rejected("invoice > 1", roots=("customer",))
    assert error.message.startswith("'invoice' fields are not available")


def test_offsets_count_characters_not_bytes() -> None:
    source = "customer.name == 'Müller-Łódź' and invoice.fo > 1"
    error = rejected(source)
    assert source[error.offset :].startswith("invoice.fo")
    source = "customer.name == '日本' and invoice.amount > 'x'"
    error = rejected(source)
    assert source[error.offset :].startswith("'x'")
    source = "customer.name == 'Ω' and customer.name == 'unterminated"
    error = rejected(source)
    assert source[error.offset :].startswith("'unterminated")


def test_offsets_account_for_leading_space_and_line_breaks() -> None:
    assert rejected("   invoice.amont > 1").offset == 3
    source = "invoice.amount > 1\r\n  and invoice.amont > 1"
    error = rejected(source)
    assert source[error.offset :].startswith("invoice.amont")
    source = "\n  invoice.amount = 1"
    error = rejected(source)
    assert source[error.offset :].startswith("= 1")


def test_pathological_inputs_raise_expression_errors() -> None:
    assert "nested too deeply" in rejected("not " * 2000 + "invoice.amount > 1").message
    assert rejected("(" * 300 + "invoice.amount > 1" + ")" * 300).message
    assert "nested too deeply" in rejected("-" * 200 + "1 < invoice.amount").message
    assert "limit" in rejected("invoice.amount > 1 and " * 1000 + "true").message
    assert rejected("customer.id == '\x00'").offset == 16
    assert rejected("customer.id == '\ud800'").offset == 16
    with pytest.raises(ExpressionError):
        compile_expression(None)  # type: ignore[arg-type]


# --- explain ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "facts", "expected"),
    [
        (
            "invoice.open_amount >= 50000",
            {"invoice.open_amount": Decimal("12000.00")},
            "invoice.open_amount is 12,000.00, not >= 50000",
        ),
        (
            "invoice.open_amount >= 50000",
            {"invoice.open_amount": Decimal("60000.00")},
            "invoice.open_amount is 60,000.00, which is >= 50000",
        ),
        (
            "50000 <= invoice.open_amount",
            {"invoice.open_amount": Decimal("12000.00")},
            "invoice.open_amount is 12,000.00, not >= 50000",
        ),
        (
            "0 < invoice.days_overdue <= 30",
            {"invoice.days_overdue": 45},
            "invoice.days_overdue is 45, not <= 30",
        ),
        (
            "customer.credit_grade in ['A', 'B']",
            {"customer.credit_grade": "C"},
            "customer.credit_grade is 'C', not in ['A', 'B']",
        ),
        (
            "customer.credit_grade not in ['A', 'B']",
            {"customer.credit_grade": "A"},
            "customer.credit_grade is 'A', which is in ['A', 'B']",
        ),
        (
            "customer.credit_grade == 'A'",
            {},
            "customer.credit_grade is unknown, so `customer.credit_grade == 'A'` is false",
        ),
        (
            "customer.credit_grade != 'A'",
            {"customer.credit_grade": "B"},
            "customer.credit_grade is 'B', not equal to 'A'",
        ),
        ("customer.credit_grade == null", {}, "customer.credit_grade is unknown (null)"),
        (
            "'vip' in customer.tags",
            {"customer.tags": ("eu",)},
            "customer.tags is ['eu'], which does not contain 'vip'",
        ),
        (
            "invoice.due_on < '2026-01-31'",
            {"invoice.due_on": date(2026, 2, 1)},
            "invoice.due_on is 2026-02-01, not < '2026-01-31'",
        ),
        (
            "invoice.paid_amount < invoice.amount",
            {"invoice.paid_amount": Decimal("5"), "invoice.amount": Decimal("1")},
            "invoice.paid_amount is 5, not < invoice.amount (1)",
        ),
        (
            "invoice.amount > 1 and customer.segment == 'retail'",
            {"invoice.amount": Decimal(5), "customer.segment": "smb"},
            "customer.segment is 'smb', not equal to 'retail'",
        ),
        (
            "invoice.amount > 1 or customer.segment == 'retail'",
            {"invoice.amount": Decimal(5), "customer.segment": "smb"},
            "invoice.amount is 5, which is > 1",
        ),
        ("true", {}, "`true` is always true"),
    ],
)
def test_explain(source: str, facts: dict[str, Any], expected: str) -> None:
    assert compile_expression(source).explain(facts) == expected


def test_explain_is_one_line_and_never_raises() -> None:
    expr = compile_expression("invoice.amount > 1 and\n customer.segment == 'x'")
    assert "\n" not in expr.explain({"invoice.amount": Decimal(2), "customer.segment": "x"})
    # Wrongly typed facts break evaluation, but explain still answers.
    assert compile_expression("invoice.amount > 1").explain({"invoice.amount": "lots"})


# --- speed -----------------------------------------------------------------------------------


def test_evaluation_is_not_pathologically_slow() -> None:
    expr = compile_expression(
        "0 < invoice.days_overdue <= 30 and customer.credit_grade in ['A', 'B'] "
        "and invoice.open_amount >= 50000 and 'vip' not in customer.tags"
    )
    facts = {
        "invoice.days_overdue": 12,
        "customer.credit_grade": "A",
        "invoice.open_amount": Decimal("60000.00"),
        "customer.tags": ("eu",),
    }
    evaluate = expr.evaluate
    hits = sum(evaluate(facts) for _ in range(100_000))
    assert hits == 100_000
