"""`Repository.snapshot`: the reads inside share one session (one connection, one transaction), a write inside
is refused, and nothing outside it (another thread, another repository) is affected."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import datetime, timezone

import pytest
from sqlalchemy import event

from engine.store import browse, users
from engine.store.database import Repository

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=timezone.utc)


@pytest.fixture
def repo(database_url: str) -> Iterator[Repository]:
    found = Repository.open(database_url)
    yield found
    found.dispose()


def _checkouts(repo: Repository) -> list[int]:
    taken: list[int] = []
    event.listen(repo.engine, "checkout", lambda *args: taken.append(1))
    return taken


def test_reads_in_a_snapshot_share_one_connection(repo: Repository) -> None:
    users.add_user(repo, "ann", "viewer", None, None, NOW)
    taken = _checkouts(repo)
    for _ in range(3):
        assert users.find_user(repo, "ann") is not None
    assert len(taken) == 3  # outside a snapshot, each read takes its own connection

    taken.clear()
    with repo.snapshot():
        for _ in range(3):
            assert users.find_user(repo, "ann") is not None
        assert browse.last_event_id(repo) >= 0
        with repo.snapshot():  # nested: still the same one
            assert users.find_user(repo, "nobody") is None
    assert len(taken) == 1


def test_a_snapshot_sees_the_book_as_it_was_when_it_began_reading(repo: Repository) -> None:
    with repo.snapshot():
        assert users.find_user(repo, "bob") is None
        helper = threading.Thread(target=users.add_user, args=(repo, "bob", "viewer", None, None, NOW))
        helper.start()  # another thread writes (and reads) outside the snapshot
        helper.join()
        if repo.dialect == "sqlite":  # one transaction: SQLite's reads in it see one state of the book
            assert users.find_user(repo, "bob") is None
    assert users.find_user(repo, "bob") is not None


def test_a_write_inside_a_snapshot_is_refused_and_writes_nothing(repo: Repository) -> None:
    with repo.snapshot():
        with pytest.raises(RuntimeError, match="write inside a read snapshot"):
            users.add_user(repo, "carl", "viewer", None, None, NOW)
    assert users.find_user(repo, "carl") is None
    users.add_user(repo, "carl", "viewer", None, None, NOW)  # after it, writes work again
    assert users.find_user(repo, "carl") is not None


def test_another_repository_is_not_part_of_the_snapshot(repo: Repository, database_url: str) -> None:
    other = Repository(database_url)
    try:
        taken = _checkouts(other)
        with repo.snapshot():
            users.find_user(other, "ann")
            users.find_user(other, "ann")
            assert len(taken) == 2
            users.add_user(other, "dora", "viewer", None, None, NOW)  # the snapshot is of `repo` only
        assert users.find_user(other, "dora") is not None
    finally:
        other.dispose()
