"""Web benchmark: 20 concurrent clients for 30 s against a real `dunning serve` on a 100,000-invoice SQLite book.

    python benchmarks/web.py [N] [--clients 20] [--seconds 30] [--keep DIR]
                             [--worklist-path /worklist] [--invoice-path /invoices/{number}]

Generates N invoices over N/5 customers (benchmarks/sweep.py's book; every customer gets one of five
collectors as owner), sweeps it once under the shipped policies, makes a collector account with a password
and an API token, and starts `dunning serve` (one uvicorn process) in a subprocess. Then C clients (asyncio +
httpx, in this process) each log in and loop, in turn, over:
- `GET /api/v1/invoices?limit=50` (the first page, or a page further on through a cursor)
- `GET /api/v1/invoices/{number}` of a random invoice
- the worklist page and the invoice page of the pages half of the workspace, when the server has them
  (a path answering 404 is left out of the run and reported as absent).
Prints one JSON object: requests, errors and p50/p95/p99 in milliseconds per kind, requests per second, and
the load average before and after (the machine is shared: read the figures with it). Targets (issue 12):
pages p95 <= 150 ms, `GET /api/v1/invoices` p95 <= 100 ms.
"""

from __future__ import annotations

import argparse
import asyncio
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
from pathlib import Path
from typing import Any

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
        sweep.phase_sweep(db)
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


def start_server(config: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {**os.environ, "DUNNING_CONFIG": str(config), "DUNNING_WEB_SECRET": os.urandom(32).hex()}
    process = subprocess.Popen(
        [sys.executable, "-m", "engine.cli.main", "serve", "--port", str(port)],
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


async def login(client: Any) -> None:
    page = await client.get("/login")
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert csrf, "no CSRF token on the login page"
    answer = await client.post(
        "/login", data={"username": OWNERS[0], "password": PASSWORD, "csrf_token": csrf.group(1)}
    )
    assert answer.status_code in (200, 303, 404), answer.text


async def run_load(
    base: str, token: str, n: int, clients: int, seconds: float, pages: dict[str, str]
) -> dict[str, Any]:
    import httpx

    timings: dict[str, list[float]] = {}
    errors: dict[str, int] = {}
    cursors: list[str] = []
    async with httpx.AsyncClient(base_url=base, headers={"Authorization": f"Bearer {token}"}) as probe:
        first = (await probe.get("/api/v1/invoices", params={"limit": 50})).json()
        if first.get("next_cursor"):
            cursors.append(first["next_cursor"])
    present: dict[str, str] = {}
    async with httpx.AsyncClient(base_url=base, follow_redirects=True) as browser:
        await login(browser)
        for kind, path in pages.items():
            status = (await browser.get(path.format(number="INV-1"))).status_code
            if status == 200:
                present[kind] = path
    stop = time.monotonic() + seconds

    async def one(kind: str, call: Any) -> None:
        started = time.perf_counter()
        try:
            answer = await call
            ok = answer.status_code == 200
            if kind == "api_invoices" and ok:
                cursor = answer.json().get("next_cursor")
                if cursor and len(cursors) < 200:
                    cursors.append(cursor)
        except httpx.HTTPError:
            ok = False
        elapsed = (time.perf_counter() - started) * 1000
        if ok:
            timings.setdefault(kind, []).append(elapsed)
        else:
            errors[kind] = errors.get(kind, 0) + 1

    async def worker(index: int) -> None:
        rng = random.Random(index)
        async with (
            httpx.AsyncClient(base_url=base, timeout=30) as session,
            httpx.AsyncClient(base_url=base, timeout=30, headers={"Authorization": f"Bearer {token}"}) as api,
        ):
            if present:
                await login(session)
            step = index
            while time.monotonic() < stop:
                number = f"INV-{rng.randrange(n)}"
                choice = step % (2 + len(present))
                step += 1
                if choice == 0:
                    params = {"limit": 50}
                    if cursors and rng.random() < 0.5:
                        params["cursor"] = rng.choice(cursors)  # type: ignore[assignment]
                    await one("api_invoices", api.get("/api/v1/invoices", params=params))
                elif choice == 1:
                    await one("api_invoice", api.get(f"/api/v1/invoices/{number}"))
                else:
                    kind = list(present)[choice - 2]
                    await one(f"page_{kind}", session.get(present[kind].format(number=number)))

    started = time.monotonic()
    await asyncio.gather(*(worker(i) for i in range(clients)))
    wall = time.monotonic() - started
    return {
        "seconds": round(wall, 1),
        "clients": clients,
        "requests": sum(len(v) for v in timings.values()),
        "errors": errors,
        "requests_per_second": round(sum(len(v) for v in timings.values()) / wall, 1),
        "pages_absent": sorted(set(pages) - set(present)),
        "latency_ms": {
            kind: {
                "count": len(values),
                "p50": percentile(values, 0.50),
                "p95": percentile(values, 0.95),
                "p99": percentile(values, 0.99),
            }
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
        "--keep",
        type=Path,
        help="Build the book in this folder and keep it (a folder holding one from an earlier run is used again).",
    )
    parser.add_argument("--worklist-path", default="/worklist")
    parser.add_argument("--invoice-path", default="/invoices/{number}")
    args = parser.parse_args()
    folder = args.keep or Path(tempfile.mkdtemp(prefix="dunning-web-bench-"))
    folder.mkdir(parents=True, exist_ok=True)
    built = time.perf_counter()
    config, token = build_book(folder, args.n)
    build_seconds = time.perf_counter() - built
    process, base = start_server(config)
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
        targets_ms={"page_p95": 150, "api_invoices_p95": 100},
    )
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
