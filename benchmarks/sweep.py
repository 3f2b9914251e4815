"""Sweep benchmark: a sweep of N generated invoices against floors that write the same rows, measured in one run.

    python benchmarks/sweep.py 100000 [--next-day] [--keep DIR] [--database postgresql+psycopg://...]

Generates N invoices over N/5 customers (grades A–D and ungraded; due dates spread over the last 150 days
and the next 30), copies the book, and then in separate subprocesses (so each peak RSS is its own):
- `sweep`: the engine's first sweep (`Sweeper.run`) at one instant under the shipped policies;
- `floor`, the same-rows floor: plain driver calls in one transaction that read the invoices the sweep reads
  and write exactly the rows the sweep wrote — the invoice updates (only the columns that changed, one
  executemany per set of columns), the events with their canonical JSON and chained SHA-256 built as
  engine.store.events builds them, the outbox rows, the policy versions and the sweep's row. The rows are
  taken from the swept copy before the floor's clock starts (loading them is not timed); the floor's chain
  head must equal the sweep's, and its tables must hold the same rows, or the benchmark fails;
- `floor_read_update`, the old floor: read every open invoice, write the changed collection columns.
With `--next-day` the next daily sweep (one day later, incremental) is measured too, against its own
same-rows floor. Prints JSON: seconds and peak RSS of each phase, the ratios, and the load average before
and after.

With `--database postgresql+psycopg://…` the book is generated into a fresh schema and cloned into one schema
per floor (dropped afterwards); the same-rows floor runs twice: `executemany` (one executemany per
statement) and `copy` (psycopg 3 `cursor.copy` for events and outbox rows, the invoice updates copied into
a temporary table and applied with one `UPDATE … FROM`).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import resource
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

AS_OF = datetime(2026, 6, 1, 9, tzinfo=timezone.utc)
#: The SQLite page cache a sweep runs with (engine.store.sweeps): the floors get the same.
SWEEP_CACHE_KIB = 256 * 1024
GENESIS = "0" * 64
#: The collection columns a sweep may write on an invoice.
INVOICE_COLUMNS = (
    "stage",
    "policy",
    "stage_entered_at",
    "stage_repeats",
    "last_notice_at",
    "next_action_on",
    "escalate_now",
    "awaiting_stage",
    "updated_at",
)
EVENT_COLUMNS = ("id", "at", "recorded_at", "kind", "invoice_id", "customer_id", "actor", "data", "prev_hash", "hash")
CHUNK = 20_000
OPEN_READ = (
    "SELECT i.id, i.number, i.customer_id, i.currency, i.amount, i.open_amount, i.issued_on, i.due_on, i.tags, "
    "i.stage, i.policy, i.stage_entered_at, i.stage_repeats, i.last_notice_at, i.next_action_on, i.paused_days, "
    "i.escalate_now, c.name, c.email, c.phone, c.address, c.credit_grade, c.segment, c.owner, c.language, "
    "c.timezone, c.tags FROM invoices i JOIN customers c ON c.id = i.customer_id "
    "WHERE i.stage NOT IN ('paid', 'written_off', 'disputed', 'promised') AND i.awaiting_stage IS NULL"
)


def peak_mib() -> float:
    """This process's peak RSS. VmHWM (Linux) starts afresh at exec; ru_maxrss can carry the parent's over."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def load() -> list[float]:
    return [round(value, 2) for value in os.getloadavg()]


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


# -- the sweep -------------------------------------------------------------------------------------------------


