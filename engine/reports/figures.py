"""Receivables reports: aging, KPIs, stage effectiveness, owners and a cash forecast.

Every figure is a pure function of the book as it stood at the report's `as_of` day (company time zone),
reconstructed from the stored rows: an invoice counts from its issue date, payments from their `paid_on`
date, write-offs from the day they were recorded, stage entries and notifications from their events. So a
report "as of" a past day gives what that day looked like (invoice amounts as they are now).

Amounts are never added across currencies: the amount-based reports (aging, kpis, owners, forecast) have
one section per currency. Ratios are fractions (0.25 = 25%), rounded to 4 places; None where undefined
(division by zero). The definitions are in the README, section "Reports".
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, tzinfo
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from engine.clock import local_day
from engine.errors import ReportError
from engine.policy.model import DISPUTED, LIFECYCLE_STATES, PROMISED, WRITTEN_OFF
from engine.store.database import Repository
from engine.store.queries import book_rows

ZERO = Decimal(0)
CENT = Decimal("0.01")

REPORTS = ("aging", "kpis", "effectiveness", "owners", "forecast")
DEFAULT_BUCKETS = (30, 60, 90, 180)
DEFAULT_PERIOD_DAYS = 90
WINDOWS = (7, 14, 30)
FORECAST_WEEKS = 8
NONE_LABEL = "(none)"


# -- the book as rows ----------------------------------------------------------------------------------


@dataclass
class InvoiceFacts:
    id: int
    number: str
    customer_id: str
    currency: str
    amount: Decimal
    issued_on: date
    due_on: date
    stage: str
    payments: list[tuple[date, Decimal]] = field(default_factory=list)
    written_off_on: date | None = None
    #: The open amount when it was written off (the write-off event records it).
    written_off_amount: Decimal | None = None
    #: stage -> first day entered; (stage, channel) -> first notification day
    entered: dict[str, date] = field(default_factory=dict)
    notified: dict[tuple[str, str], date] = field(default_factory=dict)
    first_notice_on: date | None = None

    def paid_until(self, day: date) -> Decimal:
        return sum((amount for paid_on, amount in self.payments if paid_on <= day), ZERO)

    def open_at(self, day: date) -> Decimal:
        """Receivable at the end of `day`: issued, not written off, less what was paid by then."""
        if self.issued_on > day or (self.written_off_on is not None and self.written_off_on <= day):
            return ZERO
        return max(self.amount - self.paid_until(day), ZERO)

    def written_off_value(self) -> Decimal:
        """What the write-off took off the book: the open amount when it was recorded (a payment dated on the
        write-off day was collected, not written off). Older events without the amount: what was open at the
        end of that day, payments of the day included."""
        if self.written_off_amount is not None:
            return self.written_off_amount
        assert self.written_off_on is not None
        return max(self.amount - self.paid_until(self.written_off_on), ZERO)

    def settled_on(self) -> date | None:
        """The day the payments first covered the whole amount (None: not paid in full)."""
        total = ZERO
        for paid_on, amount in self.payments:
            total += amount
            if total >= self.amount:
                return paid_on
        return None

    def settled_by(self, day: date) -> date | None:
        settled = self.settled_on()
        return settled if settled is not None and settled <= day else None


@dataclass
class Book:
    as_of: date
    invoices: list[InvoiceFacts]
    customers: dict[str, dict[str, Any]]
    #: (kind, invoice_id, day) for promise/installment outcomes up to as_of
    outcomes: list[tuple[str, int, date]]
    #: open commitments at as_of: dicts with invoice_id, kind, amount, cumulative, due_on
    commitments: list[dict[str, Any]]
    stage_order: dict[str, int] = field(default_factory=dict)

    def customer(self, customer_id: str) -> dict[str, Any]:
        return self.customers.get(customer_id, {})


def load_book(repo: Repository, zone: tzinfo, as_of: date, stage_order: Mapping[str, int] | None = None) -> Book:
    """Read what the reports need, as it stood at the end of `as_of` (company-local day)."""
    with book_rows(repo, as_of) as rows:
        invoices = {
            row["id"]: InvoiceFacts(
                id=row["id"],
                number=row["number"],
                customer_id=row["customer_id"],
                currency=row["currency"],
                amount=row["amount"],
                issued_on=row["issued_on"],
                due_on=row["due_on"],
                stage=row["stage"],
            )
            for row in rows.invoices()
        }
        customers = {row["id"]: dict(row) for row in rows.customers()}
        for invoice_id, paid_on, amount in rows.payments():
            if invoice_id in invoices:
                invoices[invoice_id].payments.append((paid_on, amount))
        outcomes: list[tuple[str, int, date]] = []
        for row in rows.events():
            invoice = invoices.get(row["invoice_id"])
            day = local_day(row["at"], zone)
            if invoice is None or day > as_of:
                continue
            data = row["data"] or {}
            kind = row["kind"]
            if kind == "transition":
                to = data.get("to")
                if to and to not in LIFECYCLE_STATES and to != "current":
                    invoice.entered.setdefault(to, day)
            elif kind == "notification":
                invoice.notified.setdefault((data.get("stage", ""), data.get("channel", "")), day)
                if invoice.first_notice_on is None:
                    invoice.first_notice_on = day
            elif kind == "write_off":
                invoice.written_off_on = day
                recorded = data.get("amount")
                invoice.written_off_amount = Decimal(str(recorded)) if recorded is not None else None
            else:
                outcomes.append((kind, invoice.id, day))
        commitments = [dict(row) for row in rows.open_commitments() if row["invoice_id"] in invoices]
    return Book(as_of, list(invoices.values()), customers, outcomes, commitments, dict(stage_order or {}))


# -- helpers -------------------------------------------------------------------------------------------


def ratio(numerator: Decimal | int, denominator: Decimal | int) -> Decimal | None:
    if not denominator:
        return None
    return (Decimal(numerator) / Decimal(denominator)).quantize(Decimal("0.0001"), ROUND_HALF_UP)


def money(value: Decimal) -> Decimal:
    return value.quantize(CENT, ROUND_HALF_UP)


def bucket_labels(buckets: Sequence[int]) -> list[str]:
    labels = ["current"]
    low = 1
    for high in buckets:
        labels.append(f"{low}-{high}")
        low = high + 1
    labels.append(f"{buckets[-1]}+")
    return labels


def bucket_of(days_overdue: int, buckets: Sequence[int]) -> str:
    labels = bucket_labels(buckets)
    if days_overdue <= 0:
        return labels[0]
    for index, high in enumerate(buckets, start=1):
        if days_overdue <= high:
            return labels[index]
    return labels[-1]


def parse_buckets(text: str | None) -> tuple[int, ...]:
    if not text:
        return DEFAULT_BUCKETS
    try:
        values = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise ReportError(f"--buckets {text!r}: give increasing day counts such as 30,60,90,180") from None
    if not values or any(v <= 0 for v in values) or list(values) != sorted(set(values)):
        raise ReportError(f"--buckets {text!r}: give increasing positive day counts such as 30,60,90,180")
    return values


def _currencies(book: Book) -> list[str]:
    return sorted({i.currency for i in book.invoices})


# -- aging ----------------------------------------------------------------------------------------------


def aging(book: Book, buckets: Sequence[int] = DEFAULT_BUCKETS) -> dict[str, Any]:
    """Open receivables at as_of by days overdue, overall and by customer, segment, credit grade and owner."""
    labels = bucket_labels(buckets)
    sections = []
    for currency in _currencies(book):
        groups: dict[str, dict[str, dict[str, Any]]] = {d: {} for d in ("customer", "segment", "credit_grade", "owner")}
        totals = {label: ZERO for label in labels}
        counts = {label: 0 for label in labels}
        customers_open: set[str] = set()
        customers_overdue: set[str] = set()
        for invoice in book.invoices:
            if invoice.currency != currency:
                continue
            open_amount = invoice.open_at(book.as_of)
            if open_amount <= 0:
                continue
            days = (book.as_of - invoice.due_on).days
            label = bucket_of(days, buckets)
            totals[label] += open_amount
            counts[label] += 1
            customers_open.add(invoice.customer_id)
            if days > 0:
                customers_overdue.add(invoice.customer_id)
            customer = book.customer(invoice.customer_id)
            keys = {
                "customer": invoice.customer_id,
                "segment": customer.get("segment") or NONE_LABEL,
                "credit_grade": customer.get("credit_grade") or NONE_LABEL,
                "owner": customer.get("owner") or NONE_LABEL,
            }
            for dimension, key in keys.items():
                group = groups[dimension].setdefault(
                    key,
                    {
                        "key": key,
                        "open": ZERO,
                        "overdue": ZERO,
                        "invoices": 0,
                        "buckets": {lab: ZERO for lab in labels},
                        **({"name": customer.get("name")} if dimension == "customer" else {}),
                    },
                )
                group["open"] += open_amount
                group["invoices"] += 1
                group["buckets"][label] += open_amount
                if days > 0:
                    group["overdue"] += open_amount
        total = sum(totals.values(), ZERO)
        overdue = total - totals["current"]
        invoices_open = sum(counts.values())
        for dimension in groups.values():
            for group in dimension.values():
                group["overdue_share"] = ratio(group["overdue"], group["open"])
        sections.append(
            {
                "currency": currency,
                "total_open": total,
                "overdue_amount": overdue,
                "overdue_share": ratio(overdue, total),
                "invoices_open": invoices_open,
                "invoices_overdue": invoices_open - counts["current"],
                "invoices_overdue_share": ratio(invoices_open - counts["current"], invoices_open),
                "customers_open": len(customers_open),
                "customers_overdue": len(customers_overdue),
                "customers_overdue_share": ratio(len(customers_overdue), len(customers_open)),
                "buckets": [
                    {
                        "bucket": label,
                        "amount": totals[label],
                        "invoices": counts[label],
                        "share": ratio(totals[label], total),
                    }
                    for label in labels
                ],
                **{
                    f"by_{dimension}": sorted(rows.values(), key=lambda g: (-g["open"], g["key"]))
                    for dimension, rows in groups.items()
                },
            }
        )
    return {"report": "aging", "as_of": book.as_of, "bucket_days": list(buckets), "sections": sections}


# -- kpis -----------------------------------------------------------------------------------------------


def kpis(book: Book, since: date) -> dict[str, Any]:
    """The period's collection figures: DSO, days to pay, timeliness, CEI, bad-debt rate, turnover."""
    end = book.as_of
    if since > end:
        raise ReportError(f"the period starts ({since}) after it ends ({end}); give an earlier --from")
    days = (end - since).days + 1
    before = since - timedelta(days=1)
    sections = []
    for currency in _currencies(book):
        invoices = [i for i in book.invoices if i.currency == currency]
        opening = sum((i.open_at(before) for i in invoices), ZERO)
        closing = sum((i.open_at(end) for i in invoices), ZERO)
        closing_current = sum((i.open_at(end) for i in invoices if i.due_on >= end), ZERO)
        sales = sum((i.amount for i in invoices if since <= i.issued_on <= end), ZERO)
        collected = sum((a for i in invoices for d, a in i.payments if since <= d <= end), ZERO)
        written_off = sum(
            (
                i.written_off_value()
                for i in invoices
                if i.written_off_on is not None and since <= i.written_off_on <= end
            ),
            ZERO,
        )
        settled = [(i, i.settled_by(end)) for i in invoices]
        paid_in_period = [(i, d) for i, d in settled if d is not None and since <= d]
        due_in_period = [i for i in invoices if since <= i.due_on <= end]
        on_time = [i for i in due_in_period if (s := i.settled_on()) is not None and s <= i.due_on]
        due_amount = sum((i.amount for i in due_in_period), ZERO)
        paid_by_due = sum((min(i.paid_until(i.due_on), i.amount) for i in due_in_period), ZERO)
        average_receivables = (opening + closing) / 2
        cei_base = opening + sales - closing_current
        sections.append(
            {
                "currency": currency,
                "period_start": since,
                "period_end": end,
                "days_in_period": days,
                "opening_receivables": opening,
                "closing_receivables": closing,
                "closing_current_receivables": closing_current,
                "credit_sales": sales,
                "collected": collected,
                "written_off": written_off,
                "average_receivables": money(average_receivables),
                "dso": money(closing / sales * days) if sales else None,
                "average_days_to_pay": money(
                    Decimal(sum((d - i.issued_on).days for i, d in paid_in_period)) / len(paid_in_period)
                )
                if paid_in_period
                else None,
                "invoices_paid": len(paid_in_period),
                "invoices_due": len(due_in_period),
                "invoices_paid_on_time": len(on_time),
                "timeliness_rate": ratio(len(on_time), len(due_in_period)),
                "timeliness_rate_amount": ratio(paid_by_due, due_amount),
                "cei": money((opening + sales - closing) / cei_base * 100) if cei_base else None,
                "bad_debt_rate": ratio(written_off, sales),
                "receivables_turnover": money(sales / average_receivables) if average_receivables else None,
            }
        )
    return {"report": "kpis", "as_of": end, "period_start": since, "sections": sections}


