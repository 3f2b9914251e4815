"""The only way into the database: the `Repository` (an engine pair, sessions and transactions).

The engines themselves (SQLite tuned for one writer beside many readers, `BEGIN IMMEDIATE` writers) come from
`engine.store.engines`; the schema is created or checked by `engine.store.migrations`, handed the engine.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, func, inspect, make_url, select
from sqlalchemy.exc import OperationalError
from sqlmodel import Session

from engine.errors import DatabaseBusy, NoDatabase
from engine.store import models  # noqa: F401  (registers the tables on SQLModel.metadata)
from engine.store.engines import WRITE_OPTION, make_engine, reachable, writer_of
from engine.store.migrations import create_or_check, current_state

#: The transaction handle the store's functions take; use cases pass it on without importing sqlalchemy.
__all__ = ["Connection", "Repository"]


def no_database_message(url: str, problem: str) -> str:
    where = make_url(url).render_as_string(hide_password=True)
    return (
        f"no dunning database yet: {where} {problem}, and this command only reads (it created nothing). "
        "Create it by importing your book (`dunning import customers FILE`, then invoices) or with "
        "`dunning db upgrade`; if the book lives elsewhere, set `database:` in the configuration or "
        "$DUNNING_DATABASE_URL"
    )


def sqlite_file_missing(url: str) -> bool:
    """Whether `url` names an SQLite file that does not exist (connecting would create it)."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return False
    return not (parsed.database.startswith("file:") or Path(parsed.database).exists())


def refuse_missing_sqlite_file(url: str) -> None:
    if sqlite_file_missing(url):
        raise NoDatabase(no_database_message(url, "does not exist"))


#: The session every `Repository.read` shares inside a `Repository.snapshot` (of that repository).
_snapshot: ContextVar[tuple[Repository, Session] | None] = ContextVar("dunning_read_snapshot", default=None)


class Repository:
    def __init__(self, url: str, *, echo: bool = False, busy_seconds: float = 30.0, throwaway: bool = False):
        self.url = url
        self.busy_seconds = busy_seconds
        self.engine = make_engine(url, echo=echo, busy_seconds=busy_seconds, throwaway=throwaway)
        self._write_engine = self.engine.execution_options(**{WRITE_OPTION: True})
        self.dialect = self.engine.dialect.name

    @classmethod
    def open(cls, url: str, *, busy_seconds: float = 30.0, throwaway: bool = False, create: bool = True) -> Repository:
        """The database at `url`, its schema created or checked — unless `create` is False (commands that
        only read): then a missing database is `NoDatabase`, and no file or table is made. `throwaway`: an
        SQLite file deleted after use (no journal, no syncs; see `engine.store.engines.make_engine`)."""
        if not create:
            refuse_missing_sqlite_file(url)  # before connecting: SQLite makes the file on connect
        repo = cls(url, busy_seconds=busy_seconds, throwaway=throwaway)
        if create:
            repo.create_schema()
        else:
            with repo.reachable():
                if current_state(repo.engine).empty:
                    repo.dispose()
                    raise NoDatabase(no_database_message(url, "has no dunning tables"))
                create_or_check(repo.engine)  # one at an older schema is refused with what to run
        return repo

    def create_schema(self) -> None:
        """A brand-new database gets the models' tables, stamped at the newest migration; one at that
        migration is used as is; an older one is refused with "run `dunning db upgrade`" (engine.store.migrations)."""
        with self.reachable():
            create_or_check(self.engine)

    def reachable(self) -> AbstractContextManager[None]:
        """A server that does not answer (or a file that cannot be opened) becomes a ConfigError naming the
        database and what to check, instead of the driver's traceback."""
        return reachable(self.engine)

    def has_schema(self) -> bool:
        return inspect(self.engine).has_table("invoices")

    def _snapshot_session(self) -> Session | None:
        """The session of the `snapshot` of this repository the caller is inside, if any."""
        shared = _snapshot.get()
        return shared[1] if shared is not None and shared[0] is self else None

    @contextmanager
    def read(self) -> Iterator[Session]:
        shared = self._snapshot_session()
        if shared is not None:
            yield shared
            return
        with Session(self.engine) as session:
            yield session

    @contextmanager
    def snapshot(self) -> Iterator[None]:
        """Every `read` inside (in this thread or task) shares one session: one connection and one
        transaction, so on SQLite one consistent view of the book. A web page that asks ten questions pays for
        one BEGIN and one connection checkout instead of ten, which cost more than most of its queries. For
        work that only reads: a `write` inside is refused, as the reads after it would not see it."""
        if self._snapshot_session() is not None:
            yield
            return
        with Session(self.engine) as session:
            token = _snapshot.set((self, session))
            try:
                yield
            finally:
                try:
                    _snapshot.reset(token)
                except ValueError:  # ended from another context (a cancelled request's cleanup)
                    _snapshot.set(None)

    @contextmanager
    def write(self) -> Iterator[Session]:
        """One write transaction: committed on success, rolled back on any error. On SQLite a writer that
        waited `busy_seconds` for another one gets `DatabaseBusy` naming that writer (nothing was written)."""
        if self._snapshot_session() is not None:
            raise RuntimeError("a write inside a read snapshot: the snapshot's reads would not see it")
        try:
            with Session(self._write_engine, expire_on_commit=False) as session:
                with session.begin():
                    yield session
        except OperationalError as exc:
            if self.dialect == "sqlite" and "locked" in str(exc.orig):
                raise DatabaseBusy(
                    f"the database {self.engine.url.database} is busy: {writer_of(self.engine.url.database)} "
                    f"has held it for more than the {self.busy_seconds:g} s we wait; nothing was written. Try "
                    "again when it has finished (or raise `database_busy_seconds` in the configuration)"
                ) from None
            raise

    def count(self, model: Any) -> int:
        with self.read() as session:
            return int(session.exec(select(func.count()).select_from(model)).one()[0])  # type: ignore[call-overload]

    def dispose(self) -> None:
        self.engine.dispose()
