"""How one event's `hash` is made and checked: the three formats a chain may hold, oldest first.

- `plain`: SHA-256 of the event's canonical text (engine.store.events.canonical). Events written before
  event ids were covered carry it; it does not cover the id, so a renumbered old event is not caught.
- `ided`: SHA-256 of the canonical text with the event's `id` in it. Renumbering an event breaks its hash.
- `keyed`: HMAC-SHA256 of that same text under the key in $DUNNING_AUDIT_KEY. Someone who can write to the
  database but does not know the key cannot recompute it after an edit, so even a rewrite of the whole chain
  is caught without a head hash noted elsewhere.

New events are `keyed` when the key is set, else `ided`. A chain never goes back to a weaker format: once an
event is `ided`, a later `plain` one means the tail was rewritten; once one is `keyed`, so does a later
unkeyed one. The link (`prev_hash`) is the same in every format, so an existing chain simply continues in
the stronger format from the first event written after an upgrade or after the key was set.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Mapping
from typing import Any

from sqlalchemy import Connection, text

from engine.errors import AuditKeyMissing

#: The environment variable holding the chain key (any text; at least 16 characters of it are asked for).
KEY_ENV = "DUNNING_AUDIT_KEY"
PLAIN, IDED, KEYED = "plain", "ided", "keyed"
#: How strong each format is: a chain's formats never decrease along it.
STRENGTH = {PLAIN: 0, IDED: 1, KEYED: 2}


def audit_key() -> bytes | None:
    """The chain key from the environment, or None when it is not set (empty counts as not set)."""
    value = os.environ.get(KEY_ENV, "")
    return value.encode("utf-8") if value else None


def _with_id(canonical_text: str, event_id: int) -> bytes:
    # The canonical text is a JSON object with sorted keys; "id" sorts before every other field name.
    return ('{"id":' + str(int(event_id)) + "," + canonical_text[1:]).encode("utf-8")


def seal(canonical_text: str, event_id: int, key: bytes | None) -> str:
    """The hash a new event is stored with: keyed when there is a key, else covering the id."""
    message = _with_id(canonical_text, event_id)
    if key is not None:
        return hmac.new(key, message, hashlib.sha256).hexdigest()
    return hashlib.sha256(message).hexdigest()


def seal_message(message: bytes, key: bytes | None) -> str:
    """`seal` for a message that already holds the id (the canonical text with `"id":N` first)."""
    if key is not None:
        return hmac.new(key, message, hashlib.sha256).hexdigest()
    return hashlib.sha256(message).hexdigest()


def format_of(stored_hash: str, canonical_text: str, event_id: int, key: bytes | None) -> str | None:
    """Which format `stored_hash` is in for this event's text and id; None when it matches none of them
    (the event was altered or renumbered, or it is keyed and the key given is not the one it was made with)."""
    message = _with_id(canonical_text, event_id)
    if key is not None and hmac.compare_digest(hmac.new(key, message, hashlib.sha256).hexdigest(), stored_hash):
        return KEYED
    if hashlib.sha256(message).hexdigest() == stored_hash:
        return IDED
    if hashlib.sha256(canonical_text.encode("utf-8")).hexdigest() == stored_hash:
        return PLAIN
    return None


def next_ids(conn: Connection, count: int, head_id: int) -> list[int]:
    """The ids the next `count` events will be stored under (the caller holds the chain's append lock).

    PostgreSQL hands them out from the column's own sequence, so any insert that does not give an id still
    gets a fresh one; SQLite's writers are serialised (BEGIN IMMEDIATE), and it would pick head + 1 itself.
    """
    if conn.dialect.name == "postgresql":
        ids = (
            conn.execute(
                text("SELECT nextval(pg_get_serial_sequence('events', 'id')) FROM generate_series(1, :n)"), {"n": count}
            )
            .scalars()
            .all()
        )
        return sorted(int(value) for value in ids)
    return list(range(head_id + 1, head_id + 1 + count))


class ChainChecker:
    """Checks events one by one in chain order: each hash must match its event in some format, and the
    formats must never weaken along the chain."""

    def __init__(self, key: bytes | None):
        self.key = key
        self.strongest = PLAIN
        self.keyed_events = 0

    def problem(self, canonical_text: str, row: Mapping[Any, Any]) -> str | None:
        """Why this event's hash does not fit, or None when it does."""
        found = format_of(row["hash"], canonical_text, row["id"], self.key)
        if found is None:
            hint = (
                ""
                if self.key is not None
                else (" (if this chain is keyed, set $DUNNING_AUDIT_KEY to the key it was written with)")
            )
            if self.strongest == KEYED or (self.key is not None and self.keyed_events == 0):
                hint = " (or $DUNNING_AUDIT_KEY is not the key it was written with)"
            return f"its contents or id were altered after it was written (its hash does not match){hint}"
        if STRENGTH[found] < STRENGTH[self.strongest]:
            return (
                f"its hash is in the weaker {found!r} format after events in the {self.strongest!r} format: "
                "the chain was recomputed from here on by someone"
            )
        self.strongest = found
        if found == KEYED:
            self.keyed_events += 1
        return None

    def unkeyed_head(self) -> str:
        return (
            "$DUNNING_AUDIT_KEY is set but no event is keyed: either no event was written since the key was "
            "set (any write, e.g. the next sweep, starts the keyed part), or the keyed part was stripped and "
            "the chain recomputed without the key"
        )


def refuse_unkeyed_after_keyed(canonical_text: str, head: Mapping[Any, Any]) -> None:
    """Raise AuditKeyMissing when the chain's newest event matches no unkeyed format (it is keyed): a
    process without the key must not continue a keyed chain with weaker hashes."""
    if head["hash"] is not None and format_of(head["hash"], canonical_text, head["id"], None) is None:
        raise AuditKeyMissing(
            f"the event log is keyed (its newest event, {head['id']}, carries an HMAC) and ${KEY_ENV} is not "
            f"set in this process; set it to the installation's audit key (nothing was written; a keyed chain can only be continued "
            "with its key, so keep it as safely as the database backups)"
        )
