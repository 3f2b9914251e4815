"""Advisory locks are database-wide on PostgreSQL: books kept in different schemas of one database must not
wait for each other (two tenants, or two test runs), while two sweeps of the same book still exclude each
other."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import text

from engine.errors import SweepBusy
from engine.store.database import Repository
from engine.sweep import _claim_sweep
from tests.conftest import postgres_schema

pytestmark = pytest.mark.postgres


@pytest.fixture
def two_schemas(postgres_reason: str | None) -> Iterator[tuple[Repository, Repository]]:
    first, second = postgres_schema(postgres_reason), postgres_schema(postgres_reason)
    repos = (Repository.open(next(first)), Repository.open(next(second)))
    yield repos
    for repo in repos:
        repo.dispose()
    for schemas in (first, second):
        next(schemas, None)


def test_sweeps_of_different_schemas_do_not_block_each_other(two_schemas: tuple[Repository, Repository]) -> None:
    a, b = two_schemas
    with a.write() as holder:
        _claim_sweep(holder.connection())
        with b.write() as other:
            _claim_sweep(other.connection())  # another book: not busy
        with a.engine.connect() as same:
            with pytest.raises(SweepBusy):
                _claim_sweep(same)
            same.execute(text("ROLLBACK"))
