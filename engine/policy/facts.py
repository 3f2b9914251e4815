"""The facts a policy's expressions read: ONE list of fields, and the builders that fill them from a row.

Every field is declared once, in `FIELDS`: its dotted name, its type, a line for finance users, where the
fact builders read it in a sweep row, and whether its value moves by itself (with time or with *other*
invoices) — a condition on such a field is re-checked daily (`VOLATILE_FIELDS`, used by decide). The
expression checker (engine.policy.expressions), the JSON schema and the docs read the same list, and the
builders are derived from it, so a field cannot be added to one and forgotten in another.

The builders take the row mapping the store reads for a sweep (invoice columns by name, customer columns
prefixed `c_`) and return plain dicts; the sweep, `explain` and the collector actions all use them.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from operator import itemgetter
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
    #: The key of the sweep row the builders copy it from; None: computed by the builder (see below).
    column: str | None = None
    #: Moves by itself (with time, or with the customer's other invoices): conditions on it are re-checked daily.
    volatile: bool = False

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
        Field("invoice.number", _T, "The invoice number as issued.", "number"),
        Field("invoice.amount", _D, "Invoice total, in the invoice's currency.", "amount"),
        Field("invoice.open_amount", _D, "What is still unpaid on the invoice.", "open_amount"),
        # computed: amount - open_amount
        Field("invoice.paid_amount", _D, "What has been paid on the invoice so far."),
        Field("invoice.currency", _T, "ISO currency code of the invoice, e.g. 'EUR'.", "currency"),
        # given by the caller: counted in the governing policy's days, less the days paused
        Field(
            "invoice.days_overdue",
            _I,
            "Days past the due date (negative before it), counted in the governing policy's day unit.",
            volatile=True,
        ),
        Field("invoice.issued_on", _DT, "Date the invoice was issued ('YYYY-MM-DD').", "issued_on"),
        Field("invoice.due_on", _DT, "Date the invoice is due ('YYYY-MM-DD').", "due_on"),
        Field("invoice.tags", _TL, "Tags on the invoice; test one with 'tag' in invoice.tags.", "tags"),
        Field("invoice.stage", _T, "The invoice's current dunning stage, e.g. 'current' or 'final'.", "stage"),
        Field("customer.id", _T, "The customer's identifier.", "customer_id"),
        Field("customer.name", _T, "The customer's name.", "c_name"),
        Field(
            "customer.credit_grade", _T, "The customer's credit grade, e.g. 'A'; null if not graded.", "c_credit_grade"
        ),
        Field("customer.segment", _T, "The customer's segment, e.g. 'retail' or 'enterprise'.", "c_segment"),
        Field("customer.owner", _T, "The account owner responsible for the customer.", "c_owner"),
        Field("customer.language", _T, "The customer's language code, e.g. 'en'.", "c_language"),
        Field("customer.timezone", _T, "The customer's time zone, e.g. 'Europe/Berlin'.", "c_timezone"),
        Field("customer.tags", _TL, "Tags on the customer; test one with 'tag' in customer.tags.", "c_tags"),
        # given by the caller, from the customer's totals (open, overdue, overdue count) on the day
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

#: The fields the builders compute rather than copy, per root (every other field names its column).
_COMPUTED = {
    "invoice": ("invoice.paid_amount", "invoice.days_overdue"),
    "customer": ("customer.total_open", "customer.total_overdue", "customer.overdue_count"),
}


class _Copier:
    """Copies one root's column-backed fields from a row in one `itemgetter` call (the sweep's hot path)."""

    def __init__(self, root: str):
        fields = [f for f in FIELDS.values() if f.root == root]
        loose = [f.name for f in fields if f.column is None and f.name not in _COMPUTED[root]]
        if loose:
            raise RuntimeError(f"facts: no column and no builder for {', '.join(loose)}")
        plain = [f for f in fields if f.column is not None and f.type is not FieldType.TEXT_LIST]
        self.names = tuple(f.name for f in plain)
        self.getter = itemgetter(*(f.column for f in plain))
        self.lists = tuple((f.name, f.column) for f in fields if f.column is not None and f.type is FieldType.TEXT_LIST)

    def __call__(self, row: Mapping[str, Any]) -> dict[str, Any]:
        facts = dict(zip(self.names, self.getter(row), strict=True))
        for name, column in self.lists:
            facts[name] = tuple(row[column] or ())
        return facts


_INVOICE = _Copier("invoice")
_CUSTOMER = _Copier("customer")


def invoice_facts(row: Mapping[str, Any], days_overdue: int) -> dict[str, Any]:
    """The `invoice.*` facts of a sweep row; `days_overdue` as the caller counts it."""
    facts = _INVOICE(row)
    facts["invoice.paid_amount"] = row["amount"] - row["open_amount"]
    facts["invoice.days_overdue"] = days_overdue
    return facts


def customer_facts(row: Mapping[str, Any], totals: tuple[Decimal, Decimal, int] | None) -> dict[str, Any]:
    """The `customer.*` facts of a sweep row; `totals` = (open, overdue, overdue count), None for none."""
    facts = _CUSTOMER(row)
    facts["customer.total_open"], facts["customer.total_overdue"], facts["customer.overdue_count"] = totals or (
        ZERO,
        ZERO,
        0,
    )
    return facts
