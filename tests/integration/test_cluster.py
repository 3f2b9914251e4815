"""Several daemons on one PostgreSQL: one sweep per scheduled instant cluster-wide, dispatch spread across
daemons with SKIP LOCKED claims, and a daemon killed with SIGKILL mid-dispatch taken over after its lease."""

from __future__ import annotations

import json
import signal
import subprocess
import textwrap
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from channels.email import message_id_for
from tests.conftest import postgres_schema
from tests.integration.daemon_harness import DUNNING, Daemon, wait_for
from tests.integration.smtp_server import SMTPServer

MESSAGES = 5000
DAEMONS = 3
BATCH = 100
LEASE_SECONDS = 4


@pytest.fixture
def postgres_url(postgres_reason: str | None) -> Iterator[str]:
    yield from postgres_schema(postgres_reason)


def write_book(root: Path, url: str, port: int) -> Path:
    (root / "rules").mkdir()
    (root / "rules" / "default.yaml").write_text(
        "name: default\nstages:\n  - {name: reminder, after_days: 1, channels: [email]}\n", encoding="utf-8"
    )
    config = root / "config.yaml"
    config.write_text(
        textwrap.dedent(f"""\
        database: "{url}"
        timezone: UTC
        rules: rules
        output_dir: out
        schedule: {{sweep: "0 0 * * *", tick_seconds: 0.2, dispatch_every_seconds: 0.2, watch_rules_seconds: 5,
                    housekeeping_every_seconds: 600, shutdown_timeout_seconds: 20}}
        dispatch: {{batch_size: {BATCH}, concurrency: 4, lease_seconds: {LEASE_SECONDS}, backoff_seconds: 0.5,
                    max_backoff_seconds: 2, max_attempts: 20}}
        channels:
          email: {{type: email, recipient: email, host: 127.0.0.1, port: {port}, security: none,
                   from: ar@acme.example, connections: 4, rate_per_minute: 100000, timeout: 10}}
        """),
        encoding="utf-8",
    )
    return config


def counts(app: Any) -> dict[str, int]:
    from engine.store.models import Notification

    table = Notification.__table__  # type: ignore[attr-defined]
    with app.repo.read() as session:
        rows = session.connection().execute(select(table.c.status, func.count()).group_by(table.c.status)).all()
    return {status: int(n) for status, n in rows}


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.timeout(180)
def test_three_daemons_one_killed_mid_dispatch(tmp_path: Path, postgres_url: str, record_property: Any) -> None:
    from engine.app import Dunning
    from engine.config import load_settings
    from engine.store.models import Notification, Sweep

    started = time.monotonic()
    with SMTPServer(parse=False) as server:
        config = write_book(tmp_path, postgres_url, server.port)
        app = Dunning(load_settings(config))
        app.importer().import_rows(
            "customers",
            [{"id": f"C{i}", "name": f"Customer {i}", "email": f"ap{i}@example.com"} for i in range(MESSAGES)],
        )
        due = (datetime.now(timezone.utc) - timedelta(days=10)).date().isoformat()
        app.importer().import_rows(
            "invoices",
            [
                {
                    "number": f"INV-{i}",
                    "customer_id": f"C{i}",
                    "currency": "EUR",
                    "amount": "100.00",
                    "issued_on": due,
                    "due_on": due,
                }
                for i in range(MESSAGES)
            ],
        )

        env = {"DUNNING_CONFIG": str(config), "PYTHONUNBUFFERED": "1", "PATH": "/usr/bin:/bin"}
        daemons: list[Daemon] = []
        for n in range(DAEMONS):  # all at once: they race for the one due sweep
            log = tmp_path / f"daemon-{n + 1}.log"
            handle = log.open("w", encoding="utf-8")
            proc = subprocess.Popen(
                [DUNNING, "daemon", "--log-format", "json"],
                cwd=tmp_path,
                env=env,
                stdout=handle,
                stderr=subprocess.STDOUT,
                text=True,
            )
            daemons.append(Daemon(proc, log, handle))
        try:
            # every daemon is sending (the swept outbox is spread over them) before one is killed
            wait_for(
                lambda: all('"event": "dispatched"' in d.log() for d in daemons),
                90,
                lambda: "all three daemons dispatching:\n" + "\n".join(d.log()[-2000:] for d in daemons),
            )
            wait_for(lambda: counts(app).get("sent", 0) >= MESSAGES // 4, 60, "a quarter of the outbox sent")
            victim = daemons[1]
            victim.proc.send_signal(signal.SIGKILL)
            victim.proc.wait(10)
            killed_at = time.monotonic()
            at_kill = counts(app)
            wait_for(
                lambda: counts(app).get("sent", 0) == MESSAGES,
                120,
                lambda: f"every notification sent (now {counts(app)})",
            )
            finished = time.monotonic()
            # give the last in-flight recordings a moment, then stop the survivors cleanly
            for daemon in daemons:
                if daemon is not victim:
                    assert daemon.stop(signal.SIGTERM, timeout=30) == 0, daemon.log()[-3000:]
        finally:
            for daemon in daemons:
                daemon.kill()
        received = dict(server.ids)

    table = Notification.__table__  # type: ignore[attr-defined]
    with app.repo.read() as session:
        conn = session.connection()
        rows = conn.execute(select(table.c.key, table.c.status, table.c.attempts)).all()
        sweeps = conn.execute(select(func.count()).select_from(Sweep.__table__)).scalar()  # type: ignore[attr-defined]
    app.repo.dispose()

    assert sweeps == 1  # three daemons, one scheduled instant: one sweep
    assert len(rows) == MESSAGES and {r.status for r in rows} == {"sent"}
    expected = {message_id_for(r.key, "acme.example"): r for r in rows}
    missing = expected.keys() - received.keys()
    assert not missing, f"{len(missing)} notifications never reached the SMTP server"
    assert received.keys() == expected.keys()
    duplicated = {mid: n for mid, n in received.items() if n > 1}
    duplicates = sum(n - 1 for n in duplicated.values())
    taken_over = sum(1 for r in rows if r.attempts >= 2)
    # only what the killed daemon had in flight can repeat: such rows were claimed twice (taken over)
    assert all(expected[mid].attempts >= 2 for mid in duplicated)
    assert duplicates <= BATCH
    logs = [d.log() for d in daemons]
    assert all("job failed" not in log for log in logs)
    per_daemon = [
        sum(
            sum(json.loads(line).get("sent", {}).values())
            for line in log.splitlines()
            if '"event": "dispatched"' in line
        )
        for log in logs
    ]
    assert all(n > 0 for n in per_daemon)

    verify = subprocess.run(
        [DUNNING, "audit", "verify"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )
    assert verify.returncode == 0, verify.stdout + verify.stderr
    summary = {
        "messages": MESSAGES,
        "daemons": DAEMONS,
        "killed_at_status": at_kill,
        "taken_over": taken_over,
        "duplicates": duplicates,
        "sent_per_daemon_logged": per_daemon,
        "seconds_kill_to_all_sent": round(finished - killed_at, 1),
        "seconds_total": round(time.monotonic() - started, 1),
        "audit": verify.stdout.strip(),
    }
    record_property("cluster", summary)
    print("cluster test:", json.dumps(summary))
