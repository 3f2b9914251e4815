"""The `dunning` command line: the Typer app of `engine.cli.shared` with every command family registered.

Exit codes: 0 success; 1 bad input or a refused action (the message says what to do); 2 wrong usage.
Each family lives in its own module and registers its commands on `app` when imported; adding a family is
one import line here.
"""

from __future__ import annotations

# The everyday commands first: `dunning --help` lists commands in registration order.
from engine.cli import book as _book  # noqa: F401  import, policy check/schema, run, dispatch, status, history, outbox, demo

# isort: split
from engine.cli import authoring as _authoring  # noqa: F401  simulate, policy diff, explain
from engine.cli import charges as _charges  # noqa: F401  charges (interest, compensation, fees)
from engine.cli import collect as _collect  # noqa: F401  dispute, promise, plan, note, write-off, move, approve, approvals, audit
from engine.cli import credit as _credit  # noqa: F401  credit score|review|set|check, warnings [ack]
from engine.cli import daemon as _daemon  # noqa: F401  daemon, policy versions, policy events
from engine.cli import db as _db  # noqa: F401  db upgrade, db current, db check (Alembic migrations)
from engine.cli import inbound as _inbound  # noqa: F401  inbound fetch, list, show, assign, confirm (replies, bounces)
from engine.cli import reports as _reports  # noqa: F401  report aging|kpis|effectiveness|owners|forecast
from engine.cli import serve as _serve  # noqa: F401  serve (the web workspace and REST API)
from engine.cli import statement as _statement  # noqa: F401  statement (of account)
from engine.cli import tasks as _tasks  # noqa: F401  tasks, tasks done (phone and visit lists)
from engine.cli import users as _users  # noqa: F401  users add|list|disable|password|token|revoke|log
from engine.cli.shared import app


def main() -> None:
    app()


if __name__ == "__main__":
    main()
