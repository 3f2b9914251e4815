"""Imports the modules that add command families to the `dunning` CLI (each registers on engine.cli.app).

One import line per module; keeping them here means adding a family never touches engine/cli.py.
"""

from __future__ import annotations
from engine import cli_collect  # noqa: E402,F401  dispute, promise, plan, note, write-off, move, approve, audit
from engine import cli_authoring  # noqa: E402,F401  simulate, policy diff, explain
from engine import cli_daemon  # noqa: E402,F401  daemon, policy versions, policy events
from engine import cli_tasks  # noqa: E402,F401  tasks, tasks done (phone and visit lists)
from engine import cli_reports  # noqa: E402,F401  report aging|kpis|effectiveness|owners|forecast
from engine import cli_db  # noqa: E402,F401  db upgrade, db current, db check (Alembic migrations)
