"""Simulation benchmark: `simulate` over N generated invoices for DAYS days against a same-rows floor, as JSON.

    python benchmarks/simulate.py [N=100000] [DAYS=90] [--timelines] [--no-floor]

Generates the book of benchmarks/sweep.py (N invoices over N/5 customers, grades A–D and ungraded, due
dates from 150 days ago to 30 days ahead) into an SQLite file, then, each phase in a subprocess of its own
(so each peak RSS is its own):
- `simulate`: `Simulator.run` under the shipped policies — scratch copy, one real sweep per simulated day,
  folding what each sweep wrote into the figures (target: 100k x 90 days in <= 60 s and <= 300 MiB);
- `capture` (not timed): the same simulation again, recording every INSERT, UPDATE and DELETE each of its
  transactions handed the driver, and the chain head hash it ended with;
- `floor`: those same rows written plainly — each transaction's statements replayed with sqlite3
  `executemany` into a scratch copy of the same book, one transaction each — checked to end on the same
  chain head hash. The floor does none of the reading, deciding, hashing or JSON encoding: it is the cost
  of the writes alone.
Prints JSON with the load average: seconds (wall and CPU), peak RSS, and `ratio_to_floor` = simulate seconds
/ floor seconds.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import pickle
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _sweep_benchmark():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("bench_sweep", ROOT / "benchmarks" / "sweep.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


bench = _sweep_benchmark()


def _cpu_seconds() -> float:
    times = os.times()
    return times.user + times.system


def _simulator(book: Path, timelines: bool):  # type: ignore[no-untyped-def]
    from engine.app import Dunning
    from engine.authoring.simulate import Simulator
    from engine.config import Settings

    settings = Settings(database=f"sqlite:///{book}", rules=ROOT / "rules", base_dir=book.parent)
    return Simulator(Dunning(settings, repo=None), keep_timelines=timelines)


def _period(days: int) -> tuple[date, date]:
    first = bench.AS_OF.date()
    return first, first + timedelta(days=days - 1)


def phase_simulate(book: Path, days: int, timelines: bool) -> dict[str, Any]:
    simulator = _simulator(book, timelines)
    baseline = bench.peak_mib()
    cpu, started = _cpu_seconds(), time.perf_counter()
    simulation = simulator.run(*_period(days))
    seconds, cpu = time.perf_counter() - started, _cpu_seconds() - cpu
    total = simulation.total()
    return {
        "seconds": round(seconds, 2),
        "cpu_seconds": round(cpu, 2),
        "seconds_per_day": round(seconds / days, 3),
        "peak_rss_mib": round(bench.peak_mib(), 1),
        "baseline_rss_mib": round(baseline, 1),
        "transitions": sum(total.entered.values()),
        "repeats": sum(total.repeats.values()),
        "notifications": sum(total.notifications.values()),
        "entering_legal": total.legal_invoices,
    }


def _head(conn: Any) -> str | None:
    row = conn.execute("SELECT hash FROM events ORDER BY id DESC LIMIT 1").fetchone()
    return row[0] if row else None


def phase_capture(book: Path, days: int, record: Path) -> dict[str, Any]:
    """Run the simulation once more, pickling each committed transaction's writes to `record`."""
    from sqlalchemy import event

    import engine.authoring.simulate as simulate

    copy = simulate.scratch_copy
    ended: dict[str, Any] = {}

    @contextmanager
    def recording(source):  # type: ignore[no-untyped-def]
        with copy(source) as repo, record.open("wb") as out:
            pending: list[tuple[str, list[Any]]] = []

            def before(_conn, _cursor, statement, parameters, _context, executemany):  # type: ignore[no-untyped-def]
                if statement.lstrip()[:6].upper() in ("INSERT", "UPDATE", "DELETE"):
                    pending.append((statement, list(parameters) if executemany else [parameters]))

            def commit(_conn):  # type: ignore[no-untyped-def]
                if pending:
                    pickle.dump(pending, out, protocol=pickle.HIGHEST_PROTOCOL)
                    ended["transactions"] = ended.get("transactions", 0) + 1
                    ended["rows"] = ended.get("rows", 0) + sum(len(params) for _, params in pending)
                    pending.clear()

            event.listen(repo.engine, "before_cursor_execute", before)
            event.listen(repo.engine, "commit", commit)
            event.listen(repo.engine, "rollback", lambda _conn: pending.clear())
            yield repo
            with repo.read() as session:
                ended["head"] = _head(session.connection().connection.dbapi_connection)

    simulate.scratch_copy = recording  # type: ignore[assignment]
    _simulator(book, False).run(*_period(days))
    return ended


