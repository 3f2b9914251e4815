"""The safe expression language of policies (`when:` and `applies_to:`).

Finance writes conditions such as::

    invoice.open_amount >= 50000 and customer.credit_grade in ['A', 'B']
    0 < invoice.days_overdue <= 30
    'vip' not in customer.tags
    invoice.due_on < '2026-01-31'

The text is parsed with Python's `ast` module and only a whitelist of node kinds is accepted;
nothing is ever handed to eval/exec/compile. A policy's expressions are type-checked once, when
the policy loads, and turned into nested closures, so evaluating one per invoice costs about a
microsecond.

Language
    * conditions: ``and``, ``or``, ``not``, parentheses; comparisons ``== != < <= > >=``,
      including chains (``0 < invoice.days_overdue <= 30``); ``in`` / ``not in``.
    * values: fields (``invoice.<name>`` / ``customer.<name>``, see `engine.policy.facts.FIELDS`), strings, numbers,
      ``true``/``false``/``null`` (Python's ``True``/``False``/``None`` work too), lists of
      fixed values after ``in``, unary minus, and ``+ - *`` between numbers.
    * numbers are exact: every number literal that meets an amount becomes a `Decimal` built
      from its text, so ``0.1`` means ``Decimal('0.1')``.
    * dates are written as ISO strings, ``'2026-01-31'``, and converted when the policy loads.
    * text and true/false can be tested only for (in)equality and membership, not ordered.

Unknown values
    Any fact may be None (unknown), and a field missing from the facts counts as None. Every
    comparison with an unknown operand is false, except ``!=`` and ``not in``, which are true;
    ``== null`` / ``!= null`` test for it. Logic is two-valued: ``not (x > 5)`` is true when x is
    unknown.
"""

from __future__ import annotations

import ast
import difflib
import enum
import operator
import re
from collections.abc import Callable, Collection, Mapping, Sequence
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Any, NoReturn

from engine.errors import ExpressionError
from engine.policy.facts import FIELDS, ROOTS, Field, FieldType

__all__ = [
    "FIELDS",
    "ROOTS",
    "CompiledExpression",
    "Field",
    "FieldType",
    "compile_expression",
]

Facts = Mapping[str, Any]
_Getter = Callable[[Facts], Any]
_Predicate = Callable[[Facts], bool]


#: Longest expression accepted; real conditions are a line or two, and the cap bounds parse work.
MAX_LENGTH = 10_000
#: Deepest nesting accepted; evaluation recurses once per level.
_MAX_DEPTH = 60

_EXAMPLE = "`invoice.open_amount >= 50000 and customer.credit_grade in ['A', 'B']`"
_DATE_RE = re.compile(r"\d{4}-\d{2}-\d{2}")


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

    __slots__ = ("op", "operands")

    def __init__(self, start: int, end: int, text: str, op: str, operands: Sequence[_Value]) -> None:
        super().__init__(start, end, text, _Kind.NUMBER)
        self.op = op  # "+", "-", "*" or "neg"
        self.operands = tuple(operands)

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


# --------------------------------------------------------------------------------------------
# The compiled expression
# --------------------------------------------------------------------------------------------