# -- effectiveness --------------------------------------------------------------------------------------


def _window_stats(starts: Iterable[tuple[InvoiceFacts, date]], as_of: date) -> dict[str, Any]:
    pairs = list(starts)
    stats: dict[str, Any] = {"reached": len(pairs)}
    for window in WINDOWS:
        matured = [(i, d) for i, d in pairs if (as_of - d).days >= window]
        paid = [1 for i, d in matured if (s := i.settled_by(as_of)) is not None and 0 <= (s - d).days <= window]
        stats[f"matured_{window}"] = len(matured)
        stats[f"paid_within_{window}"] = ratio(len(paid), len(matured))
    return stats


def effectiveness(book: Book) -> dict[str, Any]:
    """Per stage and per stage+channel: invoices reached and the share paid within 7/14/30 days after."""
    as_of = book.as_of
    order = book.stage_order
    stage_names = sorted({s for i in book.invoices for s in i.entered}, key=lambda s: (order.get(s, 999), s))
    stages = [
        {"stage": name, **_window_stats(((i, i.entered[name]) for i in book.invoices if name in i.entered), as_of)}
        for name in stage_names
    ]
    pairs = sorted({key for i in book.invoices for key in i.notified}, key=lambda k: (order.get(k[0], 999), k))
    channels = [
        {
            "stage": stage,
            "channel": channel,
            **_window_stats(
                ((i, i.notified[(stage, channel)]) for i in book.invoices if (stage, channel) in i.notified), as_of
            ),
        }
        for stage, channel in pairs
    ]
    count = defaultdict(int)
    for kind, _, _ in book.outcomes:
        count[kind] += 1
    reminded = [(i, i.settled_by(as_of)) for i in book.invoices if i.first_notice_on is not None]
    paid = [(s - i.first_notice_on).days for i, s in reminded if s is not None and i.first_notice_on <= s]
    return {
        "report": "effectiveness",
        "as_of": as_of,
        "stages": stages,
        "channels": channels,
        "promises_kept": count["promise_kept"],
        "promises_broken": count["promise_broken"],
        "promise_kept_rate": ratio(count["promise_kept"], count["promise_kept"] + count["promise_broken"]),
        "installments_kept": count["installment_kept"],
        "installments_missed": count["installment_missed"],
        "installment_kept_rate": ratio(
            count["installment_kept"], count["installment_kept"] + count["installment_missed"]
        ),
        "invoices_paid_after_reminder": len(paid),
        "average_days_first_reminder_to_payment": money(Decimal(sum(paid)) / len(paid)) if paid else None,
    }


