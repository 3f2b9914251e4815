"""The checker of the expression language: a parsed tree to typed evaluator nodes, or a located error.

It walks the `ast` tree the parser made and accepts only a whitelist of node kinds (comparisons, and/or/not,
fields, literals, lists after `in`, `+ - *` on numbers); everything else is refused with a message saying
what to write instead. Fields are looked up in the one registry (`engine.policy.facts.FIELDS`), literals are
converted to the field's type (ISO dates, exact decimals), and type mismatches are refused, so an
expression that loads cannot fail with a type error at evaluation time.
"""

from __future__ import annotations

import ast
import difflib
import re
from collections.abc import Sequence
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import NoReturn

from engine.policy.expressions.evaluator import (
    _ARITH_OPS,
    _And,
    _Arith,
    _Cmp,
    _Cond,
    _Const,
    _example,
    _FieldRef,
    _Kind,
    _ListLit,
    _Lit,
    _Not,
    _Or,
    _quote,
    _Truth,
    _Value,
)
from engine.policy.expressions.parser import _EXAMPLE, _Source
from engine.policy.facts import FIELDS, ROOTS, FieldType

#: Deepest nesting accepted; evaluation recurses once per level.
_MAX_DEPTH = 60
#: The largest number that may be written in an expression, and the most digits after its point.
MAX_LITERAL = Decimal(10) ** 15
MAX_PLACES = 28
#: The largest magnitude arithmetic may reach for facts within FIELD_BOUNDS: far below where decimal
#: arithmetic overflows (10^999999), so an expression that checks cannot overflow on the values we store.
MAX_COMPUTED = Decimal(10) ** 100
#: How large a field's value can be. Amounts are below 10^14 at import (10^20 in the database column);
#: a customer's totals add up many of them and a utilisation divides by a limit: 10^30 covers them all.
#: Whole numbers are days (at most 3.7 million between 0001 and 9999) and counts of invoices.
FIELD_BOUNDS = {FieldType.DECIMAL: Decimal(10) ** 30, FieldType.INTEGER: Decimal(10) ** 12}
_DATE_RE = re.compile(r"\d{4}-\d{2}-\d{2}")

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


class _Checker(_Source):
    """Turns one source text into a _Cond tree, or raises ExpressionError."""

    def __init__(self, source: str, roots: tuple[str, ...]) -> None:
        super().__init__(source)
        self.roots = roots

    def check(self) -> _Cond:
        tree = self.tree()
        try:
            return self.condition(tree.body, 0)
        except RecursionError:
            self.fail("the expression is nested too deeply; simplify it", 0)

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
            self.check_literal(Decimal(value), text, start)
            return _Lit(start, end, text, _Kind.NUMBER, value)
        if isinstance(value, float):
            # The source text, not the float, is what finance meant: 0.1 is Decimal('0.1').
            number = _parse_number(text)
            if number is None:
                number = Decimal(str(value))
            if not number.is_finite():
                self.fail(f"{_quote(text)} is not a usable number; write an ordinary number", start)
            self.check_literal(number, text, start)
            return _Lit(start, end, text, _Kind.NUMBER, number)
        if isinstance(value, str):
            return _Lit(start, end, text, _Kind.TEXT, value)
        what = {bytes: "byte strings", complex: "complex numbers"}.get(type(value), "values")
        self.fail(
            f"{what} like {_quote(text)} are not allowed in policy expressions; use text in "
            f"quotes, numbers, dates in quotes, true, false or null",
            start,
        )

    def check_literal(self, number: Decimal, text: str, start: int) -> None:
        """A number as written must be within MAX_LITERAL and MAX_PLACES (the README's bounds table)."""
        # copy_abs and as_tuple work without the decimal context: abs() and normalize() would overflow on 1e999999999
        if number.copy_abs() > MAX_LITERAL:
            self.fail(
                f"{_quote(text)} is over the limit of 10^15 for a number in a policy expression; "
                "amounts and counts are far smaller, so write the number you mean",
                start,
            )
        _, digits, exponent = number.as_tuple()
        trailing_zeros = len(digits) - len("".join(map(str, digits)).rstrip("0"))
        if number and isinstance(exponent, int) and exponent + trailing_zeros < -MAX_PLACES:
            self.fail(
                f"{_quote(text)} has more than {MAX_PLACES} digits after the point (the limit in policy "
                "expressions); round it",
                start,
            )

    def check_computed(self, bound: Decimal, text: str, start: int, fixed: bool) -> Decimal:
        """Refuse arithmetic that can grow beyond MAX_COMPUTED for facts within FIELD_BOUNDS."""
        if bound > MAX_COMPUTED:
            reach = (
                f"is about 10^{bound.adjusted()}"
                if fixed
                else f"can grow to about 10^{bound.adjusted()} (amounts may be up to 10^30, whole numbers up to 10^12)"
            )
            self.fail(
                f"{_quote(text)} {reach}, over the limit of 10^100 for what a policy expression computes; "
                "simplify the arithmetic",
                start,
            )
        return bound

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
        return _Arith(start, end, text, "neg", (operand,), _magnitude(operand))

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
        # Range analysis: the largest magnitude the result can take, from its operands' (exact decimals; the
        # operands are each within MAX_COMPUTED, so this cannot overflow).
        a, b = _magnitude(left), _magnitude(right)
        fixed = isinstance(left, _Lit) and isinstance(right, _Lit)
        bound = self.check_computed(a * b if sign == "*" else a + b, text, start, fixed)
        if isinstance(left, _Lit) and isinstance(right, _Lit):
            try:
                folded = _ARITH_OPS[sign](left.value, right.value)
            except ArithmeticError:
                self.fail(f"{_quote(text)} cannot be computed; use a smaller number", start)
            return _Lit(start, end, text, _Kind.NUMBER, folded)
        return _Arith(start, end, text, sign, (left, right), bound)

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


def _magnitude(value: _Value) -> Decimal:
    """The largest absolute value `value` can take for facts within FIELD_BOUNDS."""
    if isinstance(value, _Lit):
        return Decimal(value.value).copy_abs()
    if isinstance(value, _Arith):
        return value.bound
    if isinstance(value, _FieldRef):
        return FIELD_BOUNDS[value.field.type]
    raise AssertionError(f"not a number: {value.text}")  # pragma: no cover - the callers check the kind


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
