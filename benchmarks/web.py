"""Web benchmark: 20 concurrent clients for 30 s against a real `dunning serve` on a 100,000-invoice SQLite book.

    python benchmarks/web.py [N] [--clients 20] [--seconds 30] [--floor-seconds 10] [--workers CORES] [--keep DIR]
                             [--worklist-path /worklist] [--invoice-path /invoices/{number}]

Generates N invoices over N/5 customers (benchmarks/sweep.py's book; every customer gets one of five
collectors as owner), sweeps it once under the shipped policies, makes a collector account with a password
and an API token, and starts `dunning serve --workers` (one per core) as the README has it for production in a
subprocess. Then C clients (in
this process: asyncio with a bare keep-alive HTTP/1.1 connection each, so the load generator costs about
0.2 ms of CPU per request and leaves the cores to the server it measures) each log in and loop, in turn, over:
- `GET /api/v1/invoices?limit=50` (the first page, or a page further on through a cursor)
- `GET /api/v1/invoices/{number}` of a random invoice
- the worklist page and the invoice page of the pages half of the workspace, when the server has them
  (a path answering 404 is left out of the run and reported as absent).
Before that, for --floor-seconds, the same clients ask only `GET /api/v1/healthz` (no credentials, one tiny
read): the floor. Prints one JSON object: requests, errors and p50/p95/p99 in milliseconds per kind (and of
the floor), each kind's p95 over the floor's p95, requests per second, the CPU seconds the server and the
client used in the main run, and the load average before and after (the machine is shared: read the figures
with it). Targets (issue 12): pages p95 <= 150 ms, `GET /api/v1/invoices` p95 <= 100 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import json
import os
import random
import re
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
PASSWORD = "benchmark password"
OWNERS = [f"collector{i}" for i in range(5)]


def _sweep_module() -> Any:
    spec = importlib.util.spec_from_file_location("sweep_benchmark", ROOT / "benchmarks" / "sweep.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def build_book(folder: Path, n: int) -> tuple[Path, str]:
    """The swept book with owners, a collector account; returns the config file and an API token."""
    db = folder / "book.db"
    config = folder / "config.yaml"
    env = {**os.environ, "DUNNING_CONFIG": str(config)}
    dunning = [sys.executable, "-m", "engine.cli.main"]
    if not config.is_file():  # a book kept (--keep) from an earlier run is used again as it is
        sweep = _sweep_module()
        sweep.generate(db, n)
        with sqlite3.connect(db) as conn:
            conn.execute("UPDATE customers SET owner = 'collector' || (CAST(substr(id, 2) AS INTEGER) % 5)")
        sweep.phase_sweep(f"sqlite:///{db}", sweep.AS_OF)
        config.write_text(f"database: sqlite:///{db}\nrules: {ROOT / 'rules'}\n", encoding="utf-8")
        subprocess.run(
            [*dunning, "users", "add", OWNERS[0], "--role", "collector", "--password-stdin"],
            env=env,
            input=PASSWORD + "\n",
            text=True,
            check=True,
            capture_output=True,
        )
    token = subprocess.run(
        [*dunning, "users", "token", OWNERS[0]], env=env, text=True, check=True, capture_output=True
    ).stdout.strip()
    return config, token


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(config: Path, workers: int) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {**os.environ, "DUNNING_CONFIG": str(config), "DUNNING_WEB_SECRET": os.urandom(32).hex()}
    process = subprocess.Popen(
        [sys.executable, "-m", "engine.cli.main", "serve", "--port", str(port), "--workers", str(workers)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    import httpx

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(base + "/api/v1/healthz", timeout=1).status_code == 200:
                return process, base
        except httpx.TransportError:
            time.sleep(0.2)
    process.kill()
    raise SystemExit("the server did not come up within 60 s")


def percentile(values: list[float], share: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(share * len(ordered)))], 1)


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class HttpConnection:
    """One keep-alive HTTP/1.1 connection on asyncio streams: a load generator that costs the machine far
    less CPU per request than a full client library (on a 2-core machine the client competes with the
    server it measures). Keeps the session cookie the server sets."""

    def __init__(self, host: str, port: int, headers: dict[str, str] | None = None):
        self.host, self.port = host, port
        self.headers = dict(headers or {})
        self.cookie: str | None = None
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(self, method: str, path: str, body: bytes = b"", content_type: str | None = None) -> Answer:
        for attempt in (1, 2):  # a keep-alive connection the server closed meanwhile is opened again once
            try:
                return await asyncio.wait_for(self._exchange(method, path, body, content_type), 30)
            except (ConnectionError, asyncio.IncompleteReadError):
                await self.close()
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    async def get(self, path: str) -> Answer:
        return await self.request("GET", path)

    async def _exchange(self, method: str, path: str, body: bytes, content_type: str | None) -> Answer:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        lines = [f"{method} {path} HTTP/1.1", f"Host: {self.host}:{self.port}"]
        lines += [f"{name}: {value}" for name, value in self.headers.items()]
        if self.cookie:
            lines.append(f"Cookie: {self.cookie}")
        if body or method == "POST":
            lines += [f"Content-Length: {len(body)}", f"Content-Type: {content_type}"]
        self.writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
        head = (await self.reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
        status = int(head[0].split(" ", 2)[1])
        headers: dict[str, str] = {}
        for line in head[1:]:
            if line:
                name, _, value = line.partition(":")
                name, value = name.strip().lower(), value.strip()
                if name == "set-cookie":
                    self.cookie = value.split(";", 1)[0]
                headers[name] = value
        if headers.get("transfer-encoding", "").lower() == "chunked":
            parts = []
            while size := int((await self.reader.readuntil(b"\r\n")).strip().split(b";")[0], 16):
                parts.append(await self.reader.readexactly(size + 2))
            await self.reader.readuntil(b"\r\n")
            content = b"".join(p[:-2] for p in parts)
        else:
            content = await self.reader.readexactly(int(headers.get("content-length", "0")))
        if headers.get("connection", "").lower() == "close":
            await self.close()
        return Answer(status, headers, content)

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            with contextlib.suppress(Exception):
                await self.writer.wait_closed()
        self.reader = self.writer = None


async def login(connection: HttpConnection) -> None:
    """Sign in as the collector; the redirect to the dashboard is not followed (its book-wide figures are
    computed in the background and would run through the measurement)."""
    page = await connection.get("/login")
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.body.decode("utf-8"))
    assert csrf, "no CSRF token on the login page"
    form = urlencode({"username": OWNERS[0], "password": PASSWORD, "csrf_token": csrf.group(1)}).encode()
    answer = await connection.request("POST", "/login", form, "application/x-www-form-urlencoded")
    assert answer.status == 303, answer.body[:500]


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process `pid` and its waited-for children (uvicorn workers), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(x) for x in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def process_tree_cpu(pid: int) -> float:
    """CPU seconds of `pid` and every live descendant (a server with worker processes)."""
    total = 0.0
    pending = [pid]
    while pending:
        current = pending.pop()
        with contextlib.suppress(OSError):
            total += cpu_seconds(current)
            children = Path(f"/proc/{current}/task/{current}/children").read_text().split()
            pending.extend(int(c) for c in children)
    return total


async def run_load(
    base: str,
    token: str,
    n: int,
    clients: int,
    seconds: float,
    pages: dict[str, str],
    server_pid: int,
    floor_seconds: float = 10,
) -> dict[str, Any]:
    parts = urlsplit(base)
    host, port = parts.hostname or "127.0.0.1", int(parts.port or 80)
    bearer = {"Authorization": f"Bearer {token}"}
    timings: dict[str, list[float]] = {}
    errors: dict[str, int] = {}
    cursors: list[str] = []
    probe = HttpConnection(host, port, bearer)
    first = (await probe.get("/api/v1/invoices?limit=50")).json()
    if first.get("next_cursor"):
        cursors.append(first["next_cursor"])
    await probe.close()
    present: dict[str, str] = {}
    browser = HttpConnection(host, port)
    await login(browser)
    for kind, path in pages.items():
        if (await browser.get(path.format(number="INV-1"))).status == 200:
            present[kind] = path
    await browser.close()

    async def one(kind: str, connection: HttpConnection, path: str) -> None:
        started = time.perf_counter()
        try:
            answer = await connection.get(path)
            ok = answer.status == 200
            if kind == "api_invoices" and ok:
                cursor = answer.json().get("next_cursor")
                if cursor and len(cursors) < 200:
                    cursors.append(cursor)
        except (TimeoutError, OSError, asyncio.IncompleteReadError, ValueError):
            ok = False
        elapsed = (time.perf_counter() - started) * 1000
        if ok:
            timings.setdefault(kind, []).append(elapsed)
        else:
            errors[kind] = errors.get(kind, 0) + 1

    sessions = [HttpConnection(host, port) for _ in range(clients)]
    apis = [HttpConnection(host, port, bearer) for _ in range(clients)]
    if present:
        await asyncio.gather(*(login(s) for s in sessions))

    async def floor_worker(index: int, until: float) -> None:
        while time.monotonic() < until:
            await one("floor_healthz", apis[index], "/api/v1/healthz")

    # The floor: the same clients on the same server asking only `healthz` (one tiny read, no auth) — what
    # the machine's load leaves of a request at all; the ratios to it compare between runs under load.
    until = time.monotonic() + floor_seconds
    await asyncio.gather(*(floor_worker(i, until) for i in range(clients)))
    floor = timings.pop("floor_healthz", [])
    errors.pop("floor_healthz", None)
    stop = time.monotonic() + seconds

    async def worker(index: int) -> None:
        rng = random.Random(index)
        session, api = sessions[index], apis[index]
        step = index
        while time.monotonic() < stop:
            number = f"INV-{rng.randrange(n)}"
            choice = step % (2 + len(present))
            step += 1
            if choice == 0:
                path = "/api/v1/invoices?limit=50"
                if cursors and rng.random() < 0.5:
                    path += "&cursor=" + rng.choice(cursors)
                await one("api_invoices", api, path)
            elif choice == 1:
                await one("api_invoice", api, f"/api/v1/invoices/{number}")
            else:
                kind = list(present)[choice - 2]
                await one(f"page_{kind}", session, present[kind].format(number=number))

    started, client_cpu, server_cpu = time.monotonic(), time.process_time(), process_tree_cpu(server_pid)
    await asyncio.gather(*(worker(i) for i in range(clients)))
    wall = time.monotonic() - started
    client_cpu, server_cpu = time.process_time() - client_cpu, process_tree_cpu(server_pid) - server_cpu
    for connection in [*sessions, *apis]:
        await connection.close()
    requests = sum(len(v) for v in timings.values())
    return {
        "seconds": round(wall, 1),
        "clients": clients,
        "requests": requests,
        "errors": errors,
        "requests_per_second": round(requests / wall, 1),
        "pages_absent": sorted(set(pages) - set(present)),
        "cpu_seconds": {
            "server": round(server_cpu, 1),
            "client": round(client_cpu, 1),
            "server_ms_per_request": round(server_cpu * 1000 / max(requests, 1), 2),
            "client_ms_per_request": round(client_cpu * 1000 / max(requests, 1), 2),
        },
        "latency_ms": {
            kind: {
                "count": len(values),
                "p50": percentile(values, 0.50),
                "p95": percentile(values, 0.95),
                "p99": percentile(values, 0.99),
            }
            for kind, values in sorted({**timings, "floor_healthz": floor}.items())
        },
        "p95_to_floor_p95": {
            kind: round((percentile(values, 0.95) or 0) / (percentile(floor, 0.95) or 1), 2)
            for kind, values in sorted(timings.items())
        },
    }


def loadavg() -> list[float]:
    return [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("n", nargs="?", type=int, default=100_000)
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument(
        "--floor-seconds", type=float, default=10, help="How long the clients ask only healthz first (the floor)."
    )
    parser.add_argument(
        "--keep",
        type=Path,
        help="Build the book in this folder and keep it (a folder holding one from an earlier run is used again).",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=os.cpu_count() or 1,
        help="`dunning serve --workers` (default: one per core, as the README has it for production).",
    )
    parser.add_argument("--worklist-path", default="/worklist")
    parser.add_argument("--invoice-path", default="/invoices/{number}")
    args = parser.parse_args()
    folder = args.keep or Path(tempfile.mkdtemp(prefix="dunning-web-bench-"))
    folder.mkdir(parents=True, exist_ok=True)
    built = time.perf_counter()
    config, token = build_book(folder, args.n)
    build_seconds = time.perf_counter() - built
    process, base = start_server(config, args.workers)
    try:
        before = loadavg()
        result = asyncio.run(
            run_load(
                base,
                token,
                args.n,
                args.clients,
                args.seconds,
                {"worklist": args.worklist_path, "invoice": args.invoice_path},
                process.pid,
                args.floor_seconds,
            )
        )
        after = loadavg()
    finally:
        process.terminate()
        process.wait(timeout=15)
    result.update(
        invoices=args.n,
        database="sqlite",
        build_seconds=round(build_seconds, 1),
        loadavg_before=before,
        loadavg_after=after,
        cpus=os.cpu_count(),
        workers=args.workers,
        targets_ms={"page_p95": 150, "api_invoices_p95": 100},
    )
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