class CompiledExpression:
    """A parsed, type-checked expression; satisfies `engine.policy.model.Expression`.

    Build one with `compile_expression`. Instances are immutable, thread-safe, compare equal when
    their source and roots are equal, and pickle by recompiling their source.
    """

    __slots__ = ("_fn", "_root", "fields", "roots", "source")

    source: str
    fields: frozenset[str]
    roots: tuple[str, ...]
    _root: _Cond
    _fn: _Predicate

    def __init__(self, source: str, root: _Cond, roots: tuple[str, ...]) -> None:
        init = object.__setattr__  # instances are shared by policies and threads: no mutation
        init(self, "source", source)
        init(self, "roots", roots)
        init(self, "fields", frozenset(root.field_names()))
        init(self, "_root", root)
        init(self, "_fn", root.fn)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"CompiledExpression is immutable; cannot set {name!r}")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"CompiledExpression is immutable; cannot delete {name!r}")

    def evaluate(self, facts: Facts) -> bool:
        """Whether the condition holds for `facts` (dotted field name -> value; missing = None)."""
        return self._fn(facts)

    __call__ = evaluate

    def explain(self, facts: Facts) -> str:
        """One line in plain words on why the condition is true or false for `facts`.

        E.g. "invoice.open_amount is 12,000.00, not >= 50000". Best effort: never raises for
        well-typed facts, and falls back to a generic sentence otherwise.
        """
        try:
            return self._root.explain(facts)
        except Exception:  # explanations are diagnostics; they must never break a sweep
            try:
                verdict = _word(self.evaluate(facts))
            except Exception:
                return f"{_quote(self.source)} could not be evaluated with these facts"
            return f"{_quote(self.source)} is {verdict}"

    def __repr__(self) -> str:
        return f"CompiledExpression({self.source!r})"

    def __str__(self) -> str:
        return self.source

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, CompiledExpression):
            return NotImplemented
        return (self.source, self.roots) == (other.source, other.roots)

    def __hash__(self) -> int:
        return hash((self.source, self.roots))

    def __reduce__(self) -> tuple[Any, ...]:
        # Closures do not pickle; the source does, and recompiling is cheap.
        return (_recompile, (self.source, self.roots))


def _recompile(source: str, roots: tuple[str, ...]) -> CompiledExpression:
    return compile_expression(source, roots=roots)


def compile_expression(source: str, *, roots: Collection[str] = ROOTS) -> CompiledExpression:
    """Parse and type-check `source`; only fields under `roots` may be used.

    Raises ExpressionError (with a 0-based character offset into `source` and a message saying
    what to write instead) for syntax errors, constructs outside the language, unknown fields,
    fields of roots not allowed here, type mismatches, and expressions that are not conditions.
    """
    if not isinstance(source, str):
        raise ExpressionError(f"an expression must be text, not {type(source).__name__}; e.g. {_EXAMPLE}", 0)
    if isinstance(roots, str):  # roots="customer" would otherwise mean the roots c, u, s, ...
        roots = (roots,)
    # A stable order keeps messages and equality independent of how the caller spelt `roots`.
    given = set(roots)
    ordered = tuple(r for r in ROOTS if r in given) + tuple(sorted(given - set(ROOTS)))
    checker = _Checker(source, ordered)
    return CompiledExpression(source, checker.check(), checker.roots)


# --------------------------------------------------------------------------------------------
# Parsing and type checking
# --------------------------------------------------------------------------------------------

_CMP_OPS: dict[type[ast.cmpop], str] = {
    ast.Eq: "==",
    ast.NotEq: "!=",
    ast.Lt: "<",
    ast.LtE: "<=",
    ast.Gt: ">",
    ast.GtE: ">=",
    ast.In: "in",
    ast.NotIn: "not in",
}
_BIN_OPS: dict[type[ast.operator], str] = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*"}
_FORBIDDEN_BIN_OPS: dict[type[ast.operator], str] = {
    ast.Div: "/",
    ast.FloorDiv: "//",
    ast.Mod: "%",
    ast.Pow: "**",
    ast.MatMult: "@",
    ast.LShift: "<<",
    ast.RShift: ">>",
    ast.BitAnd: "&",
    ast.BitOr: "|",
    ast.BitXor: "^",
}
_FORBIDDEN_NODES: dict[type[ast.AST], str] = {
    ast.Call: "function calls",
    ast.Subscript: "subscripts",
    ast.Slice: "slices",
    ast.Lambda: "lambdas",
    ast.ListComp: "comprehensions",
    ast.SetComp: "comprehensions",
    ast.DictComp: "comprehensions",
    ast.GeneratorExp: "comprehensions",
    ast.Dict: "dictionaries",
    ast.JoinedStr: "f-strings",
    ast.FormattedValue: "f-strings",
    ast.IfExp: "if/else expressions",
    ast.NamedExpr: "assignments",
    ast.Starred: "starred expressions",
    ast.Await: "await expressions",
    ast.Yield: "yield expressions",
    ast.YieldFrom: "yield expressions",
}


