"""Who may put back the claims of a dead sender: one sender lock for every dispatcher on a SQLite file.

A claim is a lease (`claimed_until`): a sender that dies leaves its rows `sending` until the lease ends. On
SQLite every dispatcher — `dunning dispatch`, `dunning run`, each round of a daemon — holds a shared `flock`
on `<database>.senders.lock` from before its first claim until its last outcome is recorded. A sender that
takes the lock *exclusively* (without waiting) proves that no live process holds a claim, so every row still
`sending` belongs to a dead one and goes back to `pending` at once; then it keeps the lock shared, like every
other sender. One that cannot take it exclusively leaves every `sending` row alone: a live sender may be
sending it, and a dead sender's rows come free when their lease ends. The kernel drops the lock of a process
that dies, even by SIGKILL, so a crash never leaves a stale lock.

PostgreSQL and in-memory databases take no lock and recover nothing here: there, leases alone decide (several
daemons share a PostgreSQL outbox through SKIP LOCKED claims).
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import select, update

from engine.store.database import Repository
from engine.store.models import Notification, NotificationStatus

__all__ = ["recover_dead_claims", "sender_lock_path", "sending"]

NOTIFICATIONS = Notification.__table__  # type: ignore[attr-defined]
SENDING = NOTIFICATIONS.c.status == NotificationStatus.SENDING


def sender_lock_path(repo: Repository) -> Path | None:
    """`<database>.senders.lock` beside a SQLite file; None for PostgreSQL and in-memory databases."""
    database = repo.engine.url.database
    if repo.dialect != "sqlite" or not database or database == ":memory:" or database.startswith("file:"):
        return None
    return Path(f"{database}.senders.lock")


@contextmanager
def sending(repo: Repository) -> Iterator[int]:
    """Be one of the database's live senders while the block runs (it claims, sends and records).

    Yields how many rows of dead senders were put back to `pending` on the way in (0 when a live sender
    holds the lock, or on PostgreSQL)."""
    path = sender_lock_path(repo)
    if path is None:
        yield 0
        return
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        recovered = _recover_if_alone(repo, fd)
        # Shared from here on; waits only while another sender is putting dead claims back.
        fcntl.flock(fd, fcntl.LOCK_SH)
        yield recovered or 0
    finally:
        os.close(fd)  # closing drops the lock


def recover_dead_claims(repo: Repository) -> int | None:
    """Put back what dead senders left `sending` (a daemon starting up); how many, or None when a live
    sender holds claims (then nothing is touched: dead senders' rows come free when their lease ends).
    Always 0 on PostgreSQL and in memory, where leases alone decide."""
    path = sender_lock_path(repo)
    if path is None:
        return 0
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        return _recover_if_alone(repo, fd)
    finally:
        os.close(fd)


def _recover_if_alone(repo: Repository, fd: int) -> int | None:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return None  # a live sender holds claims: touch none of them
    return _release_every_claim(repo)


def _release_every_claim(repo: Repository) -> int:
    """Every row marked `sending` back to `pending`, due at once: only under the exclusive sender lock."""
    with repo.read() as session:  # the common case, nothing to put back, takes no write lock
        if session.connection().execute(select(NOTIFICATIONS.c.id).where(SENDING).limit(1)).first() is None:
            return 0
    with repo.write() as session:
        result = session.connection().execute(
            update(NOTIFICATIONS)
            .where(SENDING)
            .values(status=NotificationStatus.PENDING, claimed_until=None, next_attempt_at=None)
        )
        return int(result.rowcount or 0)
