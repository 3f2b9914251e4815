"""The daemon's health server under hostile clients and faults (issue 11, defects 11 and 20), over real sockets:
half-open connections are timed out and bounded, clients that hang up leave no traceback, `/metrics` still
answers while the database is down, and a rejected policy change shows in `/healthz` as degraded."""

from __future__ import annotations

import http.client
import json
import logging
import socket
import struct
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from engine.config import Settings
from engine.service.daemon import Daemon
from engine.service.health import HealthServer, HealthStatus
from engine.service.scheduler import JobScheduler
from tests.conftest import DEFAULT_POLICY
from tests.integration.daemon_harness import Book
from tests.integration.smtp_server import free_port

pytestmark = pytest.mark.timeout(120)


def get(address: tuple[str, int], path: str) -> tuple[int, str]:
    connection = http.client.HTTPConnection(*address, timeout=10)
    try:
        connection.request("GET", path)
        reply = connection.getresponse()
        return reply.status, reply.read().decode()
    finally:
        connection.close()


def closed_by_server(sock: socket.socket, within: float) -> bool:
    sock.settimeout(within)
    try:
        return sock.recv(1) == b""
    except TimeoutError:
        return False
    except ConnectionResetError:
        return True


@pytest.fixture
def served() -> Iterator[HealthServer]:
    big = "# a large scrape\n" + "dunning_padding 1\n" * 200_000  # ~3.6 MB: writing it to a gone client fails

    def metrics() -> str:
        time.sleep(0.2)  # the client hangs up meanwhile
        return big

    server = HealthServer(
        "127.0.0.1",
        0,
        lambda: HealthStatus(True, True, None, None),
        metrics,
        request_timeout=0.5,
        max_connections=8,
    )
    server.start()
    yield server
    server.stop()


def test_half_open_connections_are_timed_out_and_never_a_thread_each(served: HealthServer) -> None:
    before = threading.active_count()
    sockets = [socket.create_connection(served.address, timeout=5) for _ in range(100)]
    try:
        time.sleep(0.2)
        assert threading.active_count() <= before + 8, "a thread per half-open connection"
        # The ones over the bound are closed at once, the others once they have said nothing for 0.5 s.
        assert all(closed_by_server(sock, 5) for sock in sockets)
    finally:
        for sock in sockets:
            sock.close()
    assert get(served.address, "/healthz")[0] == 200
    deadline = time.monotonic() + 5
    while threading.active_count() > before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert threading.active_count() <= before


def test_a_client_hanging_up_leaves_no_traceback(
    served: HealthServer, capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="dunning")
    for _ in range(5):
        sock = socket.create_connection(served.address, timeout=5)
        sock.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # hang up with a RST
        sock.close()
    half = socket.create_connection(served.address, timeout=5)
    half.sendall(b"GET /heal")  # and one that stops mid-request until the server times it out
    assert closed_by_server(half, 5)
    half.close()
    time.sleep(0.5)
    assert get(served.address, "/healthz")[0] == 200
    _, err = capfd.readouterr()
    assert "Traceback" not in err and "Error" not in err, err
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], caplog.text


def started(daemon: Daemon, stack: ExitStack) -> tuple[str, int]:
    """The daemon's start-up, its scheduler (with no jobs) and its health server: the address served."""
    daemon._start(stack)
    jobs = JobScheduler()
    jobs.start()
    stack.callback(jobs.shutdown)
    daemon.jobs = jobs
    daemon._start_health(stack)
    assert daemon.health is not None
    return daemon.health.address


def daemon_on(tmp_path: Path) -> Daemon:
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "90-default.yaml").write_text(DEFAULT_POLICY, encoding="utf-8")
    settings = Settings(database=f"sqlite:///{tmp_path / 'dunning.db'}", rules=rules, base_dir=tmp_path)
    return Daemon(settings, health_port=0)


def test_metrics_still_answer_while_the_database_is_down(tmp_path: Path) -> None:
    daemon = daemon_on(tmp_path)
    with ExitStack() as stack:
        address = started(daemon, stack)
        code, text = get(address, "/metrics")
        assert code == 200 and "dunning_database_up 1" in text and "dunning_outbox_depth" in text
        # The database goes away: its file replaced by a folder no connection can open.
        (tmp_path / "dunning.db").rename(tmp_path / "dunning.db.away")
        (tmp_path / "dunning.db").mkdir()
        assert daemon.dunning is not None
        daemon.dunning.repo.engine.dispose()
        code, text = get(address, "/metrics")
        assert code == 200, text
        assert "dunning_database_up 0" in text and "dunning_sweeps_total 0" in text
        assert "dunning_outbox_depth" not in text  # not made up while unknown
        code, text = get(address, "/healthz")
        assert code == 503 and json.loads(text)["database"].startswith("unreachable: ")


def test_a_rejected_policy_change_shows_as_degraded_until_fixed(tmp_path: Path) -> None:
    daemon = daemon_on(tmp_path)
    with ExitStack() as stack:
        address = started(daemon, stack)
        assert json.loads(get(address, "/healthz")[1])["status"] == "ok"
        policy = tmp_path / "rules" / "90-default.yaml"
        policy.write_text(DEFAULT_POLICY.replace("after_days: 1", "after_days: soon"), encoding="utf-8")
        assert daemon.reload_policies("file change") is False
        code, text = get(address, "/healthz")
        health = json.loads(text)
        # Still 200: a readiness probe must not restart a daemon that works on its last good policies.
        assert code == 200 and health["status"] == "degraded"
        rejection = health["policy_rejection"]
        assert rejection["reason"] == "file change" and rejection["rules"] == str(tmp_path / "rules")
        assert any("90-default.yaml:" in problem and "after_days" in problem for problem in rejection["problems"])
        assert [p["name"] for p in health["policies"]] == ["fallback"]  # the last good ones, still in force
        assert "dunning_policy_rejected 1" in get(address, "/metrics")[1]
        policy.write_text(DEFAULT_POLICY, encoding="utf-8")  # put right: the same text as before
        assert daemon.reload_policies("file change") is None
        code, text = get(address, "/healthz")
        assert code == 200 and json.loads(text)["status"] == "ok" and json.loads(text)["policy_rejection"] is None
        assert "dunning_policy_rejected 0" in get(address, "/metrics")[1]


def test_hostile_clients_leave_the_daemons_json_log_all_json(tmp_path: Path) -> None:
    book = Book(tmp_path)
    port = free_port()
    try:
        daemon = book.start("2026-03-05T08:30", 1, "--health-port", str(port), "--log-format", "json")
        daemon.wait_log('"event": "started"', timeout=60)
        for request in (b"GET /metrics HTTP/1.1\r\nHost", b"GET /healthz HTTP/1.1\r\n\r\n", b""):
            for _ in range(3):  # cut off mid-request, right after one, and before a word
                sock = socket.create_connection(("127.0.0.1", port), timeout=5)
                sock.sendall(request)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                sock.close()
        assert get(("127.0.0.1", port), "/healthz")[0] == 200
        assert daemon.stop() == 0
    finally:
        book.cleanup()
    text = daemon.log()
    assert "Traceback" not in text, text
    assert "stopped" in {line.get("event") for line in daemon.json_lines()}  # every line parses as JSON
