"""Collection incentives (rules/incentives.yaml), pure: every payment's commission, bonus, caps, clawback.

For the period `since`..`until` (both included), per customer owner (as the customer is now; `(none)` without
one) and currency:

* each payment dated in the period earns `amount × rate` of its lateness band, rounded to the cent (half up),
  where days late = max(0, paid on − due on) and the band is the first whose `upto_days` the days late do not
  exceed (a band without `upto_days` takes the rest);
* `on_time_share` = collected with 0 days late ÷ collected; when it reaches `bonus.on_time_share_atleast`, the
  bonus is `collected × bonus.rate` (rounded);
* commission + bonus is at most `cap` (`cap_reduction` says by how much it was cut);
* with `clawback`, an invoice written off in the period takes back the commission every one of its payments
  earned (in this period or before), at the current rates;
* total = commission + bonus − cap_reduction − clawback.
"""

from __future__ import annotations

import html
import io
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from engine.credit.rules import Incentives
from engine.reports.figures import Book, InvoiceFacts
from engine.spreadsheet import SafeDictWriter

ZERO = Decimal(0)
CENT = Decimal("0.01")
NO_OWNER = "(none)"
CSV_COLUMNS = (
    "kind",
    "owner",
    "currency",
    "invoice",
    "customer_id",
    "day",
    "amount",
    "days_late",
    "band",
    "rate",
    "commission",
)


def _cents(value: Decimal) -> Decimal:
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


@dataclass
class _Owner:
    collected: Decimal = ZERO
    on_time: Decimal = ZERO
    commission: Decimal = ZERO
    clawback: Decimal = ZERO
    by_band: dict[str, Decimal] = field(default_factory=dict)


def _contribution(
    rules: Incentives, invoice: InvoiceFacts, paid_on: date, amount: Decimal, owner: str
) -> dict[str, Any]:
    days_late = max(0, (paid_on - invoice.due_on).days)
    band = rules.band_for(days_late)
    rate = band.rate if band else ZERO
    return {
        "owner": owner,
        "currency": invoice.currency,
        "invoice": invoice.number,
        "customer_id": invoice.customer_id,
        "paid_on": paid_on,
        "due_on": invoice.due_on,
        "amount": amount,
        "days_late": days_late,
        "band": band.name if band else None,
        "rate": rate,
        "commission": _cents(amount * rate),
    }


def incentives(book: Book, rules: Incentives, since: date, until: date) -> dict[str, Any]:
    """The incentives report for since..until (book read as of `until`)."""
    owners: dict[tuple[str, str], _Owner] = defaultdict(_Owner)
    payments: list[dict[str, Any]] = []
    clawbacks: list[dict[str, Any]] = []
    for invoice in book.invoices:
        owner = book.customer(invoice.customer_id).get("owner") or NO_OWNER
        for paid_on, amount in invoice.payments:
            if not since <= paid_on <= until:
                continue
            item = _contribution(rules, invoice, paid_on, amount, owner)
            payments.append(item)
            figures = owners[(owner, invoice.currency)]
            figures.collected += amount
            figures.commission += item["commission"]
            if item["days_late"] == 0:
                figures.on_time += amount
            if item["band"] is not None:
                figures.by_band[item["band"]] = figures.by_band.get(item["band"], ZERO) + amount
        off = invoice.written_off_on
        if rules.clawback and off is not None and since <= off <= until:
            earned = sum(
                (
                    _contribution(rules, invoice, day, amount, owner)["commission"]
                    for day, amount in invoice.payments
                    if day <= off
                ),
                ZERO,
            )
            if earned:
                clawbacks.append(
                    {
                        "owner": owner,
                        "currency": invoice.currency,
                        "invoice": invoice.number,
                        "customer_id": invoice.customer_id,
                        "written_off_on": off,
                        "commission": earned,
                    }
                )
                owners[(owner, invoice.currency)].clawback += earned
    summary = []
    for (owner, currency), f in sorted(owners.items()):
        share = (f.on_time / f.collected).quantize(Decimal("0.0001"), rounding=ROUND_HALF_UP) if f.collected else None
        bonus = ZERO
        if rules.bonus_target is not None and share is not None and share >= rules.bonus_target:
            bonus = _cents(f.collected * rules.bonus_rate)
        reduction = max(ZERO, f.commission + bonus - rules.cap) if rules.cap is not None else ZERO
        summary.append(
            {
                "owner": owner,
                "currency": currency,
                "collected": f.collected,
                "by_band": {b.name: f.by_band.get(b.name, ZERO) for b in rules.bands},
                "on_time_share": share,
                "commission": f.commission,
                "bonus": bonus,
                "cap_reduction": reduction,
                "clawback": f.clawback,
                "total": f.commission + bonus - reduction - f.clawback,
            }
        )
    payments.sort(key=lambda p: (p["owner"], p["currency"], p["paid_on"], p["invoice"]))
    return {
        "from": since,
        "to": until,
        "incentives_hash": rules.hash,
        "owners": summary,
        "payments": payments,
        "clawbacks": clawbacks,
    }


