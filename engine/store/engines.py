"""Engines for the supported databases: SQLite tuned for one writer and many readers, and PostgreSQL.

SQLite gets WAL, `synchronous=NORMAL`, a busy timeout and foreign keys, and its writers begin with
`BEGIN IMMEDIATE`: a deferred BEGIN that upgrades to a write fails at once with "database is locked" when
another writer got there first, whereas BEGIN IMMEDIATE waits out the busy timeout. A writer that got the
lock leaves word of itself in `<database>-writer`, so one that times out can say who holds it. Readers keep a plain
BEGIN so `dunning status` runs freely while a sweep writes. A connection asks for a writer's BEGIN with the
execution option `WRITE_OPTION`.

Only `engine.store` imports this module (the `Repository`, and the migrations' stand-alone environment).
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import OperationalError

from engine.errors import ConfigError

__all__ = ["FIXED_CACHE", "WRITE_OPTION", "Engine", "display_url", "make_engine", "reachable", "writer_of"]

#: Execution option: True on the connections of write transactions (SQLite: BEGIN IMMEDIATE).
WRITE_OPTION = "dunning_write"


def _writer_file(database: str | None) -> Path | None:
    return Path(f"{database}-writer") if database and database != ":memory:" else None


def _note_writer(database: str | None) -> None:
    """Leave word of who holds the write lock, for a writer that times out waiting (`writer_of`). Written
    right after BEGIN IMMEDIATE succeeded, so the newest word is always the current holder's."""
    path = _writer_file(database)
    if path is None:
        return
    command = " ".join(Path(sys.argv[0]).name.split() + sys.argv[1:3]) if sys.argv and sys.argv[0] else "python"
    try:
        path.write_text(f"{os.getpid()} {time.time():.0f} {command}\n", encoding="utf-8")
    except OSError:
        pass  # the word is a courtesy; a read-only folder must not stop a write


def writer_of(database: str | None) -> str:
    """Who holds the write lock, as far as a dunning process left word of it."""
    path = _writer_file(database)
    try:
        pid_text, since, command = path.read_text(encoding="utf-8").strip().split(" ", 2) if path else ("", "", "")
        pid = int(pid_text)
        os.kill(pid, 0)
    except (OSError, ValueError):
        return "another program (not a dunning process, or one that left no word)"
    started = datetime.fromtimestamp(float(since), timezone.utc).strftime("%H:%M:%S UTC")
    return f"process {pid} (`{command}`, writing since {started})"


#: Page cache of a throw-away SQLite copy (KiB): a simulated book's invoices stay in memory between days,
#: within the simulation's memory budget.
THROWAWAY_CACHE_KIB = 16384
#: Connection info key: True on a throw-away copy's connections, whose page cache is fixed at
#: THROWAWAY_CACHE_KIB (a sweep's roomier cache, `engine.store.sweeps.roomy_cache`, is not for them).
FIXED_CACHE = "dunning_fixed_cache"


def make_engine(url: str, *, echo: bool = False, busy_seconds: float = 30.0, throwaway: bool = False) -> Engine:
    """An engine for `url` (sqlite:///PATH or postgresql+psycopg://...); ConfigError for anything else. An
    SQLite writer waits up to `busy_seconds` for another one to finish. A `throwaway` SQLite file (a
    simulation's scratch copy, deleted afterwards) keeps no journal and never syncs: durability buys nothing
    there, and a failed transaction ends the simulation anyway."""
    if url.startswith("sqlite"):
        engine = create_engine(url, echo=echo, connect_args={"timeout": busy_seconds})
        database = make_url(url).database

        @event.listens_for(engine, "connect")
        def _configure(dbapi_connection: Any, record: Any) -> None:
            # Take transaction control away from pysqlite so we decide how each one begins.
            dbapi_connection.isolation_level = None
            cursor = dbapi_connection.cursor()
            if throwaway:
                cursor.execute("PRAGMA journal_mode=OFF")
                cursor.execute("PRAGMA synchronous=OFF")
                cursor.execute(f"PRAGMA cache_size=-{THROWAWAY_CACHE_KIB}")
                record.info[FIXED_CACHE] = True
            else:
                if ":memory:" not in url:
                    cursor.execute("PRAGMA journal_mode=WAL")
                cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute(f"PRAGMA busy_timeout={int(busy_seconds * 1000)}")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

        @event.listens_for(engine, "begin")
        def _begin(connection: Any) -> None:
            writing = connection.get_execution_options().get(WRITE_OPTION, False)
            connection.exec_driver_sql("BEGIN IMMEDIATE" if writing else "BEGIN")
            if writing:
                _note_writer(database)

        return engine
    if url.startswith("postgresql"):
        return create_engine(url, echo=echo, pool_pre_ping=True)
    raise ConfigError(
        f"unsupported database URL {url.split(':', 1)[0]!r}: use sqlite:///PATH or postgresql+psycopg://..."
    )


@contextmanager
def reachable(engine: Engine) -> Iterator[None]:
    """A server that does not answer (or a file that cannot be opened) becomes a ConfigError naming the
    database and what to check, instead of the driver's traceback."""
    try:
        yield
    except OperationalError as exc:
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig is not None else str(exc)
        raise ConfigError(
            f"cannot open the database {engine.url.render_as_string(hide_password=True)}: "
            f"{reason}; check that the server runs and the `database` setting or $DUNNING_DATABASE_URL"
        ) from None


def display_url(url: str) -> str:
    """`url` as safe to print or log: the password masked."""
    return make_url(url).render_as_string(hide_password=True)
