"""A sweep's bookkeeping: the sweep lock, the sweeps already run, and the policy versions they used."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Any, NamedTuple

from sqlalchemy import Connection, Table, func, insert, select

from engine.store.engines import FIXED_CACHE
from engine.store.locks import SWEEP_LOCK_KEY, try_take
from engine.store.models import PolicyVersion, Sweep

SWEEPS: Table = Sweep.__table__  # type: ignore[attr-defined]
POLICY_VERSIONS: Table = PolicyVersion.__table__  # type: ignore[attr-defined]


#: SQLite's page cache during a sweep, in KiB: a 256 MiB cache cut a first sweep of 500k invoices by 18%,
#: within the sweep's 500 MiB budget (SQLite allocates it only as pages are read).
SWEEP_CACHE_KIB = 256 * 1024


class LastSweep(NamedTuple):
    as_of: datetime
    finished_at: datetime
    policy_fingerprint: str | None


def claim_sweep(conn: Connection) -> bool:
    """Take the cluster-wide sweep lock for this transaction; False when another process is sweeping.
    Transaction-scoped, so a daemon killed mid-sweep releases it with its connection."""
    return try_take(conn, SWEEP_LOCK_KEY)


@contextmanager
def roomy_cache(conn: Connection) -> Iterator[None]:
    """On SQLite, a page cache of SWEEP_CACHE_KIB for the sweep's transaction, back to its size after (not on
    a simulation's throw-away copy: its cache is fixed within the simulation's memory budget)."""
    if conn.dialect.name != "sqlite" or conn.info.get(FIXED_CACHE):
        yield
        return
    previous = int(conn.exec_driver_sql("PRAGMA cache_size").scalar() or -2000)
    conn.exec_driver_sql(f"PRAGMA cache_size = -{SWEEP_CACHE_KIB}")
    try:
        yield
    finally:
        conn.exec_driver_sql(f"PRAGMA cache_size = {previous}")


def last_sweep(conn: Connection) -> LastSweep | None:
    """The sweep with the latest as-of instant, if any has run."""
    row = conn.execute(
        select(SWEEPS.c.as_of, SWEEPS.c.finished_at, SWEEPS.c.policy_fingerprint)
        .order_by(SWEEPS.c.as_of.desc())
        .limit(1)
    ).first()
    if row is None:
        return None
    return LastSweep(_aware(row[0]), _aware(row[1]), row[2])


def latest_as_of(conn: Connection) -> datetime | None:
    latest = conn.execute(select(func.max(SWEEPS.c.as_of))).scalar()
    return _aware(latest) if latest is not None else None


def record_sweep(conn: Connection, values: Mapping[str, Any]) -> int | None:
    """Write the sweep's own row (as_of, started_at, finished_at, counts, policy_fingerprint); its id."""
    result = conn.execute(insert(SWEEPS), dict(values))
    return result.inserted_primary_key[0] if result.inserted_primary_key else None


def record_policy_versions(conn: Connection, versions: Iterable[Mapping[str, Any]]) -> None:
    """Keep the text of every policy version a sweep used (name, sha256, path, text, first_used_at), once."""
    known = {tuple(row) for row in conn.execute(select(POLICY_VERSIONS.c.name, POLICY_VERSIONS.c.sha256))}
    fresh = [dict(version) for version in versions if (version["name"], version["sha256"]) not in known]
    if fresh:
        conn.execute(insert(POLICY_VERSIONS), fresh)


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)
