"""Customers' `action_tags`: the tags a collector's action added, which a re-import of the customers keeps.

Revision ID: 0007_customer_action_tags
Revises: 0006_worklist_index
Create Date: 2026-12-01 17:10:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007_customer_action_tags"
down_revision: str | None = "0006_worklist_index"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: The one tag an action adds so far (engine.tasks: the outcome `wrong_contact`).
WRONG_CONTACT = "wrong_contact"


def upgrade() -> None:
    with op.batch_alter_table("customers", schema=None, recreate="never") as batch_op:
        batch_op.add_column(sa.Column("action_tags", sa.JSON(), nullable=True))
    # A `wrong_contact` tag already there came from a task outcome if one was recorded for that customer.
    conn = op.get_bind()
    customers = sa.table("customers", sa.column("id"), sa.column("tags", sa.JSON), sa.column("action_tags", sa.JSON))
    events = sa.table("events", sa.column("kind"), sa.column("customer_id"), sa.column("data", sa.JSON))
    reported = {
        customer_id
        for customer_id, data in conn.execute(
            sa.select(events.c.customer_id, events.c.data).where(events.c.kind == "task_outcome")
        )
        if (data or {}).get("outcome") == WRONG_CONTACT
    }
    tagged = [
        customer_id
        for customer_id, tags in conn.execute(sa.select(customers.c.id, customers.c.tags))
        if customer_id in reported and WRONG_CONTACT in (tags or [])
    ]
    for customer_id in tagged:
        conn.execute(sa.update(customers).where(customers.c.id == customer_id).values(action_tags=[WRONG_CONTACT]))


def downgrade() -> None:
    with op.batch_alter_table("customers", schema=None) as batch_op:
        batch_op.drop_column("action_tags")
