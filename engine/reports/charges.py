"""`dunning report charges`: the interest, compensation and fees billed and collected in a period.

Every figure comes from the same computation as `dunning charges NUMBER` (engine.charging), at the end of the
day before the period and at the end of its last day, for every invoice (open or closed) whose policy has
`charges:`. *Billed* in the period is what the claim grew by: charges arising in it before any payment
(interest accrued on its days, a compensation that fell due, a fee charged), so the billed figures of
consecutive periods add up to those of the whole. *Collected* is what payments dated in the period paid of
the charges (only under `allocation: fees_interest_principal`; under `principal_first` payments lower the
principal and the charges stay due). *Outstanding* is what is still due at the end of the period. A write-off
takes the charges off the book with the principal: nothing is billed after its day, nothing is outstanding
from then on. Amounts are in each currency's minor unit and never added across currencies.
"""

from __future__ import annotations

from datetime import date, timedelta, tzinfo
from decimal import Decimal
from typing import Any

from engine.charges import ChargeStatement
from engine.charging import Charging
from engine.clock import local_day
from engine.errors import ReportError
from engine.policy.model import WRITTEN_OFF, PolicySet
from engine.store.charges import charge_rows
from engine.store.database import Repository

__all__ = ["CHARGE_PARTS", "charges_report"]

ZERO = Decimal(0)
#: The three kinds of charge, each billed and collected.
CHARGE_PARTS = ("interest", "compensation", "fees")


def _gross(statement: ChargeStatement, part: str) -> Decimal:
    """What arose of `part` up to the statement's day: still due + already paid."""
    value: Decimal = getattr(statement, part) + getattr(statement, f"{part}_collected")
    return value


def charges_report(
    repo: Repository, policies: PolicySet | None, zone: tzinfo, since: date, until: date
) -> dict[str, Any]:
    """Charges billed, collected and outstanding from `since` to `until` (company-local days, both included)."""
    if since > until:
        raise ReportError(f"the period starts ({since}) after it ends ({until}); give an earlier --from")
    charging = Charging(policies, zone)
    before = since - timedelta(days=1)
    with repo.read() as session:
        rows = charge_rows(session.connection(), open_only=False)
    sections: dict[str, dict[str, Any]] = {}
    for row in rows:
        policy = charging.policy_of(row)
        if policy is None or policy.charges is None:
            continue
        offs = [local_day(at, zone) for at, kind in row.disputes if kind == "write_off"]
        written_off = offs[-1] if row.stage == WRITTEN_OFF and offs else None
        if written_off is not None and written_off < since:
            continue
        gone = written_off is not None and written_off <= until  # written off by the end of the period
        last = written_off if gone and written_off is not None else until
        start, end = charging.statement(row, before), charging.statement(row, last)
        line: dict[str, Any] = {"invoice": row.number, "customer_id": row.customer_id}
        for part in CHARGE_PARTS:
            line[f"{part}_billed"] = _gross(end, part) - _gross(start, part)
        for part in CHARGE_PARTS:
            line[f"{part}_collected"] = getattr(end, f"{part}_collected") - getattr(start, f"{part}_collected")
        line["billed"] = sum((line[f"{part}_billed"] for part in CHARGE_PARTS), ZERO)
        line["collected"] = sum((line[f"{part}_collected"] for part in CHARGE_PARTS), ZERO)
        line["outstanding"] = ZERO if gone else end.charges
        line["basis"] = end.basis
        if not (line["billed"] or line["collected"] or line["outstanding"]):
            continue
        section = sections.setdefault(
            row.currency,
            {
                "currency": row.currency,
                **{f"{part}_{what}": ZERO for what in ("billed", "collected") for part in CHARGE_PARTS},
                "billed": ZERO,
                "collected": ZERO,
                "outstanding": ZERO,
                "invoices": [],
            },
        )
        for key, value in line.items():
            if isinstance(value, Decimal):
                section[key] += value
        section["invoices"].append(line)
    return {
        "report": "charges",
        "as_of": until,
        "period_start": since,
        "period_end": until,
        "sections": [sections[currency] for currency in sorted(sections)],
    }
