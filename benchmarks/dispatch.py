"""Messages per second through the email channel into a local aiosmtpd, against a floor measured in the same run.

    .venv/bin/python benchmarks/dispatch.py [N] [--connections C]

- floor: raw aiosmtplib sending the same messages (MIME built beforehand) on C reused connections;
- channel: `EmailChannel.send` for each rendered `Message` (building its MIME: text + HTML parts,
  deterministic Message-ID), its own pool of C reused connections;
- dispatcher: the whole path from the outbox (SQLite): claim, render, send through the email channel,
  record each outcome — for context, it pays for the database too.

Scaling out (`--database postgresql+psycopg://... --daemons 1,3`): the same outbox of N notifications is sent
by 1, then 3 dispatcher processes — each the daemon's dispatch loop (`Dunning.dispatch`: SKIP LOCKED claims,
leases, outcomes recorded in the hash-chained log) — started together against one PostgreSQL schema; prints
messages/s per daemon count (the outbox is reset between runs). On a 2-core machine the SMTP sink, PostgreSQL
and the daemons share the CPUs, which caps the scaling.

The SMTP server runs in a separate process (so it does not share the GIL with the client) and discards what
it receives. Prints one JSON object; `ratio` = channel / floor (target: >= 0.8).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import date, datetime, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SERVER = """
import asyncio, sys
from aiosmtpd.smtp import SMTP
class Sink:
    count = 0
    async def handle_DATA(self, server, session, envelope):
        Sink.count += 1
        return "250 OK"
async def main():
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: SMTP(Sink(), hostname="localhost"), "127.0.0.1", 0)
    print(server.sockets[0].getsockname()[1], flush=True)
    await asyncio.Event().wait()
