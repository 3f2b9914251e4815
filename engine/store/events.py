"""The event log: the one door every history entry goes through, and the chain that makes it tamper-evident.

Events are only ever appended (nothing in the product updates or deletes them). Every event row is made by
`new_event` (the one builder: its fields, the actor, the invoice number in `data`) and handed to
`append_events` inside the writer's own transaction, so an event exists exactly when the change it records does.

Each event carries `prev_hash` (the `hash` of the event before it, in id order) and `hash` = SHA-256 of the
canonical JSON of its stored fields (`prev_hash` included; `id` too for events written since ids
are covered, see engine.store.chain). Editing an event breaks its own
hash; deleting or reordering events breaks the next event's link. `verify_chain` walks the log in id order
and names the first event that does not fit. Rewriting the *whole* chain from some point on is only caught
against a head hash kept elsewhere: `dunning audit verify` prints it, `--expect-head` checks it — or, with
$DUNNING_AUDIT_KEY set, by the keyed hashes nobody without the key can recompute. Since hashes cover the
event id too (engine.store.chain), renumbering an event breaks its hash.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, RowMapping, Table, select

from engine.store import chain
from engine.store.bulk import BulkWriter, insert_rows
from engine.store.locks import CHAIN_LOCK_KEY, wait_for
from engine.store.models import Event

EVENTS: Table = Event.__table__  # type: ignore[attr-defined]
#: The chain's first link.
GENESIS = "0" * 64
#: The stored fields a hash covers, in canonical order (sorted keys make the order irrelevant anyway).
HASHED_FIELDS = ("at", "recorded_at", "kind", "invoice_id", "customer_id", "actor", "data", "prev_hash")
#: The stored columns, in the order `append_system_events` writes them.
EVENT_COLUMNS = ("id", "at", "recorded_at", "kind", "invoice_id", "customer_id", "actor", "data", "prev_hash", "hash")


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        value = value if value.tzinfo else value.replace(tzinfo=timezone.utc)
        return value.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    if isinstance(value, (date, Decimal)):
        return str(value) if isinstance(value, Decimal) else value.isoformat()
    raise TypeError(f"cannot hash a {type(value).__name__}")


_encode_scalar = json.JSONEncoder(ensure_ascii=False, default=_plain).encode
_encode_data = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=_plain).encode
_instants: dict[datetime, str] = {}


def _instant(value: Any) -> str:
    # A sweep stamps thousands of events with the same two instants: format each once.
    if not isinstance(value, datetime):
        return _encode_scalar(value)
    text = _instants.get(value)
    if text is None:
        if len(_instants) > 256:
            _instants.clear()
        text = _instants[value] = _encode_scalar(value)
    return text


def canonical(event: Mapping[Any, Any], data_json: str | None = None) -> str:
    """Sorted keys, no whitespace, instants as UTC ISO with microseconds, Decimals and dates as strings.

    Built by hand around one serialisation of `data` (the hot path of every sweep): the result is the
    same text `json.dumps(..., sort_keys=True, separators=(",", ":"))` gives for the whole event, with
    `data` as the JSON column gives it back.
    """
    get = event.get
    scalar = _encode_scalar
    return (
        f'{{"actor":{scalar(get("actor"))},"at":{_instant(get("at"))},"customer_id":{scalar(get("customer_id"))},'
        f'"data":{data_json if data_json is not None else _encode_data(get("data") or {})},'
        f'"invoice_id":{scalar(get("invoice_id"))},'
        f'"kind":{scalar(get("kind"))},"prev_hash":{scalar(get("prev_hash"))},'
        f'"recorded_at":{_instant(get("recorded_at"))}}}'
    )


def event_hash(event: Mapping[Any, Any]) -> str:
    return hashlib.sha256(canonical(event).encode("utf-8")).hexdigest()


def _truncated(value: Any) -> Any:
    # Both databases keep microseconds; a stored instant must hash as it will be read back.
    if isinstance(value, datetime):
        return value.astimezone(timezone.utc) if value.tzinfo else value.replace(tzinfo=timezone.utc)
    return value


def new_event(
    kind: str,
    *,
    at: datetime,
    recorded_at: datetime,
    data: Mapping[str, Any],
    invoice_id: int | None = None,
    customer_id: str | None = None,
    actor: str = "system",
    number: str | None = None,
) -> dict[str, Any]:
    """One event row for `append_events`: `kind` happened at `at` (business time), recorded at `recorded_at`.

    With `number`, the invoice number leads `data` as `invoice` (what history and exports show); `actor` is a
    person's name, or "system" for what the engine did on its own."""
    return {
        "at": at,
        "recorded_at": recorded_at,
        "kind": kind,
        "invoice_id": invoice_id,
        "customer_id": customer_id,
        "actor": actor,
        "data": dict(data) if number is None else {"invoice": number, **data},
    }


