"""`dunning report NAME --by DIMENSION`: the same report once per group of customers (segment, industry, …).

Each group's report is computed on the book restricted to the invoices of that group's customers (their
outcomes and commitments with them), so every figure keeps its definition; `(none)` collects the customers
without a value.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from engine.reports.figures import NONE_LABEL, Book, ReportError

DIMENSIONS = ("segment", "industry", "region", "owner", "credit_grade")


def by_dimension(book: Book, dimension: str, report: Callable[[Book], dict[str, Any]]) -> dict[str, Any]:
    """{by, groups: [{key, report}]}, groups in key order with `(none)` last."""
    if dimension not in DIMENSIONS:
        raise ReportError(f"--by {dimension!r} is not a dimension; choose one of {', '.join(DIMENSIONS)}")
    key_of = {cid: (c.get(dimension) or NONE_LABEL) for cid, c in book.customers.items()}
    keys = sorted({key_of.get(i.customer_id, NONE_LABEL) for i in book.invoices}, key=lambda k: (k == NONE_LABEL, k))
    groups = []
    for key in keys:
        invoices = [i for i in book.invoices if key_of.get(i.customer_id, NONE_LABEL) == key]
        ids = {i.id for i in invoices}
        part = replace(
            book,
            invoices=invoices,
            outcomes=[o for o in book.outcomes if o[1] in ids],
            commitments=[c for c in book.commitments if c["invoice_id"] in ids],
        )
        groups.append({"key": key, "report": report(part)})
    return {"by": dimension, "groups": groups}
