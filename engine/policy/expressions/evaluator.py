"""The evaluator of the expression language: typed nodes that compute a value or a verdict from the facts.

The checker (`checker.py`) builds a tree of these once, when a policy loads; each node turns itself into a
closure (`getter` for values, `fn` for conditions), so evaluating an expression per invoice is a few nested
calls. Every node can also `explain` its verdict in plain words. Unknown values follow the rules in the
package docstring: a comparison with an unknown operand is false, except `!=` and `not in`.
"""

from __future__ import annotations

import enum
import operator
from collections.abc import Callable, Mapping, Sequence
from datetime import date
from decimal import Decimal
from typing import Any

from engine.policy.facts import Field, FieldType

Facts = Mapping[str, Any]
_Getter = Callable[[Facts], Any]
_Predicate = Callable[[Facts], bool]


# --------------------------------------------------------------------------------------------
# Static kinds and formatting
# --------------------------------------------------------------------------------------------


class _Kind(enum.Enum):
    """What an operand is at compile time; the value is how messages name it."""

    NUMBER = "a number"
    TEXT = "text"
    DATE = "a date"
    BOOLEAN = "true or false"
    TAGS = "a list of tags"
    NULL = "null (unknown)"
    LIST = "a list"


_KIND_OF_TYPE = {
    FieldType.DECIMAL: _Kind.NUMBER,
    FieldType.INTEGER: _Kind.NUMBER,
    FieldType.TEXT: _Kind.TEXT,
    FieldType.DATE: _Kind.DATE,
    FieldType.TEXT_LIST: _Kind.TAGS,
    FieldType.BOOLEAN: _Kind.BOOLEAN,
}

_TYPE_PHRASE = {
    FieldType.DECIMAL: "an amount",
    FieldType.INTEGER: "a whole number",
    FieldType.TEXT: "text",
    FieldType.DATE: "a date",
    FieldType.TEXT_LIST: "a list of tags",
    FieldType.BOOLEAN: "true or false",
}


def _example(field: Field) -> str:
    """A correct condition on `field`, for messages."""
    name = field.name
    return {
        FieldType.DECIMAL: f"`{name} >= 1000`",
        FieldType.INTEGER: f"`{name} > 30`",
        FieldType.TEXT: f"`{name} == 'A'`",
        FieldType.DATE: f"`{name} < '2026-01-31'`",
        FieldType.TEXT_LIST: f"`'vip' in {name}`",
        FieldType.BOOLEAN: f"`{name} == true`",
    }[field.type]


def _quote(text: str, limit: int = 60) -> str:
    """Quote source text for a one-line message."""
    text = " ".join(text.split())
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return f"`{text}`"


def _fmt(value: Any) -> str:
    """A value the way a finance user reads it (explain)."""
    if value is None:
        return "unknown"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Decimal):
        return format(value, ",f") if value.is_finite() else str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, (tuple, list, frozenset, set)):
        return "[" + ", ".join(_fmt(v) for v in value) + "]"
    return repr(value)


# --------------------------------------------------------------------------------------------
# Operands: produce a value (or None) from the facts
# --------------------------------------------------------------------------------------------


class _Value:
    __slots__ = ("end", "kind", "start", "text")

    def __init__(self, start: int, end: int, text: str, kind: _Kind) -> None:
        self.start = start
        self.end = end
        self.text = text
        self.kind = kind

    @property
    def label(self) -> str:
        return _quote(self.text)

    @property
    def integer(self) -> bool:
        """True when the value is always an int (so int literals need no Decimal conversion)."""
        return False

    def getter(self) -> _Getter:
        raise NotImplementedError

    def field_names(self) -> set[str]:
        return set()


class _FieldRef(_Value):
    __slots__ = ("field",)

    def __init__(self, start: int, end: int, text: str, field: Field) -> None:
        super().__init__(start, end, text, _KIND_OF_TYPE[field.type])
        self.field = field

    @property
    def label(self) -> str:
        return self.field.name

    @property
    def integer(self) -> bool:
        return self.field.type is FieldType.INTEGER

    def getter(self) -> _Getter:
        # methodcaller runs in C: cheaper than a Python-level closure around facts.get.
        return operator.methodcaller("get", self.field.name)

    def field_names(self) -> set[str]:
        return {self.field.name}


class _Lit(_Value):
    __slots__ = ("value",)

    def __init__(self, start: int, end: int, text: str, kind: _Kind, value: Any) -> None:
        super().__init__(start, end, text, kind)
        self.value = value

    @property
    def label(self) -> str:
        return " ".join(self.text.split())

    @property
    def integer(self) -> bool:
        return isinstance(self.value, int) and not isinstance(self.value, bool)

    def converted(self, kind: _Kind, value: Any) -> _Lit:
        return _Lit(self.start, self.end, self.text, kind, value)

    def getter(self) -> _Getter:
        value = self.value
        return lambda facts: value