def append_events(conn: Connection, events: Sequence[Mapping[str, Any]]) -> None:
    """Append events (rows made by `new_event`: at, recorded_at, kind, invoice_id, customer_id, actor, data),
    chained.

    Must run inside the caller's write transaction. On PostgreSQL a transaction-scoped advisory lock
    serialises appenders (several daemons), so the head read here is still the head at commit; SQLite's
    writers are already serialised by BEGIN IMMEDIATE.
    """
    if not events:
        return
    previous, ids, key = _chain_tail(conn, len(events))
    rows = []
    for event_id, event in zip(ids, events, strict=True):
        row = {name: _truncated(event.get(name)) for name in HASHED_FIELDS if name != "prev_hash"}
        row["actor"] = row["actor"] or "system"
        # The canonical text of `data` is valid JSON for the column too: encode it once, store it as is.
        data_json = _encode_data(row["data"] or {})
        row["data"] = data_json
        row["prev_hash"] = previous
        row["hash"] = previous = chain.seal(canonical(row, data_json), event_id, key)
        row["id"] = event_id
        rows.append(row)
    BulkWriter(conn, EVENTS, raw=("data",)).insert(rows)
    for observer in _observers.get():
        observer(events)


#: Told of each batch `append_events` writes in this context (see `observed`).
_observers: ContextVar[tuple[Callable[[Sequence[Mapping[str, Any]]], None], ...]] = ContextVar(
    "event_observers", default=()
)


@contextmanager
def observed(observer: Callable[[Sequence[Mapping[str, Any]]], None]) -> Iterator[None]:
    """Within the block, `observer(events)` is handed every batch `append_events` writes — the rows as
    `new_event` built them, in id order, inside the writer's transaction (before it commits). A simulation
    folds what its sweeps wrote this way instead of reading it back and decoding it again."""
    token = _observers.set((*_observers.get(), observer))
    try:
        yield
    finally:
        _observers.reset(token)


def _chain_tail(conn: Connection, count: int) -> tuple[str, list[int], bytes | None]:
    """Under the chain's append lock: the head's hash, the ids of the next `count` events, and the key."""
    wait_for(conn, CHAIN_LOCK_KEY)
    head = conn.execute(select(EVENTS).order_by(EVENTS.c.id.desc()).limit(1)).mappings().first()
    key = chain.audit_key()
    if key is None and head is not None:
        chain.refuse_unkeyed_after_keyed(canonical(dict(head)), head)
    # Each hash covers its event's id (engine.store.chain), so the ids are chosen here, before the insert.
    ids = chain.next_ids(conn, count, head["id"] if head is not None else 0)
    return (head["hash"] if head is not None else GENESIS), ids, key


# -- the sweep's bulk door ---------------------------------------------------------------------------------------


def encode_data(data: Mapping[str, Any]) -> str:
    """The canonical JSON of an event's `data`, exactly as `append_events` stores and hashes it."""
    return _encode_data(data)


class DataTemplate:
    """The canonical JSON of many events' `data` that differ only in a few text fields (`slots`): the rest
    is encoded once, and each event's text is the fixed pieces around its own values.

    The pieces come from encoding the whole mapping with a marker in each slot, so the text is the very
    one `encode_data` gives for the same mapping (keys sorted, no whitespace)."""

    def __init__(self, fixed: Mapping[str, Any], slots: Sequence[str]):
        markers = {slot: f"\x00{position}\x00" for position, slot in enumerate(slots)}
        text = _encode_data({**fixed, **markers})
        encoded = {slot: _encode_scalar(marker) for slot, marker in markers.items()}
        order = sorted(slots, key=lambda slot: text.index(encoded[slot]))
        #: the slots in the order they appear in the text
        self.order = tuple(slots.index(slot) for slot in order)
        pieces = []
        for slot in order:
            before, text = text.split(encoded[slot], 1)
            pieces.append(before)
        pieces.append(text)
        self.pieces = tuple(pieces)
        self._steps = tuple(zip(self.order, pieces[1:], strict=True))

    def render(self, *values: str | None) -> str:
        """The data's JSON with these slot values (text, or None for null), given in the order of `slots`."""
        text = self.pieces[0]
        for position, piece in self._steps:
            value = values[position]
            text += ("null" if value is None else _encode_text(value)) + piece
        return text


