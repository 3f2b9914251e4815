"""The single-daemon lock: one daemon per SQLite database.

An exclusive, non-blocking `flock` on `<database>.daemon.lock`, holding the holder's pid for the message
a second daemon prints. The kernel releases it when the process dies, even by SIGKILL, so a crash never
leaves a stale lock behind. PostgreSQL needs none: several daemons share the work there (dispatch claims
rows with SKIP LOCKED, sweeps take an advisory lock).
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from engine.errors import DaemonAlreadyRunning

__all__ = ["DaemonLock", "lock_path_for"]


def lock_path_for(database_url: str) -> Path | None:
    """The lock file next to a SQLite database; None where several daemons may run (PostgreSQL, memory)."""
    prefix = "sqlite:///"
    if not database_url.startswith(prefix) or ":memory:" in database_url:
        return None
    path = database_url[len(prefix) :].split("?", 1)[0]
    return Path(path + ".daemon.lock")


class DaemonLock:
    """An exclusive, non-blocking `flock`; the kernel releases it when the process dies, even by SIGKILL."""

    def __init__(self, path: Path, database: str):
        self.path = path
        self.database = database
        self._fd: int | None = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "unknown"
            os.close(fd)
            raise DaemonAlreadyRunning(
                f"another dunning daemon (pid {holder}) is already running against {self.database}; "
                f"stop it first (kill -TERM {holder}, or systemctl stop dunning), or use PostgreSQL to run "
                f"several daemons (lock file: {self.path})"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode("ascii"), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            # The file stays: deleting it would let a third process lock a different inode than a second.
            os.ftruncate(self._fd, 0)
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> DaemonLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
