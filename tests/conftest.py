"""Shared fixtures: every storage-facing test runs on SQLite and on a real PostgreSQL.

PostgreSQL comes from $DUNNING_TEST_POSTGRES_URL (default: the local server, database `test`). Each test
gets a schema of its own, dropped afterwards. Without a reachable server the PostgreSQL variants skip —
unless DUNNING_REQUIRE_POSTGRES=1 (as in CI), where they fail instead.
"""

from __future__ import annotations

import os
import textwrap
import uuid
from collections.abc import Iterator
from datetime import date, datetime, time, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from channels.memory import MemoryChannel

POSTGRES_URL = os.environ.get("DUNNING_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
REQUIRE_POSTGRES = os.environ.get("DUNNING_REQUIRE_POSTGRES") == "1"

CANONICAL_POLICY = """\
name: standard
applies_to: "customer.credit_grade in ['A', 'B']"
days: calendar
min_days_between_stages: 5
catch_up: step
stages:
  - name: courtesy
    after_days: -3
    channels: [email]
  - name: reminder
    after_days: 3
    channels: [email]
    repeat: {every_days: 7, max: 2}
  - name: phone
    after_days: 15
    channels: [phone]
  - name: letter
    after_days: 30
    channels: [letter, email]
  - name: visit
    after_days: 60
    when: "invoice.open_amount >= 50000"
    channels: [visit]
  - name: legal
    after_days: 90
    when: "invoice.open_amount >= 10000"
    channels: [legal]
"""

DEFAULT_POLICY = """\
name: fallback
min_days_between_stages: 0
stages:
  - name: reminder
    after_days: 1
    channels: [email]
  - name: final
    after_days: 20
    channels: [letter]
"""

MEMORY_CHANNELS = {
    "email": {"type": "memory", "recipient": "email"},
    "phone": {"type": "memory", "recipient": "phone"},
    "letter": {"type": "memory", "recipient": "address"},
    "visit": {"type": "memory", "recipient": "address"},
    "legal": {"type": "memory", "recipient": "address"},
}


def _postgres_available() -> str | None:
    try:
        import psycopg

        with psycopg.connect(POSTGRES_URL.replace("postgresql+psycopg", "postgresql"), connect_timeout=3):
            return None
    except Exception as exc:  # any failure means: not reachable here
        return f"PostgreSQL not reachable at {POSTGRES_URL}: {exc}"


@pytest.fixture(scope="session")
def postgres_reason() -> str | None:
    return _postgres_available()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path, postgres_reason: str | None) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'dunning.db'}"
        return
    yield from postgres_schema(postgres_reason)


def postgres_schema(postgres_reason: str | None) -> Iterator[str]:
    """A URL into a fresh schema of the test PostgreSQL, dropped afterwards (skip or fail without one)."""
    if postgres_reason:
        if REQUIRE_POSTGRES:
            pytest.fail(f"DUNNING_REQUIRE_POSTGRES=1 but {postgres_reason}")
        pytest.skip(postgres_reason)
    import psycopg

    schema = f"t_{uuid.uuid4().hex[:12]}"
    plain = POSTGRES_URL.replace("postgresql+psycopg", "postgresql")
    with psycopg.connect(plain, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    separator = "&" if "?" in POSTGRES_URL else "?"
    yield f"{POSTGRES_URL}{separator}options=-csearch_path%3D{schema}"
    with psycopg.connect(plain, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


@pytest.fixture(autouse=True)
def _clear_memory_channel() -> Iterator[None]:
    MemoryChannel.clear()
    yield
    MemoryChannel.clear()


def at(day: date | str, hour: int = 9) -> datetime:
    if isinstance(day, str):
        day = date.fromisoformat(day)
    return datetime.combine(day, time(hour), tzinfo=timezone.utc)


class Book:
    """A small installation for a test: policies written to a folder, memory channels, a fixed clock."""

    def __init__(
        self, root: Path, url: str, policies: dict[str, str], channels: dict[str, Any] | None = None, **settings: Any
    ):
        from engine.app import Dunning
        from engine.clock import FixedClock
        from engine.config import Settings

        rules = root / "rules"
        rules.mkdir(parents=True, exist_ok=True)
        for name, text in policies.items():
            (rules / name).write_text(textwrap.dedent(text), encoding="utf-8")
        self.settings = Settings(
            database=url,
            rules=rules,
            output_dir=root / "out",
            base_dir=root,
            channels=channels if channels is not None else MEMORY_CHANNELS,
            **settings,
        )
        self.clock = FixedClock(at("2026-01-01", 0))
        self.app = Dunning(self.settings, clock=self.clock)
        self.root = root

    def customers(self, *rows: dict[str, Any]) -> None:
        base = {"email": "ap@example.com", "phone": "+1 555 0100", "address": "1 Main St"}
        self.app.importer().import_rows("customers", [{**base, **row} for row in rows])

    def invoice(
        self, number: str, customer: str, amount: str, due_on: str, issued_on: str | None = None, currency: str = "EUR"
    ) -> None:
        self.app.importer().import_rows(
            "invoices",
            [
                {
                    "number": number,
                    "customer_id": customer,
                    "currency": currency,
                    "amount": amount,
                    "issued_on": issued_on or due_on,
                    "due_on": due_on,
                }
            ],
        )

    def pay(self, number: str, amount: str, paid_on: str, reference: str | None = None) -> None:
        self.app.importer().import_rows(
            "payments",
            [
                {
                    "invoice": number,
                    "amount": amount,
                    "paid_on": paid_on,
                    "reference": reference or f"R-{number}-{paid_on}",
                }
            ],
        )

    def run(self, day: date | str, hour: int = 9) -> Any:
        instant = at(day, hour)
        self.clock.at = instant
        return self.app.run(instant)

    def daily(self, first: str, last: str, hour: int = 9) -> None:
        """One sweep a day, first to last inclusive."""
        day, end = date.fromisoformat(first), date.fromisoformat(last)
        while day <= end:
            self.run(day, hour)
            day += timedelta(days=1)

    def sweeper(self, *, fast: bool, chunk_size: int) -> Any:
        """A sweeper of this book on the fast path or the reference one, reading `chunk_size` invoices at a time."""
        from engine.sweep import Sweeper

        app = self.app
        return Sweeper(
            app.repo,
            app.policies,
            zone=self.settings.zone,
            recipients=app.recipients,
            clock=self.clock,
            extra_facts=app.credit.sweep_facts,
            chunk_size=chunk_size,
            fast=fast,
        )

    def stage(self, number: str) -> str:
        for invoice in self.app.open_invoices():
            if invoice["number"] == number:
                return str(invoice["stage"])
        history = self.app.history(number)
        transitions = [e for e in history if e["kind"] == "transition"]
        return str(transitions[-1]["to"]) if transitions else "current"

    def transitions(self, number: str) -> list[tuple[str, str, str]]:
        return [(e["at"][:10], e["from"], e["to"]) for e in self.app.history(number) if e["kind"] == "transition"]

    def notifications(self, number: str) -> list[tuple[str, str, str, int]]:
        return [
            (e["at"][:10], e["stage"], e["channel"], e["repeat"])
            for e in self.app.history(number)
            if e["kind"] == "notification"
        ]


@pytest.fixture
def make_book(tmp_path: Path, database_url: str):  # type: ignore[no-untyped-def]
    def build(policies: dict[str, str] | None = None, **kwargs: Any) -> Book:
        return Book(
            tmp_path,
            database_url,
            policies or {"10-standard.yaml": CANONICAL_POLICY, "90-default.yaml": DEFAULT_POLICY},
            **kwargs,
        )

    return build
