"""Credit scoring, pure: a customer's measures over the window, each factor's band and points, the grade.

The window is the `window_days` days ending at the as-of day, that day included: a day d is in it when
as_of − window_days < d ≤ as_of. The book is read as it stood at the end of the as-of day (payments dated
up to it, write-offs recorded up to it), with the reports' reconstruction (`engine.reports.figures`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from engine.credit.rules import Band, CreditPolicy, Factor
from engine.reports.figures import InvoiceFacts

ZERO = Decimal(0)
_PLACES = Decimal("0.0001")
#: Outcome kinds that count as a broken promise.
BROKEN = ("promise_broken", "installment_missed")


def rounded(value: Decimal) -> Decimal:
    """A share or mean as the measures keep it (half up, to their places)."""
    return value.quantize(_PLACES, rounding=ROUND_HALF_UP)


def _in(day: date | None, start: date, end: date) -> bool:
    """start is exclusive, end inclusive."""
    return day is not None and start < day <= end


@dataclass
class CustomerBook:
    """What scoring needs about one customer, as it stood at the end of the as-of day."""

    customer_id: str
    invoices: list[InvoiceFacts] = field(default_factory=list)
    #: days promises were broken / installments missed
    broken_days: list[date] = field(default_factory=list)
    dispute_days: list[date] = field(default_factory=list)


def avg_days_late(invoices: Iterable[InvoiceFacts], start: date, end: date) -> Decimal | None:
    """Amount-weighted mean of max(0, day paid in full − due date) over invoices paid in full in (start, end]."""
    weight = total = ZERO
    for invoice in invoices:
        settled = invoice.settled_by(end)
        if not _in(settled, start, end):
            continue
        assert settled is not None
        total += invoice.amount * max(0, (settled - invoice.due_on).days)
        weight += invoice.amount
    return rounded(total / weight) if weight else None


def measure_values(
    book: CustomerBook, as_of: date, window_days: int, *, credit_currency: str | None, limit: Decimal | None
) -> dict[str, Any]:
    """Every named measure (engine.credit.rules.MEASURES) plus the warning-only ones, by name."""
    start = as_of - timedelta(days=window_days)
    invoices = book.invoices
    due = [i for i in invoices if _in(i.due_on, start, as_of)]
    on_time = [i for i in due if i.settled_by(i.due_on) is not None]
    settled = [(i, i.settled_by(as_of)) for i in invoices]
    paid_in_window = [(i, day) for i, day in settled if _in(day, start, as_of)]
    open_total = open_overdue = open_credit = ZERO
    for invoice in invoices:
        amount = invoice.open_at(as_of)
        open_total += amount
        if invoice.due_on < as_of:
            open_overdue += amount
        if invoice.currency == credit_currency:
            open_credit += amount
    payments = [day for i in invoices for day, _ in i.payments if day <= as_of]
    first_issue = min((i.issued_on for i in invoices), default=None)
    days_to_pay = [(day - i.issued_on).days for i, day in paid_in_window if day is not None]
    return {
        "avg_days_late": avg_days_late(invoices, start, as_of),
        "on_time_share": rounded(Decimal(len(on_time)) / len(due)) if due else None,
        "broken_promises": sum(1 for d in book.broken_days if _in(d, start, as_of)),
        "overdue_share": rounded(open_overdue / open_total) if open_total else ZERO,
        "disputes": sum(1 for d in book.dispute_days if _in(d, start, as_of)),
        "days_to_pay": rounded(Decimal(sum(days_to_pay)) / len(days_to_pay)) if days_to_pay else None,
        "utilisation": rounded(open_credit / limit) if limit else None,
        "relationship_days": (as_of - first_issue).days if first_issue else 0,
        "days_since_last_payment": (as_of - max(payments)).days if payments else None,
        # for warnings: the trend of lateness, and recent broken promises
        "days_late_last_90": avg_days_late(invoices, as_of - timedelta(days=90), as_of),
        "days_late_prior_90": avg_days_late(invoices, as_of - timedelta(days=180), as_of - timedelta(days=90)),
        "broken_promises_last_30": sum(1 for d in book.broken_days if _in(d, as_of - timedelta(days=30), as_of)),
        "has_history": bool(due),
        "open_credit_currency": open_credit,
        "open_total": open_total,
        "open_overdue": open_overdue,
        "overdue_count": sum(1 for i in invoices if i.due_on < as_of and i.open_at(as_of) > 0),
    }


@dataclass(frozen=True)
class FactorScore:
    name: str
    measure: str  # the measure's name, or "expression: <text>"
    value: Any
    band: str
    points: int

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "measure": self.measure, "value": self.value, "points": self.points}


@dataclass(frozen=True)
class Score:
    """A customer's score and the grade it gives; `score` None when no invoice fell due in the window."""

    score: int | None
    grade: str
    factors: tuple[FactorScore, ...]

    def breakdown(self) -> list[dict[str, Any]]:
        return [f.as_dict() for f in self.factors]


def _band(bands: Sequence[Band], value: Decimal | None) -> Band | None:
    return next((band for band in bands if band.holds(value)), None)


def score_factor(factor: Factor, measures: Mapping[str, Any], facts: Mapping[str, Any]) -> FactorScore:
    if factor.expression is not None:
        value: Any = 1 if factor.expression.evaluate(facts) else 0
        label = f"expression: {factor.expression.source}"
    else:
        assert factor.measure is not None
        value = measures.get(factor.measure)
        label = factor.measure
    number = None if value is None else Decimal(value)
    band = _band(factor.bands, number)
    return FactorScore(factor.name, label, value, band.label() if band else "no band", band.points if band else 0)


def score(policy: CreditPolicy, measures: Mapping[str, Any], facts: Mapping[str, Any]) -> Score:
    factors = tuple(score_factor(f, measures, facts) for f in policy.factors)
    if not measures.get("has_history"):
        return Score(None, policy.no_history_grade, factors)
    total = sum(f.points for f in factors)
    return Score(total, policy.grade_for(total).grade, factors)


def credit_facts(measures: Mapping[str, Any]) -> dict[str, Any]:
    """The credit.* fields of expressions from the measures."""
    names = (
        "avg_days_late",
        "on_time_share",
        "broken_promises",
        "overdue_share",
        "disputes",
        "days_to_pay",
        "days_since_last_payment",
        "days_late_last_90",
        "days_late_prior_90",
        "broken_promises_last_30",
    )
    facts = {f"credit.{name}": measures.get(name) for name in names}
    facts["credit.relationship_days"] = measures.get("relationship_days")
    return facts
