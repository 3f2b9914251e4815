"""Fuzzed `when:` / `applies_to:` expressions: parsing and checking raise nothing but ExpressionError (with an
offset inside the text), and a compiled expression evaluates to a bool for any well-typed facts."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from engine.errors import ExpressionError
from engine.policy.expressions import FIELDS, FieldType, compile_expression
from tests.fuzz.conftest import examples
from tests.fuzz.hostile import nasty_text

NAMES = sorted(FIELDS)
literals = st.one_of(
    st.integers(-(10**6), 10**6).map(str),
    st.decimals(min_value=-(10**6), max_value=10**6, places=2, allow_nan=False).map(str),
    st.sampled_from(
        [
            "'A'",
            "'vip'",
            "'2026-01-31'",
            "'2026-02-30'",
            "''",
            "true",
            "false",
            "null",
            "None",
            "True",
            '"x"',
            "'{{ 7*7 }}'",
            "0.1",
            "-0",
            "1_000",
            "0x10",
            "1e3",
        ]
    ),
)
atoms = st.one_of(
    st.sampled_from(NAMES),
    literals,
    st.sampled_from(
        [
            "invoice",
            "customer",
            "invoice.nope",
            "__import__('os')",
            "x.y.z",
            "len(x)",
            "invoice.tags[0]",
            "lambda: 1",
            "[1, 2]",
            "('A', 'B')",
            "{1}",
            "...",
            "f'x'",
        ]
    ),
)
COMPARE = ["==", "!=", "<", "<=", ">", ">=", "in", "not in"]


def _expressions() -> st.SearchStrategy[str]:
    def extend(inner: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
        return st.one_of(
            st.tuples(inner, st.sampled_from(COMPARE + ["+", "-", "*", "and", "or", "/", "**", "%"]), inner).map(
                lambda t: f"{t[0]} {t[1]} {t[2]}"
            ),
            st.tuples(inner, st.sampled_from(COMPARE), inner, st.sampled_from(COMPARE), inner).map(
                lambda t: " ".join(t)
            ),
            inner.map(lambda e: f"not {e}"),
            inner.map(lambda e: f"({e})"),
            inner.map(lambda e: f"-{e}"),
            st.lists(literals, max_size=4).map(lambda items: f"[{', '.join(items)}]"),
        )

    return st.recursive(atoms, extend, max_leaves=12)


expressions = _expressions()


def _fact(kind: FieldType) -> st.SearchStrategy[Any]:
    value: st.SearchStrategy[Any] = {
        FieldType.DECIMAL: st.decimals(min_value=-(10**9), max_value=10**9, places=4, allow_nan=False),
        FieldType.INTEGER: st.integers(-(10**6), 10**6),
        FieldType.TEXT: nasty_text,
        FieldType.DATE: st.dates(min_value=date(1900, 1, 1), max_value=date(2200, 12, 31)),
        FieldType.TEXT_LIST: st.lists(nasty_text, max_size=3).map(tuple),
        FieldType.BOOLEAN: st.booleans(),
    }[kind]
    return st.one_of(st.none(), value)


def _of(kind: FieldType) -> list[str]:
    return [name for name, field in FIELDS.items() if field.type is kind]


NUMBERS = _of(FieldType.DECIMAL) + _of(FieldType.INTEGER)
number_literal = st.one_of(
    st.integers(-(10**6), 10**6).map(str),
    st.decimals(min_value=-(10**6), max_value=10**6, places=2, allow_nan=False).map(str),
)
arithmetic = st.recursive(
    st.one_of(st.sampled_from(NUMBERS), number_literal),
    lambda inner: st.tuples(inner, st.sampled_from(["+", "-", "*"]), inner).map(lambda t: f"({t[0]} {t[1]} {t[2]})"),
    max_leaves=4,
)
#: Arithmetic with at least one field in it (two fixed values are refused as a comparison).
with_field = st.one_of(
    st.sampled_from(NUMBERS),
    st.tuples(st.sampled_from(NUMBERS), st.sampled_from(["+", "-", "*"]), arithmetic).map(" ".join),
)
text_literal = nasty_text.map(repr)


def _conditions() -> st.SearchStrategy[str]:
    compare = st.sampled_from(["==", "!=", "<", "<=", ">", ">="])
    leaf = st.one_of(
        st.tuples(with_field, compare, arithmetic).map(" ".join),
        st.tuples(number_literal, compare, with_field, compare, number_literal).map(" ".join),
        st.tuples(
            st.sampled_from(_of(FieldType.TEXT)),
            st.sampled_from(["==", "!="]),
            st.one_of(text_literal, st.just("null")),
        ).map(" ".join),
        st.tuples(
            st.sampled_from(_of(FieldType.TEXT)),
            st.sampled_from(["in", "not in"]),
            st.lists(text_literal, min_size=1, max_size=3).map(lambda items: f"[{', '.join(items)}]"),
        ).map(" ".join),
        st.tuples(text_literal, st.sampled_from(["in", "not in"]), st.sampled_from(_of(FieldType.TEXT_LIST))).map(
            " ".join
        ),
        st.tuples(
            st.sampled_from(_of(FieldType.DATE)),
            compare,
            st.dates(min_value=date(1900, 1, 1), max_value=date(2200, 1, 1)).map(lambda d: f"'{d}'"),
        ).map(" ".join),
        st.sampled_from(["true", "false"]),
    )
    return st.recursive(
        leaf,
        lambda inner: st.one_of(
            st.tuples(inner, st.sampled_from(["and", "or"]), inner).map(lambda t: f"({t[0]} {t[1]} {t[2]})"),
            inner.map(lambda e: f"not {e}"),
        ),
        max_leaves=6,
    )


conditions = _conditions()
facts = st.fixed_dictionaries({}, optional={name: _fact(field.type) for name, field in FIELDS.items()})


def compiled_or_located(source: str) -> Any:
    try:
        return compile_expression(source)
    except ExpressionError as error:
        assert 0 <= error.offset <= len(source), (error.offset, source)
        assert str(error).strip()
        return None


@settings(max_examples=examples(300))
@given(expressions, facts)
def test_grammar_shaped_expressions_check_and_evaluate(source: str, values: dict[str, Any]) -> None:
    expression = compiled_or_located(source)
    if expression is not None:
        assert isinstance(expression.evaluate(values), bool)
        assert isinstance(expression.explain(values), str)


@settings(max_examples=examples(300))
@given(conditions, facts)
def test_well_typed_conditions_evaluate_to_a_bool(source: str, values: dict[str, Any]) -> None:
    expression = compiled_or_located(source)
    if expression is not None:
        assert isinstance(expression.evaluate(values), bool)
        assert isinstance(expression.explain(values), str)


@settings(max_examples=examples(150))
@given(st.one_of(nasty_text, st.text(max_size=200)))
def test_random_text_is_a_located_error_or_an_expression(source: str) -> None:
    expression = compiled_or_located(source)
    if expression is not None:
        assert isinstance(expression.evaluate({}), bool)


@settings(max_examples=examples(30))
@given(st.integers(1, 200), st.sampled_from(["(", "not ", "-", "[", "invoice.amount + "]))
def test_deep_nesting_is_refused_not_a_recursion_error(depth: int, opener: str) -> None:
    closer = {"(": ")", "[": "]"}.get(opener, "")
    compiled_or_located(opener * depth + "1" + closer * depth + " > 0")


@settings(max_examples=examples(20))
@given(st.integers(10, 999999999), st.sampled_from(["*", "+", "-"]))
def test_overflowing_arithmetic_is_refused_at_check_time(exponent: int, operator: str) -> None:
    expression = compiled_or_located(f"invoice.amount {operator} 1e{exponent} * 1e{exponent} > 1")
    if expression is not None:
        assert isinstance(expression.evaluate({"invoice.amount": Decimal("5")}), bool)


#: Every number field at values up to its bound (engine.policy.expressions.checker.FIELD_BOUNDS).
extreme_facts = st.fixed_dictionaries(
    {
        name: st.one_of(
            st.sampled_from([Decimal(10) ** 30, -(Decimal(10) ** 30), Decimal("0.0001")])
            if field.type is FieldType.DECIMAL
            else st.sampled_from([10**12, -(10**12), 1]),
            st.decimals(min_value=-(10**30), max_value=10**30, places=4, allow_nan=False)
            if field.type is FieldType.DECIMAL
            else st.integers(-(10**12), 10**12),
        )
        for name, field in FIELDS.items()
        if field.type in (FieldType.DECIMAL, FieldType.INTEGER)
    }
)
wide_literal = st.one_of(
    st.integers(-(10**15), 10**15).map(str),
    st.sampled_from(
        ["1e15", "-1e15", "999999999999999", "0.0000000000000000000000000001", "1e-28", "1e999999", "1e-999999"]
    ),
)
wide_arithmetic = st.recursive(
    st.one_of(st.sampled_from(NUMBERS), wide_literal),
    lambda inner: st.tuples(inner, st.sampled_from(["+", "-", "*"]), inner).map(lambda t: f"({t[0]} {t[1]} {t[2]})"),
    max_leaves=10,
)


@settings(max_examples=examples(200))
@given(wide_arithmetic, st.sampled_from(["<", "<=", ">", ">=", "==", "!="]), wide_literal, extreme_facts)
def test_arithmetic_that_checks_never_overflows_on_values_within_the_bounds(
    arithmetic: str, compare: str, literal: str, values: dict[str, Any]
) -> None:
    # The checker's range analysis is sound: what it accepts evaluates, even at the fields' largest values.
    expression = compiled_or_located(f"{arithmetic} {compare} {literal}")
    if expression is not None:
        assert isinstance(expression.evaluate(values), bool)
