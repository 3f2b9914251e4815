"""Charges report benchmark: `dunning report charges` over N invoices, against the charges `status --json` works
out for the same book (the floor), measured in one run.

    python benchmarks/charges.py [N]        # default 2,000 invoices

The book is `benchmarks/sweep.py`'s (due dates spread over the last 150 days, so interest runs across the
1 January half-year change) under a policy with EU statutory interest and compensation. The floor computes
one statement per open invoice (`Charging.due_by_number`, what `status --json` shows as charges_due); the
report computes two per invoice (the day before the period and its last day), so a ratio near 2 means it
does nothing more than that. Each is run three times, alternately; the best of each counts. Prints JSON with seconds, ratio and the load average.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

ROUNDS = 3
POLICY = """\
name: charging
stages:
  - {name: reminder, after_days: 3, channels: [log]}
charges:
  interest: {basis: statutory, jurisdiction: EU}
  compensation: statutory
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("n", nargs="?", type=int, default=2000, help="invoices (default 2,000)")
    args = parser.parse_args()
    from sweep import AS_OF, generate

    from engine.charging import Charging
    from engine.config import Settings
    from engine.policy.loader import load_policies
    from engine.reports.charges import charges_report
    from engine.store.database import Repository

    folder = Path(tempfile.mkdtemp(prefix="bench-charges-"))
    try:
        book = folder / "book.db"
        generate(book, args.n)
        rules = folder / "rules"
        rules.mkdir()
        (rules / "charging.yaml").write_text(POLICY, encoding="utf-8")
        shutil.copytree(ROOT / "rules" / "rates", rules / "rates")
        settings = Settings(database=f"sqlite:///{book}", rules=rules, output_dir=folder / "out")
        policies = load_policies(rules, known_channels=settings.channel_settings().keys())
        repo = Repository.open(settings.database_url)
        last = AS_OF.date()
        first = date(last.year, last.month, 1)

        floors, runs = [], []
        for _ in range(ROUNDS):  # alternated, best of each: the first read of the file warms the cache for both
            started = time.perf_counter()
            with repo.read() as session:
                due = Charging(policies, settings.zone).due_by_number(session.connection(), last)
            floors.append(time.perf_counter() - started)
            started = time.perf_counter()
            report = charges_report(repo, policies, settings.zone, first, last)
            runs.append(time.perf_counter() - started)
        floor, measured = min(floors), min(runs)
        repo.dispose()
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    [section] = report["sections"]
    print(
        json.dumps(
            {
                "invoices": args.n,
                "invoices_with_charges": len(section["invoices"]),
                "floor_seconds": round(floor, 4),
                "floor_statements": len(due),
                "report_seconds": round(measured, 4),
                "ratio": round(measured / floor, 2) if floor else None,
                "load_average": [round(x, 2) for x in os.getloadavg()],
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
