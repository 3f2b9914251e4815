"""Scratch copies of a book: a private, throw-away SQLite file holding what a database holds (`simulate`).

SQLite sources are copied with SQLite's online backup (a consistent snapshot, even while a sweep writes);
PostgreSQL sources table by table, in batches, inside one repeatable-read transaction. The copy skips
fsyncs: it is deleted afterwards, so durability buys nothing.
"""

from __future__ import annotations

import shutil
import sqlite3
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import event as sa_event
from sqlalchemy import insert, select
from sqlmodel import SQLModel

from engine.errors import SimulationError
from engine.store.database import Repository

__all__ = ["scratch_copy"]

#: Rows per batch when copying a PostgreSQL book.
COPY_BATCH = 5000


@contextmanager
def scratch_copy(source: Repository) -> Iterator[Repository]:
    """A private SQLite copy of `source`'s book in a temporary folder, removed on exit.

    SQLite sources are copied with SQLite's online backup (a consistent snapshot, even while a sweep
    writes); PostgreSQL sources table by table, in batches, inside one repeatable-read transaction.
    """
    folder = Path(tempfile.mkdtemp(prefix="dunning-simulation-"))
    target = folder / "scratch.db"
    repo: Repository | None = None
    try:
        if source.dialect == "sqlite":
            _backup_sqlite(source, target)
            repo = _fast_repository(target)
        else:
            repo = _fast_repository(target)
            _copy_tables(source, repo)
        yield repo
    finally:
        if repo is not None:
            repo.dispose()
        shutil.rmtree(folder, ignore_errors=True)


def _fast_repository(path: Path) -> Repository:
    repo = Repository.open(f"sqlite:///{path}")

    # A scratch copy is thrown away afterwards: durability buys nothing, so don't pay for fsyncs.
    @sa_event.listens_for(repo.engine, "connect")
    def _no_sync(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA synchronous=OFF")
        cursor.close()

    repo.engine.dispose()  # connections opened before the listener was added
    return repo


def _backup_sqlite(source: Repository, target: Path) -> None:
    database = source.engine.url.database
    if not database or database == ":memory:":
        raise SimulationError(
            "cannot simulate an in-memory SQLite database; point `database` at a file (sqlite:///dunning.db)"
        )
    try:
        reader = sqlite3.connect(f"file:{Path(database).resolve()}?mode=ro", uri=True)
    except sqlite3.Error:
        reader = sqlite3.connect(database)
    writer = sqlite3.connect(target)
    try:
        reader.backup(writer)
    except sqlite3.Error as exc:
        raise SimulationError(f"cannot read the database {database} to simulate on a copy: {exc}") from None
    finally:
        writer.close()
        reader.close()


def _copy_tables(source: Repository, target: Repository) -> None:
    with source.engine.connect() as reader:
        reader = reader.execution_options(isolation_level="REPEATABLE READ", stream_results=True, yield_per=COPY_BATCH)
        with reader.begin(), target.write() as session:
            writer = session.connection()
            for table in SQLModel.metadata.sorted_tables:
                result = reader.execute(select(table))
                for batch in result.mappings().partitions(COPY_BATCH):
                    writer.execute(insert(table), [dict(row) for row in batch])