_encode_text = json.encoder.encode_basestring  # what the encoders use for str


def append_system_events(
    conn: Connection,
    at: datetime,
    recorded_at: datetime,
    events: Sequence[tuple[str, int | None, str | None, str]],
    *,
    actor: str = "system",
) -> None:
    """Append events the engine made on its own (`actor` "system"; an import names its actor), all at `at`
    and recorded at `recorded_at`, given as (kind, invoice_id, customer_id, data JSON from `encode_data` or
    a `DataTemplate`).

    The storage-form twin of `new_event` + `append_events` for a sweep's thousands of events: the same
    rows, the same canonical text and the same chain (tests/integration/test_sweep_fast_path.py holds them
    equal), without building a mapping per event."""
    if not events:
        return
    previous, ids, key = _chain_tail(conn, len(events))
    form = BulkWriter(conn, EVENTS)
    at_value, recorded_value = _truncated(at), _truncated(recorded_at)
    stored_at = form._processors["at"](at_value)  # type: ignore[misc]
    stored_recorded = form._processors["recorded_at"](recorded_value)  # type: ignore[misc]
    # the canonical text (see `canonical`) with the id first, as chain.seal hashes it, keys in sorted order
    head = f',"actor":{_encode_text(actor)},"at":{_instant(at_value)},"customer_id":'
    tail = f',"recorded_at":{_instant(recorded_value)}}}'
    kinds: dict[str, str] = {}
    seal = chain.seal_message
    rows = []
    for event_id, (kind, invoice_id, customer_id, data_json) in zip(ids, events, strict=True):
        kind_text = kinds.get(kind)
        if kind_text is None:
            kind_text = kinds[kind] = _encode_text(kind)
        text = (
            f'{{"id":{event_id}{head}{"null" if customer_id is None else _encode_text(customer_id)},"data":{data_json},'
            f'"invoice_id":{"null" if invoice_id is None else int(invoice_id)},"kind":{kind_text},'
            f'"prev_hash":"{previous}"{tail}'
        )
        digest = seal(text.encode("utf-8"), key)  # the text holds the id already (chain.seal's message)
        rows.append(
            (event_id, stored_at, stored_recorded, kind, invoice_id, customer_id, actor, data_json, previous, digest)
        )
        previous = digest
    insert_rows(conn, EVENTS, EVENT_COLUMNS, rows)
    observers = _observers.get()
    if observers:  # they are handed rows as `new_event` builds them
        # one parse for the whole batch: a sweep's chunk holds thousands of small objects
        decoded = json.loads(f"[{','.join(data_json for *_, data_json in events)}]")
        built = [
            new_event(
                kind,
                at=at,
                recorded_at=recorded_at,
                invoice_id=invoice_id,
                customer_id=customer_id,
                actor=actor,
                data=data,
            )
            for (kind, invoice_id, customer_id, _), data in zip(events, decoded, strict=True)
        ]
        for observer in observers:
            observer(built)


@dataclass(frozen=True)
class ChainBreak:
    """The first event that does not fit the chain, and why."""

    event_id: int
    position: int  # 1-based position in id order
    reason: str


@dataclass(frozen=True)
class VerifyReport:
    events: int
    head: str
    problem: ChainBreak | None

    @property
    def ok(self) -> bool:
        return self.problem is None


def iter_events(conn: Connection, batch: int = 5000) -> Iterator[RowMapping]:
    """Every event in id order, read in batches (bounded memory for any log size)."""
    last = 0
    while True:
        rows = (
            conn.execute(select(EVENTS).where(EVENTS.c.id > last).order_by(EVENTS.c.id).limit(batch)).mappings().all()
        )
        if not rows:
            return
        yield from rows
        last = rows[-1]["id"]


