"""Collection state, the hash-chained audit log, commitments, grouped/fallback notifications, tasks.

Written to be safe on every schema between the first release and this one (databases made by development
builds before migrations existed): each table, column and index is added only where it is missing.
Existing events are chained (prev_hash/hash) in id order, exactly as engine.store.events.append_events would have.

Revision ID: 0002_collections_audit_tasks
Revises: 0001_first_release
Create Date: 2026-11-22 08:47:45.311951
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import engine.store.models

revision: str = "0002_collections_audit_tasks"
down_revision: str | None = "0001_first_release"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    if not _has_table("tasks"):
        op.create_table(
            "tasks",
            sa.Column("id", sa.Integer(), nullable=False),
            sa.Column("key", sa.String(length=255), nullable=False),
            sa.Column("notification_id", sa.Integer(), nullable=True),
            sa.Column("kind", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
            sa.Column("customer_id", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
            sa.Column("owner", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
            sa.Column("stage", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
            sa.Column("invoice_ids", sa.JSON(), nullable=False),
            sa.Column("details", sa.JSON(), nullable=False),
            sa.Column("status", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
            sa.Column("outcome", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
            sa.Column("note", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
            sa.Column("promised_amount", engine.store.models.Money(), nullable=True),
            sa.Column("promised_on", sa.Date(), nullable=True),
            sa.Column("created_at", engine.store.models.UTCDateTime(), nullable=False),
            sa.Column("done_at", engine.store.models.UTCDateTime(), nullable=True),
            sa.Column("done_by", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
            sa.PrimaryKeyConstraint("id"),
            sa.UniqueConstraint("key"),
        )
    _index("tasks", "ix_tasks_customer_id", ["customer_id"])
    _index("tasks", "ix_tasks_notification_id", ["notification_id"])
    _index("tasks", "ix_tasks_owner_status", ["owner", "status"])

    if not _has_table("commitments"):
        op.create_table(
            "commitments",
            sa.Column("id", sa.Integer(), nullable=False),
            sa.Column("invoice_id", sa.Integer(), nullable=False),
            sa.Column("kind", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
            sa.Column("plan_id", sa.Integer(), nullable=True),
            sa.Column("seq", sa.Integer(), nullable=False),
            sa.Column("amount", engine.store.models.Money(), nullable=False),
            sa.Column("cumulative", engine.store.models.Money(), nullable=False),
            sa.Column("since_on", sa.Date(), nullable=False),
            sa.Column("due_on", sa.Date(), nullable=False),
            sa.Column("grace_until", sa.Date(), nullable=False),
            sa.Column("status", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
            sa.Column("created_at", engine.store.models.UTCDateTime(), nullable=False),
            sa.Column("actor", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
            sa.Column("resolved_at", engine.store.models.UTCDateTime(), nullable=True),
            sa.Column("resolved_on", sa.Date(), nullable=True),
            sa.ForeignKeyConstraint(
                ["invoice_id"],
                ["invoices.id"],
            ),
            sa.PrimaryKeyConstraint("id"),
        )
    _index("commitments", "ix_commitments_invoice_id", ["invoice_id"])
    _index("commitments", "ix_commitments_status", ["status", "grace_until"])

    _columns(
        "events",
        [
            sa.Column("prev_hash", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
            sa.Column("hash", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        ],
    )
    # NOT NULL columns get a server default so existing rows have a value (it stays: harmless, and the
    # ORM always writes the column anyway).
    _columns(
        "invoices",
        [
            sa.Column("paused_since", engine.store.models.UTCDateTime(), nullable=True),
            sa.Column("paused_days", sa.Integer(), nullable=False, server_default=sa.text("0")),
            sa.Column("awaiting_stage", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
            sa.Column("escalate_now", sa.Boolean(), nullable=False, server_default=sa.false()),
            sa.Column("next_action_on", sa.Date(), nullable=True),
        ],
    )
    _index("invoices", "ix_invoices_next_action_on", ["next_action_on"])
    _columns(
        "notifications",
        [
            sa.Column("invoice_ids", sa.JSON(), nullable=True),
            sa.Column("fallback", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
            sa.Column("fallback_of", sa.Integer(), nullable=True),
        ],
    )
    _columns(
        "sweeps",
        [
            sa.Column("policy_fingerprint", sqlmodel.sql.sqltypes.AutoString(), nullable=False, server_default=""),
        ],
    )
    _chain_events()


def _has_table(name: str) -> bool:
    return sa.inspect(op.get_bind()).has_table(name)


def _columns(table: str, columns: list[sa.Column]) -> None:  # type: ignore[type-arg]
    present = {c["name"] for c in sa.inspect(op.get_bind()).get_columns(table)}
    missing = [c for c in columns if c.name not in present]
    if missing:
        # SQLite adds columns in place (ALTER TABLE ADD COLUMN): no table rebuild, which foreign keys forbid
        with op.batch_alter_table(table, schema=None, recreate="never") as batch_op:
            for column in missing:
                batch_op.add_column(column)


def _index(table: str, name: str, columns: list[str]) -> None:
    if name not in {i["name"] for i in sa.inspect(op.get_bind()).get_indexes(table)}:
        op.create_index(name, table, columns, unique=False)


def _chain_events(batch: int = 5000) -> None:
    """Give events written before the audit chain existed their prev_hash/hash, in id order, continuing
    from the last event that has one (none, for a first-release database)."""
    from engine.store.events import GENESIS, HASHED_FIELDS, event_hash

    conn = op.get_bind()
    events = sa.table("events", *(sa.column(n) for n in ("id", "prev_hash", "hash")))
    full = engine.store.models.Event.__table__  # type: ignore[attr-defined]
    first = conn.execute(sa.select(sa.func.min(events.c.id)).where(events.c.hash.is_(None))).scalar()
    if first is None:
        return
    previous = (
        conn.execute(sa.select(events.c.hash).where(events.c.id < first).order_by(events.c.id.desc()).limit(1)).scalar()
        or GENESIS
    )
    last = first - 1
    while True:
        rows = conn.execute(sa.select(full).where(full.c.id > last).order_by(full.c.id).limit(batch)).mappings().all()
        if not rows:
            return
        updates = []
        for row in rows:
            if row["hash"] is not None:  # already chained: never rewritten here
                previous = row["hash"]
                continue
            fields = {name: row[name] for name in HASHED_FIELDS if name != "prev_hash"}
            fields["prev_hash"] = previous
            previous = event_hash(fields)
            updates.append({"b_id": row["id"], "b_prev": fields["prev_hash"], "b_hash": previous})
        if updates:
            conn.execute(
                sa.update(events)
                .where(events.c.id == sa.bindparam("b_id"))
                .values(prev_hash=sa.bindparam("b_prev"), hash=sa.bindparam("b_hash")),
                updates,
            )
        last = rows[-1]["id"]


def downgrade() -> None:
    with op.batch_alter_table("sweeps", schema=None) as batch_op:
        batch_op.drop_column("policy_fingerprint")

    with op.batch_alter_table("notifications", schema=None) as batch_op:
        batch_op.drop_column("fallback_of")
        batch_op.drop_column("fallback")
        batch_op.drop_column("invoice_ids")

    with op.batch_alter_table("invoices", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_invoices_next_action_on"))
        batch_op.drop_column("next_action_on")
        batch_op.drop_column("escalate_now")
        batch_op.drop_column("awaiting_stage")
        batch_op.drop_column("paused_days")
        batch_op.drop_column("paused_since")

    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.drop_column("hash")
        batch_op.drop_column("prev_hash")

    with op.batch_alter_table("commitments", schema=None) as batch_op:
        batch_op.drop_index("ix_commitments_status")
        batch_op.drop_index(batch_op.f("ix_commitments_invoice_id"))

    op.drop_table("commitments")
    with op.batch_alter_table("tasks", schema=None) as batch_op:
        batch_op.drop_index("ix_tasks_owner_status")
        batch_op.drop_index(batch_op.f("ix_tasks_notification_id"))
        batch_op.drop_index(batch_op.f("ix_tasks_customer_id"))

    op.drop_table("tasks")
