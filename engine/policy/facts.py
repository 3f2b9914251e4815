"""The facts a policy's expressions read: ONE list of fields, and the builders that fill them from a row.

Every field is declared once, in `FIELDS`: its dotted name, its type, a line for finance users, and
whether its value moves by itself (with time or with *other* invoices) — a condition on such a field is
re-checked daily (`VOLATILE_FIELDS`, used by decide). The expression checker (engine.policy.expressions),
the JSON schema and the docs read the same list; the two builders below fill exactly its fields (a unit
test holds them to it), so a field cannot be added to one and forgotten in another.

The builders take the row mapping the store reads for a sweep (invoice columns by name, customer columns
prefixed `c_`) and return plain dicts; the sweep, `explain` and the collector actions all use them.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

__all__ = [
    "CREDIT_FIELDS",
    "FIELDS",
    "ROOTS",
    "VOLATILE_FIELDS",
    "Field",
    "FieldType",
    "customer_facts",
    "invoice_facts",
    "invoice_facts_of",
]

ZERO = Decimal(0)


class FieldType(enum.Enum):
    """The type of a field's value in the facts mapping."""

    DECIMAL = "decimal"  # decimal.Decimal
    INTEGER = "integer"  # int
    TEXT = "text"  # str
    DATE = "date"  # datetime.date
    TEXT_LIST = "text_list"  # tuple[str, ...]
    BOOLEAN = "boolean"  # bool


@dataclass(frozen=True)
class Field:
    """A fact an expression may refer to."""

    name: str  # dotted, e.g. "invoice.open_amount"
    type: FieldType
    description: str  # one line for finance users (docs, JSON schema, explain)
    #: Moves by itself (with time, or with the customer's other invoices): conditions on it are re-checked daily.
    volatile: bool = field(default=False, kw_only=True)

    @property
    def root(self) -> str:
        """The part before the dot: "invoice" or "customer"."""
        return self.name.split(".", 1)[0]


#: Every root a field may start with. `compile_expression(roots=...)` narrows it per use.
ROOTS: tuple[str, ...] = ("invoice", "customer")

_D, _I, _T, _DT, _TL = (
    FieldType.DECIMAL,
    FieldType.INTEGER,
    FieldType.TEXT,
    FieldType.DATE,
    FieldType.TEXT_LIST,
)

#: The registry of fields, keyed by dotted name.
FIELDS: dict[str, Field] = {
    f.name: f
    for f in (
        Field("invoice.number", _T, "The invoice number as issued."),
        Field("invoice.amount", _D, "Invoice total, in the invoice's currency."),
        Field("invoice.open_amount", _D, "What is still unpaid on the invoice."),
        Field("invoice.paid_amount", _D, "What has been paid on the invoice so far."),
        Field("invoice.currency", _T, "ISO currency code of the invoice, e.g. 'EUR'."),
        # counted in the governing policy's days, less the days paused
        Field(
            "invoice.days_overdue",
            _I,
            "Days past the due date (negative before it), counted in the governing policy's day unit.",
            volatile=True,
        ),
        Field("invoice.issued_on", _DT, "Date the invoice was issued ('YYYY-MM-DD')."),
        Field("invoice.due_on", _DT, "Date the invoice is due ('YYYY-MM-DD')."),
        Field("invoice.tags", _TL, "Tags on the invoice; test one with 'tag' in invoice.tags."),
        Field("invoice.stage", _T, "The invoice's current dunning stage, e.g. 'current' or 'final'."),
        Field("customer.id", _T, "The customer's identifier."),
        Field("customer.name", _T, "The customer's name."),
        Field("customer.credit_grade", _T, "The customer's credit grade, e.g. 'A'; null if not graded."),
        Field("customer.segment", _T, "The customer's segment, e.g. 'retail' or 'enterprise'."),
        Field("customer.owner", _T, "The account owner responsible for the customer."),
        Field("customer.language", _T, "The customer's language code, e.g. 'en'."),
        Field("customer.timezone", _T, "The customer's time zone, e.g. 'Europe/Berlin'."),
        Field("customer.tags", _TL, "Tags on the customer; test one with 'tag' in customer.tags."),
        # the customer's totals on the day, over all its open invoices
        Field("customer.total_open", _D, "Sum of the open amounts of all the customer's open invoices.", volatile=True),
        Field(
            "customer.total_overdue",
            _D,
            "Sum of the open amounts of the customer's overdue invoices.",
            volatile=True,
        ),
        Field("customer.overdue_count", _I, "Number of the customer's overdue open invoices.", volatile=True),
        # credit management (engine.credit, rules/credit.yaml): filled by the credit desk, see CREDIT_FIELDS
        Field("customer.industry", _T, "The customer's industry, e.g. 'construction'."),
        Field("customer.region", _T, "The customer's region, e.g. 'East China'."),
        Field("customer.credit_limit", _D, "Credit limit: the imported credit_limit, else the grade's limit."),
        Field(
            "customer.utilisation",
            _D,
            "Open amount in the credit currency ÷ credit limit (null without a limit, or a limit of 0).",
            volatile=True,
        ),
        Field("customer.previous_grade", _T, "The credit grade before the latest grade change; null if never changed."),
        Field(
            "customer.grade_changed_days_ago",
            _I,
            "Days since the latest grade change; null if never changed.",
            volatile=True,
        ),
        Field("customer.open_warnings", _I, "Number of the customer's open early warnings.", volatile=True),
        # only in rules/credit.yaml factors and rules/warnings.yaml (the credit desk's measures)
        Field("credit.avg_days_late", _D, "Amount-weighted mean days late of invoices paid in full in the window."),
        Field("credit.on_time_share", _D, "Invoices due in the window paid in full by their due date ÷ invoices due."),
        Field("credit.broken_promises", _I, "Promises broken and installments missed in the window."),
        Field("credit.overdue_share", _D, "Overdue open amount ÷ open amount at the as-of day (0 without open)."),
        Field("credit.disputes", _I, "Disputes opened in the window."),
        Field("credit.days_to_pay", _D, "Mean days from issue to payment in full, invoices paid in the window."),
        Field("credit.relationship_days", _I, "Days since the customer's first invoice was issued."),
        Field("credit.days_since_last_payment", _I, "Days since the latest payment; null without payments."),
        Field("credit.days_late_last_90", _D, "avg_days_late over the last 90 days."),
        Field("credit.days_late_prior_90", _D, "avg_days_late over the 90 days before those."),
        Field("credit.broken_promises_last_30", _I, "Promises broken and installments missed in the last 30 days."),
        Field(
            "credit.legal_invoices", _I, "Open invoices in a legal stage (named legal... or using the legal channel)."
        ),
        Field("credit.grade_dropped", FieldType.BOOLEAN, "The latest grade change lowered the grade."),
    )
}

