"""A sender "zygote" for the crash-loop test: imports everything once, then forks one sender per request.

Reads commands on stdin: `go KIND` forks a child and prints its pid; when the child ends (by itself or by
SIGKILL) it prints `exit STATUS`. `quit` ends. KIND is what the child is:

- `dispatch`: `dunning dispatch` until the outbox has nothing left to send;
- `run`: `dunning run` (a sweep as of now, then dispatch) until nothing is left;
- `daemon`: `dunning daemon`, which runs until it is killed.

Forking from a pre-imported parent makes each sender start in milliseconds, so the test can kill many of them
at random points in their work; every child is a separate process with its own database connections.
"""

from __future__ import annotations

import os
import sys
import time

from sqlalchemy import func, select

import channels.email  # noqa: F401  (imported before forking: the children start warm)
from engine.app import Dunning
from engine.config import load_settings
from engine.service.daemon import Daemon
from engine.store.models import Notification, NotificationStatus

TABLE = Notification.__table__  # type: ignore[attr-defined]


def left_to_send(app: Dunning) -> int:
    with app.repo.read() as session:
        return int(
            session.connection()
            .execute(
                select(func.count())
                .select_from(TABLE)
                .where(TABLE.c.status.in_([NotificationStatus.PENDING, NotificationStatus.SENDING]))
            )
            .scalar()
            or 0
        )


def send_until_done(config: str, kind: str) -> int:
    settings = load_settings(config)
    if kind == "daemon":
        return Daemon(settings).run()
    app = Dunning(settings)
    while True:
        if kind == "run":
            app.run()
        else:
            app.dispatch()
        if not left_to_send(app):
            return 0
        time.sleep(0.05)  # a retry waits out its backoff


def main() -> None:
    config = sys.argv[1]
    for line in sys.stdin:
        command = line.split()
        if command == ["quit"]:
            break
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                code = send_until_done(config, command[1])
            finally:
                os._exit(code)
        print(pid, flush=True)
        _, status = os.waitpid(pid, 0)
        print("exit", status, flush=True)


if __name__ == "__main__":
    main()
