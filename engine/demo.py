"""`dunning demo`: a small company's book run forward over simulated weeks, through the real engine.

The book goes through the same doors a user's does: CSV files imported with `dunning import`, the shipped
policies in rules/, one sweep a day at 09:00 company time, the outbox dispatched through the configured
channels (the `log` channel by default). Customers pay along the way — better grades sooner, and more
often right after a notice — so the output shows escalation *and* collection.
"""

from __future__ import annotations

import csv
import random
import shutil
from collections import Counter
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path

from rich.console import Console
from rich.table import Table

from engine.app import Dunning
from engine.clock import FixedClock
from engine.config import Settings
from engine.errors import ConfigError

GRADES = (("A", 0.3), ("B", 0.3), ("C", 0.25), ("D", 0.1), (None, 0.05))
#: Chance per day that an overdue invoice gets paid, by credit grade; a fresh notice multiplies it.
DAILY_PAY_CHANCE = {"A": 0.07, "B": 0.045, "C": 0.02, "D": 0.008, None: 0.03}
NOTICE_BOOST = 2.5
OWNERS = ("alice", "bob", "chen")
COMPANIES = (
    "Acme Tools",
    "Birch & Sons",
    "Cobalt Foods",
    "Delta Freight",
    "Evergreen Labs",
    "Falcon Print",
    "Granite Works",
    "Harbor Retail",
    "Iris Textiles",
    "Juniper Health",
    "Kestrel Motors",
    "Lumen Energy",
    "Maple Kitchens",
    "Nimbus Cloud",
    "Orchid Florists",
    "Pioneer Build",
    "Quartz Optics",
    "Redwood Paper",
    "Summit Outdoor",
    "Tidal Marine",
    "Umbra Studio",
    "Vertex Steel",
    "Willow Dairy",
    "Xenon Lighting",
    "Yarrow Organics",
    "Zenith Audio",
    "上海明辉贸易",
    "深圳华强电子",
    "杭州青山茶业",
    "北京远航物流",
)


