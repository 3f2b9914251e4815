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

Three modules, one step each: `parser` (text to a Python `ast` tree, with character offsets for errors),
`checker` (the tree to typed nodes: the whitelist, field look-ups, literal conversion, type errors) and
`evaluator` (the nodes: closures that evaluate, and plain-words explanations). This module is the public
face: `compile_expression` and `CompiledExpression`.

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

Bounds
    A number written in an expression is at most 10^15 in size with at most 28 digits after the point,
    and the checker bounds what arithmetic can compute from the fields' own bounds (`checker.FIELD_BOUNDS`):
    an expression that could go beyond 10^100 is refused when the policy loads, so arithmetic on the
    values the engine stores cannot overflow. Facts outside those bounds (a NaN amount written into
    the database by hand) make `evaluate` raise `EvaluationError` naming the expression
    and where it is written (`origin`), never a bare decimal exception.
"""

from __future__ import annotations

import decimal
from collections.abc import Collection
from typing import Any

from engine.errors import EvaluationError, ExpressionError
from engine.policy.expressions.checker import _Checker
from engine.policy.expressions.evaluator import Facts, _Cond, _Predicate, _quote, _word
from engine.policy.expressions.parser import _EXAMPLE, MAX_LENGTH
from engine.policy.facts import FIELDS, ROOTS, Field, FieldType

__all__ = [
    "FIELDS",
    "MAX_LENGTH",
    "ROOTS",
    "CompiledExpression",
    "Field",
    "FieldType",
    "compile_expression",
]


# --------------------------------------------------------------------------------------------
# The compiled expression
# --------------------------------------------------------------------------------------------


class CompiledExpression:
    """A parsed, type-checked expression; satisfies `engine.policy.model.Expression`.

    Build one with `compile_expression`. Instances are immutable, thread-safe, compare equal when
    their source and roots are equal, and pickle by recompiling their source.
    """

    __slots__ = ("_fn", "_root", "fields", "origin", "roots", "source")

    source: str
    fields: frozenset[str]
    roots: tuple[str, ...]
    #: Where the expression is written (FILE:LINE:COLUMN) for messages; "" when unknown. Not part of equality.
    origin: str
    _root: _Cond
    _fn: _Predicate

    def __init__(self, source: str, root: _Cond, roots: tuple[str, ...], origin: str = "") -> None:
        init = object.__setattr__  # instances are shared by policies and threads: no mutation
        init(self, "source", source)
        init(self, "roots", roots)
        init(self, "origin", origin)
        init(self, "fields", frozenset(root.field_names()))
        init(self, "_root", root)
        init(self, "_fn", root.fn)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"CompiledExpression is immutable; cannot set {name!r}")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"CompiledExpression is immutable; cannot delete {name!r}")

    def evaluate(self, facts: Facts) -> bool:
        """Whether the condition holds for `facts` (dotted field name -> value; missing = None).

        EvaluationError when a value is outside the bounds the checker assumed (see the module docstring)."""
        try:
            return self._fn(facts)
        except ArithmeticError as exc:  # decimal.Overflow, InvalidOperation (NaN compared), ...
            raise EvaluationError(self.source, self.origin, _arithmetic_reason(exc)) from None

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
        return (_recompile, (self.source, self.roots, self.origin))


def _recompile(source: str, roots: tuple[str, ...], origin: str = "") -> CompiledExpression:
    return compile_expression(source, roots=roots, origin=origin)


def _arithmetic_reason(exc: ArithmeticError) -> str:
    if isinstance(exc, decimal.Overflow):
        return "the arithmetic overflows"
    if isinstance(exc, decimal.InvalidOperation):
        return "a value is not a number (NaN) or the operation has no result"
    return f"arithmetic error: {type(exc).__name__}"


def compile_expression(source: str, *, roots: Collection[str] = ROOTS, origin: str = "") -> CompiledExpression:
    """Parse and type-check `source`; only fields under `roots` may be used.

    Raises ExpressionError (with a 0-based character offset into `source` and a message saying
    what to write instead) for syntax errors, constructs outside the language, unknown fields,
    fields of roots not allowed here, type mismatches, expressions that are not conditions, and numbers
    or arithmetic beyond the bounds (module docstring). `origin` (FILE:LINE:COLUMN) names the expression's
    place in messages raised while evaluating it.
    """
    if not isinstance(source, str):
        raise ExpressionError(f"an expression must be text, not {type(source).__name__}; e.g. {_EXAMPLE}", 0)
    if isinstance(roots, str):  # roots="customer" would otherwise mean the roots c, u, s, ...
        roots = (roots,)
    # A stable order keeps messages and equality independent of how the caller spelt `roots`.
    given = set(roots)
    ordered = tuple(r for r in ROOTS if r in given) + tuple(sorted(given - set(ROOTS)))
    checker = _Checker(source, ordered)
    return CompiledExpression(source, checker.check(), checker.roots, origin)
