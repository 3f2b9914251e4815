"""The daemon's health and metrics over HTTP: `/healthz` (JSON) and `/metrics` (Prometheus text format).

A stdlib `ThreadingHTTPServer` on its own daemon thread; it binds 127.0.0.1 by default because metrics
name customers' channels and volumes — put a reverse proxy in front to expose it further. Counters live in
`Metrics` (thread-safe, updated by the daemon's jobs); gauges that the database knows best (outbox depth)
are read when scraped, through a callback.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from engine.clock import iso

__all__ = ["HealthServer", "HealthStatus", "Metrics"]

logger = logging.getLogger("dunning.health")


class Metrics:
    """Counters since the daemon started. Every method may be called from any thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.sweeps = 0
        self.sweep_seconds_sum = 0.0
        self.last_sweep_duration = 0.0
        self.transitions: Counter[str] = Counter()
        self.sent: Counter[str] = Counter()
        self.failed: Counter[str] = Counter()
        self.retrying: Counter[str] = Counter()
        self.policy_reloads: Counter[str] = Counter()
        self.job_errors: Counter[str] = Counter()

    def sweep_done(self, seconds: float, entered: Mapping[str, int]) -> None:
        with self._lock:
            self.sweeps += 1
            self.sweep_seconds_sum += seconds
            self.last_sweep_duration = seconds
            self.transitions.update(entered)

    def dispatch_done(self, sent: Mapping[str, int], failed: Mapping[str, int], retrying: Mapping[str, int]) -> None:
        with self._lock:
            self.sent.update(sent)
            self.failed.update(failed)
            self.retrying.update(retrying)

    def policy_reload(self, result: str) -> None:
        with self._lock:
            self.policy_reloads[result] += 1

    def job_error(self, job: str) -> None:
        with self._lock:
            self.job_errors[job] += 1

    def render(self, gauges: Mapping[str, Any]) -> str:
        """Prometheus text exposition format (version 0.0.4)."""
        lines: list[str] = []

        def family(name: str, kind: str, help_text: str, samples: list[tuple[str, float]]) -> None:
            lines.append(f"# HELP {name} {help_text}")
            lines.append(f"# TYPE {name} {kind}")
            for labels, value in samples:
                lines.append(f"{name}{labels} {_number(value)}")

        def labelled(label: str, counts: Mapping[str, int]) -> list[tuple[str, float]]:
            return [(f'{{{label}="{_escape(key)}"}}', value) for key, value in sorted(counts.items())]

        with self._lock:
            family(
                "dunning_up",
                "gauge",
                "1 while the daemon's scheduler is running.",
                [("", 1 if gauges.get("scheduler_running") else 0)],
            )
            family(
                "dunning_database_up",
                "gauge",
                "1 while the database answers (the outbox and sweep gauges are left out while it does not).",
                [("", 1 if gauges.get("database_up", True) else 0)],
            )
            family(
                "dunning_policy_rejected",
                "gauge",
                "1 while the policies on disk are rejected and the daemon runs on the last good ones.",
                [("", 1 if gauges.get("policy_rejected") else 0)],
            )
            family("dunning_sweeps_total", "counter", "Sweeps run by this daemon.", [("", self.sweeps)])
            lines.append("# HELP dunning_sweep_duration_seconds Wall time of the sweeps run by this daemon.")
            lines.append("# TYPE dunning_sweep_duration_seconds summary")
            lines.append(f"dunning_sweep_duration_seconds_sum {_number(self.sweep_seconds_sum)}")
            lines.append(f"dunning_sweep_duration_seconds_count {self.sweeps}")
            family(
                "dunning_last_sweep_duration_seconds",
                "gauge",
                "Wall time of the latest sweep.",
                [("", self.last_sweep_duration)],
            )
            family(
                "dunning_transitions_total",
                "counter",
                "Stages entered, per stage.",
                labelled("stage", self.transitions),
            )
            family(
                "dunning_notifications_sent_total",
                "counter",
                "Notifications delivered, per channel.",
                labelled("channel", self.sent),
            )
            family(
                "dunning_notifications_failed_total",
                "counter",
                "Notifications failed for good, per channel.",
                labelled("channel", self.failed),
            )
            family(
                "dunning_notifications_retrying_total",
                "counter",
                "Temporary delivery failures scheduled for a retry, per channel.",
                labelled("channel", self.retrying),
            )
            family(
                "dunning_notifications_held_total",
                "counter",
                "Notifications held back (quiet_hours, contact_cap), per reason.",
                labelled("reason", gauges.get("held", {})),
            )
            family(
                "dunning_policy_reloads_total",
                "counter",
                "Policy reloads, per result (loaded, rejected).",
                labelled("result", self.policy_reloads),
            )
            family(
                "dunning_job_errors_total",
                "counter",
                "Daemon jobs that raised, per job.",
                labelled("job", self.job_errors),
            )
        if not gauges.get("database_up", True):
            return "\n".join(lines) + "\n"
        family(
            "dunning_outbox_depth",
            "gauge",
            "Notifications in the outbox, per status (pending, sending).",
            labelled("status", gauges.get("outbox", {})),
        )
        last = gauges.get("last_sweep_as_of")
        family(
            "dunning_last_sweep_timestamp_seconds",
            "gauge",
            "The as-of instant of the latest sweep (Unix time).",
            [("", last.timestamp() if isinstance(last, datetime) else 0)],
        )
        return "\n".join(lines) + "\n"


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