class _ListLit(_Value):
    __slots__ = ("items",)

    def __init__(self, start: int, end: int, text: str, items: Sequence[_Lit]) -> None:
        super().__init__(start, end, text, _Kind.LIST)
        self.items = tuple(items)

    @property
    def label(self) -> str:
        return " ".join(self.text.split())


_ARITH_OPS: dict[str, Callable[[Any, Any], Any]] = {
    "+": operator.add,
    "-": operator.sub,
    "*": operator.mul,
}


class _Arith(_Value):
    """`a + b`, `a - b`, `a * b` or `-a` over numbers; unknown when any operand is."""

    __slots__ = ("bound", "op", "operands")

    def __init__(
        self, start: int, end: int, text: str, op: str, operands: Sequence[_Value], bound: Decimal = Decimal(0)
    ) -> None:
        super().__init__(start, end, text, _Kind.NUMBER)
        self.op = op  # "+", "-", "*" or "neg"
        self.operands = tuple(operands)
        #: The largest magnitude it can take for facts within their bounds (the checker's range analysis).
        self.bound = bound

    @property
    def integer(self) -> bool:
        return all(o.integer for o in self.operands)

    def getter(self) -> _Getter:
        if self.op == "neg":
            inner = self.operands[0].getter()

            def negate(facts: Facts) -> Any:
                v = inner(facts)
                return None if v is None else -v

            return negate
        fn = _ARITH_OPS[self.op]
        left, right = (o.getter() for o in self.operands)

        def arith(facts: Facts) -> Any:
            a = left(facts)
            if a is None:
                return None
            b = right(facts)
            if b is None:
                return None
            return fn(a, b)

        return arith

    def field_names(self) -> set[str]:
        return set().union(*(o.field_names() for o in self.operands))


# --------------------------------------------------------------------------------------------
# Conditions: produce True/False from the facts
# --------------------------------------------------------------------------------------------


class _Cond:
    __slots__ = ("fn", "text")

    text: str
    fn: _Predicate

    def explain(self, facts: Facts) -> str:
        raise NotImplementedError

    def field_names(self) -> set[str]:
        raise NotImplementedError


_CMP: dict[str, Callable[[Any, Any], bool]] = {
    "==": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}
_FLIP = {"==": "==", "!=": "!=", "<": ">", "<=": ">=", ">": "<", ">=": "<="}


class _Cmp(_Cond):
    """One type-checked comparison `left op right` (a chain is an _And of these)."""

    __slots__ = ("left", "op", "right")

    def __init__(self, left: _Value, op: str, right: _Value, text: str) -> None:
        self.left = left
        self.op = op
        self.right = right
        self.text = text
        self.fn = self._build()

    # Orientation helpers: the checker guarantees at most one side is a literal, and that
    # null, lists and tags only appear where they make sense.

    def _is_null_test(self) -> bool:
        return self.left.kind is _Kind.NULL or self.right.kind is _Kind.NULL

    def _oriented(self) -> tuple[_Value, str, _Value]:
        """(subject, op, other) with the literal, if any, on the right."""
        if isinstance(self.left, _Lit) and self.op in _FLIP:
            return self.right, _FLIP[self.op], self.left
        return self.left, self.op, self.right

    def _build(self) -> _Predicate:
        left, op, right = self.left, self.op, self.right
        if op in ("in", "not in"):
            negate = op == "not in"
            if isinstance(right, _ListLit):
                members = frozenset(item.value for item in right.items)
                get = left.getter()
                # None is never a member, so unknown is "not in" without a separate test.
                if negate:
                    return lambda facts: get(facts) not in members
                return lambda facts: get(facts) in members
            tags = right.getter()
            if isinstance(left, _Lit):
                item = left.value
                if negate:
                    return lambda facts: (t := tags(facts)) is None or item not in t
                return lambda facts: (t := tags(facts)) is not None and item in t
            value = left.getter()

            def member(facts: Facts) -> bool:
                t = tags(facts)
                v = value(facts)
                if t is None or v is None:
                    return negate
                return (v in t) is not negate

            return member
        if self._is_null_test():
            subject = left if right.kind is _Kind.NULL else right
            get = subject.getter()
            if op == "==":
                return lambda facts: get(facts) is None
            return lambda facts: get(facts) is not None
        subject, op, other = self._oriented()
        get = subject.getter()
        if isinstance(other, _Lit):
            value = other.value
            if op == "!=":
                return lambda facts: (v := get(facts)) is None or v != value
            cmp = _CMP[op]
            return lambda facts: (v := get(facts)) is not None and cmp(v, value)
        other_get = other.getter()
        cmp = _CMP[op]
        unknown = op == "!="

        def compare(facts: Facts) -> bool:
            a = get(facts)
            b = other_get(facts)
            if a is None or b is None:
                return unknown
            return cmp(a, b)

        return compare

    def explain(self, facts: Facts) -> str:
        result = self.fn(facts)
        left, right = self.left, self.right
        if self.op in ("in", "not in") and right.kind is _Kind.TAGS:
            tags = right.getter()(facts)
            item = left.getter()(facts)
            item_text = left.label if isinstance(left, _Lit) else f"{left.label} ({_fmt(item)})"
            if tags is None or item is None:
                unknown = right.label if tags is None else left.label
                return f"{unknown} is unknown, so {_quote(self.text)} is {_word(result)}"
            contains = item in tags
            verb = "contains" if contains else "does not contain"
            return f"{right.label} is {_fmt(tags)}, which {verb} {item_text}"
        if self._is_null_test():
            subject = left if right.kind is _Kind.NULL else right
            value = subject.getter()(facts)
            if value is None:
                return f"{subject.label} is unknown (null)"
            return f"{subject.label} is {_fmt(value)}, not null"
        subject, op, other = self._oriented()
        value = subject.getter()(facts)
        if isinstance(other, _Lit | _ListLit):
            other_text = other.label
        else:
            other_value = other.getter()(facts)
            if other_value is None and value is not None:
                return f"{other.label} is unknown, so {_quote(self.text)} is {_word(result)}"
            other_text = f"{other.label} ({_fmt(other_value)})"
        if value is None:
            return f"{subject.label} is unknown, so {_quote(self.text)} is {_word(result)}"
        holds = result if op not in ("!=", "not in") else not result
        positive = {"==": "equal to", "!=": "equal to", "in": "in", "not in": "in"}.get(op, op)
        if holds:
            return f"{subject.label} is {_fmt(value)}, which is {positive} {other_text}"
        return f"{subject.label} is {_fmt(value)}, not {positive} {other_text}"

    def field_names(self) -> set[str]:
        return self.left.field_names() | self.right.field_names()


