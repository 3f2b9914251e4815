"""Runs the real `dunning daemon` in a subprocess against a temporary SQLite book, on a virtual clock."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TypeVar

import yaml

from tests.conftest import DEFAULT_POLICY

DUNNING = shutil.which("dunning", path=str(Path(sys.executable).parent)) or "dunning"
T = TypeVar("T")

REMINDER_POLICY = DEFAULT_POLICY


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(timezone.utc)


def stored(value: str | None) -> datetime | None:
    """An instant as SQLite holds it (naive UTC text) → aware UTC datetime."""
    return datetime.fromisoformat(value).replace(tzinfo=timezone.utc) if value else None


class Book:
    """A folder with config.yaml, rules/ and dunning.db, and the daemons started on it."""

    def __init__(
        self, root: Path, *, schedule: dict[str, Any] | None = None, policy: str = REMINDER_POLICY, **config: Any
    ):
        self.root = root
        self.db = root / "dunning.db"
        self.config = {
            "database": "sqlite:///dunning.db",
            "timezone": "Europe/Berlin",
            "country": "DE",
            "rules": "rules",
            "output_dir": "out",
            "schedule": {
                "sweep": "0 9 * * mon-fri",
                "tick_seconds": 0.1,
                "dispatch_every_seconds": 0.2,
                "watch_rules_seconds": 0.2,
                "shutdown_timeout_seconds": 15,
                **(schedule or {}),
            },
            **config,
        }
        (root / "config.yaml").write_text(yaml.safe_dump(self.config), encoding="utf-8")
        self.write("rules/90-default.yaml", policy)
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("DUNNING_")}
        self.env["DUNNING_CONFIG"] = str(root / "config.yaml")
        self.env["PYTHONUNBUFFERED"] = "1"
        self.procs: list[Daemon] = []

    def write(self, name: str, text: str, *, atomic: bool = True) -> Path:
        path = self.root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        body = textwrap.dedent(text)
        if atomic:  # as editors do: write aside, then rename over
            tmp = path.with_name(f".{path.name}.tmp")
            tmp.write_text(body, encoding="utf-8")
            tmp.replace(path)
        else:
            path.write_text(body, encoding="utf-8")
        return path

    def cli(self, *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [DUNNING, *args], cwd=self.root, env=self.env, capture_output=True, text=True, timeout=120
        )
        if ok and result.returncode != 0:
            raise AssertionError(
                f"dunning {' '.join(args)} exited {result.returncode}:\n{result.stdout}\n{result.stderr}"
            )
        return result

    def customers(self, *rows: str) -> None:
        self.write(
            "customers.csv",
            "id,name,email,phone,address,credit_grade,segment,owner,language,timezone,tags\n" + "\n".join(rows) + "\n",
        )
        self.cli("import", "customers", "customers.csv")

    def invoices(self, *rows: str) -> None:
        self.write(
            "invoices.csv", "number,customer_id,currency,amount,issued_on,due_on,tags\n" + "\n".join(rows) + "\n"
        )
        self.cli("import", "invoices", "invoices.csv")

    def start(self, clock_start: str, rate: float, *args: str) -> Daemon:
        log = self.root / f"daemon-{len(self.procs) + 1}.log"
        handle = log.open("w", encoding="utf-8")
        proc = subprocess.Popen(
            [DUNNING, "daemon", "--clock-start", clock_start, "--clock-rate", str(rate), *args],
            cwd=self.root,
            env=self.env,
            stdout=handle,
            stderr=subprocess.STDOUT,
            text=True,
        )
        daemon = Daemon(proc, log, handle)
        self.procs.append(daemon)
        return daemon

    def query(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        conn = sqlite3.connect(f"file:{self.db}?mode=ro", uri=True, timeout=10)
        try:
            return conn.execute(sql, params).fetchall()
        finally:
            conn.close()

    def sweeps(self) -> list[datetime]:
        return [stored(r[0]) for r in self.query("SELECT as_of FROM sweeps ORDER BY as_of")]  # type: ignore[misc]

    def outbox(self) -> dict[str, dict[str, Any]]:
        rows = self.query(
            "SELECT n.key, i.number, n.status, n.created_at, n.due_at, n.sent_at, n.attempts "
            "FROM notifications n JOIN invoices i ON i.id = n.invoice_id ORDER BY n.id"
        )
        return {
            r[0]: {
                "invoice": r[1],
                "status": r[2],
                "created_at": stored(r[3]),
                "due_at": stored(r[4]),
                "sent_at": stored(r[5]),
                "attempts": r[6],
            }
            for r in rows
        }

    def statuses(self) -> dict[str, int]:
        return dict(self.query("SELECT status, count(*) FROM notifications GROUP BY status"))  # type: ignore[arg-type]

    def logged_keys(self) -> list[str]:
        path = self.root / "out" / "notifications.log"
        if not path.exists():
            return []
        return [line[4:] for line in path.read_text(encoding="utf-8").splitlines() if line.startswith("=== ")]

    def cleanup(self) -> None:
        for daemon in self.procs:
            daemon.kill()


class Daemon:
    def __init__(self, proc: subprocess.Popen[str], log: Path, handle: Any):
        self.proc = proc
        self.log_path = log
        self._handle = handle

    @property
    def pid(self) -> int:
        return self.proc.pid

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def wait_log(self, text: str, timeout: float = 30, after: int = 0) -> None:
        wait_for(
            lambda: text in self.log()[after:],
            timeout,
            lambda: f"{text!r} in the daemon log:\n{self.log()}",
            proc=self.proc,
        )

    def send(self, signum: int) -> None:
        self.proc.send_signal(signum)

    def stop(self, signum: int = signal.SIGTERM, timeout: float = 30) -> int:
        self.proc.send_signal(signum)
        try:
            return self.proc.wait(timeout=timeout)
        finally:
            self._handle.close()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self._handle.close()

    def json_lines(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.log().splitlines() if line.strip()]


def wait_for(
    check: Callable[[], T],
    timeout: float = 30,
    what: Callable[[], str] | str = "condition",
    proc: subprocess.Popen[str] | None = None,
) -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if proc is not None and proc.poll() is not None and not check():
            raise AssertionError(
                f"daemon exited ({proc.returncode}) while waiting for {what() if callable(what) else what}"
            )
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what() if callable(what) else what}")
        time.sleep(0.05)
