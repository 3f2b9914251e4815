"""The only way into the database: engines, sessions and transactions.

SQLite is tuned for one writer beside many readers: WAL, `synchronous=NORMAL`, a busy timeout, and writers that
begin with `BEGIN IMMEDIATE` (a deferred BEGIN that upgrades to a write fails under contention). Readers
keep a plain BEGIN so `dunning status` runs freely while a sweep writes.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from sqlalchemy import JSON, create_engine, event, func, inspect, select
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import OperationalError
from sqlmodel import Session

from engine.store import models
from engine.errors import ConfigError, DatabaseBusy

_WRITE = "dunning_write"


class Repository:
    def __init__(self, url: str, *, echo: bool = False, busy_seconds: float = 30.0):
        self.url = url
        self.busy_seconds = busy_seconds
        self.engine = _make_engine(url, echo=echo, busy_seconds=busy_seconds)
        self._write_engine = self.engine.execution_options(**{_WRITE: True})
        self.dialect = self.engine.dialect.name

    @classmethod
    def open(cls, url: str, *, busy_seconds: float = 30.0) -> Repository:
        repo = cls(url, busy_seconds=busy_seconds)
        repo.create_schema()
        return repo

    def create_schema(self) -> None:
        """A brand-new database gets the models' tables, stamped at the newest migration; one at that
        migration is used as is; an older one is refused with "run `dunning db upgrade`" (engine.store.migrations)."""
        from engine.store.migrations import create_or_check

        with self.reachable():
            create_or_check(self)

    @contextmanager
    def reachable(self) -> Iterator[None]:
        """A server that does not answer (or a file that cannot be opened) becomes a ConfigError naming the
        database and what to check, instead of the driver's traceback."""
        try:
            yield
        except OperationalError as exc:
            reason = str(exc.orig).strip().splitlines()[0] if exc.orig is not None else str(exc)
            raise ConfigError(
                f"cannot open the database {self.engine.url.render_as_string(hide_password=True)}: "
                f"{reason}; check that the server runs and the `database` setting or $DUNNING_DATABASE_URL"
            ) from None

    def has_schema(self) -> bool:
        return inspect(self.engine).has_table("invoices")

    @contextmanager
    def read(self) -> Iterator[Session]:
        with Session(self.engine) as session:
            yield session

    @contextmanager
    def write(self) -> Iterator[Session]:
        """One write transaction: committed on success, rolled back on any error. On SQLite a writer that
        waited `busy_seconds` for another one gets `DatabaseBusy` naming that writer (nothing was written)."""
        try:
            with Session(self._write_engine, expire_on_commit=False) as session:
                with session.begin():
                    yield session
        except OperationalError as exc:
            if self.dialect == "sqlite" and "locked" in str(exc.orig):
                raise DatabaseBusy(
                    f"the database {self.engine.url.database} is busy: {_writer_of(self.engine.url.database)} "
                    f"has held it for more than the {self.busy_seconds:g} s we wait; nothing was written. Try "
                    "again when it has finished (or raise `database_busy_seconds` in the configuration)"
                ) from None
            raise

    def count(self, model: Any) -> int:
        with self.read() as session:
            return session.exec(select(func.count()).select_from(model)).one()[0]  # type: ignore[call-overload]

    def dispose(self) -> None:
        self.engine.dispose()


def _writer_file(database: str | None) -> Path | None:
    return Path(f"{database}-writer") if database and database != ":memory:" else None


def _note_writer(database: str | None) -> None:
    """Leave word of who holds the write lock, for a writer that times out waiting (`_writer_of`). Written
    right after BEGIN IMMEDIATE succeeded, so the newest word is always the current holder's."""
    path = _writer_file(database)
    if path is None:
        return
    command = " ".join(Path(sys.argv[0]).name.split() + sys.argv[1:3]) if sys.argv and sys.argv[0] else "python"
    try:
        path.write_text(f"{os.getpid()} {time.time():.0f} {command}\n", encoding="utf-8")
    except OSError:
        pass  # the word is a courtesy; a read-only folder must not stop a write


