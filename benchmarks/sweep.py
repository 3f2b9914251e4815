"""Sweep benchmark: a full sweep of N generated invoices against its raw-SQL floor, measured in one run.

    python benchmarks/sweep.py 100000 [--keep DIR] [--database postgresql+psycopg://...]

Generates N invoices over N/5 customers (grades A–D and ungraded; due dates spread over the last 150 days
and the next 30) into an SQLite file, copies it, and then in separate subprocesses (so each peak RSS is its
own):
- `sweep`: the engine's full sweep (`Sweeper.run`) at one instant under the shipped policies;
- `floor`: plain sqlite3 reading every open invoice and writing the rows the sweep changed (the same
  ids and values, known before the clock starts) with one executemany.
Prints JSON with seconds and peak RSS (MiB) of each, the baseline RSS of an idle interpreter with the
modules loaded, and the ratio sweep/floor.

With `--database postgresql+psycopg://…` the book is generated into a fresh schema of that database; the
floor (plain psycopg: the same read, the same changed rows written with one executemany) runs on the swept
schema after the sweep, so both phases see the same table (the schema is dropped afterwards).
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

AS_OF = datetime(2026, 6, 1, 9, tzinfo=timezone.utc)


def peak_mib() -> float:
    """This process's peak RSS. VmHWM (Linux) starts afresh at exec; ru_maxrss can carry the parent's over."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def generate(path: Path | str, n: int, seed: int = 1) -> None:
    from sqlalchemy import insert

    from engine.store.database import Repository
    from engine.store.models import Customer, Invoice

    rng = random.Random(seed)
    repo = Repository.open(path if isinstance(path, str) else f"sqlite:///{path}")
    customers = max(1, n // 5)
    now = datetime.now(timezone.utc)
    grades = ["A", "B", "C", "D", None]
    with repo.write() as session:
        conn = session.connection()
        conn.execute(
            insert(Customer.__table__),
            [  # type: ignore[attr-defined]
                {
                    "id": f"C{i}",
                    "name": f"Customer {i}",
                    "email": f"c{i}@example.com",
                    "phone": "+1 555 0100",
                    "address": f"{i} Main St",
                    "credit_grade": rng.choice(grades),
                    "segment": "smb",
                    "tags": [],
                }
                for i in range(customers)
            ],
        )
        batch = []
        for i in range(n):
            due = AS_OF.date() - timedelta(days=rng.randint(-30, 150))
            amount = Decimal(rng.randint(10000, 9000000)) / 100
            batch.append(
                {
                    "number": f"INV-{i}",
                    "customer_id": f"C{rng.randrange(customers)}",
                    "currency": "EUR",
                    "amount": amount,
                    "open_amount": amount,
                    "issued_on": due - timedelta(days=30),
                    "due_on": due,
                    "tags": [],
                    "stage": "current",
                    "stage_repeats": 0,
                    "updated_at": now,
                }
            )
            if len(batch) == 20000:
                conn.execute(insert(Invoice.__table__), batch)  # type: ignore[attr-defined]
                batch.clear()
        if batch:
            conn.execute(insert(Invoice.__table__), batch)  # type: ignore[attr-defined]
    repo.dispose()


def phase_sweep(path: Path | str) -> dict[str, float]:
    from engine.config import Settings
    from engine.policy.loader import load_policies
    from engine.store.database import Repository
    from engine.sweep import Sweeper

    url = str(path) if str(path).startswith("postgresql") else f"sqlite:///{path}"
    settings = Settings(database=url, rules=ROOT / "rules")
    policies = load_policies(settings.rules_path, known_channels=settings.channel_settings().keys())
    repo = Repository.open(settings.database_url)
    sweeper = Sweeper(
        repo, policies, zone=settings.zone, recipients={k: v.recipient for k, v in settings.channel_settings().items()}
    )
    baseline = peak_mib()
    started = time.perf_counter()
    report = sweeper.run(AS_OF)
    seconds = time.perf_counter() - started
    return {
        "seconds": seconds,
        "peak_rss_mib": peak_mib(),
        "baseline_rss_mib": baseline,
        "invoices_seen": report.invoices_seen,
        "transitions": report.transitions,
        "repeats": sum(report.repeats.values()),
        "notifications": sum(report.notifications.values()),
    }


def changed_rows(before: Path, after: Path) -> list[tuple]:
    conn = sqlite3.connect(after)
    conn.execute(f"ATTACH DATABASE '{before}' AS old")
    rows = conn.execute(
        "SELECT n.stage, n.policy, n.stage_entered_at, n.stage_repeats, n.last_notice_at, n.updated_at, n.id "
        "FROM invoices n JOIN old.invoices o ON o.id = n.id "
        "WHERE n.stage IS NOT o.stage OR n.policy IS NOT o.policy OR n.stage_repeats IS NOT o.stage_repeats"
    ).fetchall()
    conn.close()
    return rows


def phase_floor(path: Path, changes_file: Path) -> dict[str, float]:
    changes = [tuple(row) for row in json.loads(changes_file.read_text())]
    baseline = peak_mib()
    started = time.perf_counter()
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("BEGIN IMMEDIATE")
    seen = 0
    cursor = conn.execute(
        "SELECT i.id, i.number, i.customer_id, i.currency, i.amount, i.open_amount, i.issued_on, i.due_on, i.tags, "
        "i.stage, i.policy, i.stage_entered_at, i.stage_repeats, i.last_notice_at, c.name, c.email, c.credit_grade "
        "FROM invoices i JOIN customers c ON c.id = i.customer_id WHERE i.stage NOT IN ('paid', 'written_off')"
    )
    for _row in cursor:
        seen += 1
    conn.executemany(
        "UPDATE invoices SET stage = ?, policy = ?, stage_entered_at = ?, stage_repeats = ?, last_notice_at = ?, "
        "updated_at = ? WHERE id = ?",
        changes,
    )
    conn.execute("COMMIT")
    conn.close()
    seconds = time.perf_counter() - started
    return {
        "seconds": seconds,
        "peak_rss_mib": peak_mib(),
        "baseline_rss_mib": baseline,
        "invoices_read": seen,
        "rows_written": len(changes),
    }


def _plain(url: str) -> str:
    return url.replace("postgresql+psycopg", "postgresql")


PG_READ = (
    "SELECT i.id, i.number, i.customer_id, i.currency, i.amount, i.open_amount, i.issued_on, i.due_on, i.tags, "
    "i.stage, i.policy, i.stage_entered_at, i.stage_repeats, i.last_notice_at, c.name, c.email, c.credit_grade "
    "FROM invoices i JOIN customers c ON c.id = i.customer_id WHERE i.stage NOT IN ('paid', 'written_off')"
)


def phase_floor_pg(url: str) -> dict[str, float]:
    """The PostgreSQL floor: stream every open invoice (server-side cursor), write the changed rows."""
    import psycopg

    with psycopg.connect(_plain(url)) as conn:
        changes = conn.execute(
            "SELECT n.stage, n.policy, n.stage_entered_at, n.stage_repeats, n.last_notice_at, n.updated_at, n.id "
            "FROM invoices n JOIN pristine p ON p.id = n.id "
            "WHERE n.stage IS DISTINCT FROM p.stage OR n.policy IS DISTINCT FROM p.policy "
            "OR n.stage_repeats IS DISTINCT FROM p.stage_repeats"
        ).fetchall()
    baseline = peak_mib()
    started = time.perf_counter()
    seen = 0
    with psycopg.connect(_plain(url)) as conn:
        with conn.cursor(name="floor") as cursor:
            cursor.itersize = 5000
            cursor.execute(PG_READ)
            for _row in cursor:
                seen += 1
        with conn.cursor() as cursor:
            cursor.executemany(
                "UPDATE invoices SET stage = %s, policy = %s, stage_entered_at = %s, stage_repeats = %s, "
                "last_notice_at = %s, updated_at = %s WHERE id = %s",
                changes,
            )
        conn.commit()
    seconds = time.perf_counter() - started
    return {
        "seconds": seconds,
        "peak_rss_mib": peak_mib(),
        "baseline_rss_mib": baseline,
        "invoices_read": seen,
        "rows_written": len(changes),
    }


def main_postgres(args: argparse.Namespace) -> None:
    import uuid

    import psycopg

    schema = f"bench_sweep_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(_plain(args.database), autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    url = f"{args.database}{'&' if '?' in args.database else '?'}options=-csearch_path%3D{schema}"
    try:
        started = time.perf_counter()
        generate(url, args.n)
        with psycopg.connect(_plain(url), autocommit=True) as conn:
            conn.execute("VACUUM ANALYZE invoices")
            conn.execute("VACUUM ANALYZE customers")
            conn.execute("CREATE TABLE pristine AS SELECT id, stage, policy, stage_repeats FROM invoices")
        generated = time.perf_counter() - started

        def child(*extra: str) -> dict[str, float]:
            output = subprocess.run([sys.executable, __file__, *extra], check=True, capture_output=True, text=True)
            return json.loads(output.stdout.strip().splitlines()[-1])

        sweep = child("--phase", "sweep", "--db", url)
        floor = child("--phase", "floor-pg", "--db", url)
    finally:
        with psycopg.connect(_plain(args.database), autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
    print(
        json.dumps(
            {
                "benchmark": "sweep",
                "n_invoices": args.n,
                "database": "postgresql",
                "as_of": AS_OF.isoformat(),
                "generate_seconds": round(generated, 2),
                "sweep": sweep,
                "floor": floor,
                "ratio_to_floor": round(sweep["seconds"] / floor["seconds"], 2),
                "peak_rss_over_baseline_mib": round(sweep["peak_rss_mib"] - sweep["baseline_rss_mib"], 1),
            },
            indent=2,
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("n", type=int, nargs="?", default=100_000)
    parser.add_argument("--keep", type=Path, help="keep the generated databases in this folder")
    parser.add_argument("--database", help="postgresql+psycopg://... (default: SQLite files)")
    parser.add_argument("--phase", choices=["sweep", "floor", "floor-pg"], help=argparse.SUPPRESS)
    parser.add_argument("--db", help=argparse.SUPPRESS)
    parser.add_argument("--changes", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.phase == "sweep":
        print(json.dumps(phase_sweep(args.db if args.db.startswith("postgresql") else Path(args.db))))
        return
    if args.phase == "floor":
        print(json.dumps(phase_floor(Path(args.db), args.changes)))
        return
    if args.phase == "floor-pg":
        print(json.dumps(phase_floor_pg(args.db)))
        return
    if args.database:
        main_postgres(args)
        return

    folder = args.keep or Path(tempfile.mkdtemp(prefix="dunning-bench-"))
    folder.mkdir(parents=True, exist_ok=True)
    pristine = folder / "pristine.db"
    for stale in folder.glob("*.db*"):
        stale.unlink()
    started = time.perf_counter()
    generate(pristine, args.n)
    generated = time.perf_counter() - started
    for name in ("sweep.db", "floor.db"):
        shutil.copy(pristine, folder / name)

    def child(*extra: str) -> dict[str, float]:
        output = subprocess.run([sys.executable, __file__, *extra], check=True, capture_output=True, text=True)
        return json.loads(output.stdout.strip().splitlines()[-1])

    sweep = child("--phase", "sweep", "--db", str(folder / "sweep.db"))
    changes = changed_rows(pristine, folder / "sweep.db")
    changes_file = folder / "changes.json"
    changes_file.write_text(json.dumps(changes))
    floor = child("--phase", "floor", "--db", str(folder / "floor.db"), "--changes", str(changes_file))
    result = {
        "benchmark": "sweep",
        "n_invoices": args.n,
        "database": "sqlite",
        "as_of": AS_OF.isoformat(),
        "generate_seconds": round(generated, 2),
        "sweep": sweep,
        "floor": floor,
        "ratio_to_floor": round(sweep["seconds"] / floor["seconds"], 2),
        "peak_rss_over_baseline_mib": round(sweep["peak_rss_mib"] - sweep["baseline_rss_mib"], 1),
    }
    print(json.dumps(result, indent=2))
    if not args.keep:
        shutil.rmtree(folder)


if __name__ == "__main__":
    main()
