"""A dispatcher "zygote" for the crash test: imports everything once, then forks one dispatcher per request.

Reads commands on stdin: `go` forks a child that dispatches until the outbox has nothing left to send, and
prints the child's pid; when the child ends (by itself or by SIGKILL) it prints `exit STATUS`. `quit` ends.
Forking from a pre-imported parent makes each dispatcher start in milliseconds, so the test can kill many of
them at random points in their work; every child is a separate process with its own database connections.
"""

from __future__ import annotations

import os
import sys
import time

from sqlalchemy import func, select

import channels.email  # noqa: F401  (imported before forking: the children start warm)
from engine.app import Dunning
from engine.config import load_settings
from engine.store.models import Notification, NotificationStatus

TABLE = Notification.__table__  # type: ignore[attr-defined]


def dispatch_until_done(config: str) -> int:
    app = Dunning(load_settings(config))
    while True:
        app.dispatch()
        with app.repo.read() as session:
            left = (
                session.connection()
                .execute(
                    select(func.count())
                    .select_from(TABLE)
                    .where(TABLE.c.status.in_([NotificationStatus.PENDING, NotificationStatus.SENDING]))
                )
                .scalar()
            )
        if not left:
            return 0
        time.sleep(0.05)  # rows leased by a killed dispatcher come free when their lease ends


def main() -> None:
    config = sys.argv[1]
    for line in sys.stdin:
        command = line.strip()
        if command == "quit":
            break
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                code = dispatch_until_done(config)
            finally:
                os._exit(code)
        print(pid, flush=True)
        _, status = os.waitpid(pid, 0)
        print("exit", status, flush=True)


if __name__ == "__main__":
    main()
