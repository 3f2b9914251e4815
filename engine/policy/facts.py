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
    "FIELDS",
    "ROOTS",
    "VOLATILE_FIELDS",
    "Field",
    "FieldType",
    "customer_facts",
    "invoice_facts",
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
    )
}

#: Fields whose value moves with time or with *other* invoices: a condition on them is re-checked daily.
VOLATILE_FIELDS = frozenset(name for name, f in FIELDS.items() if f.volatile)


def invoice_facts(row: Mapping[str, Any], days_overdue: int) -> dict[str, Any]:
    """The `invoice.*` facts of a sweep row; `days_overdue` as the caller counts it.

    Written out rather than looped over `FIELDS`: this runs once per invoice in every sweep, and a dict
    display is the fastest way to build it. tests/unit/test_decide.py checks it fills exactly the registry.
    """
    return {
        "invoice.number": row["number"],
        "invoice.amount": row["amount"],
        "invoice.open_amount": row["open_amount"],
        "invoice.paid_amount": row["amount"] - row["open_amount"],
        "invoice.currency": row["currency"],
        "invoice.days_overdue": days_overdue,
        "invoice.issued_on": row["issued_on"],
        "invoice.due_on": row["due_on"],
        "invoice.tags": tuple(row["tags"] or ()),
        "invoice.stage": row["stage"],
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