def _word(value: bool) -> str:
    return "true" if value else "false"


class _And(_Cond):
    __slots__ = ("parts",)

    def __init__(self, parts: Sequence[_Cond], text: str) -> None:
        self.parts = tuple(parts)
        self.text = text
        fns = tuple(p.fn for p in self.parts)
        if len(fns) == 2:
            a, b = fns
            self.fn = lambda facts: a(facts) and b(facts)
        else:

            def every(facts: Facts) -> bool:
                # A plain loop: all() over a generator costs a frame per evaluation.
                for fn in fns:
                    if not fn(facts):
                        return False
                return True

            self.fn = every

    def explain(self, facts: Facts) -> str:
        for part in self.parts:
            if not part.fn(facts):
                return part.explain(facts)  # the first false part is the whole reason
        return " and ".join(p.explain(facts) for p in self.parts)

    def field_names(self) -> set[str]:
        return set().union(*(p.field_names() for p in self.parts))


class _Or(_Cond):
    __slots__ = ("parts",)

    def __init__(self, parts: Sequence[_Cond], text: str) -> None:
        self.parts = tuple(parts)
        self.text = text
        fns = tuple(p.fn for p in self.parts)
        if len(fns) == 2:
            a, b = fns
            self.fn = lambda facts: a(facts) or b(facts)
        else:

            def some(facts: Facts) -> bool:
                for fn in fns:
                    if fn(facts):
                        return True
                return False

            self.fn = some

    def explain(self, facts: Facts) -> str:
        for part in self.parts:
            if part.fn(facts):
                return part.explain(facts)  # the first true part is the whole reason
        return " and ".join(p.explain(facts) for p in self.parts)

    def field_names(self) -> set[str]:
        return set().union(*(p.field_names() for p in self.parts))


class _Not(_Cond):
    __slots__ = ("part",)

    def __init__(self, part: _Cond, text: str) -> None:
        self.part = part
        self.text = text
        inner = part.fn
        self.fn = lambda facts: not inner(facts)

    def explain(self, facts: Facts) -> str:
        # The facts that make the inner condition true/false are exactly why `not` is false/true.
        return self.part.explain(facts)

    def field_names(self) -> set[str]:
        return self.part.field_names()


class _Truth(_Cond):
    """A bare BOOLEAN field used as a condition: true only when the fact is true."""

    __slots__ = ("field",)

    def __init__(self, field: _FieldRef) -> None:
        self.field = field
        self.text = field.text
        get = field.getter()
        self.fn = lambda facts: get(facts) is True

    def explain(self, facts: Facts) -> str:
        return f"{self.field.label} is {_fmt(self.field.getter()(facts))}"

    def field_names(self) -> set[str]:
        return self.field.field_names()


class _Const(_Cond):
    __slots__ = ("value",)

    def __init__(self, value: bool, text: str) -> None:
        self.value = value
        self.text = text
        self.fn = lambda facts: value

    def explain(self, facts: Facts) -> str:
        return f"{_quote(self.text)} is always {_word(self.value)}"

    def field_names(self) -> set[str]:
        return set()