def phase_sweep(url: str, as_of: datetime) -> dict[str, Any]:
    from engine.config import Settings
    from engine.policy.loader import load_policies
    from engine.store.database import Repository
    from engine.sweep import Sweeper

    settings = Settings(database=url, rules=ROOT / "rules")
    policies = load_policies(settings.rules_path, known_channels=settings.channel_settings().keys())
    repo = Repository.open(settings.database_url)
    sweeper = Sweeper(
        repo, policies, zone=settings.zone, recipients={k: v.recipient for k, v in settings.channel_settings().items()}
    )
    baseline = peak_mib()
    started = time.perf_counter()
    report = sweeper.run(as_of)
    seconds = time.perf_counter() - started
    with repo.engine.connect() as conn:
        head = conn.exec_driver_sql("SELECT hash FROM events ORDER BY id DESC LIMIT 1").scalar()
    repo.dispose()
    return {
        "seconds": round(seconds, 3),
        "peak_rss_mib": round(peak_mib(), 1),
        "baseline_rss_mib": round(baseline, 1),
        "invoices_seen": report.invoices_seen,
        "transitions": report.transitions,
        "repeats": sum(report.repeats.values()),
        "notifications": sum(report.notifications.values()),
        "chain_head": head,
    }


# -- the same-rows floor ---------------------------------------------------------------------------------------


class Stopwatch:
    """Wall time of the floor's own work: loading the rows it is to write (from the swept copy) is paused."""

    def __init__(self) -> None:
        self.started = time.perf_counter()
        self.paused_for = 0.0
        self.laps: dict[str, float] = {}
        self.last_lap = 0.0

    @contextmanager
    def paused(self) -> Iterator[None]:
        began = time.perf_counter()
        try:
            yield
        finally:
            self.paused_for += time.perf_counter() - began

    def seconds(self) -> float:
        return time.perf_counter() - self.started - self.paused_for

    def untimed(self, chunks: Iterator[Any]) -> Iterator[Any]:
        """The items of `chunks`, each fetched with the clock paused."""
        while True:
            with self.paused():
                item = next(chunks, None)
            if item is None:
                return
            yield item

    def lap(self, name: str) -> None:
        """Note the time of the work since the previous lap under `name`."""
        now = self.seconds()
        self.laps[name] = round(now - self.last_lap, 3)
        self.last_lap = now


def utc_text(value: Any) -> str:
    """An instant as the canonical event text has it (engine.store.events): UTC ISO with microseconds."""
    if isinstance(value, str):  # SQLite's stored form, already UTC
        value = datetime.fromisoformat(value).replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


_dumps_data = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode
_string = json.encoder.encode_basestring  # type: ignore[attr-defined]


def chain_rows(
    events: list[tuple[Any, ...]], previous: str, instants: dict[Any, str]
) -> tuple[list[tuple[Any, ...]], str]:
    """Event rows (id, at, recorded_at, kind, invoice_id, customer_id, actor, data dict) in storage form, with
    the data's canonical JSON and the chained hash, as engine.store.events.append_events makes them."""
    rows = []
    sha256 = hashlib.sha256
    for event_id, at, recorded_at, kind, invoice_id, customer_id, actor, data in events:
        data_json = _dumps_data(data)
        text = (
            f'{{"id":{event_id},"actor":{_string(actor)},"at":"{instants[at]}",'
            f'"customer_id":{"null" if customer_id is None else _string(customer_id)},"data":{data_json},'
            f'"invoice_id":{"null" if invoice_id is None else invoice_id},"kind":{_string(kind)},'
            f'"prev_hash":"{previous}","recorded_at":"{instants[recorded_at]}"}}'
        )
        digest = sha256(text.encode("utf-8")).hexdigest()
        rows.append((event_id, at, recorded_at, kind, invoice_id, customer_id, actor, data_json, previous, digest))
        previous = digest
    return rows, previous


class Source:
    """The rows the sweep wrote, read from the swept copy chunk by chunk: what the floor is to write."""

    def __init__(
        self, query: Callable[[str, tuple[Any, ...]], list[tuple[Any, ...]]], mark: str, after: dict[str, int]
    ):
        self.query, self.mark, self.after = query, mark, after

    def chunks(self, table: str, columns: str) -> Iterator[list[tuple[Any, ...]]]:
        last = self.after[table]
        while True:
            rows = self.query(
                f"SELECT {columns} FROM {table} WHERE id > {self.mark} ORDER BY id LIMIT {CHUNK}", (last,)
            )
            if not rows:
                return
            last = rows[-1][0]
            yield rows


