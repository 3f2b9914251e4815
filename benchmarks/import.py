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
import hashlib
import itertools
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

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


def phase_import(url: str, path: Path, now: datetime) -> dict[str, Any]:
    from engine.clock import FixedClock
    from engine.importer import Importer
    from engine.store.database import Repository

    repo = Repository.open(url)
    importer = Importer(repo, zone=timezone.utc, clock=FixedClock(now))
    baseline = peak_mib()
    cpu, started = _cpu_seconds(), time.perf_counter()
    report = importer.import_file("invoices", path)
    seconds, cpu = time.perf_counter() - started, _cpu_seconds() - cpu
    with repo.read() as session:
        head = session.connection().exec_driver_sql("SELECT hash FROM events ORDER BY id DESC LIMIT 1").scalar()
    repo.dispose()
    return {
        "seconds": seconds,
        "cpu_seconds": cpu,
        "rows": report.created,
        "head": head,
        "peak_rss_mib": peak_mib(),
        "baseline_rss_mib": baseline,
    }


def _event_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def phase_floor(url: str, path: Path, now: datetime) -> dict[str, Any]:
    """The same invoice and event rows (canonical JSON, chained SHA-256) written plainly, one transaction."""
    baseline = peak_mib()
    cpu, started = _cpu_seconds(), time.perf_counter()
    sqlite = url.startswith("sqlite")
    hashed_now = now.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    if sqlite:
        import sqlite3

        conn: Any = sqlite3.connect(url[len("sqlite:///") :], isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute("BEGIN IMMEDIATE")
        stamp: Any = now.replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")

        def money(amount: str) -> Any:  # SQLite stores ten-thousandths
            return int(Decimal(amount) * 10000)
    else:
        import psycopg

        conn = psycopg.connect(url.replace("postgresql+psycopg", "postgresql"))
        stamp, money = now, Decimal
    cursor = conn.cursor()
    invoice_columns = (
        "number, customer_id, currency, amount, open_amount, issued_on, due_on, tags, stage, stage_repeats, "
        "paused_days, escalate_now, updated_at"
    )
    event_columns = "id, at, recorded_at, kind, invoice_id, customer_id, actor, data, prev_hash, hash"
    previous = "0" * 64
    last_event = 0
    rows = 0
    with path.open(encoding="utf-8", newline="") as handle:
        reader = csv.reader(handle)
        next(reader)
        while True:
            chunk = list(itertools.islice(reader, 20000))
            if not chunk:
                break
            invoices = [
                (
                    number,
                    customer,
                    currency,
                    money(amount),
                    money(amount),
                    issued,
                    due,
                    json.dumps([tags] if tags else []),
                    "current",
                    0,
                    0,
                    False,
                    stamp,
                )
                for number, customer, currency, amount, issued, due, tags in chunk
            ]
            if sqlite:
                last_id = conn.execute("SELECT coalesce(max(id), 0) FROM invoices").fetchone()[0]
                cursor.executemany(
                    f"INSERT INTO invoices ({invoice_columns}) VALUES ({', '.join(['?'] * 13)})", invoices
                )
                ids = dict(conn.execute("SELECT number, id FROM invoices WHERE id > ?", (last_id,)).fetchall())
                event_ids = list(range(last_event + 1, last_event + 1 + len(chunk)))
            else:
                last_id = cursor.execute("SELECT coalesce(max(id), 0) FROM invoices").fetchone()[0]
                with cursor.copy(f"COPY invoices ({invoice_columns}) FROM STDIN") as copy:
                    for invoice in invoices:
                        copy.write_row(invoice)
                ids = dict(cursor.execute("SELECT number, id FROM invoices WHERE id > %s", (last_id,)).fetchall())
                event_ids = [
                    row[0]
                    for row in cursor.execute(
                        "SELECT nextval(pg_get_serial_sequence('events', 'id')) FROM generate_series(1, %s)",
                        (len(chunk),),
                    )
                ]
            events = []
            for event_id, (number, customer, currency, amount, issued, due, tags) in zip(event_ids, chunk, strict=True):
                data = {
                    "invoice": number,
                    "customer_id": customer,
                    "currency": currency,
                    "amount": amount,
                    "issued_on": issued,
                    "due_on": due,
                    "tags": [tags] if tags else [],
                }
                invoice_id = ids[number]
                event = {
                    "at": hashed_now,
                    "recorded_at": hashed_now,
                    "kind": "import",
                    "invoice_id": invoice_id,
                    "customer_id": customer,
                    "actor": "system",
                    "data": data,
                    "prev_hash": previous,
                }
                # The chain's hash covers the id, written first (engine.store.chain), then the sorted fields.
                hashed = f'{{"id":{event_id},{_event_json(event)[1:]}'
                previous = hashlib.sha256(hashed.encode("utf-8")).hexdigest()
                events.append(
                    (
                        event_id,
                        stamp,
                        stamp,
                        "import",
                        invoice_id,
                        customer,
                        "system",
                        _event_json(data),
                        event["prev_hash"],
                        previous,
                    )
                )
            last_event = event_ids[-1]
            if sqlite:
                cursor.executemany(f"INSERT INTO events ({event_columns}) VALUES ({', '.join(['?'] * 10)})", events)
            else:
                with cursor.copy(f"COPY events ({event_columns}) FROM STDIN") as copy:
                    for event_row in events:
                        copy.write_row(event_row)
            rows += len(chunk)
    conn.execute("COMMIT") if sqlite else conn.commit()
    conn.close()
    seconds, cpu = time.perf_counter() - started, _cpu_seconds() - cpu
    return {
        "seconds": seconds,
        "cpu_seconds": cpu,
        "rows": rows,
        "head": previous,
        "peak_rss_mib": peak_mib(),
        "baseline_rss_mib": baseline,
    }


def _cpu_seconds() -> float:
    times = os.times()
    return times.user + times.system


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("n", type=int, nargs="?", default=100_000)
    parser.add_argument("--database", help="postgresql+psycopg://... (default: SQLite files in a temporary folder)")
    parser.add_argument("--phase", choices=["import", "floor"], help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--csv", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--now", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.phase:
        now = datetime.fromisoformat(args.now)
        result = (phase_import if args.phase == "import" else phase_floor)(args.url, args.csv, now)
        print(json.dumps(result))
        return

    load_before = os.getloadavg()
    # Both phases record the same instant, so the same rows end on the same chain head hash (checked).
    now = datetime.now(timezone.utc)
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
                    [
                        sys.executable,
                        __file__,
                        "--phase",
                        phase,
                        "--url",
                        url,
                        "--csv",
                        str(path),
                        "--now",
                        now.isoformat(),
                    ],
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
        result["cpu_seconds"] = round(result["cpu_seconds"], 2)
        result["peak_rss_mib"] = round(result["peak_rss_mib"], 1)
        result["baseline_rss_mib"] = round(result["baseline_rss_mib"], 1)
    print(
        json.dumps(
            {
                "benchmark": "import",
                "n_invoices": args.n,
                "database": "postgresql" if args.database else "sqlite",
                "floor_kind": "executemany" if not args.database else "COPY",
                "load_average": [round(x, 2) for x in load_before],
                "csv_mib": csv_mib,
                "import": results["import"],
                "floor": results["floor"],
                "same_rows": results["import"]["head"] == results["floor"]["head"]
                and results["import"]["rows"] == results["floor"]["rows"],
                "speed_ratio": round(results["floor"]["seconds"] / results["import"]["seconds"], 2),
                "cpu_speed_ratio": round(results["floor"]["cpu_seconds"] / results["import"]["cpu_seconds"], 2),
                "target_speed_ratio": 0.5,
                "peak_rss_over_baseline_mib": round(
                    results["import"]["peak_rss_mib"] - results["import"]["baseline_rss_mib"], 1
                ),
                "load_average_after": [round(x, 2) for x in os.getloadavg()],
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
