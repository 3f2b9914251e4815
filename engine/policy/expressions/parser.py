"""The parser of the expression language: text to a Python `ast` tree, with offsets into the text.

Only `ast.parse` in eval mode is used; nothing is ever handed to eval/exec/compile. Line breaks (YAML
folding) count as spaces, and every position is a 0-based *character* offset into the source as written,
so an `ExpressionError` can point at the exact spot. What the tree may contain is the checker's concern.
"""

from __future__ import annotations

import ast
import re
from typing import NoReturn

from engine.errors import ExpressionError
from engine.policy.expressions.evaluator import _quote

#: Longest expression accepted; real conditions are a line or two, and the cap bounds parse work.
MAX_LENGTH = 10_000

_EXAMPLE = "`invoice.open_amount >= 50000 and customer.credit_grade in ['A', 'B']`"


class _Source:
    """One expression's text: parsed once, with offsets from ast's byte columns back to characters."""

    def __init__(self, source: str) -> None:
        self.source = source
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

    # --- parsing -----------------------------------------------------------------------------

    def tree(self) -> ast.Expression:
        """The parsed text; ExpressionError for empty, oversized or unreadable text."""
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
        return self.parse()

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
