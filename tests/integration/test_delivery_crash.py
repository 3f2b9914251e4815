"""Kill -9 the dispatcher at random points, many times, while it sends 1,000 messages to a real aiosmtpd.

Afterwards every notification must have been received at least once; duplicates are possible only for
messages handed to the server but not yet recorded, and the test measures how many actually occur.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from channels.email import message_id_for
from engine.dispatch import RECORD_EVERY
from tests.integration.smtp_server import SMTPServer

MESSAGES = 1000
KILLS = 60
ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_sigkill_at_random_points_loses_nothing(tmp_path: Path) -> None:
    rng = random.Random(20260304)
    with SMTPServer(parse=False) as server:
        (tmp_path / "rules").mkdir()
        (tmp_path / "rules" / "default.yaml").write_text(
            "name: default\nstages:\n  - {name: reminder, after_days: 1, channels: [email]}\n", encoding="utf-8"
        )
        config = tmp_path / "config.yaml"
        config.write_text(
            textwrap.dedent(f"""\
            database: sqlite:///{tmp_path / "dunning.db"}
            rules: rules
            output_dir: out
            dispatch: {{batch_size: 50, concurrency: 4, lease_seconds: 0.3, backoff_seconds: 0.2,
                        max_backoff_seconds: 1, max_attempts: 50}}
            channels:
              email: {{type: email, recipient: email, host: 127.0.0.1, port: {server.port}, security: none,
                       from: ar@acme.example, connections: 4, rate_per_minute: 4000, timeout: 5}}
            """),
            encoding="utf-8",
        )

        from engine.app import Dunning
        from engine.config import load_settings

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
        app.run(datetime.now(timezone.utc) - timedelta(seconds=1), dispatch=False)
        keys = [row["key"] for row in app.outbox()]
        assert len(keys) == MESSAGES
        app.repo.dispose()

        zygote = subprocess.Popen(
            [sys.executable, str(Path(__file__).with_name("crash_driver.py")), str(config)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        assert zygote.stdin is not None and zygote.stdout is not None
        killed = finished_early = 0
        started = time.monotonic()
        try:
            for _ in range(KILLS):
                zygote.stdin.write("go\n")
                zygote.stdin.flush()
                pid = int(zygote.stdout.readline())
                time.sleep(rng.uniform(0.0, 0.5))
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                status = zygote.stdout.readline().split()
                if os.WIFSIGNALED(int(status[1])) and os.WTERMSIG(int(status[1])) == signal.SIGKILL:
                    killed += 1
                else:
                    finished_early += 1
            received_before_final = sum(server.ids.values())
            zygote.stdin.write("go\n")
            zygote.stdin.flush()
            zygote.stdout.readline()
            final = zygote.stdout.readline().split()
            zygote.stdin.write("quit\n")
            zygote.stdin.flush()
            zygote.wait(30)
        finally:
            if zygote.poll() is None:
                zygote.kill()
        elapsed = time.monotonic() - started

    assert os.WIFEXITED(int(final[1])) and os.WEXITSTATUS(int(final[1])) == 0
    expected = {message_id_for(key, "acme.example") for key in keys}
    received = dict(server.ids)
    missing = expected - received.keys()
    assert not missing, f"{len(missing)} notifications never arrived"
    assert received.keys() == expected  # nothing that was not asked for
    duplicates = sum(count - 1 for count in received.values())
    app = Dunning(load_settings(config))
    assert {row["status"] for row in app.outbox()} == {"sent"}
    summary = {
        "messages": MESSAGES,
        "kills": killed,
        "finished_before_kill": finished_early,
        "received_before_final_run": received_before_final,
        "deliveries": sum(received.values()),
        "duplicates": duplicates,
        "seconds": round(elapsed, 1),
    }
    print("crash test:", json.dumps(summary))
    assert killed >= 50
    # a kill can duplicate at most what was handed over but not yet recorded
    assert duplicates <= killed * (RECORD_EVERY + 4)
