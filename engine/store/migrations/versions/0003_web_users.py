"""The web workspace's people: accounts, API tokens (hashed) and the security log.

Revision ID: 0003_web_users
Revises: 0002_collections_audit_tasks
Create Date: 2026-12-01 14:10:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlmodel.sql.sqltypes import AutoString

import engine.store.models

revision: str = "0003_web_users"
down_revision: str | None = "0002_collections_audit_tasks"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "web_users",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("role", AutoString(length=16), nullable=False),
        sa.Column("language", AutoString(length=16), nullable=True),
        sa.Column("password_hash", AutoString(), nullable=True),
        sa.Column("disabled", sa.Boolean(), nullable=False),
        sa.Column("generation", sa.Integer(), nullable=False),
        sa.Column("created_at", engine.store.models.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("name"),
    )
    op.create_table(
        "api_tokens",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", engine.store.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", engine.store.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", engine.store.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column("last_used_at", engine.store.models.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["user_id"], ["web_users.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("token_hash"),
    )
    op.create_index(op.f("ix_api_tokens_user_id"), "api_tokens", ["user_id"], unique=False)
    op.create_table(
        "security_log",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("at", engine.store.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("kind", AutoString(length=32), nullable=False),
        sa.Column("user", AutoString(length=64), nullable=True),
        sa.Column("address", AutoString(length=64), nullable=True),
        sa.Column("detail", AutoString(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_security_log_kind_at", "security_log", ["kind", "at"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_security_log_kind_at", table_name="security_log")
    op.drop_table("security_log")
    op.drop_index(op.f("ix_api_tokens_user_id"), table_name="api_tokens")
    op.drop_table("api_tokens")
    op.drop_table("web_users")
