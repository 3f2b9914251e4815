"""Import benchmark: `dunning import invoices FILE` of N rows against a plain executemany insert, same run.

    .venv/bin/python benchmarks/import.py 1000000 [--database postgresql+psycopg://...]

Writes a CSV of N invoices over N/5 customers, then in separate subprocesses (each peak RSS its own), each
into a fresh database holding the customers:
- `import`: the engine's streamed, checked, all-or-nothing import (`Importer.import_file`: every value
  checked, unknown customers and duplicates refused, an `import` event per invoice in the hash chain);
- `floor`: the csv module reading the same file and one plain DB-API executemany INSERT of the rows
  (sqlite3 or psycopg), one transaction, no checks and no events.
Prints JSON: seconds, rows/s and peak RSS of each, and `speed_ratio` = floor seconds / import seconds
(target >= 0.5). On PostgreSQL each phase gets a schema of its own, dropped afterwards.
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from sweep import peak_mib  # noqa: E402  (one definition of the peak-memory reading)


def write_csv(path: Path, n: int, seed: int = 1) -> None:
    rng = random.Random(seed)
    customers = max(1, n // 5)
    today = date(2026, 6, 1)
    with path.open("w", encoding="utf-8", newline="") as handle:
        handle.write("number,customer_id,currency,amount,issued_on,due_on,tags\n")
        for i in range(n):
            due = today - timedelta(days=rng.randint(-30, 150))
            handle.write(
                f"INV-{i},C{rng.randrange(customers)},EUR,{rng.randint(10000, 9000000) / 100:.2f},"
                f"{due - timedelta(days=30)},{due},{'vip' if i % 50 == 0 else ''}\n"
            )


def database_for(base: str | None, folder: Path, name: str) -> tuple[str, str | None]:
    """(URL, schema) of a fresh database holding the customers."""

    schema = None
    if base:
        import psycopg

        schema = f"bench_{name}_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(base.replace("postgresql+psycopg", "postgresql"), autocommit=True) as conn:
            conn.execute(f'CREATE SCHEMA "{schema}"')
        url = f"{base}{'&' if '?' in base else '?'}options=-csearch_path%3D{schema}"
    else:
        url = f"sqlite:///{folder / (name + '.db')}"
    return url, schema


def add_customers(url: str, n: int) -> None:
    from sqlalchemy import insert

    from engine.store.database import Repository
    from engine.store.models import Customer

    repo = Repository.open(url)
    with repo.write() as session:
        session.connection().execute(
            insert(Customer.__table__),
            [  # type: ignore[attr-defined]
                {"id": f"C{i}", "name": f"Customer {i}", "email": f"c{i}@example.com", "tags": []}
                for i in range(max(1, n // 5))
            ],
        )
    repo.dispose()


def drop_schema(base: str, schema: str) -> None:
    import psycopg

    with psycopg.connect(base.replace("postgresql+psycopg", "postgresql"), autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


def phase_import(url: str, path: Path) -> dict[str, float]:
    from engine.clock import SystemClock
    from engine.importer import Importer
    from engine.store.database import Repository

    repo = Repository.open(url)
    importer = Importer(repo, zone=timezone.utc, clock=SystemClock())
    baseline = peak_mib()
    started = time.perf_counter()
    report = importer.import_file("invoices", path)
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "rows": report.created, "peak_rss_mib": peak_mib(), "baseline_rss_mib": baseline}


def phase_floor(url: str, path: Path) -> dict[str, float]:
    from decimal import Decimal

    baseline = peak_mib()
    started = time.perf_counter()
    now = datetime.now(timezone.utc)
    rows = 0
    if url.startswith("sqlite"):
        import sqlite3

        conn = sqlite3.connect(url[len("sqlite:///") :], isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("BEGIN IMMEDIATE")
        mark, stamp = "?", now.replace(tzinfo=None).isoformat(sep=" ")
        convert = lambda amount: int(Decimal(amount) * 10000)  # noqa: E731  (SQLite stores ten-thousandths)
    else:
        import psycopg

        conn = psycopg.connect(url.replace("postgresql+psycopg", "postgresql"))
        mark, stamp, convert = "%s", now, Decimal
    sql = (
        "INSERT INTO invoices (number, customer_id, currency, amount, open_amount, issued_on, due_on, tags, stage, "
        "stage_repeats, paused_days, escalate_now, updated_at) VALUES (" + ", ".join([mark] * 13) + ")"
    )
    cursor = conn.cursor()
    with path.open(encoding="utf-8", newline="") as handle:
        reader = csv.reader(handle)
        next(reader)
        batch = []
        for number, customer, currency, amount, issued, due, tags in reader:
            value = convert(amount)
            batch.append(
                (
                    number,
                    customer,
                    currency,
                    value,
                    value,
                    issued,
                    due,
                    json.dumps([tags] if tags else []),
                    "current",
                    0,
                    0,
                    False,
                    stamp,
                )
            )
            rows += 1
            if len(batch) == 20000:
                cursor.executemany(sql, batch)
                batch.clear()
        if batch:
            cursor.executemany(sql, batch)
    conn.commit() if not url.startswith("sqlite") else conn.execute("COMMIT")
    conn.close()
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "rows": rows, "peak_rss_mib": peak_mib(), "baseline_rss_mib": baseline}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("n", type=int, nargs="?", default=100_000)
    parser.add_argument("--database", help="postgresql+psycopg://... (default: SQLite files in a temporary folder)")
    parser.add_argument("--phase", choices=["import", "floor"], help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--csv", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.phase:
        result = (phase_import if args.phase == "import" else phase_floor)(args.url, args.csv)
        print(json.dumps(result))
        return

    folder = Path(tempfile.mkdtemp(prefix="dunning-import-bench-"))
    path = folder / "invoices.csv"
    write_csv(path, args.n)
    csv_mib = round(path.stat().st_size / 2**20, 1)
    results = {}
    try:
        for phase in ("floor", "import"):
            url, schema = database_for(args.database, folder, phase)
            try:
                add_customers(url, args.n)
                output = subprocess.run(
                    [sys.executable, __file__, "--phase", phase, "--url", url, "--csv", str(path)],
                    check=True,
                    capture_output=True,
                    text=True,
                )
                results[phase] = json.loads(output.stdout.strip().splitlines()[-1])
            finally:
                if schema and args.database:
                    drop_schema(args.database, schema)
    finally:
        shutil.rmtree(folder)
    for result in results.values():
        result["rows_per_second"] = round(result["rows"] / result["seconds"])
        result["seconds"] = round(result["seconds"], 2)
    print(
        json.dumps(
            {
                "benchmark": "import",
                "n_invoices": args.n,
                "database": "postgresql" if args.database else "sqlite",
                "csv_mib": csv_mib,
                "import": results["import"],
                "floor": results["floor"],
                "speed_ratio": round(results["floor"]["seconds"] / results["import"]["seconds"], 2),
                "peak_rss_over_baseline_mib": round(
                    results["import"]["peak_rss_mib"] - results["import"]["baseline_rss_mib"], 1
                ),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