def verify_chain(conn: Connection, expect_head: str | None = None) -> VerifyReport:
    """Recompute the chain in id order; report the first event that was altered, renumbered, deleted around
    or moved (keyed events need $DUNNING_AUDIT_KEY, see engine.store.chain)."""
    previous = GENESIS
    count = 0
    last_id = 0
    checker = chain.ChainChecker(chain.audit_key())
    for row in iter_events(conn):
        count += 1
        last_id = row["id"]
        if row["hash"] is None:
            return VerifyReport(
                count,
                previous,
                ChainBreak(
                    row["id"],
                    count,
                    "it has no hash: written outside the event log's door (engine.store.events.append_events)",
                ),
            )
        if row["prev_hash"] != previous:
            reason = (
                "its link to the previous event does not match: an event before it was deleted, or events "
                "were inserted or reordered"
            )
            if checker.problem(canonical(row), row) is not None:
                reason = "its contents or position were changed (neither its hash nor its link match)"
            return VerifyReport(count, previous, ChainBreak(row["id"], count, reason))
        problem = checker.problem(canonical(row), row)
        if problem is not None:
            return VerifyReport(count, previous, ChainBreak(row["id"], count, problem))
        previous = row["hash"]
    if checker.key is not None and count and checker.strongest != chain.KEYED:
        return VerifyReport(count, previous, ChainBreak(last_id, count, checker.unkeyed_head()))
    if expect_head is not None and previous != expect_head:
        return VerifyReport(
            count,
            previous,
            ChainBreak(
                last_id,
                count,
                (
                    f"the chain ends in {previous[:16]}…, not the expected head {expect_head[:16]}…: events at the end "
                    "were deleted, or the chain was rewritten"
                ),
            ),
        )
    return VerifyReport(count, previous, None)


#: The columns of `dunning audit export`, in order (stable: integrations read them by name).
EXPORT_COLUMNS = (
    "id",
    "at",
    "recorded_at",
    "kind",
    "actor",
    "invoice",
    "customer_id",
    "stage",
    "channel",
    "reason",
    "details",
    "prev_hash",
    "hash",
)


@dataclass(frozen=True)
class ExportFilter:
    """Which events to export; None means "any". Dates are company-local days, both ends included."""

    since: date | None = None
    until: date | None = None
    customer: str | None = None
    stage: str | None = None
    channel: str | None = None
    actor: str | None = None
    kind: str | None = None


def export_row(row: Mapping[Any, Any], number: str | None) -> dict[str, Any]:
    """One event as an export record (see EXPORT_COLUMNS)."""
    data = dict(row["data"] or {})
    stage = data.get("stage") or data.get("to") or ""
    reason = next((data[k] for k in ("reason", "rule", "note", "text", "error") if data.get(k)), "")
    return {
        "id": row["id"],
        "at": _iso(row["at"]),
        "recorded_at": _iso(row["recorded_at"]),
        "kind": row["kind"],
        "actor": row["actor"],
        "invoice": data.get("invoice") or number or "",
        "customer_id": row["customer_id"] or "",
        "stage": stage,
        "channel": data.get("channel") or "",
        "reason": reason,
        "details": json.dumps(data, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str),
        "prev_hash": row["prev_hash"] or "",
        "hash": row["hash"] or "",
    }


def export_events(conn: Connection, filters: ExportFilter, zone: Any) -> Iterator[dict[str, Any]]:
    """The events matching `filters`, in log order, as export records."""
    query = select(EVENTS)
    if filters.since is not None:
        query = query.where(EVENTS.c.at >= datetime.combine(filters.since, time(0), tzinfo=zone))
    if filters.until is not None:
        query = query.where(EVENTS.c.at < datetime.combine(filters.until + timedelta(days=1), time(0), tzinfo=zone))
    if filters.customer is not None:
        query = query.where(EVENTS.c.customer_id == filters.customer)
    if filters.actor is not None:
        query = query.where(EVENTS.c.actor == filters.actor)
    if filters.kind is not None:
        query = query.where(EVENTS.c.kind == filters.kind)
    last = 0
    while True:
        rows = conn.execute(query.where(EVENTS.c.id > last).order_by(EVENTS.c.id).limit(5000)).mappings().all()
        if not rows:
            return
        last = rows[-1]["id"]
        for row in rows:
            record = export_row(row, None)
            if filters.stage is not None and record["stage"] != filters.stage:
                continue
            if filters.channel is not None and record["channel"] != filters.channel:
                continue
            yield record


def _iso(value: datetime | None) -> str:
    if value is None:
        return ""
    value = value if value.tzinfo else value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")