# -- owners ---------------------------------------------------------------------------------------------


def owners(book: Book, since: date) -> dict[str, Any]:
    """Per owner and currency: collected in the period, and the on-time rate of invoices due in it."""
    end = book.as_of
    sections = []
    for currency in _currencies(book):
        rows: dict[str, dict[str, Any]] = {}
        for invoice in book.invoices:
            if invoice.currency != currency:
                continue
            owner = book.customer(invoice.customer_id).get("owner") or NONE_LABEL
            row = rows.setdefault(
                owner,
                {
                    "owner": owner,
                    "collected": ZERO,
                    "invoices_due": 0,
                    "invoices_paid_on_time": 0,
                    "open": ZERO,
                    "overdue": ZERO,
                },
            )
            row["collected"] += sum((a for d, a in invoice.payments if since <= d <= end), ZERO)
            if since <= invoice.due_on <= end:
                row["invoices_due"] += 1
                settled = invoice.settled_on()
                if settled is not None and settled <= invoice.due_on:
                    row["invoices_paid_on_time"] += 1
            open_amount = invoice.open_at(end)
            row["open"] += open_amount
            if invoice.due_on < end:
                row["overdue"] += open_amount
        for row in rows.values():
            row["on_time_rate"] = ratio(row["invoices_paid_on_time"], row["invoices_due"])
        sections.append(
            {"currency": currency, "owners": sorted(rows.values(), key=lambda r: (-r["collected"], r["owner"]))}
        )
    return {"report": "owners", "as_of": end, "period_start": since, "sections": sections}


