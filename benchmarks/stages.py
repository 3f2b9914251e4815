"""Stage-count benchmark: the first sweep of N invoices under a policy of S stages, against the same sweep under a
10-stage policy (the floor), measured in one run.

    python benchmarks/stages.py [N] [S]        # default 30 invoices, 1,000 stages

The book is `benchmarks/sweep.py`'s (due dates spread over the last 150 days, so invoices land on many
different stages); the policy climbs one stage a day (`after_days` 0, 1, 2, …) with `catch_up: jump`. The
sweep's work per invoice should grow at most linearly with the stages: a quadratic step (issue 11: every
`escalate_to_<stage>` transition built up front, 1.5 million of them for 1,000 stages) shows as a ratio far
above S/10. Prints JSON with seconds, ratio and the load average.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))


def ladder(stages: int) -> str:
    lines = ["name: ladder", "catch_up: jump", "stages:"]
    lines += [f"  - {{name: s{i}, after_days: {i}, channels: [log]}}" for i in range(stages)]
    return "\n".join(lines) + "\n"


def sweep_seconds(folder: Path, book: Path, stages: int) -> dict[str, float]:
    from sweep import AS_OF

    from engine.config import Settings
    from engine.policy.loader import load_policies
    from engine.store.database import Repository
    from engine.sweep import Sweeper

    rules = folder / f"rules-{stages}"
    rules.mkdir()
    (rules / "ladder.yaml").write_text(ladder(stages), encoding="utf-8")
    database = folder / f"book-{stages}.db"
    shutil.copy(book, database)
    settings = Settings(database=f"sqlite:///{database}", rules=rules, output_dir=folder / "out")
    started = time.perf_counter()
    policies = load_policies(rules, known_channels=settings.channel_settings().keys())
    loaded = time.perf_counter() - started
    repo = Repository.open(settings.database_url)
    sweeper = Sweeper(
        repo, policies, zone=settings.zone, recipients={k: v.recipient for k, v in settings.channel_settings().items()}
    )
    started = time.perf_counter()
    report = sweeper.run(AS_OF)
    seconds = time.perf_counter() - started
    repo.dispose()
    return {"stages": stages, "load_seconds": loaded, "sweep_seconds": seconds, "transitions": report.transitions}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("n", nargs="?", type=int, default=30, help="invoices (default 30)")
    parser.add_argument("stages", nargs="?", type=int, default=1000, help="stages of the measured policy")
    args = parser.parse_args()
    from sweep import generate

    folder = Path(tempfile.mkdtemp(prefix="bench-stages-"))
    try:
        book = folder / "book.db"
        generate(book, args.n)
        floor = sweep_seconds(folder, book, 10)
        measured = sweep_seconds(folder, book, args.stages)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    print(
        json.dumps(
            {
                "benchmark": "stages",
                "n_invoices": args.n,
                "floor": floor,
                "sweep": measured,
                "ratio": measured["sweep_seconds"] / floor["sweep_seconds"],
                "linear_ratio": args.stages / 10,
                "load_average": os.getloadavg(),
            }
        )
    )


if __name__ == "__main__":
    main()
