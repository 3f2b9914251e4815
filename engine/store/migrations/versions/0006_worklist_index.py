"""The worklist's index: an owner's open invoices ranked by open amount × days overdue read from the index
alone (customer, stage, due date, open amount), not from every invoice row.

Revision ID: 0006_worklist_index
Revises: 0005_inbound_mail
Create Date: 2026-12-01 17:10:00
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0006_worklist_index"
down_revision: str | None = "0005_inbound_mail"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_invoices_worklist", "invoices", ["customer_id", "stage", "due_on", "open_amount"])


def downgrade() -> None:
    op.drop_index("ix_invoices_worklist", table_name="invoices")
