"""The one exception tree of dunning.

Every message says what went wrong *and* what to do about it; the CLI prints it as is. Library exceptions
are translated where the library is used (`raise TransientDeliveryError(...) from exc`), so callers only
ever catch these.

    DunningError
    ├── ConfigError              the configuration file or environment is wrong
    │   ├── NoDatabase           a read-only command found no dunning database (and created none)
    │   └── AuditKeyMissing      the event log is keyed and $DUNNING_AUDIT_KEY is not set (nothing written)
    ├── PolicyError              one or more policy files are invalid (carries Problems)
    ├── ExpressionError          a `when` / `applies_to` expression is invalid (offset into its text)
    ├── EvaluationError          an expression cannot be computed on one invoice's values (the invoice is held)
    ├── TemplateProblem          a notification template is missing, unreadable or fails to render
    ├── ImportRejected           an import file has bad rows; nothing was written (carries RowProblems)
    ├── IllegalTransition        a move the state machine does not allow; nothing changed
    ├── ActionRefused            a collector action that does not fit the invoice as it is; nothing changed
    ├── TaskRefused              a task completion that cannot be accepted as given; nothing changed
    ├── SweepRefused             a sweep at an instant earlier than the latest one
    │   └── SweepBusy            another process is sweeping the same database right now
    ├── NotFound                 an invoice, customer, task or notification that does not exist
    ├── DatabaseBusy             another process held the SQLite database for longer than we wait
    ├── ChargesError             a charge cannot be computed (a reference rate unknown for a day it needs)
    ├── AccountError             a web account that cannot be made or changed as asked (name taken, bad role)
    ├── PermissionRefused        the user's role (or a collector's owner scope) does not allow the action
    ├── CreditRefused            a credit action that cannot be done as asked (no credit policy, unknown grade)
    ├── LinkRefused              a customer link that is tampered with, expired or used for another customer
    ├── ClaimRefused             a customer's "I have paid" or "I dispute this" that cannot be taken as given
    ├── SimulationError          a simulation cannot run as asked (bad dates, an unusable database)
    ├── ReportError              a report cannot be built as asked (unknown report, bad buckets)
    ├── InboundError             a mailbox cannot be read, or an inbound message cannot be applied as asked
    ├── DaemonError              the daemon cannot start or run as configured
    │   └── DaemonAlreadyRunning another daemon holds the single-daemon lock of this SQLite database
    └── DeliveryError            a channel could not deliver
        ├── TransientDeliveryError   try again later: timeouts, connection refused, and what the
        │                            channel's protocol calls temporary (SMTP 4xx; HTTP 408/425/429/5xx)
        └── PermanentDeliveryError   will never succeed as is: no address, and what the protocol calls
                                     final (SMTP 5xx; any other HTTP 4xx)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


class DunningError(Exception):
    """Base of every error dunning raises on purpose."""


class ConfigError(DunningError):
    pass


class NoDatabase(ConfigError):
    """A command that only reads found no dunning database (and created none)."""


class AuditKeyMissing(ConfigError):
    """The event log's newest event is keyed (HMAC) and this process has no key: appending unkeyed events
    would weaken the chain, so nothing is written."""


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


class EvaluationError(DunningError):
    """A compiled expression could not be computed for one invoice's facts (a value outside the documented
    bounds, such as a NaN amount written into the database by hand): arithmetic overflowed or a
    comparison had no answer. `origin` is where the expression is written (FILE:LINE:COLUMN, or "")."""

    def __init__(self, source: str, origin: str, reason: str):
        self.source = source
        self.origin = origin
        self.reason = reason
        where = f"{origin}: " if origin else ""
        super().__init__(f"{where}`{source}` cannot be computed for these values ({reason})")


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


class ActionRefused(DunningError):
    """A collector action that does not make sense for this invoice as it is; nothing was changed."""


class TaskRefused(DunningError):
    """A task completion that cannot be accepted as given; nothing was changed."""


class TemplateProblem(DunningError):
    """A notification template is missing, unreadable or fails to render."""


class SweepRefused(DunningError):
    pass


class DatabaseBusy(DunningError):
    """Another process kept the (SQLite) database locked for longer than `database_busy_seconds`; nothing
    was written. The message names the holder when it is a dunning process."""


class SweepBusy(SweepRefused):
    """Another process (a daemon on the same PostgreSQL) is sweeping right now; its sweep covers this one."""


class NotFound(DunningError):
    pass


class CreditRefused(DunningError):
    """A credit desk action refused as asked (engine.credit); nothing changed."""


class SimulationError(DunningError):
    """A simulation cannot run as asked (bad dates, an unusable database); the message says what to do."""


class ReportError(DunningError):
    """A report cannot be built as asked."""


class DaemonError(DunningError):
    """The daemon cannot start or run as configured."""


class DaemonAlreadyRunning(DaemonError):
    """Another daemon holds the single-daemon lock of this SQLite database."""


class ChargesError(DunningError):
    """Interest or compensation cannot be computed as the policy asks; the message names the file to fix."""


class AccountError(DunningError):
    pass


class PermissionRefused(DunningError):
    pass


class LinkRefused(DunningError):
    """A customer link that does not check out; the page says nothing more than that (no customer data)."""


class ClaimRefused(DunningError):
    """A customer's claim or dispute that cannot be taken as given (nothing was recorded)."""


class DeliveryError(DunningError):
    pass


class TransientDeliveryError(DeliveryError):
    pass


class PermanentDeliveryError(DeliveryError):
    pass


class InboundError(DunningError):
    """Inbound mail cannot be read or applied as asked: a mailbox that refuses us, an unknown message."""
