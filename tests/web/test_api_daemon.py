"""`dunning daemon --web-port N`: the same web application inside the daemon, on the daemon's clock, while
the daemon sweeps and sends; SIGTERM stops both."""

from __future__ import annotations

import re
import signal
import subprocess
from pathlib import Path

import httpx

from tests.integration.daemon_harness import DUNNING, Book
from tests.web.test_api_server import free_port


def test_the_daemon_serves_the_web_workspace(tmp_path: Path) -> None:
    book = Book(tmp_path)
    book.customers("C1,Acme,ap@acme.test,,,A,smb,alice,en,,")
    book.invoices("INV-1,C1,EUR,1200.00,2026-02-01,2026-03-01,")
    missing = book.cli("users", "token", "alice", ok=False)
    assert missing.returncode == 1 and "no user named 'alice'" in missing.stderr
    made = subprocess.run(
        [DUNNING, "users", "add", "alice", "--role", "collector", "--password-stdin"],
        cwd=book.root,
        env=book.env,
        input="s3cret-enough\n",
        text=True,
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert made.returncode == 0, made.stderr
    token = book.cli("users", "token", "alice").stdout.strip()
    port = free_port()
    daemon = book.start("2026-03-04T08:59:00+01:00", 60, "--web-port", str(port))
    try:
        daemon.wait_log(f"web workspace on http://127.0.0.1:{port}/")
        headers = {"Authorization": f"Bearer {token}"}
        daemon.wait_log("swept")  # the 09:00 sweep ran in the same process
        invoice = httpx.get(f"http://127.0.0.1:{port}/api/v1/invoices/INV-1", headers=headers, timeout=30).json()
        assert invoice["stage"] != "current" and invoice["owner"] == "alice"
        note = httpx.post(
            f"http://127.0.0.1:{port}/api/v1/invoices/INV-1/actions/note",
            headers=headers,
            json={"text": "called"},
            timeout=30,
        )
        assert note.status_code == 200 and note.json()["actor"] == "alice"
        assert re.match(r"2026-03-04T0[78]:", note.json()["at"])  # the daemon's (virtual) clock, in UTC
    finally:
        assert daemon.stop(signal.SIGTERM) == 0
    assert "DUNNING_WEB_SECRET is not set" in daemon.log()
