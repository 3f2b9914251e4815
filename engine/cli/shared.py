"""What every command family of the `dunning` CLI shares: the Typer app, options, output and error handling.

Every command is a thin shell over `engine.app.Dunning`.

Exit codes: 0 success; 1 bad input, a refused action or (for a command that only reads) no database yet —
the message says what to do; 2 wrong usage.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console

from engine.app import Dunning, json_ready
from engine.clock import iso, parse_instant
from engine.config import Settings, load_settings
from engine.errors import DunningError, ImportRejected, PolicyError

app = typer.Typer(
    name="dunning",
    help="A rules-driven collections engine: YAML policies escalate overdue invoices through stages.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
import_app = typer.Typer(help="Load customers, invoices or payments from CSV or JSON Lines (all-or-nothing).")
policy_app = typer.Typer(help="Validate the YAML policies and print their JSON Schema.")
app.add_typer(import_app, name="import")
app.add_typer(policy_app, name="policy")

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)
T = TypeVar("T")


class State:
    config: Path | None = None
    _settings: Settings | None = None

    def settings(self) -> Settings:
        if self._settings is None:
            self._settings = load_settings(self.config)
        return self._settings

    def dunning(self) -> Dunning:
        return Dunning(self.settings())

    def reader(self) -> Dunning:
        """For a command that only reads (READ_ONLY_COMMANDS): a missing database is an error (exit 1)
        saying how to create one, and no file or table is made."""
        return Dunning(self.settings(), create=False)


state = State()


@app.callback()
def main_options(
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            "-c",
            envvar="DUNNING_CONFIG",
            help="Configuration file (default: ./config.yaml if present, else built-in defaults).",
        ),
    ] = None,
) -> None:
    state.config = config
    state._settings = None


def guarded(action: Callable[[], T]) -> T:
    """Run an action; our own errors become a clear message and exit code 1, never a traceback."""
    try:
        return action()
    except PolicyError as exc:
        for problem in exc.problems:
            err.print(str(problem), markup=False)
        errors = sum(1 for p in exc.problems if p.severity == "error")
        err.print(f"error: {errors} problem(s) in the policies; fix them and try again", markup=False)
        raise typer.Exit(1) from None
    except ImportRejected as exc:
        for problem in exc.problems:
            err.print(str(problem), markup=False)
        err.print(f"error: {len(exc.problems)} problem(s) in {exc.path}; nothing was imported", markup=False)
        raise typer.Exit(1) from None
    except DunningError as exc:
        err.print(f"error: {exc}", markup=False)
        raise typer.Exit(1) from None


def emit_json(value: Any) -> None:
    sys.stdout.write(json.dumps(json_ready(value), indent=2, ensure_ascii=False) + "\n")


def instant(text: str | None, settings: Settings) -> datetime | None:
    return parse_instant(text, settings.zone) if text else None


def sweep_instant(text: str | None, dunning: Dunning, *, allow_future: bool) -> datetime | None:
    """`--as-of` of a command that writes as of that instant: not further ahead of the clock than
    `max_future_days` unless the user says `--allow-future` (sweeps never go back, so a typo would stick)."""
    at = instant(text, dunning.settings)
    if at is None or allow_future:
        return at
    now = dunning.clock.now()
    margin = dunning.settings.max_future_days
    if at > now + timedelta(days=margin):
        raise DunningError(
            f"--as-of {text} is {(at - now).days} days ahead of the clock ({iso(now)}); a sweep in the future "
            "blocks every later sweep until that day. Check the date for a typo, or add --allow-future if you "
            f"mean it (the margin is `max_future_days: {margin}` in the configuration)"
        )
    return at


AllowFuture = Annotated[
    bool,
    typer.Option("--allow-future", help="Allow an --as-of further ahead of the clock than max_future_days."),
]


AsOf = Annotated[
    str | None,
    typer.Option("--as-of", help="ISO date or datetime; a bare date is midnight in the company time zone."),
]
Json = Annotated[bool, typer.Option("--json", help="Print JSON for scripts and integrations.")]


Progress = Annotated[
    bool | None,
    typer.Option("--progress/--no-progress", help="A progress bar on stderr (default: when stderr is a terminal)."),
]
