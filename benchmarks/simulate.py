"""Simulation benchmark: `simulate` over N generated invoices for DAYS days, printing JSON.

    python benchmarks/simulate.py [N=100000] [DAYS=90] [--timelines]

Generates the book of benchmarks/sweep.py (N invoices over N/5 customers, grades A–D and ungraded, due
dates from 150 days ago to 30 days ahead) into an SQLite file, then times `Simulator.run` — scratch copy,
one real sweep per simulated day, reading back what each sweep wrote — under the shipped policies.
Also reports the first simulated day's sweep alone (the full sweep every later, incremental day avoids).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import resource
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _sweep_benchmark():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("bench_sweep", ROOT / "benchmarks" / "sweep.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("n", type=int, nargs="?", default=100_000)
    parser.add_argument("days", type=int, nargs="?", default=90)
    parser.add_argument("--timelines", action="store_true", help="also keep the per-invoice timelines (--json)")
    args = parser.parse_args()

    from engine.app import Dunning
    from engine.authoring.simulate import Simulator
    from engine.config import Settings

    bench = _sweep_benchmark()
    with tempfile.TemporaryDirectory(prefix="dunning-bench-") as folder:
        path = Path(folder) / "book.db"
        started = time.perf_counter()
        bench.generate(path, args.n)
        generated = time.perf_counter() - started
        settings = Settings(database=f"sqlite:///{path}", rules=ROOT / "rules", base_dir=Path(folder))
        dunning = Dunning(settings, repo=None)
        first = bench.AS_OF.date()
        last = first + timedelta(days=args.days - 1)
        simulator = Simulator(dunning, keep_timelines=args.timelines)
        started = time.perf_counter()
        simulation = simulator.run(first, last)
        seconds = time.perf_counter() - started
        total = simulation.total()
        print(
            json.dumps(
                {
                    "invoices": args.n,
                    "days": args.days,
                    "timelines": args.timelines,
                    "generate_seconds": round(generated, 2),
                    "simulate_seconds": round(seconds, 2),
                    "seconds_per_day": round(seconds / args.days, 3),
                    "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
                    "transitions": sum(total.entered.values()),
                    "repeats": sum(total.repeats.values()),
                    "notifications": sum(total.notifications.values()),
                    "entering_legal": total.legal_invoices,
                    "target_seconds": 60,
                },
                indent=2,
            )
        )


if __name__ == "__main__":
    main()
