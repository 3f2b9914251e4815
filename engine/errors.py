"""The one exception tree of dunning.

Every message says what went wrong *and* what to do about it; the CLI prints it as is.

    DunningError
    ├── ConfigError            the configuration file or environment is wrong
    ├── PolicyError            one or more policy files are invalid (carries Problems)
    ├── ExpressionError        a `when` / `applies_to` expression is invalid (offset into its text)
    ├── ImportRejected         an import file has bad rows; nothing was written (carries RowProblems)
    ├── IllegalTransition      a move the state machine does not allow; nothing changed
    ├── SweepRefused           a sweep at an instant earlier than the latest one
    ├── NotFound               an invoice, customer or notification that does not exist
    ├── DatabaseBusy           another process held the SQLite database for longer than we wait
    └── DeliveryError          a channel could not deliver
        ├── TransientDeliveryError   try again later (timeouts, 4xx, connection refused)
        └── PermanentDeliveryError   will never succeed as is (5xx, no address)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


class DunningError(Exception):
    """Base of every error dunning raises on purpose."""


class ConfigError(DunningError):
    pass


@dataclass(frozen=True, order=True)
class Problem:
    """One finding about a file, located the way editors and compilers do it."""

    file: str
    line: int
    column: int
    message: str
    severity: str = "error"  # "error" or "warning"

    def __str__(self) -> str:
        prefix = "" if self.severity == "error" else "warning: "
        return f"{self.file}:{self.line}:{self.column}: {prefix}{self.message}"


class PolicyError(DunningError):
    """Policies failed validation. `problems` lists every finding, errors and warnings."""

    def __init__(self, problems: list[Problem]):
        self.problems = sorted(problems)
        errors = [p for p in self.problems if p.severity == "error"]
        lines = "\n".join(str(p) for p in errors)
        super().__init__(f"{len(errors)} problem(s) in the policies:\n{lines}")


class ExpressionError(DunningError):
    """An expression failed to parse or type-check. `offset` is 0-based into its source text."""

    def __init__(self, message: str, offset: int = 0):
        self.message = message
        self.offset = offset
        super().__init__(message)


@dataclass(frozen=True)
class RowProblem:
    file: str
    row: int  # 1-based data row number; the CSV header is row 1, so the first data row is 2
    column: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.row}: {self.column}: {self.message}"


class ImportRejected(DunningError):
    def __init__(self, path: Path | str, problems: list[RowProblem]):
        self.path = str(path)
        self.problems = problems
        lines = "\n".join(str(p) for p in problems)
        super().__init__(
            f"{self.path}: {len(problems)} bad row value(s); nothing was imported. "
            f"Fix them and import the file again:\n{lines}"
        )


class IllegalTransition(DunningError):
    pass


class SweepRefused(DunningError):
    pass


class DatabaseBusy(DunningError):
    """Another process kept the (SQLite) database locked for longer than `database_busy_seconds`; nothing
    was written. The message names the holder when it is a dunning process."""


class SweepBusy(SweepRefused):
    """Another process (a daemon on the same PostgreSQL) is sweeping right now; its sweep covers this one."""


class NotFound(DunningError):
    pass


class DeliveryError(DunningError):
    pass


class TransientDeliveryError(DeliveryError):
    pass


class PermanentDeliveryError(DeliveryError):
    pass
