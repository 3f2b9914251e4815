"""Every lock the engine takes in the database: the advisory-lock keys and the row locks, in one place.

PostgreSQL serves several daemons at once, so singleton work and the event chain are serialised with
transaction-scoped advisory locks (released at commit or rollback, and with the connection of a process
that dies; a session-level lock would survive being returned to the pool). SQLite needs none of this:
its writers begin with `BEGIN IMMEDIATE` (engine.store.database), which already admits one at a time.

Each key is eight ASCII letters read as a 64-bit integer. Advisory locks are database-wide while an
installation is a schema (its `search_path`), so the key taken is the named key XOR a hash of the current
schema: several installations (or test schemas) in one database never hold each other up, and every process
of one installation takes the same lock.
"""

from __future__ import annotations

from typing import Any, TypeVar

from sqlalchemy import Connection, Table, text
from sqlalchemy.sql import Select

#: Serialises appends to the event chain, so the head read is still the head at commit ("dunAUDIT").
CHAIN_LOCK_KEY = 0x64756E4155444954
#: The sweep is cluster-wide singleton work ("dunSWEEP").
SWEEP_LOCK_KEY = 0x64756E5357454550
#: Serialises schema creation and upgrades across processes ("dunSCHEM").
SCHEMA_LOCK_KEY = 0x64756E5343484500

ADVISORY_KEYS = {"chain": CHAIN_LOCK_KEY, "sweep": SWEEP_LOCK_KEY, "schema": SCHEMA_LOCK_KEY}

Query = TypeVar("Query", bound=Select[Any])

#: The lock id actually taken: the key, scoped to this installation's schema.
_SCOPED = "CAST(:key AS bigint) # hashtext(coalesce(current_schema(), ''))"


def _locks(conn: Connection) -> bool:
    return conn.dialect.name == "postgresql"


def wait_for(conn: Connection, key: int) -> None:
    """Take advisory lock `key` for this transaction, waiting for whoever holds it (PostgreSQL only)."""
    if _locks(conn):
        conn.execute(text(f"SELECT pg_advisory_xact_lock({_SCOPED})"), {"key": key})


def try_take(conn: Connection, key: int) -> bool:
    """Take advisory lock `key` for this transaction if it is free; False when another transaction holds it.
    Always True where there are no advisory locks (SQLite)."""
    if not _locks(conn):
        return True
    return bool(conn.execute(text(f"SELECT pg_try_advisory_xact_lock({_SCOPED})"), {"key": key}).scalar())


def for_update(conn: Connection, query: Query, *, of: Table | None = None, skip_locked: bool = False) -> Query:
    """`query` locking the rows it reads until commit (PostgreSQL; SQLite's single writer needs nothing).

    `skip_locked` lets several dispatchers claim disjoint batches instead of waiting for each other."""
    if not _locks(conn):
        return query
    return query.with_for_update(of=of, skip_locked=skip_locked)
