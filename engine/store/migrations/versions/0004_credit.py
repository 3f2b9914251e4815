"""Credit management: customers' credit limit, industry and region; credit files and early warnings.

Revision ID: 0004_credit
Revises: 0003_web_users
Create Date: 2026-12-01 14:20:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import engine.store.models

revision: str = "0004_credit"
down_revision: str | None = "0003_web_users"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("customers", schema=None, recreate="never") as batch_op:
        batch_op.add_column(sa.Column("credit_limit", engine.store.models.Money(), nullable=True))
        batch_op.add_column(sa.Column("industry", sqlmodel.sql.sqltypes.AutoString(), nullable=True))
        batch_op.add_column(sa.Column("region", sqlmodel.sql.sqltypes.AutoString(), nullable=True))

    op.create_table(
        "credit_files",
        sa.Column("customer_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("grade", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column("source", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("score", sa.Integer(), nullable=True),
        sa.Column("previous_grade", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column("grade_changed_at", engine.store.models.UTCDateTime(), nullable=True),
        sa.Column("manual_until", sa.Date(), nullable=True),
        sa.Column("reason", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column("on_hold", sa.Boolean(), nullable=False),
        sa.Column("hold_since", engine.store.models.UTCDateTime(), nullable=True),
        sa.Column("updated_at", engine.store.models.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("customer_id"),
    )
    op.create_table(
        "credit_warnings",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("rule", sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
        sa.Column("customer_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("severity", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("status", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("raised_at", engine.store.models.UTCDateTime(), nullable=False),
        sa.Column("cleared_at", engine.store.models.UTCDateTime(), nullable=True),
        sa.Column("acknowledged_at", engine.store.models.UTCDateTime(), nullable=True),
        sa.Column("acknowledged_by", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column("note", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("credit_warnings", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_credit_warnings_customer_id"), ["customer_id"], unique=False)
        batch_op.create_index("ix_credit_warnings_rule_customer", ["rule", "customer_id", "status"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("credit_warnings", schema=None) as batch_op:
        batch_op.drop_index("ix_credit_warnings_rule_customer")
        batch_op.drop_index(batch_op.f("ix_credit_warnings_customer_id"))
    op.drop_table("credit_warnings")
    op.drop_table("credit_files")
    with op.batch_alter_table("customers", schema=None) as batch_op:
        batch_op.drop_column("region")
        batch_op.drop_column("industry")
        batch_op.drop_column("credit_limit")