def _writer_of(database: str | None) -> str:
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


def _make_engine(url: str, *, echo: bool, busy_seconds: float = 30.0) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(url, echo=echo, connect_args={"timeout": busy_seconds})
        database = make_url(url).database

        @event.listens_for(engine, "connect")
        def _configure(dbapi_connection: Any, _record: Any) -> None:
            # Take transaction control away from pysqlite so we decide how each one begins.
            dbapi_connection.isolation_level = None
            cursor = dbapi_connection.cursor()
            if ":memory:" not in url:
                cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute(f"PRAGMA busy_timeout={int(busy_seconds * 1000)}")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

        @event.listens_for(engine, "begin")
        def _begin(connection: Any) -> None:
            writing = connection.get_execution_options().get(_WRITE, False)
            connection.exec_driver_sql("BEGIN IMMEDIATE" if writing else "BEGIN")
            if writing:
                _note_writer(database)

        return engine
    if url.startswith("postgresql"):
        return create_engine(url, echo=echo, pool_pre_ping=True)
    raise ConfigError(
        f"unsupported database URL {url.split(':', 1)[0]!r}: use sqlite:///PATH or postgresql+psycopg://..."
    )


class BulkWriter:
    """Set-based writes for hot paths (sweeps, imports): one driver-level executemany per statement.

    SQLAlchemy's per-row parameter handling costs more than the database itself for large batches, so
    values are converted here with each column's own bind processor (cached per distinct value: a sweep's
    instants repeat on every row) and handed to the driver as plain tuples.
    """

    def __init__(self, conn: Any, table: Any, *, raw: Collection[str] = ()):
        self.conn = conn
        self.table = table
        #: Columns whose values the caller already converted (e.g. JSON text): handed over untouched.
        self.raw = frozenset(raw)
        dialect = conn.dialect
        self._mark = "?" if dialect.paramstyle == "qmark" else "%s"
        self._processors = {
            column.name: column.type._cached_bind_processor(dialect) for column in table.columns
        }

    def _column(self, name: str, values: list[Any]) -> list[Any]:
        """One column's values converted for the driver; repeated values are converted once."""
        process = self._processors[name]
        if process is None or name in self.raw:
            return values
        if isinstance(self.table.c[name].type, JSON):  # dicts and lists: unhashable, nothing to share
            return [None if value is None else process(value) for value in values]
        cache: dict[Any, Any] = {None: None}
        converted = []
        append = converted.append
        for value in values:
            try:
                append(cache[value])
            except KeyError:
                result = cache[value] = process(value)
                append(result)
        return converted

    def _tuples(self, names: list[str], rows: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
        columns = [self._column(name, [row.get(name) for row in rows]) for name in names]
        return list(zip(*columns))

    def insert(self, rows: list[dict[str, Any]]) -> None:
        if not rows:
            return
        names = list(rows[0])
        columns = ", ".join(names)
        marks = ", ".join([self._mark] * len(names))
        self.conn.exec_driver_sql(
            f"INSERT INTO {self.table.name} ({columns}) VALUES ({marks})", self._tuples(names, rows)
        )

    def update(self, rows: list[dict[str, Any]], *, key: str = "id") -> None:
        """Update rows by key; rows may differ in which columns they set (one statement per shape)."""
        by_shape: dict[tuple[str, ...], list[dict[str, Any]]] = {}
        for row in rows:
            by_shape.setdefault(tuple(sorted(k for k in row if k != key)), []).append(row)
        for shape, group in by_shape.items():
            assignments = ", ".join(f"{name} = {self._mark}" for name in shape)
            self.conn.exec_driver_sql(
                f"UPDATE {self.table.name} SET {assignments} WHERE {key} = {self._mark}",
                self._tuples([*shape, key], group),
            )