@dataclass
class HealthStatus:
    """What `/healthz` reports: healthy when the scheduler runs and the database answers; degraded (still
    healthy: it works on the last good policies) while the policies on disk are rejected."""

    scheduler_running: bool
    database_ok: bool
    last_sweep_as_of: datetime | None
    last_sweep_finished_at: datetime | None
    database_error: str | None = None
    policies: list[dict[str, str]] | None = None
    #: The latest rejected change of rules/ while the daemon runs on the last good policies: `at`,
    #: `reason`, `rules` (the folder) and `problems` (`FILE:LINE:COLUMN: message`); None when in force.
    policy_rejection: dict[str, Any] | None = None

    @property
    def healthy(self) -> bool:
        return self.scheduler_running and self.database_ok

    @property
    def status(self) -> str:
        if not self.healthy:
            return "unhealthy"
        return "degraded" if self.policy_rejection else "ok"

    def as_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "scheduler": "running" if self.scheduler_running else "stopped",
            "database": "ok" if self.database_ok else f"unreachable: {self.database_error}",
            "last_sweep": iso(self.last_sweep_as_of),
            "last_sweep_finished_at": iso(self.last_sweep_finished_at),
            "policies": self.policies or [],
            "policy_rejection": self.policy_rejection,
        }


#: A connection that sends no complete request within this many seconds is closed (a half-open or slow client
#: must not hold a thread for ever).
REQUEST_TIMEOUT_SECONDS = 10.0
#: At most this many connections are served at once; more are closed at once, so a flood of connections
#: cannot make a thread each.
MAX_CONNECTIONS = 32
#: What a client that hung up leaves behind: nothing worth more than a debug line.
CLIENT_GONE = (BrokenPipeError, ConnectionResetError, ConnectionAbortedError, TimeoutError)


class _BoundedServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # the listen backlog: a burst waits in the kernel, not in threads

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler], max_connections: int):
        super().__init__(address, handler)
        self.max_connections = max_connections
        self._slots = threading.BoundedSemaphore(max_connections)
        self._full = False

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):
            if not self._full:  # once per flood, not once per connection
                logger.warning(
                    "health server: %d connections open already; closing new ones until some end",
                    self.max_connections,
                    extra={"event": "health_connections_full"},
                )
                self._full = True
            self.shutdown_request(request)
            return
        self._full = False
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()

    def handle_error(self, request: Any, client_address: Any) -> None:
        # socketserver prints a raw traceback to stderr here, which would break `--log-format json`.
        error = sys.exc_info()[1]
        if isinstance(error, CLIENT_GONE):
            logger.debug("health client %s went away: %s", client_address[0], error)
        else:
            logger.error(
                "health server: request from %s failed: %s: %s",
                client_address[0],
                type(error).__name__,
                error,
                extra={"event": "health_error"},
            )


class HealthServer:
    """Serves `/healthz` and `/metrics` on a background thread until `stop()`."""

    def __init__(
        self,
        host: str,
        port: int,
        health: Callable[[], HealthStatus],
        metrics: Callable[[], str],
        *,
        request_timeout: float = REQUEST_TIMEOUT_SECONDS,
        max_connections: int = MAX_CONNECTIONS,
    ):
        handler = _handler(health, metrics, request_timeout)
        self._server = _BoundedServer((host, port), handler, max_connections)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 1.0}, name="dunning-health", daemon=True
        )

    @property
    def address(self) -> tuple[str, int]:
        host, port = self._server.server_address[:2]
        return str(host), int(port)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def _handler(
    health: Callable[[], HealthStatus], metrics: Callable[[], str], request_timeout: float
) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "dunning"
        timeout = request_timeout  # StreamRequestHandler sets it on the socket

        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            try:
                if path == "/healthz":
                    status = health()
                    # Degraded is still 200: a probe must not restart a daemon that works on its last good policies.
                    self._reply(
                        200 if status.healthy else 503,
                        "application/json",
                        json.dumps(status.as_dict(), indent=2) + "\n",
                    )
                elif path == "/metrics":
                    self._reply(200, "text/plain; version=0.0.4; charset=utf-8", metrics())
                else:
                    self._reply(404, "text/plain", "not found: try /healthz or /metrics\n")
            except CLIENT_GONE:
                raise  # the client hung up: nothing to answer (handle_error notes it at debug level)
            except Exception as exc:  # a scrape must never take the daemon down
                logger.error(
                    "health endpoint %s failed: %s: %s", path, type(exc).__name__, exc, extra={"event": "health_error"}
                )
                self._reply(500, "text/plain", f"error: {type(exc).__name__}\n")

        def _reply(self, code: int, content_type: str, body: str) -> None:
            data = body.encode("utf-8")
            self.send_response(code)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            logger.debug("%s %s", self.address_string(), format % args)

    return Handler
