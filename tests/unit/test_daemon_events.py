"""The daemon's lifecycle events are built by the one event builder (engine.store.events.new_event)."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

from engine.store import service as store
from engine.store.database import Repository
from engine.store.events import new_event
from engine.store.queries import policy_events


def test_a_policy_event_is_recorded_as_new_event_built_it(tmp_path: Path) -> None:
    repo = Repository.open(f"sqlite:///{tmp_path / 'book.db'}")
    at = datetime(2026, 3, 5, 8, 0, tzinfo=timezone.utc)
    event = new_event("policy_rejected", at=at, recorded_at=at, data={"reason": "SIGHUP"}, actor="daemon")
    store.record_event(repo, event)
    [row] = policy_events(repo)
    assert (row["kind"], row["actor"], row["data"]) == ("policy_rejected", "daemon", {"reason": "SIGHUP"})
    repo.dispose()