def run_demo(folder: Path, *, days: int, seed: int, start: str | None, console: Console) -> None:
    if not console.is_terminal:  # piped or logged: don't squeeze the tables into 80 columns
        console = Console(width=150, highlight=False)
    rules = _shipped_rules()
    folder = folder.resolve()  # settings resolve relative paths against the folder itself
    rng = random.Random(seed)
    first_day = date.fromisoformat(start) if start else date.today()
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    customers, invoices = _book(rng, first_day)
    _write_csv(folder / "customers.csv", customers)
    _write_csv(folder / "invoices.csv", invoices)

    settings = Settings(
        database=f"sqlite:///{folder / 'dunning.db'}",
        rules=rules,
        output_dir=folder / "out",
        base_dir=folder,
        company={"name": "Demo Trading GmbH"},
    )
    clock = FixedClock(datetime.combine(first_day, time(8), tzinfo=settings.zone))
    dunning = Dunning(settings, clock=clock)
    grade_of = {c["id"]: (c["credit_grade"] or None) for c in customers}

    console.print(
        f"[bold]dunning demo[/bold]: {len(customers)} customers, {len(invoices)} invoices, "
        f"{days} simulated days from {first_day} — data in {folder}/"
    )
    for kind in ("customers", "invoices"):
        report = dunning.import_file(kind, folder / f"{kind}.csv")
        console.print(f"  imported {report.created} {kind} from {folder / (kind + '.csv')}", markup=False)
    console.print(
        "  policies: "
        + ", ".join(
            f"{p.name} ({p.applies_to.source if p.applies_to else 'default'})" for p in dunning.policies.policies
        ),
        markup=False,
    )

    weekly = Table(title="Week by week (one sweep a day at 09:00)")
    stages = [s.name for s in dunning.policies.default.stages]
    for policy in dunning.policies.policies:
        stages += [s.name for s in policy.stages if s.name not in stages]
    for column in ("week", "ending", *(f"→{s}" for s in stages), "sent", "payments", "collected", "open overdue"):
        weekly.add_column(column, justify="right")

    entered: Counter[str] = Counter()
    sent = payments = 0
    collected = Decimal(0)
    last_noticed: dict[str, date] = {}
    for offset in range(days):
        today = first_day + timedelta(days=offset)
        clock.at = datetime.combine(today, time(8), tzinfo=settings.zone)
        paid_rows = _todays_payments(rng, dunning, today, grade_of, last_noticed)
        if paid_rows:
            dunning.importer().import_rows("payments", paid_rows, source=f"payments {today}")
            payments += len(paid_rows)
            collected += sum((Decimal(r["amount"]) for r in paid_rows), Decimal(0))
        sweep_at = datetime.combine(today, time(9), tzinfo=settings.zone)
        clock.at = sweep_at
        report = dunning.run(sweep_at)
        entered.update(report.sweep.entered)
        sent += sum(report.dispatch.sent.values()) if report.dispatch else 0
        for row in dunning.notified_invoices(sweep_at):
            last_noticed[row] = today
        if offset == days // 2:
            _credit_review(dunning, sweep_at, console)
        if offset % 7 == 6 or offset == days - 1:
            overdue = sum(
                (i["open_amount"] for i in dunning.open_invoices(sweep_at) if i["days_overdue"] > 0), Decimal(0)
            )
            weekly.add_row(
                str(offset // 7 + 1),
                str(today),
                *(str(entered[s] or "") for s in stages),
                str(sent),
                str(payments),
                f"{collected:,.0f}",
                f"{overdue:,.0f}",
            )
            entered.clear()
            sent = payments = 0
            collected = Decimal(0)
    console.print(weekly)

    _warnings_summary(dunning, console)
    open_now = dunning.open_invoices()
    summary = Table(title=f"Where the book stands ({len(open_now)} open invoices)")
    for column in ("stage", "invoices", "open amount"):
        summary.add_column(column, justify="right")
    for row in dunning.stage_summary(open_now):
        summary.add_row(
            row["stage"],
            str(row["invoices"]),
            ", ".join(f"{v:,.2f} {k}" for k, v in sorted(row["open_amount"].items())),
        )
    console.print(summary)

    furthest = _furthest_invoice(dunning)
    if furthest:
        console.print(f"\n[bold]History of {furthest}[/bold] (dunning history {furthest}):")
        for event in dunning.history(furthest):
            if event["kind"] == "transition":
                what = f"{event['from']} → {event['to']}  ({event['rule']})"
            elif event["kind"] == "notification":
                what = f"{event['stage']} #{event['repeat']} by {event['channel']} to {event['recipient']}: {event['status']}"
            elif event["kind"] == "payment":
                what = f"{event['amount']} paid, {event['open_amount']} still open"
            else:
                what = f"{event.get('amount', '')} {event.get('currency', '')}".strip()
            console.print(f"  {event['at'][:10]}  {event['kind']:<13} {what}", markup=False)
    log = settings.output_path / "notifications.log"
    console.print(f"\nEvery notification was rendered and recorded by the log channel in {log}.")
    console.print(f"Explore: dunning --config {folder / 'config.yaml'} status | outbox | history NUMBER")
    (folder / "config.yaml").write_text(
        f"database: sqlite:///{(folder / 'dunning.db').resolve()}\nrules: {rules.resolve()}\n"
        f"output_dir: {(folder / 'out').resolve()}\n",
        encoding="utf-8",
    )


def _credit_review(dunning: Dunning, at: datetime, console: Console) -> None:
    """Half-way: re-grade every customer from its payment record (rules/credit.yaml), as `dunning credit review
    --apply` does; the new grades choose the customers' policies from the next sweep on."""
    if dunning.credit.rules().credit is None:
        return
    changes = dunning.credit.review(at, apply=True, actor="demo")
    table = Table(title=f"Credit review on {at.date()} (dunning credit review --apply): {len(changes)} regraded")
    for column in ("customer", "old grade", "new grade", "score"):
        table.add_column(column, justify="right")
    for change in changes:
        table.add_row(
            change["customer_id"],
            change["old"] or "-",
            change["new"],
            "-" if change["score"] is None else str(change["score"]),
        )
    console.print(table)


def _warnings_summary(dunning: Dunning, console: Console) -> None:
    warnings = dunning.credit.warnings()
    if not warnings:
        return
    counts = Counter((w["rule"], w["severity"], w["status"]) for w in warnings)
    table = Table(title=f"Early warnings raised (rules/warnings.yaml; dunning warnings): {len(warnings)}")
    for column in ("rule", "severity", "status", "warnings"):
        table.add_column(column, justify="right")
    for (rule, severity, status), count in sorted(counts.items()):
        table.add_row(rule, severity, status, str(count))
    console.print(table)


def _shipped_rules() -> Path:
    for candidate in (Path("rules"), Path(__file__).resolve().parent.parent / "rules"):
        if candidate.is_dir():
            return candidate.resolve()
    raise ConfigError("cannot find the shipped rules/ folder; run the demo from the project folder")


def _book(rng: random.Random, first_day: date) -> tuple[list[dict[str, str]], list[dict[str, str]]]:
    customers = []
    for index, name in enumerate(COMPANIES, start=1):
        grade = rng.choices([g for g, _ in GRADES], weights=[w for _, w in GRADES])[0]
        chinese = not name.isascii()
        slug = f"c{index:03d}"
        customers.append(
            {
                "id": f"C{index:03d}",
                "name": name,
                "email": f"ap@{slug}.example",
                "phone": f"+49 30 {rng.randint(1000000, 9999999)}" if rng.random() > 0.1 else "",
                "address": f"{rng.randint(1, 200)} Market Street, {rng.choice(['Berlin', 'Hamburg', 'Shanghai', 'Shenzhen'])}",
                "credit_grade": grade or "",
                "segment": rng.choice(["smb", "mid", "enterprise"]),
                "owner": rng.choice(OWNERS),
                "language": "zh" if chinese else "en",
                "timezone": "Asia/Shanghai" if chinese else "Europe/Berlin",
                "tags": "key-account" if rng.random() < 0.15 else "",
            }
        )
    invoices = []
    number = 1000
    for customer in customers:
        for _ in range(rng.randint(4, 16)):
            number += 1
            issued = first_day + timedelta(days=rng.randint(-75, 45))
            amount = Decimal(str(round(rng.lognormvariate(8.4, 1.0), 2)))
            if customer["segment"] == "enterprise" and rng.random() < 0.25:
                amount *= 12
            invoices.append(
                {
                    "number": f"INV-{number}",
                    "customer_id": customer["id"],
                    "currency": "EUR",
                    "amount": str(amount.quantize(Decimal("0.01"))),
                    "issued_on": issued.isoformat(),
                    "due_on": (issued + timedelta(days=30)).isoformat(),
                    "tags": "",
                }
            )
    return customers, invoices


def _todays_payments(
    rng: random.Random, dunning: Dunning, today: date, grade_of: dict[str, str | None], last_noticed: dict[str, date]
) -> list[dict[str, str]]:
    rows = []
    for invoice in dunning.open_invoices(datetime.combine(today, time(8), tzinfo=dunning.settings.zone)):
        if invoice["stage"] in ("disputed", "promised"):
            continue
        overdue = invoice["days_overdue"]
        chance = DAILY_PAY_CHANCE[grade_of.get(invoice["customer_id"])]
        if overdue < -2:
            continue
        if overdue <= 0:
            chance *= 1.5  # many customers pay around the due date
        noticed = last_noticed.get(invoice["number"])
        if noticed and (today - noticed).days <= 3:
            chance *= NOTICE_BOOST
        if rng.random() < chance:
            amount = invoice["open_amount"]
            if rng.random() < 0.2 and amount > 100:
                amount = (amount / 2).quantize(Decimal("0.01"))
            rows.append(
                {
                    "invoice": invoice["number"],
                    "amount": str(amount),
                    "paid_on": today.isoformat(),
                    "reference": f"BANK-{today:%Y%m%d}-{invoice['number']}",
                }
            )
    return rows


def _furthest_invoice(dunning: Dunning) -> str | None:
    order = {s.name: i for p in dunning.policies.policies for i, s in enumerate(p.stages)}
    candidates = [i for i in dunning.open_invoices() if i["stage"] in order]
    if not candidates:
        return None
    return max(candidates, key=lambda i: (order[i["stage"]], i["open_amount"]))["number"]


def _write_csv(path: Path, rows: list[dict[str, str]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