# -- forecast -------------------------------------------------------------------------------------------


def forecast(book: Book, weeks: int = FORECAST_WEEKS) -> dict[str, Any]:
    """Expected cash per week for the next `weeks` weeks (see the README for the model)."""
    as_of = book.as_of
    history = effectiveness(book)
    starts = [as_of + timedelta(days=1 + 7 * k) for k in range(weeks)]
    horizon = starts[-1] + timedelta(days=6)

    def week_of(day: date) -> int | None:
        day = max(day, starts[0])
        return (day - starts[0]).days // 7 if day <= horizon else None

    due_history = [i for i in book.invoices if i.due_on < as_of]  # due today may still be paid on time
    on_time_rate = ratio(
        sum(1 for i in due_history if (s := i.settled_on()) is not None and s <= i.due_on), len(due_history)
    )
    stage_rates = {s["stage"]: s["paid_within_30"] for s in history["stages"] if s["paid_within_30"] is not None}
    all_entries = [(i, d) for i in book.invoices for d in i.entered.values()]
    overall_rate = _window_stats(all_entries, as_of)["paid_within_30"]
    promise_rate = history["promise_kept_rate"] if history["promise_kept_rate"] is not None else Decimal(1)
    installment_rate = history["installment_kept_rate"] if history["installment_kept_rate"] is not None else Decimal(1)
    commitments: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for row in book.commitments:
        commitments[row["invoice_id"]].append(row)
    stage_now = _stages_at(book)

    sections = []
    for currency in _currencies(book):
        sources = ("due_dates", "promises", "plans", "overdue")
        table = [
            {"week": k + 1, "start": starts[k], "end": starts[k] + timedelta(days=6), **{s: ZERO for s in sources}}
            for k in range(weeks)
        ]
        items: list[dict[str, Any]] = []

        def add(
            invoice: InvoiceFacts, source: str, week: int | None, amount: Decimal, rate: Decimal | None, basis: str
        ) -> None:
            if week is None or rate is None or amount <= 0:
                return
            expected = money(amount * rate)
            table[week][source] += expected  # noqa: B023  (called only in the iteration that defines it)
            items.append(  # noqa: B023
                {
                    "invoice": invoice.number,
                    "customer_id": invoice.customer_id,
                    "source": source,
                    "week": week + 1,
                    "amount": amount,
                    "rate": rate,
                    "expected": expected,
                    "basis": basis,
                }
            )

        for invoice in book.invoices:
            open_amount = invoice.open_at(as_of)
            if invoice.currency != currency or open_amount <= 0:
                continue
            stage = stage_now.get(invoice.id, invoice.stage)
            if stage == DISPUTED or stage == WRITTEN_OFF:
                continue
            promised = commitments.get(invoice.id, [])
            if stage == PROMISED and promised:
                left = open_amount
                for row in promised:
                    amount = min(row["amount"], left)
                    left -= amount
                    if row["kind"] == "promise":
                        add(invoice, "promises", week_of(row["due_on"]), amount, promise_rate, "promise-kept rate")
                    else:
                        add(invoice, "plans", week_of(row["due_on"]), amount, installment_rate, "installment-kept rate")
            elif invoice.due_on >= as_of:
                add(invoice, "due_dates", week_of(invoice.due_on), open_amount, on_time_rate, "on-time rate")
            else:
                rate = stage_rates.get(stage, overall_rate)
                basis = f"{stage}: paid within 30 days" if stage in stage_rates else "all stages: paid within 30 days"
                if rate is not None:
                    for week in range(min(4, weeks)):
                        add(invoice, "overdue", week, open_amount / 4, rate, basis)
        for row in table:
            row["total"] = sum((row[s] for s in sources), ZERO)
        sections.append(
            {"currency": currency, "weeks": table, "total": sum((r["total"] for r in table), ZERO), "items": items}
        )
    return {
        "report": "forecast",
        "as_of": as_of,
        "weeks": weeks,
        "rates": {
            "on_time_rate": on_time_rate,
            "promise_kept_rate": promise_rate,
            "installment_kept_rate": installment_rate,
            "stage_paid_within_30": stage_rates,
            "overall_paid_within_30": overall_rate,
        },
        "sections": sections,
    }