def invoice_changes(before: list[tuple[Any, ...]], after: dict[Any, tuple[Any, ...]]) -> dict[tuple[str, ...], list]:
    """The invoice updates, grouped by the columns that changed (each group one statement)."""
    shapes: dict[tuple[str, ...], list[tuple[Any, ...]]] = {}
    for row in before:
        new = after.get(row[0])
        if new is None or new[-1] == row[-1]:  # updated_at unchanged: the sweep did not write it
            continue
        shape = tuple(name for name, old, value in zip(INVOICE_COLUMNS, row[1:], new[1:], strict=True) if old != value)
        values = tuple(
            value for name, old, value in zip(INVOICE_COLUMNS, row[1:], new[1:], strict=True) if old != value
        )
        shapes.setdefault(shape, []).append((*values, row[0]))
    return shapes


def phase_floor(target: str, source: str, variant: str) -> dict[str, Any]:
    """Write into `target` (the book as it was before the sweep) the rows the sweep wrote into `source`."""
    postgres = target.startswith("postgresql")
    if postgres:
        import psycopg

        write_conn: Any = psycopg.connect(_plain(target))
        read_conn: Any = psycopg.connect(_plain(source), autocommit=True)
        mark = "%s"

        def read(sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
            return read_conn.execute(sql, params).fetchall()

    else:
        write_conn = sqlite3.connect(target, isolation_level=None)
        write_conn.execute("PRAGMA journal_mode=WAL")
        write_conn.execute("PRAGMA synchronous=NORMAL")
        write_conn.execute(f"PRAGMA cache_size = -{SWEEP_CACHE_KIB}")  # the page cache the sweep has
        read_conn = sqlite3.connect(source)
        mark = "?"

        def read(sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
            return read_conn.execute(sql, params).fetchall()

    def target_max(table: str) -> int:
        return int(write_conn.execute(f"SELECT coalesce(max(id), 0) FROM {table}").fetchone()[0])

    after = {table: target_max(table) for table in ("events", "notifications", "sweeps", "policy_versions")}
    head_row = write_conn.execute("SELECT hash FROM events ORDER BY id DESC LIMIT 1").fetchone()
    previous = head_row[0] if head_row else GENESIS
    last_sweep = write_conn.execute("SELECT finished_at FROM sweeps ORDER BY as_of DESC LIMIT 1").fetchone()
    as_of_row = read("SELECT as_of FROM sweeps ORDER BY id DESC LIMIT 1")[0][0]
    today = (as_of_row if postgres else datetime.fromisoformat(as_of_row)).date()
    notification_columns = [
        name
        for name in (
            row[1] if not postgres else row[0]
            for row in (
                read("PRAGMA table_info(notifications)")
                if not postgres
                else read(
                    "SELECT column_name FROM information_schema.columns WHERE table_name = 'notifications' "
                    "AND table_schema = current_schema() ORDER BY ordinal_position"
                )
            )
        )
    ]
    source_of = Source(read, mark, after)
    collection = ", ".join(("id", *INVOICE_COLUMNS))
    cursor = write_conn.cursor()
    counts = {"invoices_read": 0, "invoices_updated": 0, "events": 0, "notifications": 0}

    baseline = peak_mib()
    watch = Stopwatch()
    if not postgres:
        write_conn.execute("BEGIN IMMEDIATE")
    # the read a sweep makes: every open invoice (first sweep), or those due or changed since the last sweep
    query = OPEN_READ
    if last_sweep is not None:
        query += f" AND (i.next_action_on IS NULL OR i.next_action_on <= {mark} OR i.updated_at >= {mark})"
    params = (today if postgres else today.isoformat(), last_sweep[0]) if last_sweep is not None else ()
    if postgres:
        with write_conn.cursor(name="floor") as reader:
            reader.itersize = 5000
            reader.execute(query, params)
            for _row in reader:
                counts["invoices_read"] += 1
    else:
        for _row in write_conn.execute(query, params):
            counts["invoices_read"] += 1
    watch.lap("read")

    # invoice updates: what changed between the target (before) and the source (after), in id chunks
    last_id = 0
    while True:
        with watch.paused():
            before = write_conn.execute(
                f"SELECT {collection} FROM invoices WHERE id > {mark} ORDER BY id LIMIT {CHUNK}", (last_id,)
            ).fetchall()
            if not before:
                break
            last_id = before[-1][0]
            new = {
                row[0]: row
                for row in read(
                    f"SELECT {collection} FROM invoices WHERE id > {mark} AND id <= {mark} ORDER BY id",
                    (before[0][0] - 1, last_id),
                )
            }
            shapes = invoice_changes(before, new)
        for shape, rows in shapes.items():
            counts["invoices_updated"] += len(rows)
            if variant == "copy":
                _copy_updates(cursor, shape, rows)
            else:
                assignments = ", ".join(f"{name} = {mark}" for name in shape)
                cursor.executemany(f"UPDATE invoices SET {assignments} WHERE id = {mark}", rows)

    watch.lap("invoice_updates")
    # events: the data's canonical JSON and the chained hash are made here, in the timed part
    instants: dict[Any, str] = {}
    for chunk in watch.untimed(
        source_of.chunks("events", "id, at, recorded_at, kind, invoice_id, customer_id, actor, data")
    ):
        with watch.paused():
            events = []
            for event_id, at, recorded_at, kind, invoice_id, customer_id, actor, data in chunk:
                for instant in (at, recorded_at):
                    if instant not in instants:
                        instants[instant] = utc_text(instant)
                events.append(
                    (
                        event_id,
                        at,
                        recorded_at,
                        kind,
                        invoice_id,
                        customer_id,
                        actor,
                        json.loads(data) if isinstance(data, str) else data,
                    )
                )
        rows, previous = chain_rows(events, previous, instants)
        counts["events"] += len(rows)
        _write(cursor, "events", EVENT_COLUMNS, rows, variant, mark)

    watch.lap("events")
    for chunk in watch.untimed(source_of.chunks("notifications", ", ".join(f'"{c}"' for c in notification_columns))):
        with watch.paused():
            if postgres:  # the JSON column comes back decoded: hand it back as text
                index = notification_columns.index("invoice_ids")
                chunk = [(*r[:index], _json_text(r[index]), *r[index + 1 :]) for r in chunk]
        counts["notifications"] += len(chunk)
        _write(cursor, "notifications", tuple(f'"{c}"' for c in notification_columns), chunk, variant, mark)

    for table, columns in (
        ("policy_versions", ("id", "name", "sha256", "path", "text", "first_used_at")),
        (
            "sweeps",
            (
                "id",
                "as_of",
                "started_at",
                "finished_at",
                "invoices_seen",
                "transitions",
                "notifications",
                "policy_fingerprint",
            ),
        ),
    ):
        for chunk in watch.untimed(source_of.chunks(table, ", ".join(columns))):
            marks = ", ".join([mark] * len(columns))
            cursor.executemany(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})", chunk)
    if postgres:
        write_conn.commit()
    else:
        write_conn.execute("COMMIT")
    watch.lap("notifications_sweep_commit")
    seconds = watch.seconds()

    source_head = read("SELECT hash FROM events ORDER BY id DESC LIMIT 1")[0][0]
    if previous != source_head:
        raise SystemExit(
            f"the floor's chain head {previous} is not the sweep's {source_head}: the floor does not build events "
            "as engine.store.events does, so it measures other work"
        )
    for table in ("events", "notifications", "sweeps", "policy_versions", "invoices"):
        mine = write_conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
        theirs = read(f"SELECT count(*) FROM {table}")[0][0]
        if mine != theirs:
            raise SystemExit(f"the floor wrote {mine} rows into {table}, the sweep {theirs}: not the same rows")
    mismatched = _invoices_differing(write_conn, read, postgres)
    if mismatched:
        raise SystemExit(f"{mismatched} invoices differ between the floor and the sweep: not the same rows")
    write_conn.close()
    read_conn.close()
    return {
        "seconds": round(seconds, 3),
        "loading_seconds_excluded": round(watch.paused_for, 3),
        "parts": watch.laps,
        "peak_rss_mib": round(peak_mib(), 1),
        "baseline_rss_mib": round(baseline, 1),
        **counts,
        "chain_head": previous,
    }


def _json_text(value: Any) -> str | None:
    return None if value is None else json.dumps(value)


def _write(
    cursor: Any, table: str, columns: tuple[str, ...], rows: list[tuple[Any, ...]], variant: str, mark: str
) -> None:
    if variant == "copy":
        with cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
        return
    marks = ", ".join([mark] * len(columns))
    cursor.executemany(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})", rows)