asyncio.run(main())
"""


def start_server() -> tuple[subprocess.Popen[str], int]:
    proc = subprocess.Popen([sys.executable, "-c", SERVER], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    port = int(proc.stdout.readline())
    return proc, port


def messages(n: int) -> list[Any]:
    from channels.base import Message
    from engine.templates import Renderer

    renderer = Renderer(ROOT / "rules" / "templates")
    company = {"name": "Acme Trading Ltd", "address": "1 Harbour Rd", "payment_instructions": "IBAN XX00 1"}
    result = []
    for i in range(n):
        customer = {
            "id": f"C{i}",
            "name": f"Customer {i} GmbH",
            "email": f"ap{i}@example.com",
            "phone": None,
            "address": None,
            "owner": None,
            "language": "en" if i % 2 else "zh_CN",
        }
        invoice = {
            "number": f"INV-{i}",
            "amount": Decimal("1234.50"),
            "open_amount": Decimal("1234.50"),
            "currency": "EUR",
            "issued_on": date(2026, 1, 1),
            "due_on": date(2026, 2, 1),
            "days_overdue": 30,
        }
        context = {
            "customer": customer,
            "invoice": invoice,
            "invoices": [invoice],
            "stage": "reminder",
            "policy": "standard",
            "repeat": 0,
            "company": company,
            "as_of": datetime(2026, 3, 3, 9, tzinfo=timezone.utc),
        }
        rendered = renderer.render_parts("reminder", "email", context, language=customer["language"])
        result.append(
            Message(
                notification_id=i,
                key=f"INV-{i}/reminder@20260303T090000Z/0/email",
                channel="email",
                recipient=customer["email"],
                subject=rendered.subject,
                body=rendered.text,
                stage="reminder",
                policy="standard",
                customer=customer,
                invoices=(invoice,),
                html=rendered.html,
                language=rendered.language,
                context=context,
            )
        )
    return result


def channel(port: int, connections: int) -> Any:
    from channels.base import ChannelContext
    from channels.email import EmailChannel

    return EmailChannel(
        "email",
        {"host": "127.0.0.1", "port": port, "security": "none", "from": "ar@acme.example", "connections": connections},
        ChannelContext(Path(tempfile.gettempdir())),
    )


async def floor(port: int, payloads: list[tuple[str, bytes]], connections: int) -> float:
    import aiosmtplib

    queue: asyncio.Queue[tuple[str, bytes]] = asyncio.Queue()
    for item in payloads:
        queue.put_nowait(item)
    clients = []
    for _ in range(connections):
        client = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, start_tls=False)
        await client.connect()
        clients.append(client)

    async def worker(client: Any) -> None:
        while not queue.empty():
            recipient, data = queue.get_nowait()
            await client.sendmail("ar@acme.example", [recipient], data)

    started = time.perf_counter()
    await asyncio.gather(*(worker(c) for c in clients))
    elapsed = time.perf_counter() - started
    for client in clients:
        await client.quit()
    return len(payloads) / elapsed


async def through_channel(port: int, batch: list[Any], connections: int) -> float:
    ch = channel(port, connections)
    await ch.send(batch[0])  # open the first connection outside the timing, as the floor does
    started = time.perf_counter()
    await asyncio.gather(*(ch.send(m) for m in batch[1:]))
    elapsed = time.perf_counter() - started
    await ch.aclose()
    return (len(batch) - 1) / elapsed


def through_dispatcher(port: int, n: int, connections: int) -> float:
    from engine.app import Dunning
    from engine.clock import FixedClock
    from engine.config import Settings

    folder = Path(tempfile.mkdtemp(prefix="dunning-bench-"))
    (folder / "rules").mkdir()
    (folder / "rules" / "default.yaml").write_text(
        "name: default\nstages:\n  - {name: reminder, after_days: 3, channels: [email]}\n", encoding="utf-8"
    )
    now = datetime(2026, 3, 3, 9, tzinfo=timezone.utc)
    settings = Settings(
        database=f"sqlite:///{folder / 'bench.db'}",
        rules=folder / "rules",
        templates=ROOT / "rules" / "templates",
        output_dir=folder / "out",
        base_dir=folder,
        channels={
            "email": {
                "type": "email",
                "recipient": "email",
                "host": "127.0.0.1",
                "port": port,
                "security": "none",
                "from": "ar@acme.example",
                "connections": connections,
            }
        },
        dispatch={"concurrency": connections * 4},
    )
    app = Dunning(settings, clock=FixedClock(now))
    seed_outbox(app, n, now)
    started = time.perf_counter()
    report = app.dispatch(now)
    elapsed = time.perf_counter() - started
    assert sum(report.sent.values()) == n, report.as_dict()
    return n / elapsed


def seed_outbox(app: Any, n: int, now: datetime) -> None:
    """N customers, one overdue invoice each, and one pending email per invoice in the outbox."""
    from sqlalchemy import select

    from engine.store.bulk import BulkWriter
    from engine.store.models import Invoice, Notification

    app.importer().import_rows(
        "customers",
        [
            {"id": f"C{i}", "name": f"Customer {i} GmbH", "email": f"ap{i}@example.com", "language": "en"}
            for i in range(n)
        ],
    )
    app.importer().import_rows(
        "invoices",
        [
            {
                "number": f"INV-{i}",
                "customer_id": f"C{i}",
                "currency": "EUR",
                "amount": "1234.50",
                "issued_on": "2026-01-01",
                "due_on": "2026-02-01",
            }
            for i in range(n)
        ],
    )
    invoices = Invoice.__table__  # type: ignore[attr-defined]
    with app.repo.read() as session:
        ids = dict(session.connection().execute(select(invoices.c.number, invoices.c.id)).all())
    with app.repo.write() as session:
        BulkWriter(session.connection(), Notification.__table__).insert(
            [  # type: ignore[attr-defined]
                {
                    "key": f"INV-{i}/reminder/0/email",
                    "invoice_id": ids[f"INV-{i}"],
                    "customer_id": f"C{i}",
                    "policy": "default",
                    "stage": "reminder",
                    "channel": "email",
                    "repeat_no": 0,
                    "recipient": f"ap{i}@example.com",
                    "status": "pending",
                    "attempts": 0,
                    "created_at": now,
                    "due_at": now,
                }
                for i in range(n)
            ]
        )


def cluster_settings(url: str, port: int, connections: int, folder: Path) -> Any:
    from engine.config import Settings

    return Settings(
        database=url,
        rules=folder / "rules",
        templates=ROOT / "rules" / "templates",
        output_dir=folder / "out",
        base_dir=folder,
        channels={
            "email": {
                "type": "email",
                "recipient": "email",
                "host": "127.0.0.1",
                "port": port,
                "security": "none",
                "from": "ar@acme.example",
                "connections": connections,
                "rate_per_minute": 1000000,
            }
        },
        dispatch={"concurrency": connections * 4, "batch_size": 200, "lease_seconds": 60},
    )


def dispatch_worker(url: str, port: int, connections: int, folder: Path) -> None:
    """One daemon's dispatch loop: claim, send, record, until the outbox is empty (started on "go")."""
    from sqlalchemy import func, select

    from engine.app import Dunning
    from engine.store.models import Notification

    table = Notification.__table__  # type: ignore[attr-defined]
    app = Dunning(cluster_settings(url, port, connections, folder))
    print("ready", flush=True)
    sys.stdin.readline()
    sent = 0
    while True:
        report = app.dispatch(datetime.now(timezone.utc))
        sent += sum(report.sent.values())
        with app.repo.read() as session:
            left = (
                session.connection()
                .execute(select(func.count()).select_from(table).where(table.c.status.in_(["pending", "sending"])))
                .scalar()
            )
        if not left:
            break
        time.sleep(0.02)
    print(json.dumps({"sent": sent}), flush=True)


