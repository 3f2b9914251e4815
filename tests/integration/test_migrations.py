"""Alembic migrations: a first-release database upgrades to the models' schema on SQLite and PostgreSQL."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import select

from engine.errors import ConfigError
from engine.store.database import Repository
from engine.store.migrations import BASELINE, HEAD, schema_differences, schema_state, script_head, upgrade

FIXTURE = Path(__file__).with_name("fixtures") / "first_release_db.py"


def first_release_database(url: str) -> None:
    subprocess.run([sys.executable, str(FIXTURE), url], check=True, timeout=60)


def test_head_constant_matches_the_scripts() -> None:
    assert script_head() == HEAD


def test_first_release_database_upgrades_to_the_models(database_url: str) -> None:
    first_release_database(database_url)
    repo = Repository(database_url)
    try:
        with pytest.raises(ConfigError, match="dunning db upgrade"):
            Repository.open(database_url)
        assert schema_differences(repo.engine)  # the first release lacks today's columns and tables

        before, after = upgrade(repo.engine)
        assert (before, after) == (BASELINE, HEAD)
        assert schema_differences(repo.engine) == []
        assert upgrade(repo.engine) == (HEAD, HEAD)  # a second run does nothing

        opened = Repository.open(database_url)  # accepted now
        from engine.store.events import verify_chain
        from engine.store.models import Invoice

        with opened.read() as session:
            conn = session.connection()
            report = verify_chain(conn)
            invoice = (
                conn.execute(select(Invoice.__table__).where(Invoice.__table__.c.number == "INV-1")).mappings().one()
            )  # type: ignore[attr-defined]
        assert report.ok and report.events == 3  # the first release's events were chained in id order
        assert invoice["paused_days"] == 0 and invoice["escalate_now"] is False and invoice["next_action_on"] is None
        opened.dispose()
    finally:
        repo.dispose()


def test_migrations_from_empty_and_create_all_agree(database_url: str) -> None:
    repo = Repository(database_url)
    try:
        assert upgrade(repo.engine) == (None, HEAD)
        assert schema_differences(repo.engine) == []
    finally:
        repo.dispose()


def test_new_database_is_created_at_head(database_url: str) -> None:
    repo = Repository.open(database_url)
    try:
        with repo.engine.connect() as conn:
            state = schema_state(conn)
        assert state.current and state.revision == HEAD
        assert schema_differences(repo.engine) == []
    finally:
        repo.dispose()


def test_cli_db_current_and_upgrade(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from engine.cli.main import app

    url = f"sqlite:///{tmp_path / 'old.db'}"
    first_release_database(url)
    runner = CliRunner()
    (tmp_path / "config.yaml").write_text(f"database: {url}\nrules: {tmp_path / 'rules'}\n", encoding="utf-8")
    env = {"DUNNING_CONFIG": str(tmp_path / "config.yaml")}
    result = runner.invoke(app, ["status"], env=env)
    assert result.exit_code == 1 and "dunning db upgrade" in result.output
    result = runner.invoke(app, ["db", "current"], env=env)
    assert result.exit_code == 1 and "first release" in result.output
    result = runner.invoke(app, ["db", "upgrade"], env=env)
    assert result.exit_code == 0, result.output
    assert f"to {HEAD}" in result.output
    assert runner.invoke(app, ["db", "current"], env=env).exit_code == 0
    assert runner.invoke(app, ["db", "check"], env=env).exit_code == 0