#: Fields whose value moves with time or with *other* invoices: a condition on them is re-checked daily.
VOLATILE_FIELDS = frozenset(name for name, f in FIELDS.items() if f.volatile)
#: Filled by the credit desk (engine.credit.desk), not by the builders below: the customer fields a sweep adds
#: per chunk of customers, and the credit.* measures (read only in credit.yaml factors and warnings.yaml).
CREDIT_FIELDS = frozenset(
    {
        "customer.industry",
        "customer.region",
        "customer.credit_limit",
        "customer.utilisation",
        "customer.previous_grade",
        "customer.grade_changed_days_ago",
        "customer.open_warnings",
    }
    | {name for name, f in FIELDS.items() if f.root == "credit"}
)


def invoice_facts(row: Mapping[str, Any], days_overdue: int) -> dict[str, Any]:
    """The `invoice.*` facts of a sweep row; `days_overdue` as the caller counts it."""
    return invoice_facts_of(
        row["number"],
        row["amount"],
        row["open_amount"],
        row["currency"],
        days_overdue,
        row["issued_on"],
        row["due_on"],
        tuple(row["tags"] or ()),
        row["stage"],
    )


def invoice_facts_of(
    number: str,
    amount: Decimal,
    open_amount: Decimal,
    currency: str,
    days_overdue: int,
    issued_on: Any,
    due_on: Any,
    tags: tuple[str, ...] | None,
    stage: str,
) -> dict[str, Any]:
    """The `invoice.*` facts from their values (the sweep's hot path reads rows by position).

    Written out rather than looped over `FIELDS`: this runs once per invoice in every sweep, and a dict
    display is the fastest way to build it. tests/unit/test_decide.py checks it fills exactly the registry.
    `tags` None: no expression reads them, so they were not decoded."""
    return {
        "invoice.number": number,
        "invoice.amount": amount,
        "invoice.open_amount": open_amount,
        "invoice.paid_amount": amount - open_amount,
        "invoice.currency": currency,
        "invoice.days_overdue": days_overdue,
        "invoice.issued_on": issued_on,
        "invoice.due_on": due_on,
        "invoice.tags": tags,
        "invoice.stage": stage,
    }


def customer_facts(row: Mapping[str, Any], totals: tuple[Decimal, Decimal, int] | None) -> dict[str, Any]:
    """The `customer.*` facts of a sweep row (customer columns prefixed `c_`); `totals` = (open, overdue,
    overdue count) on the day, None for a customer with no open invoice."""
    total_open, total_overdue, overdue_count = totals or (ZERO, ZERO, 0)
    return {
        "customer.id": row["customer_id"],
        "customer.name": row["c_name"],
        "customer.credit_grade": row["c_credit_grade"],
        "customer.segment": row["c_segment"],
        "customer.owner": row["c_owner"],
        "customer.language": row["c_language"],
        "customer.timezone": row["c_timezone"],
        "customer.tags": tuple(row["c_tags"] or ()),
        "customer.total_open": total_open,
        "customer.total_overdue": total_overdue,
        "customer.overdue_count": overdue_count,
    }