def through_cluster(base: str, port: int, n: int, connections: int, counts: list[int]) -> dict[str, Any]:
    import uuid

    import psycopg
    from sqlalchemy import update

    from engine.app import Dunning
    from engine.store.models import Notification

    table = Notification.__table__  # type: ignore[attr-defined]
    folder = Path(tempfile.mkdtemp(prefix="dunning-bench-"))
    (folder / "rules").mkdir()
    (folder / "rules" / "default.yaml").write_text(
        "name: default\nstages:\n  - {name: reminder, after_days: 3, channels: [email]}\n", encoding="utf-8"
    )
    schema = f"bench_dispatch_{uuid.uuid4().hex[:8]}"
    plain = base.replace("postgresql+psycopg", "postgresql")
    with psycopg.connect(plain, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    url = f"{base}{'&' if '?' in base else '?'}options=-csearch_path%3D{schema}"
    results: dict[str, Any] = {}
    try:
        now = datetime(2026, 3, 3, 9, tzinfo=timezone.utc)
        app = Dunning(cluster_settings(url, port, connections, folder))
        seed_outbox(app, n, now)
        for count in counts:
            with app.repo.write() as session:  # the same outbox for every run
                session.connection().execute(
                    update(table).values(
                        status="pending", attempts=0, sent_at=None, claimed_until=None, next_attempt_at=None
                    )
                )
            workers = [
                subprocess.Popen(
                    [
                        sys.executable,
                        __file__,
                        "--phase",
                        "worker",
                        "--url",
                        url,
                        "--port",
                        str(port),
                        "--connections",
                        str(connections),
                        "--folder",
                        str(folder),
                    ],
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    text=True,
                )
                for _ in range(count)
            ]
            for worker in workers:
                assert worker.stdout is not None and worker.stdout.readline().strip() == "ready"
            started = time.perf_counter()
            for worker in workers:
                assert worker.stdin is not None
                worker.stdin.write("go\n")
                worker.stdin.flush()
            shares = []
            for worker in workers:
                out, _ = worker.communicate(timeout=600)
                shares.append(json.loads(out.strip().splitlines()[-1])["sent"])
            elapsed = time.perf_counter() - started
            assert sum(shares) >= n, shares
            results[str(count)] = {
                "msgs_per_s": round(n / elapsed, 1),
                "seconds": round(elapsed, 2),
                "sent_per_daemon": shares,
            }
        app.repo.dispose()
    finally:
        with psycopg.connect(plain, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("n", nargs="?", type=int, default=2000)
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3, help="best of this many rounds for floor and channel")
    parser.add_argument("--database", help="postgresql+psycopg://... : measure several daemons (with --daemons)")
    parser.add_argument("--daemons", default="1,3", help="daemon counts to compare, e.g. 1,3 (with --database)")
    parser.add_argument("--phase", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--folder", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.phase == "worker":
        dispatch_worker(args.url, args.port, args.connections, args.folder)
        return
    if args.database:
        proc, port = start_server()
        try:
            results = through_cluster(
                args.database, port, args.n, args.connections, [int(c) for c in args.daemons.split(",")]
            )
        finally:
            proc.terminate()
            proc.wait(10)
        print(
            json.dumps(
                {
                    "messages": args.n,
                    "connections_per_daemon": args.connections,
                    "daemons": results,
                    "cpus": os.cpu_count(),
                },
                indent=2,
            )
        )
        return
    proc, port = start_server()
    try:
        batch = messages(args.n)
        ch = channel(port, args.connections)
        payloads = [(m.recipient, ch.build(m)) for m in batch]
        floors, channels = [], []
        for _ in range(args.rounds):  # interleaved, so drift on the machine hits both alike
            floors.append(asyncio.run(floor(port, payloads, args.connections)))
            channels.append(asyncio.run(through_channel(port, batch, args.connections)))
        dispatcher = through_dispatcher(port, args.n, args.connections)
    finally:
        proc.terminate()
        proc.wait(10)
    best_floor, best_channel = max(floors), max(channels)
    print(
        json.dumps(
            {
                "messages": args.n,
                "connections": args.connections,
                "floor_msgs_per_s": round(best_floor, 1),
                "channel_msgs_per_s": round(best_channel, 1),
                "ratio": round(best_channel / best_floor, 3),
                "target_ratio": 0.8,
                "dispatcher_msgs_per_s": round(dispatcher, 1),
                "dispatcher_ratio": round(dispatcher / best_floor, 3),
                "rounds": {"floor": [round(f, 1) for f in floors], "channel": [round(c, 1) for c in channels]},
                "cpus": os.cpu_count(),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