def _copy_updates(cursor: Any, shape: tuple[str, ...], rows: list[tuple[Any, ...]]) -> None:
    """PostgreSQL: the updates copied into a temporary table, applied with one UPDATE … FROM."""
    columns = ", ".join((*shape, "id"))
    cursor.execute(
        f"CREATE TEMP TABLE IF NOT EXISTS floor_updates ON COMMIT DROP AS SELECT {columns} FROM invoices LIMIT 0"
    )
    cursor.execute("TRUNCATE floor_updates")
    with cursor.copy(f"COPY floor_updates ({columns}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)
    assignments = ", ".join(f"{name} = u.{name}" for name in shape)
    cursor.execute(f"UPDATE invoices SET {assignments} FROM floor_updates u WHERE invoices.id = u.id")
    cursor.execute("DROP TABLE floor_updates")


def _invoices_differing(write_conn: Any, read: Callable[..., list[tuple[Any, ...]]], postgres: bool) -> int:
    collection = ", ".join(("id", *INVOICE_COLUMNS))
    differing, last = 0, 0
    mark = "%s" if postgres else "?"
    while True:
        mine = write_conn.execute(
            f"SELECT {collection} FROM invoices WHERE id > {mark} ORDER BY id LIMIT {CHUNK}", (last,)
        ).fetchall()
        if not mine:
            return differing
        theirs = read(
            f"SELECT {collection} FROM invoices WHERE id > {mark} AND id <= {mark} ORDER BY id", (last, mine[-1][0])
        )
        differing += sum(1 for a, b in zip(mine, theirs, strict=True) if a != b)
        last = mine[-1][0]


# -- the old floor: read every open invoice, write the changed collection columns ------------------------------


def phase_floor_read_update(target: str, source: str) -> dict[str, Any]:
    postgres = target.startswith("postgresql")
    mark = "%s" if postgres else "?"
    columns = "stage, policy, stage_entered_at, stage_repeats, last_notice_at, updated_at, id"
    if postgres:
        import psycopg

        with psycopg.connect(_plain(source)) as conn:
            changes = conn.execute(f"SELECT {columns} FROM invoices").fetchall()
        conn = psycopg.connect(_plain(target))
    else:
        reader = sqlite3.connect(source)
        changes = reader.execute(f"SELECT {columns} FROM invoices").fetchall()
        reader.close()
        conn = sqlite3.connect(target, isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute(f"PRAGMA cache_size = -{SWEEP_CACHE_KIB}")
    before = {row[-1]: row for row in conn.execute(f"SELECT {columns} FROM invoices").fetchall()}
    changes = [row for row in changes if before.get(row[-1]) != row]
    baseline = peak_mib()
    started = time.perf_counter()
    if not postgres:
        conn.execute("BEGIN IMMEDIATE")
    seen = 0
    for _row in conn.execute(OPEN_READ):
        seen += 1
    conn.cursor().executemany(
        f"UPDATE invoices SET stage = {mark}, policy = {mark}, stage_entered_at = {mark}, stage_repeats = {mark}, "
        f"last_notice_at = {mark}, updated_at = {mark} WHERE id = {mark}",
        changes,
    )
    if postgres:
        conn.commit()
    else:
        conn.execute("COMMIT")
    conn.close()
    return {
        "seconds": round(time.perf_counter() - started, 3),
        "peak_rss_mib": round(peak_mib(), 1),
        "baseline_rss_mib": round(baseline, 1),
        "invoices_read": seen,
        "rows_written": len(changes),
    }


# -- running it all ----------------------------------------------------------------------------------------------


def _plain(url: str) -> str:
    return url.replace("postgresql+psycopg", "postgresql")


def child(*extra: str) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if k != "DUNNING_AUDIT_KEY"}  # the floor hashes unkeyed
    output = subprocess.run([sys.executable, __file__, *extra], check=False, capture_output=True, text=True, env=env)
    if output.returncode != 0:
        raise SystemExit(f"phase {' '.join(extra[:2])} failed:\n{output.stderr}{output.stdout}")
    return json.loads(output.stdout.strip().splitlines()[-1])


def ratios(sweep: dict[str, Any], floors: dict[str, dict[str, Any]]) -> dict[str, float]:
    return {name: round(sweep["seconds"] / floor["seconds"], 2) for name, floor in floors.items()}


def measure_day(
    sweep_url: str,
    as_of: datetime,
    floor_urls: dict[str, str],
    old_floor_url: str | None,
) -> dict[str, Any]:
    """One sweep and its floors: `floor_urls` (variant -> copy of the book before the sweep)."""
    load_before = load()
    sweep = child("--phase", "sweep", "--db", sweep_url, "--as-of", as_of.isoformat())
    floors = {
        variant: child("--phase", "floor", "--db", url, "--source", sweep_url, "--variant", variant)
        for variant, url in floor_urls.items()
    }
    result: dict[str, Any] = {"as_of": as_of.isoformat(), "sweep": sweep}
    first = next(iter(floors))
    result["floor"] = floors[first]
    result.update({f"floor_{variant}": floor for variant, floor in floors.items() if variant != first})
    result["ratio_to_floor"] = ratios(sweep, {first: floors[first]})[first]
    for variant, ratio in ratios(sweep, floors).items():
        if variant != first:
            result[f"ratio_to_floor_{variant}"] = ratio
    if old_floor_url is not None:
        old = child("--phase", "floor-read-update", "--db", old_floor_url, "--source", sweep_url)
        result["floor_read_update"] = old
        result["ratio_to_floor_read_update"] = round(sweep["seconds"] / old["seconds"], 2)
    result["sweep_peak_rss_mib"] = sweep["peak_rss_mib"]
    result["load_before"], result["load_after"] = load_before, load()
    return result


def main_sqlite(args: argparse.Namespace) -> dict[str, Any]:
    folder = args.keep or Path(tempfile.mkdtemp(prefix="dunning-bench-"))
    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.glob("*.db*"):
        stale.unlink()
    pristine = folder / "pristine.db"
    started = time.perf_counter()
    generate(pristine, args.n)
    generated = time.perf_counter() - started

    def copy(name: str, of: Path = pristine) -> str:
        # the backup API copies what the WAL holds too
        with sqlite3.connect(of) as source, sqlite3.connect(folder / name) as target:
            source.backup(target)
        return str(folder / name)

    sweep_db = copy("sweep.db")
    days = [measure_day(f"sqlite:///{sweep_db}", AS_OF, {"executemany": copy("floor.db")}, copy("floor-old.db"))]
    if args.next_day:
        before = copy("floor-next.db", Path(sweep_db))
        days.append(measure_day(f"sqlite:///{sweep_db}", AS_OF + timedelta(days=1), {"executemany": before}, None))
    if not args.keep:
        shutil.rmtree(folder)
    return {"database": "sqlite", "generate_seconds": round(generated, 2), "days": days}


def main_postgres(args: argparse.Namespace) -> dict[str, Any]:
    import uuid

    import psycopg

    base = f"bench_sweep_{uuid.uuid4().hex[:8]}"
    schemas: list[str] = []

    def url_of(schema: str) -> str:
        return f"{args.database}{'&' if '?' in args.database else '?'}options=-csearch_path%3D{schema}"

    def clone(source: str, name: str) -> str:
        schema = f"{base}_{name}"
        schemas.append(schema)
        with psycopg.connect(_plain(args.database), autocommit=True) as conn:
            conn.execute(f'CREATE SCHEMA "{schema}"')
            tables = [
                row[0]
                for row in conn.execute(
                    "SELECT table_name FROM information_schema.tables WHERE table_schema = %s", (source,)
                )
            ]
            for table in tables:
                conn.execute(f'CREATE TABLE "{schema}".{table} (LIKE "{source}".{table} INCLUDING ALL)')
                conn.execute(f'INSERT INTO "{schema}".{table} SELECT * FROM "{source}".{table}')
                conn.execute(f'VACUUM ANALYZE "{schema}".{table}')
        return url_of(schema)

    with psycopg.connect(_plain(args.database), autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{base}"')
    schemas.append(base)
    try:
        started = time.perf_counter()
        generate(url_of(base), args.n)
        with psycopg.connect(_plain(url_of(base)), autocommit=True) as conn:
            conn.execute("VACUUM ANALYZE invoices")
            conn.execute("VACUUM ANALYZE customers")
        generated = time.perf_counter() - started
        floors = {"executemany": clone(base, "many"), "copy": clone(base, "copy")}
        old = clone(base, "old")
        days = [measure_day(url_of(base), AS_OF, floors, old)]
        if args.next_day:
            floors = {"executemany": clone(base, "many2"), "copy": clone(base, "copy2")}
            days.append(measure_day(url_of(base), AS_OF + timedelta(days=1), floors, None))
    finally:
        with psycopg.connect(_plain(args.database), autocommit=True) as conn:
            for schema in schemas:
                conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    return {"database": "postgresql", "generate_seconds": round(generated, 2), "days": days}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("n", type=int, nargs="?", default=100_000)
    parser.add_argument("--keep", type=Path, help="keep the generated SQLite databases in this folder")
    parser.add_argument("--database", help="postgresql+psycopg://... (default: SQLite files)")
    parser.add_argument("--next-day", action="store_true", help="measure the next daily sweep too")
    parser.add_argument("--phase", choices=["sweep", "floor", "floor-read-update"], help=argparse.SUPPRESS)
    parser.add_argument("--db", help=argparse.SUPPRESS)
    parser.add_argument("--source", help=argparse.SUPPRESS)
    parser.add_argument("--variant", default="executemany", help=argparse.SUPPRESS)
    parser.add_argument("--as-of", help=argparse.SUPPRESS)
    args = parser.parse_args()

    def path_of(url: str) -> str:
        return url.removeprefix("sqlite:///")

    if args.phase == "sweep":
        print(json.dumps(phase_sweep(args.db, datetime.fromisoformat(args.as_of))))
        return
    if args.phase == "floor":
        print(json.dumps(phase_floor(path_of(args.db), path_of(args.source), args.variant)))
        return
    if args.phase == "floor-read-update":
        print(json.dumps(phase_floor_read_update(path_of(args.db), path_of(args.source))))
        return
    load_before = load()
    result = main_postgres(args) if args.database else main_sqlite(args)
    print(
        json.dumps(
            {"benchmark": "sweep", "n_invoices": args.n, **result, "load_before": load_before, "load_after": load()},
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