class _Checker:
    """Turns one source text into a _Cond tree, or raises ExpressionError."""

    def __init__(self, source: str, roots: tuple[str, ...]) -> None:
        self.source = source
        self.roots = roots
        # Python would need parentheses to continue a line; YAML folding may introduce line
        # breaks, so treat them as spaces. One char for one char keeps offsets identical.
        normalized = source.replace("\r", " ").replace("\n", " ")
        # Eval mode rejects leading indentation; parse without it and add the shift back.
        self.text = normalized.lstrip(" \t\f")
        self.shift = len(normalized) - len(self.text)
        self.ascii = self.text.isascii()
        self.raw = b"" if self.ascii else self.text.encode("utf-8", "surrogatepass")

    # --- offsets -----------------------------------------------------------------------------

    def at(self, col: int) -> int:
        """Character offset into source of a UTF-8 byte column reported by ast."""
        if self.ascii:
            return self.shift + col
        return self.shift + len(self.raw[:col].decode("utf-8", "surrogatepass"))

    def start(self, node: ast.AST) -> int:
        return self.at(node.col_offset)  # type: ignore[attr-defined]

    def end(self, node: ast.AST) -> int:
        return self.at(node.end_col_offset)  # type: ignore[attr-defined]

    def src(self, node: ast.AST) -> str:
        return self.source[self.start(node) : self.end(node)]

    def between(self, left: ast.AST, right: ast.AST) -> int:
        """Offset of the operator between two operands (operator nodes carry no position)."""
        lo, hi = self.end(left), self.start(right)
        match = re.search(r"[^\s()]", self.source[lo:hi])
        return lo + match.start() if match else lo

    @staticmethod
    def fail(message: str, offset: int) -> NoReturn:
        raise ExpressionError(message, offset)

    # --- entry -------------------------------------------------------------------------------

    def check(self) -> _Cond:
        if not self.text.strip():
            self.fail(f"the expression is empty; write a condition such as {_EXAMPLE}", 0)
        if len(self.source) > MAX_LENGTH:
            self.fail(
                f"the expression is {len(self.source):,} characters long; the limit is "
                f"{MAX_LENGTH:,}. Split it across policies or simplify it",
                MAX_LENGTH,
            )
        if "\x00" in self.source:
            self.fail("the expression contains a NUL character; remove it", self.source.index("\x00"))
        tree = self.parse()
        try:
            return self.condition(tree.body, 0)
        except RecursionError:
            self.fail("the expression is nested too deeply; simplify it", 0)

    def parse(self) -> ast.Expression:
        try:
            return ast.parse(self.text, mode="eval")
        except SyntaxError as exc:
            self.syntax_error(exc)
        except UnicodeError as exc:
            start = getattr(exc, "start", 0)
            self.fail(
                "the expression contains a character that is not valid text; remove it",
                self.shift + start,
            )
        except (RecursionError, MemoryError):
            self.fail("the expression is nested too deeply; simplify it", 0)

    def syntax_error(self, exc: SyntaxError) -> NoReturn:
        # SyntaxError.offset is 1-based and counts characters; 0/None means "at the end".
        col = (exc.offset or 0) - 1
        if col < 0 or (exc.lineno or 1) != 1:
            col = len(self.text.rstrip())
        offset = min(self.shift + col, len(self.source))
        doubled = self.source[offset - 1 : offset + 1] if offset > 0 else ""
        if doubled in ("&&", "||"):
            offset -= 1  # Python blames the second character of `&&` / `||`; point at the first
        message = re.sub(r"\s*\(detected at line \d+\)", "", exc.msg or "invalid syntax")
        message = message.split(". Maybe you meant")[0]
        rest = self.source[offset:]
        word = re.match(r"[A-Za-z_]+", rest)
        previous = self.source[offset - 1 : offset] if offset > 0 else ""
        if rest.startswith("=") and not rest.startswith("==") and previous not in ("<", ">", "!", "="):
            hint = "compare with `==`, not `=`"
        elif rest.startswith(("&&", "||", "&", "|")):
            hint = "combine conditions with `and` / `or`"
        elif rest.startswith("!") and not rest.startswith("!="):
            hint = "negate a condition with `not`"
        elif word and word.group().lower() in ("and", "or", "not", "in", "true", "false", "null"):
            hint = f"write `{word.group().lower()}` in lower case"
        elif offset >= len(self.source.rstrip()):
            hint = f"the expression ends too early; complete it, e.g. {_EXAMPLE}"
        else:
            hint = f"expressions look like {_EXAMPLE}"
        near = _quote(rest, 20) if rest.strip() else "the end"
        self.fail(f"cannot read the expression at {near}: {message}; {hint}", offset)

    # --- conditions --------------------------------------------------------------------------

    def condition(self, node: ast.expr, depth: int) -> _Cond:
        if depth > _MAX_DEPTH:
            self.fail("the expression is nested too deeply; simplify it", self.start(node))
        if isinstance(node, ast.BoolOp):
            parts = [self.condition(v, depth + 1) for v in node.values]
            kind = _And if isinstance(node.op, ast.And) else _Or
            return kind(parts, self.src(node))
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            return _Not(self.condition(node.operand, depth + 1), self.src(node))
        if isinstance(node, ast.Compare):
            return self.compare(node, depth)
        value = self.value(node, depth)
        if value.kind is _Kind.BOOLEAN:
            if isinstance(value, _Lit):
                return _Const(bool(value.value), value.text)
            if isinstance(value, _FieldRef):
                return _Truth(value)
        self.not_a_condition(value)

    def not_a_condition(self, value: _Value) -> NoReturn:
        example = _example(value.field) if isinstance(value, _FieldRef) else "`invoice.amount >= 1000`"
        self.fail(
            f"{_quote(value.text)} is {value.kind.value}, but a policy expression must be a "
            f"condition that is true or false, e.g. {example}",
            value.start,
        )

    def compare(self, node: ast.Compare, depth: int) -> _Cond:
        operand_nodes = [node.left, *node.comparators]
        left = self.value(node.left, depth + 1)
        pairs: list[_Cond] = []
        for i, op_node in enumerate(node.ops):
            op_at = self.between(operand_nodes[i], operand_nodes[i + 1])
            op = _CMP_OPS.get(type(op_node))
            if op is None:  # `is` / `is not`
                self.fail(
                    "`is` is not allowed in policy expressions; test for a missing value with "
                    "`== null` or `!= null`, and compare values with `==` / `!=`",
                    op_at,
                )
            right = self.value(operand_nodes[i + 1], depth + 1)
            text = self.source[left.start : right.end]
            pairs.append(self.pair(left, op, right, op_at, text))
            left = right
        if len(pairs) == 1:
            return pairs[0]
        return _And(pairs, self.src(node))

    def pair(self, left: _Value, op: str, right: _Value, op_at: int, text: str) -> _Cmp:
        """Type-check one comparison, converting literals to the other side's type."""
        if isinstance(left, _ListLit):
            self.fail(
                f"a list like {_quote(left.text)} can only come after `in` or `not in`, "
                f"e.g. `customer.credit_grade in ['A', 'B']`",
                left.start,
            )
        if op in ("in", "not in"):
            return self.membership(left, op, right, op_at, text)
        if isinstance(right, _ListLit):
            self.fail(
                f"a list like {_quote(right.text)} can only come after `in` or `not in`; "
                f"did you mean `in` instead of `{op}`?",
                op_at,
            )
        for side in (left, right):
            if side.kind is _Kind.TAGS:
                self.fail(
                    f"{side.label} is a list of tags and cannot be compared with `{op}`; test "
                    f"for one tag with `'vip' in {side.label}` or `'vip' not in {side.label}`",
                    side.start,
                )
        if isinstance(left, _Lit) and isinstance(right, _Lit):
            self.fail(
                f"{_quote(text)} compares two fixed values; one side must be a field such as "
                f"invoice.open_amount (field names are written without quotes)",
                left.start,
            )
        if _Kind.NULL in (left.kind, right.kind):
            if op not in ("==", "!="):
                self.fail(
                    f"null (unknown) can only be tested with `==` or `!=`, not `{op}`; "
                    f"e.g. `customer.credit_grade == null`",
                    op_at,
                )
            return _Cmp(left, op, right, text)
        if isinstance(left, _Lit):
            left = self.coerce(left, right)
        elif isinstance(right, _Lit):
            right = self.coerce(right, left)
        elif left.kind is not right.kind:
            self.fail(
                f"cannot compare {left.label} ({left.kind.value}) with {right.label} "
                f"({right.kind.value}); compare values of the same kind",
                right.start,
            )
        kind = left.kind
        if op not in ("==", "!=") and kind in (_Kind.TEXT, _Kind.BOOLEAN):
            what = "text" if kind is _Kind.TEXT else "true/false values"
            self.fail(
                f"{what} can only be compared with `==`, `!=`, `in` or `not in`, not `{op}`; "
                f"e.g. `customer.credit_grade in ['A', 'B']`",
                op_at,
            )
        return _Cmp(left, op, right, text)

    def membership(self, left: _Value, op: str, right: _Value, op_at: int, text: str) -> _Cmp:
        if isinstance(right, _ListLit):
            if left.kind is _Kind.TAGS:
                self.fail(
                    f"{left.label} is a list of tags; test for one tag with `'vip' {op} {left.label}`",
                    left.start,
                )
            if left.kind is _Kind.NULL:
                self.fail(
                    "null cannot be looked up in a list; test for a missing value with `== null`",
                    left.start,
                )
            if isinstance(left, _Lit):
                self.fail(
                    f"{_quote(text)} only involves fixed values; put a field before `{op}`, "
                    f"e.g. `customer.credit_grade in ['A', 'B']`",
                    left.start,
                )
            items = [self.coerce(item, left) for item in right.items]
            return _Cmp(left, op, _ListLit(right.start, right.end, right.text, items), text)
        if right.kind is _Kind.TAGS:
            if left.kind is _Kind.NULL:
                self.fail(
                    f"null cannot be looked up in tags; write a tag in quotes, e.g. `'vip' {op} {right.label}`",
                    left.start,
                )
            if left.kind is not _Kind.TEXT:
                if isinstance(left, _Lit):
                    hint = f"put the tag in quotes: `'{left.text}' {op} {right.label}`"
                else:
                    hint = f"e.g. `'vip' {op} {right.label}`"
                self.fail(
                    f"tags are text, but {_quote(left.text)} is {left.kind.value}; {hint}",
                    left.start,
                )
            return _Cmp(left, op, right, text)
        self.fail(
            f"the right side of `{op}` must be a list like ['A', 'B'] or a tags field such as "
            f"customer.tags, not {_quote(right.text)} ({right.kind.value})",
            right.start,
        )

    def coerce(self, lit: _Lit, target: _Value) -> _Lit:
        """`lit` converted to the kind of `target`, or an error saying what to write."""
        want = target.kind
        target_text = target.label if isinstance(target, _FieldRef) else _quote(target.text)
        if want is _Kind.NUMBER:
            if lit.kind is _Kind.NUMBER:
                value = lit.value
                if isinstance(value, int) and not target.integer:
                    value = Decimal(value)  # amounts compare Decimal to Decimal, exactly
                return lit.converted(_Kind.NUMBER, value)
            if lit.kind is _Kind.TEXT and _parse_number(lit.value) is not None:
                hint = f"write the number without quotes: {lit.value.strip()}"
            else:
                hint = "compare it with a number, e.g. 1000"
        elif want is _Kind.TEXT:
            if lit.kind is _Kind.TEXT:
                return lit
            hint = f"put text values in quotes: '{lit.text}'"
        elif want is _Kind.DATE:
            if lit.kind is _Kind.TEXT:
                return lit.converted(_Kind.DATE, self.parse_date(lit))
            hint = "write dates in quotes as 'YYYY-MM-DD', e.g. '2026-01-31'"
        elif want is _Kind.BOOLEAN:
            if lit.kind is _Kind.BOOLEAN:
                return lit
            if lit.kind is _Kind.TEXT and lit.value.strip().lower() in ("true", "false"):
                hint = f"write {lit.value.strip().lower()} without quotes"
            else:
                hint = "compare it with true or false"
        else:  # pragma: no cover - lists, tags and null are handled by the callers
            hint = "compare values of the same kind"
        self.fail(
            f"{target_text} is {want.value}, but {_quote(lit.text)} is {lit.kind.value}; {hint}",
            lit.start,
        )

    def parse_date(self, lit: _Lit) -> date:
        text = lit.value
        if not _DATE_RE.fullmatch(text):
            self.fail(
                f"{_quote(lit.text)} is not a date; write dates as 'YYYY-MM-DD', e.g. '2026-01-31'",
                lit.start,
            )
        try:
            return date.fromisoformat(text)
        except ValueError as exc:
            self.fail(
                f"{_quote(lit.text)} is not a valid date ({exc}); write an existing date as 'YYYY-MM-DD'",
                lit.start,
            )

    # --- values ------------------------------------------------------------------------------

    def value(self, node: ast.expr, depth: int) -> _Value:
        if depth > _MAX_DEPTH:
            self.fail("the expression is nested too deeply; simplify it", self.start(node))
        if isinstance(node, ast.Constant):
            return self.constant(node)
        if isinstance(node, ast.Name):
            return self.name(node)
        if isinstance(node, ast.Attribute):
            return self.field(node)
        if isinstance(node, ast.UnaryOp):
            return self.unary(node, depth)
        if isinstance(node, ast.BinOp):
            return self.binary(node, depth)
        if isinstance(node, (ast.List, ast.Tuple, ast.Set)):
            return self.list(node, depth)
        if isinstance(node, (ast.Compare, ast.BoolOp)):
            self.fail(
                f"{_quote(self.src(node))} is a condition and cannot be used as a value here; "
                f"combine conditions with `and`, `or` and `not`",
                self.start(node),
            )
        what = _FORBIDDEN_NODES.get(type(node), f"{type(node).__name__} expressions")
        self.fail(
            f"{what} like {_quote(self.src(node))} are not allowed in policy expressions; "
            f"use fields, values, comparisons, `in`, and `and`/`or`/`not`, e.g. {_EXAMPLE}",
            self.start(node),
        )

    def constant(self, node: ast.Constant) -> _Lit:
        start, end, text = self.start(node), self.end(node), self.src(node)
        value = node.value
        if value is None:
            return _Lit(start, end, text, _Kind.NULL, None)
        if isinstance(value, bool):
            return _Lit(start, end, text, _Kind.BOOLEAN, value)
        if isinstance(value, int):
            return _Lit(start, end, text, _Kind.NUMBER, value)
        if isinstance(value, float):
            # The source text, not the float, is what finance meant: 0.1 is Decimal('0.1').
            number = _parse_number(text)
            if number is None:
                number = Decimal(str(value))
            if not number.is_finite():
                self.fail(f"{_quote(text)} is not a usable number; write an ordinary number", start)
            return _Lit(start, end, text, _Kind.NUMBER, number)
        if isinstance(value, str):
            return _Lit(start, end, text, _Kind.TEXT, value)
        what = {bytes: "byte strings", complex: "complex numbers"}.get(type(value), "values")
        self.fail(
            f"{what} like {_quote(text)} are not allowed in policy expressions; use text in "
            f"quotes, numbers, dates in quotes, true, false or null",
            start,
        )

    def name(self, node: ast.Name) -> _Lit:
        start, end, text, name = self.start(node), self.end(node), self.src(node), node.id
        if name == "true" or name == "false":
            return _Lit(start, end, text, _Kind.BOOLEAN, name == "true")
        if name == "null":
            return _Lit(start, end, text, _Kind.NULL, None)
        if name.startswith("_"):
            self.fail(
                f"names starting with '_' like {_quote(name)} are not allowed in policy expressions",
                start,
            )
        if name in ROOTS or name in self.roots:
            self.root_allowed(name, start)
            example = next((f for f in self.allowed_fields() if f.startswith(name + ".")), "")
            self.fail(
                f"{_quote(name)} on its own is not a field; name one of its fields, e.g. {example}",
                start,
            )
        lowered = name.lower()
        canonical = {"true": "true", "false": "false", "null": "null", "none": "null"}.get(lowered)
        if canonical:
            self.fail(f"write {canonical} in lower case, not {name}", start)
        suggestion = self.suggest(name)
        if suggestion:
            self.fail(f"unknown name '{name}'; {self.did_you_mean(suggestion)}", start)
        self.fail(
            f"unknown name '{name}'; fields are written with their root, e.g. "
            f"invoice.open_amount, and text values go in quotes, e.g. '{name}'",
            start,
        )

    def field(self, node: ast.Attribute) -> _FieldRef:
        start, end, text = self.start(node), self.end(node), self.src(node)
        parts: list[str] = []
        current: ast.expr = node
        while isinstance(current, ast.Attribute):
            parts.append(current.attr)
            current = current.value
        if not isinstance(current, ast.Name):
            self.fail(
                f"attribute access like {_quote(text)} is not allowed in policy expressions; "
                f"only fields like invoice.open_amount have a dot",
                start,
            )
        parts.append(current.id)
        parts.reverse()
        dotted = ".".join(parts)
        for part in parts:
            if part.startswith("_"):
                self.fail(
                    f"names starting with '_' like {_quote(dotted)} are not allowed in policy "
                    f"expressions; use a field such as invoice.open_amount",
                    start,
                )
        if parts[0] in ROOTS:
            self.root_allowed(parts[0], start)
        field = FIELDS.get(dotted)
        if field is not None and field.root in self.roots:
            return _FieldRef(start, end, text, field)
        if field is not None:  # a registry root not in ROOTS, and not allowed here
            self.root_allowed(field.root, start)
        base = ".".join(parts[:2])
        if len(parts) > 2 and base in FIELDS:
            self.fail(
                f"{base} has no parts; {_quote(dotted)} is not a field. Use {base} itself",
                start,
            )
        suggestion = self.suggest(dotted)
        if suggestion:
            self.fail(f"unknown field '{dotted}'; {self.did_you_mean(suggestion)}", start)
        if parts[0] in self.roots:
            prefix = parts[0] + "."
            names = ", ".join(f.removeprefix(prefix) for f in self.allowed_fields() if f.startswith(prefix))
            self.fail(f"unknown field '{dotted}'; {parts[0]} fields are: {names}", start)
        roots = " or ".join(f"{r}." for r in self.roots)
        self.fail(f"unknown field '{dotted}'; fields start with {roots}, e.g. invoice.open_amount", start)

    def root_allowed(self, root: str, offset: int) -> None:
        if root not in self.roots:
            allowed = ", ".join(f"{r}.*" for r in self.roots) or "none"
            self.fail(f"'{root}' fields are not available here; use one of: {allowed}", offset)

    def allowed_fields(self) -> list[str]:
        return [name for name, f in FIELDS.items() if f.root in self.roots]

    def suggest(self, name: str) -> str | None:
        """The field the user most likely meant, preferring fields usable here."""
        return _closest(name, list(FIELDS), prefer=self.roots)

    def did_you_mean(self, suggestion: str) -> str:
        root = FIELDS[suggestion].root
        if root in self.roots:
            return f"did you mean '{suggestion}'?"
        allowed = ", ".join(f"{r}.*" for r in self.roots) or "none"
        return f"'{suggestion}' exists, but '{root}' fields are not available here (use one of: {allowed})"

    def unary(self, node: ast.UnaryOp, depth: int) -> _Value:
        start, end, text = self.start(node), self.end(node), self.src(node)
        if isinstance(node.op, ast.Not):
            self.fail(
                f"{_quote(text)} is a condition and cannot be used as a value here; "
                f"combine conditions with `and`, `or` and `not`",
                start,
            )
        if isinstance(node.op, ast.Invert):
            self.fail("`~` is not allowed in policy expressions; negate a condition with `not`", start)
        operand = self.value(node.operand, depth + 1)
        sign = "-" if isinstance(node.op, ast.USub) else "+"
        if operand.kind is not _Kind.NUMBER:
            self.fail(
                f"`{sign}` works only on numbers, but {_quote(operand.text)} is {operand.kind.value}",
                start,
            )
        if isinstance(node.op, ast.UAdd):
            return operand
        if isinstance(operand, _Lit):
            return _Lit(start, end, text, _Kind.NUMBER, -operand.value)
        return _Arith(start, end, text, "neg", (operand,))

    def binary(self, node: ast.BinOp, depth: int) -> _Value:
        start, end, text = self.start(node), self.end(node), self.src(node)
        op_at = self.between(node.left, node.right)
        sign = _BIN_OPS.get(type(node.op))
        if sign is None:
            symbol = _FORBIDDEN_BIN_OPS.get(type(node.op), "this operator")
            if symbol in ("&", "|"):
                hint = "combine conditions with `and` / `or`"
            else:
                hint = "only `+`, `-` and `*` between numbers are allowed"
            self.fail(f"`{symbol}` is not allowed in policy expressions; {hint}", op_at)
        left = self.value(node.left, depth + 1)
        right = self.value(node.right, depth + 1)
        for side in (left, right):
            if side.kind is not _Kind.NUMBER:
                self.fail(
                    f"`{sign}` works only on numbers, but {_quote(side.text)} is {side.kind.value}",
                    side.start,
                )
        if isinstance(left, _Lit) and isinstance(right, _Lit):
            try:
                folded = _ARITH_OPS[sign](left.value, right.value)
            except ArithmeticError:
                self.fail(f"{_quote(text)} cannot be computed; use a smaller number", start)
            return _Lit(start, end, text, _Kind.NUMBER, folded)
        return _Arith(start, end, text, sign, (left, right))

    def list(self, node: ast.List | ast.Tuple | ast.Set, depth: int) -> _ListLit:
        start, end, text = self.start(node), self.end(node), self.src(node)
        items: list[_Lit] = []
        for element in node.elts:
            item = self.value(element, depth + 1)
            if not isinstance(item, _Lit):
                self.fail(
                    f"list items must be fixed values such as 'A' or 100, not {_quote(item.text)}",
                    item.start,
                )
            if item.kind is _Kind.NULL:
                self.fail(
                    "null cannot be a list item; test for a missing value with `== null`",
                    item.start,
                )
            items.append(item)
        if not items:
            self.fail("the list is empty; put the values to match in it, e.g. ['A', 'B']", start)
        return _ListLit(start, end, text, items)


