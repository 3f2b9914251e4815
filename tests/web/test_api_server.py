"""End to end: `dunning users` and `dunning serve` as real processes on one SQLite book.

The first admin is made on the command line, a token is printed once, the real uvicorn server answers
with it, and `dunning users revoke` in another process shuts it out at once. While another process holds
SQLite's write lock (as a sweeping daemon does), reads go on and a write answers 503 after a short wait.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.web.conftest import POLICY

DUNNING = [sys.executable, "-m", "engine.cli.main"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def installation(tmp_path: Path) -> dict[str, str]:
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "web.yaml").write_text(POLICY, encoding="utf-8")
    (tmp_path / "config.yaml").write_text(
        f"database: sqlite:///{tmp_path / 'book.db'}\nrules: rules\n", encoding="utf-8"
    )
    (tmp_path / "customers.csv").write_text("id,name,email,owner,credit_grade\nC1,Acme,ap@acme.test,alice,A\n")
    (tmp_path / "invoices.csv").write_text(
        "number,customer_id,currency,amount,issued_on,due_on\nINV-1,C1,EUR,1200.00,2026-01-01,2026-01-31\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("DUNNING_")}
    env["DUNNING_CONFIG"] = str(tmp_path / "config.yaml")
    return env


def cli(env: dict[str, str], *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*DUNNING, *args], check=False, env=env, input=stdin, capture_output=True, text=True, timeout=60
    )


@contextlib.contextmanager
def serving(installation: dict[str, str], tmp_path: Path, *options: str) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    """`dunning serve` (with `options`) on the imported book, once it answers."""
    for kind in ("customers", "invoices"):
        assert cli(installation, "import", kind, str(tmp_path / f"{kind}.csv")).returncode == 0
    port = free_port()
    process = subprocess.Popen(
        [*DUNNING, "serve", "--port", str(port), *options],
        env=installation,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(base + "/api/v1/healthz", timeout=1).status_code == 200:
                break
        except httpx.TransportError:
            pass
        assert process.poll() is None, process.stderr.read() if process.stderr else ""
        assert time.monotonic() < deadline, "the server did not come up in 60 s"
        time.sleep(0.1)
    try:
        yield base, process
    finally:
        process.terminate()
        process.wait(timeout=15)


@pytest.fixture
def server(installation: dict[str, str], tmp_path: Path) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    with serving(installation, tmp_path) as running:
        yield running


def test_worker_processes_share_sessions_and_background_jobs(installation: dict[str, str], tmp_path: Path) -> None:
    added = cli(installation, "users", "add", "mona", "--role", "manager", "--password-stdin", stdin="s3cret-enough\n")
    assert added.returncode == 0, added.stderr
    one_request_a_connection = httpx.Limits(max_keepalive_connections=0)  # any worker may take each one
    with (
        serving(installation, tmp_path, "--workers", "2") as (base, _),
        httpx.Client(base_url=base, limits=one_request_a_connection) as browser,
    ):
        page = browser.get("/login")
        csrf = page.text.split('name="csrf_token" value="')[1].split('"')[0]
        browser.post("/login", data={"username": "mona", "password": "s3cret-enough", "csrf_token": csrf})
        me = [browser.get("/api/v1/me") for _ in range(12)]  # answered by both workers: one session secret
        assert all(answer.status_code == 200 and answer.json()["name"] == "mona" for answer in me)
        started = browser.post(
            "/api/v1/simulations",
            json={"from": "2026-02-01", "to": "2026-02-20"},
            headers={"X-CSRF-Token": me[0].json()["csrf_token"]},
        )
        assert started.status_code == 202, started.text
        url, deadline = started.json()["url"], time.monotonic() + 60
        while (job := browser.get(url)).status_code == 200 and job.json()["status"] in ("queued", "running"):
            assert time.monotonic() < deadline, job.json()
            time.sleep(0.1)
        assert job.status_code == 200 and job.json()["status"] == "done", job.text
        polls = [browser.get(url).status_code for _ in range(12)]
        assert polls == [200] * 12
        assert browser.get(url.rsplit("/", 1)[0] + "/" + "0" * 32).status_code == 404  # unknown to both


def test_a_job_started_by_one_worker_is_found_by_another(tmp_path: Path) -> None:
    from datetime import datetime, timezone

    from engine.errors import NotFound
    from engine.web.jobs import JobBook

    first, second = JobBook(tmp_path), JobBook(tmp_path)  # two worker processes' books on one folder
    job = first.start("simulation", "mona", datetime.now(timezone.utc), {"to": "2026-02-20"}, lambda: {"n": 1})
    found = second.wait(job.id, "simulation", timeout=10)
    assert found.status == "done" and found.result == {"n": 1} and found.owner == "mona"
    assert second.get(job.id, "simulation").as_dict()["elapsed_seconds"] is not None
    for unknown in ("0" * 32, "../" + job.id, job.id.upper()):
        with pytest.raises(NotFound):
            second.get(unknown, "simulation")
    with pytest.raises(NotFound):
        second.get(job.id, "policy-diff")
    # a book without the folder (one server process) knows only its own jobs
    with pytest.raises(NotFound):
        JobBook().get(job.id, "simulation")


def test_first_admin_token_and_revocation_across_processes(
    installation: dict[str, str], server: tuple[str, subprocess.Popen[str]]
) -> None:
    base, process = server
    assert json.loads(cli(installation, "users", "list", "--json").stdout) == []
    added = cli(installation, "users", "add", "root", "--role", "admin", "--password-stdin", stdin="s3cret-enough\n")
    assert added.returncode == 0, added.stderr
    made = cli(installation, "users", "token", "root", "--expires", "7")
    assert made.returncode == 0 and made.stdout.count("\n") == 1 and made.stdout.startswith("dk_")
    token = made.stdout.strip()
    [listed] = json.loads(cli(installation, "users", "list", "--json").stdout)
    assert set(listed) == {"name", "role", "language", "disabled", "created_at"} and listed["role"] == "admin"

    headers = {"Authorization": f"Bearer {token}"}
    me = httpx.get(base + "/api/v1/me", headers=headers)
    assert me.status_code == 200 and me.json()["role"] == "admin"
    invoices = httpx.get(base + "/api/v1/invoices", headers=headers).json()
    assert [i["number"] for i in invoices["items"]] == ["INV-1"] and invoices["next_cursor"] is None
    noted = httpx.post(base + "/api/v1/invoices/INV-1/actions/note", headers=headers, json={"text": "called Acme"})
    assert noted.status_code == 200 and noted.json()["actor"] == "root" and noted.json()["text"] == "called Acme"
    history = json.loads(cli(installation, "history", "INV-1", "--json").stdout)
    assert history[-1]["kind"] == "note" and history[-1]["actor"] == "root"

    # the browser way: login form, session cookie
    with httpx.Client(base_url=base) as browser:
        page = browser.get("/login")
        csrf = page.text.split('name="csrf_token" value="')[1].split('"')[0]
        logged = browser.post("/login", data={"username": "root", "password": "s3cret-enough", "csrf_token": csrf})
        assert logged.status_code in (200, 303, 404)  # redirected to / (the pages may not be there)
        assert browser.get("/api/v1/me").json()["name"] == "root"

    revoked = cli(installation, "users", "revoke", "root")
    assert revoked.returncode == 0 and "1 token(s) of root revoked" in revoked.stderr
    assert httpx.get(base + "/api/v1/me", headers=headers).status_code == 401
    deadline = time.monotonic() + 10  # the server writes token use and bad tokens off the request path
    while (log := json.loads(cli(installation, "users", "log", "--json").stdout))[-1]["kind"] != "refused":
        assert time.monotonic() < deadline, log
        time.sleep(0.2)
    assert all(set(e) == {"at", "kind", "user", "address", "detail"} for e in log)
    assert [e["kind"] for e in log] == [
        "user_added",
        "token_created",
        "token_used",
        "login",
        "token_revoked",
        "refused",
    ]
    assert process.poll() is None


def test_writes_wait_briefly_for_sqlites_write_lock_then_answer_503(
    installation: dict[str, str], tmp_path: Path, server: tuple[str, subprocess.Popen[str]]
) -> None:
    base, _ = server
    cli(installation, "users", "add", "mona", "--role", "manager", "--password-stdin", stdin="s3cret-enough\n")
    headers = {"Authorization": f"Bearer {cli(installation, 'users', 'token', 'mona').stdout.strip()}"}
    httpx.get(base + "/api/v1/me", headers=headers)  # the token's first use is logged now, not under the lock
    holder = sqlite3.connect(tmp_path / "book.db", isolation_level=None, timeout=1)
    holder.execute("BEGIN IMMEDIATE")  # what a sweeping daemon holds
    try:
        read = httpx.get(base + "/api/v1/invoices/INV-1", headers=headers, timeout=30)
        assert read.status_code == 200  # readers never block
        started = time.monotonic()
        write = httpx.post(
            base + "/api/v1/invoices/INV-1/actions/note", headers=headers, json={"text": "x"}, timeout=30
        )
        waited = time.monotonic() - started
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert write.status_code == 503 and write.headers["retry-after"]
    assert write.headers["content-type"].startswith("application/problem+json") and "busy" in write.json()["detail"]
    assert waited > 1  # it waited for the lock before giving up
    assert (
        httpx.post(base + "/api/v1/invoices/INV-1/actions/note", headers=headers, json={"text": "x"}).status_code == 200
    )


def test_serve_refuses_to_start_without_a_secret_off_loopback(installation: dict[str, str]) -> None:
    refused = cli(installation, "serve", "--host", "0.0.0.0", "--port", str(free_port()))
    assert refused.returncode == 1 and "DUNNING_WEB_SECRET is not set" in refused.stderr


def test_serve_on_loopback_warns_about_a_generated_secret(server: tuple[str, subprocess.Popen[str]]) -> None:
    _, process = server
    process.terminate()
    _, stderr = process.communicate(timeout=10)
    assert "DUNNING_WEB_SECRET is not set; using a random secret" in stderr
