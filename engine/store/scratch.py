"""Scratch copies of a book: a private, throw-away SQLite file holding what a database holds (`simulate`).

SQLite sources are copied with SQLite's online backup (a consistent snapshot, even while a sweep writes);
PostgreSQL sources table by table, in batches, inside one repeatable-read transaction. The copy is deleted
afterwards, so durability buys nothing: it keeps no journal, never syncs, and lacks the indexes only other
commands read through (`UNREAD_INDEXES`).
"""

from __future__ import annotations

import shutil
import sqlite3
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

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


#: Indexes a simulation's sweeps update on every row they add or change but never read through (the sweep
#: walks invoices by id; the outbox is cancelled by invoice): dropped from the scratch copy only.
UNREAD_INDEXES = (
    "ix_events_invoice_id",
    "ix_events_kind",
    "ix_events_at",
    "ix_events_customer_id",
    "ix_notifications_status_due",
    "ix_notifications_customer_id",
    "ix_notifications_sweep_id",
    "ix_invoices_next_action_on",
    "ix_invoices_stage_due",
)


def _fast_repository(path: Path) -> Repository:
    repo = Repository.open(f"sqlite:///{path}", throwaway=True)
    with repo.write() as session:
        for name in UNREAD_INDEXES:
            session.connection().exec_driver_sql(f"DROP INDEX IF EXISTS {name}")
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