def _parse_number(text: str) -> Decimal | None:
    try:
        number = Decimal(text.strip())
    except (InvalidOperation, ValueError):
        return None
    return number if number.is_finite() else None


def _closest(name: str, candidates: list[str], prefer: Sequence[str]) -> str | None:
    """Closest dotted field name to `name` (which may lack a root), or None.

    Ties go to fields under the typed root, then to fields under the `prefer`red roots.
    """
    lowered = name.lower()
    typed_root = lowered.split(".", 1)[0] if "." in lowered else ""

    def rank(candidate: str) -> tuple[bool, bool]:
        root = candidate.split(".", 1)[0]
        return (root not in prefer, root != typed_root)

    ranked = sorted(candidates, key=rank)  # stable: registry order within a rank
    for candidate in ranked:
        if candidate.lower() == lowered:
            return candidate
    leaf = lowered.rsplit(".", 1)[-1]
    # Same leaf under another root (customer.open_amount -> invoice.open_amount).
    for candidate in ranked:
        if candidate.rsplit(".", 1)[-1] == leaf:
            return candidate
    # Whole words of a longer name (customer.grade -> customer.credit_grade); checked before
    # spelling similarity, which would prefer the unrelated but similar-looking customer.name.
    words = set(leaf.split("_"))
    for candidate in ranked:
        if words <= set(candidate.rsplit(".", 1)[-1].split("_")):
            return candidate
    if "." in name:
        match = difflib.get_close_matches(lowered, ranked, n=1, cutoff=0.75)
        if match:
            return match[0]
    leaves: dict[str, str] = {}
    for candidate in ranked:
        leaves.setdefault(candidate.rsplit(".", 1)[-1], candidate)
    match = difflib.get_close_matches(leaf, list(leaves), n=1, cutoff=0.7)
    return leaves[match[0]] if match else None