def _transactions(record: Path) -> Iterator[list[tuple[str, list[Any]]]]:
    with record.open("rb") as handle:
        while True:
            try:
                yield pickle.load(handle)
            except EOFError:
                return


def phase_floor(book: Path, record: Path) -> dict[str, Any]:
    from engine.store.database import Repository
    from engine.store.engines import THROWAWAY_CACHE_KIB
    from engine.store.scratch import scratch_copy

    source = Repository.open(f"sqlite:///{book}")
    baseline = bench.peak_mib()
    seconds = cpu = 0.0
    rows = transactions = 0
    with scratch_copy(source) as scratch:  # the very preparation the simulation's copy gets
        path = scratch.engine.url.database
        scratch.dispose()
        conn = sqlite3.connect(path, isolation_level=None)
        conn.execute("PRAGMA journal_mode=OFF")
        conn.execute("PRAGMA synchronous=OFF")
        conn.execute(f"PRAGMA cache_size=-{THROWAWAY_CACHE_KIB}")
        conn.execute("PRAGMA foreign_keys=ON")
        for statements in _transactions(record):
            cpu_started, started = _cpu_seconds(), time.perf_counter()
            conn.execute("BEGIN IMMEDIATE")
            for statement, parameters in statements:
                conn.executemany(statement, parameters)
                rows += len(parameters)
            conn.execute("COMMIT")
            seconds += time.perf_counter() - started
            cpu += _cpu_seconds() - cpu_started
            transactions += 1
        head = _head(conn)
        conn.close()
    source.dispose()
    return {
        "seconds": round(seconds, 2),
        "cpu_seconds": round(cpu, 2),
        "rows": rows,
        "transactions": transactions,
        "head": head,
        "peak_rss_mib": round(bench.peak_mib(), 1),
        "baseline_rss_mib": round(baseline, 1),
    }


def _phase(*arguments: str) -> dict[str, Any]:
    done = subprocess.run([sys.executable, __file__, *arguments], capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"phase {arguments[1]} failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("n", type=int, nargs="?", default=100_000)
    parser.add_argument("days", type=int, nargs="?", default=90)
    parser.add_argument("--timelines", action="store_true", help="also keep the per-invoice timelines (--json)")
    parser.add_argument("--no-floor", action="store_true", help="time the simulation only")
    parser.add_argument("--phase", choices=["simulate", "capture", "floor"], help=argparse.SUPPRESS)
    parser.add_argument("--book", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--record", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.phase == "simulate":
        print(json.dumps(phase_simulate(args.book, args.days, args.timelines)))
        return
    if args.phase == "capture":
        print(json.dumps(phase_capture(args.book, args.days, args.record)))
        return
    if args.phase == "floor":
        print(json.dumps(phase_floor(args.book, args.record)))
        return

    load_before = os.getloadavg()
    folder = Path(tempfile.mkdtemp(prefix="dunning-bench-"))
    try:
        book, record = folder / "book.db", folder / "writes.pickle"
        started = time.perf_counter()
        bench.generate(book, args.n)
        generated = time.perf_counter() - started
        common = ["--book", str(book), "--record", str(record), str(args.n), str(args.days)]
        simulated = _phase("--phase", "simulate", *common, *(["--timelines"] if args.timelines else []))
        print(json.dumps({"simulate": simulated}), file=sys.stderr)  # kept should a later phase fail
        result: dict[str, Any] = {
            "benchmark": "simulate",
            "invoices": args.n,
            "days": args.days,
            "timelines": args.timelines,
            "load_average": [round(x, 2) for x in load_before],
            "generate_seconds": round(generated, 2),
            "simulate": simulated,
            "target_seconds": 60,
            "target_peak_rss_mib": 300,
        }
        if not args.no_floor:
            captured = _phase("--phase", "capture", *common)
            floor = _phase("--phase", "floor", *common)
            result["floor"] = floor
            result["same_rows"] = floor["head"] == captured["head"] and floor["rows"] == captured["rows"]
            result["ratio_to_floor"] = round(simulated["seconds"] / floor["seconds"], 2)
            result["cpu_ratio_to_floor"] = round(simulated["cpu_seconds"] / max(floor["cpu_seconds"], 0.01), 2)
        result["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
        print(json.dumps(result, indent=2))
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