def as_csv(report: dict[str, Any]) -> str:
    """One row per owner figure set, per payment contribution and per clawback."""
    buffer = io.StringIO()
    writer = SafeDictWriter(buffer, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for o in report["owners"]:
        for key in ("collected", "commission", "bonus", "cap_reduction", "clawback", "total"):
            writer.writerow({"kind": key, "owner": (o["owner"]), "currency": o["currency"], "amount": o[key]})
        for band, amount in o["by_band"].items():
            writer.writerow(
                {
                    "kind": "collected_in_band",
                    "owner": (o["owner"]),
                    "currency": o["currency"],
                    "band": (band),
                    "amount": amount,
                }
            )
    for p in report["payments"]:
        writer.writerow(
            {
                "kind": "payment",
                "owner": (p["owner"]),
                "currency": p["currency"],
                "invoice": (p["invoice"]),
                "customer_id": (p["customer_id"]),
                "day": p["paid_on"],
                "amount": p["amount"],
                "days_late": p["days_late"],
                "band": (p["band"]),
                "rate": p["rate"],
                "commission": p["commission"],
            }
        )
    for c in report["clawbacks"]:
        writer.writerow(
            {
                "kind": "clawback",
                "owner": (c["owner"]),
                "currency": c["currency"],
                "invoice": (c["invoice"]),
                "customer_id": (c["customer_id"]),
                "day": c["written_off_on"],
                "commission": c["commission"],
            }
        )
    return buffer.getvalue()


def as_html(report: dict[str, Any], company: str = "") -> str:
    """A self-contained page: the owners' figures, then every contribution (every value escaped)."""
    e = html.escape

    def table(head: list[str], rows: list[list[Any]]) -> str:
        cells = "".join(f"<th>{e(h)}</th>" for h in head)
        body = "".join(
            "<tr>" + "".join(f"<td>{e('' if v is None else str(v))}</td>" for v in row) + "</tr>" for row in rows
        )
        return f"<table><thead><tr>{cells}</tr></thead><tbody>{body}</tbody></table>"

    owners = table(
        [
            "owner",
            "currency",
            "collected",
            "on time share",
            "commission",
            "bonus",
            "cap reduction",
            "clawback",
            "total",
        ],
        [
            [
                o["owner"],
                o["currency"],
                o["collected"],
                o["on_time_share"],
                o["commission"],
                o["bonus"],
                o["cap_reduction"],
                o["clawback"],
                o["total"],
            ]
            for o in report["owners"]
        ],
    )
    payments = table(
        [
            "owner",
            "currency",
            "invoice",
            "customer",
            "paid on",
            "due on",
            "amount",
            "days late",
            "band",
            "rate",
            "commission",
        ],
        [
            [
                p["owner"],
                p["currency"],
                p["invoice"],
                p["customer_id"],
                p["paid_on"],
                p["due_on"],
                p["amount"],
                p["days_late"],
                p["band"],
                p["rate"],
                p["commission"],
            ]
            for p in report["payments"]
        ],
    )
    clawbacks = table(
        ["owner", "currency", "invoice", "customer", "written off on", "commission taken back"],
        [
            [c["owner"], c["currency"], c["invoice"], c["customer_id"], c["written_off_on"], c["commission"]]
            for c in report["clawbacks"]
        ],
    )
    title = f"Collection incentives {report['from']} – {report['to']}"
    return (
        f'<!DOCTYPE html><html><head><meta charset="utf-8"><title>{e(title)}</title><style>body{{font-family:'
        f"Arial,sans-serif}}table{{border-collapse:collapse;margin:1em 0}}td,th{{border:1px solid #ccc;padding:4px "
        f"8px;text-align:left}}</style></head><body><h1>{e(title)}</h1><p>{e(company)}</p><h2>Per owner</h2>"
        f"{owners}<h2>Every payment</h2>{payments}<h2>Clawbacks</h2>{clawbacks}</body></html>\n"
    )