def _stages_at(book: Book) -> dict[int, str]:
    """The current stage of each invoice (the reports read the stored stage: forecasts look forward from now)."""
    return {i.id: i.stage for i in book.invoices}


# -- one entry point -------------------------------------------------------------------------------------


def build(
    name: str,
    book: Book,
    *,
    since: date | None = None,
    buckets: Sequence[int] = DEFAULT_BUCKETS,
    weeks: int = FORECAST_WEEKS,
) -> dict[str, Any]:
    """The report `name` over `book`; `since` starts the period of kpis/owners (default: 90 days back)."""
    start = since or (book.as_of - timedelta(days=DEFAULT_PERIOD_DAYS - 1))
    if name == "aging":
        return aging(book, buckets)
    if name == "kpis":
        return kpis(book, start)
    if name == "effectiveness":
        return effectiveness(book)
    if name == "owners":
        return owners(book, start)
    if name == "forecast":
        return forecast(book, weeks)
    raise ReportError(f"unknown report {name!r}; choose one of {', '.join(REPORTS)}")


def flatten(report: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Every figure of a report as one long table: currency, section, key, figure, value (for --csv)."""
    rows: list[dict[str, Any]] = []

    def emit(currency: str, section: str, key: str, values: Mapping[str, Any]) -> None:
        for figure, value in values.items():
            if isinstance(value, Mapping):
                for sub, inner in value.items():
                    rows.append(
                        {
                            "currency": currency,
                            "section": section,
                            "key": key,
                            "figure": f"{figure}.{sub}",
                            "value": inner,
                        }
                    )
            elif not isinstance(value, list):
                rows.append({"currency": currency, "section": section, "key": key, "figure": figure, "value": value})

    top = {k: v for k, v in report.items() if k not in ("report", "sections", "stages", "channels", "rates")}
    emit("", "summary", "", top)
    for name in ("stages", "channels"):
        for row in report.get(name, []):
            key = row["stage"] + (f"/{row['channel']}" if "channel" in row else "")
            emit("", name, key, {k: v for k, v in row.items() if k not in ("stage", "channel")})
    if "rates" in report:
        emit("", "rates", "", report["rates"])
    for section in report.get("sections", []):
        currency = section["currency"]
        emit(currency, "totals", "", {k: v for k, v in section.items() if k != "currency"})
        for list_name, value in section.items():
            if not isinstance(value, list):
                continue
            for row in value:
                key_name = next((k for k in ("bucket", "key", "owner", "week", "invoice") if k in row), None)
                key = str(row.get(key_name, "")) if key_name else ""
                if list_name == "items":
                    key = f"{row['invoice']}/{row['source']}/week{row['week']}"
                emit(currency, list_name, key, {k: v for k, v in row.items() if k != key_name})
    return rows


def as_of_day(instant: datetime, zone: tzinfo) -> date:
    return local_day(instant, zone)
