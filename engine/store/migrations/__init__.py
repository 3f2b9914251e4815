"""Schema migrations (Alembic), shipped inside the package so `dunning db upgrade` works from an install.

Every function here takes a SQLAlchemy `Engine` (never the `Repository`, which calls in here when it opens
a database: the dependency runs one way). `HEAD` names the newest revision: `Repository.open` compares a
database's stamp with it without importing Alembic (every CLI command opens the database; loading the migration scripts each time would be waste).
`tests/integration/test_migrations.py` checks that it matches the scripts' head.

Revisions:
- `0001_first_release` — the schema as the first release shipped it (git 0debe0b).
- `0002_collections_audit_tasks` — collection state (pauses, approval, incremental sweeps), the hash-chained
  audit log (existing events are chained in id order), commitments, grouped and fallback notifications,
  sweep policy fingerprints, and the phone/visit task list.
- `0003_web_users` — the web workspace's accounts, hashed API tokens and the security log (issue 12).
- `0004_credit` — credit management: customers' `credit_limit`, `industry`, `region`; `credit_files` (grade
  source, score, manual overrides, holds) and `credit_warnings` (early warnings).
- `0005_inbound_mail` — received messages (bounces, auto-replies, replies; processed once by Message-ID and
  mailbox UID) and the holds they put on notices (hard-bounced addresses, reply pauses, out-of-office).
- `0006_worklist_index` — an index on invoices (customer, stage, due date, open amount): the web worklist
  ranks an owner's open invoices from the index alone.
- `0007_customer_action_tags` — customers' `action_tags`, the tags a collector's action added (a task's
  `wrong_contact`), kept across re-imports; filled from the task outcomes already recorded.
"""

from __future__ import annotations

import typing
from pathlib import Path

from engine.store.engines import WRITE_OPTION

HEAD = "0007_customer_action_tags"
BASELINE = "0001_first_release"
LOCATION = Path(__file__).resolve().parent

if typing.TYPE_CHECKING:  # pragma: no cover
    from sqlalchemy import Connection, Engine

VERSION_TABLE = "alembic_version"
#: A table every dunning schema has had since the first release.
MARKER_TABLE = "invoices"


class SchemaState(typing.NamedTuple):
    """What a database holds: no dunning tables at all, or tables at `revision` (None: from before
    migrations existed, i.e. to be treated as the first release)."""

    empty: bool
    revision: str | None

    @property
    def current(self) -> bool:
        return not self.empty and self.revision == HEAD


def schema_state(conn: Connection) -> SchemaState:
    from sqlalchemy import inspect, text

    inspector = inspect(conn)
    if not inspector.has_table(MARKER_TABLE):
        return SchemaState(True, None)
    if not inspector.has_table(VERSION_TABLE):
        return SchemaState(False, None)
    revision = conn.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")).scalar()
    return SchemaState(False, revision)


def _lock(conn: Connection) -> None:
    from engine.store.locks import SCHEMA_LOCK_KEY, wait_for

    wait_for(conn, SCHEMA_LOCK_KEY)


def _config(conn: Connection) -> typing.Any:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(LOCATION))
    config.attributes["connection"] = conn
    return config


def current_state(engine: Engine) -> SchemaState:
    """The schema state of the database behind `engine` (`dunning db current`)."""
    with engine.connect() as conn:
        state = schema_state(conn)
        conn.rollback()
    return state


def create_or_check(engine: Engine) -> None:
    """`Repository.open`: create a brand-new database at HEAD (tables from the models, stamped), accept
    one at HEAD, and refuse one that is behind (or ahead) with what to run."""
    state = current_state(engine)
    if state.current:
        return
    if state.empty:
        from alembic.migration import MigrationContext
        from sqlmodel import SQLModel

        with engine.execution_options(**{WRITE_OPTION: True}).begin() as conn:
            _lock(conn)
            if not schema_state(conn).empty:  # another process created it meanwhile
                return
            SQLModel.metadata.create_all(conn)
            MigrationContext.configure(conn).stamp(_script(), HEAD)
        return
    from engine.errors import ConfigError

    where = engine.url.render_as_string(hide_password=True)
    if state.revision is not None and state.revision not in _known_revisions():
        raise ConfigError(
            f"the database {where} was migrated by a newer dunning (schema revision {state.revision}; this one "
            f"knows up to {HEAD}); install that version of dunning"
        )
    found = state.revision or "from before schema migrations (the first release)"
    raise ConfigError(
        f"the database {where} has an older schema ({found}); this dunning needs {HEAD}. "
        "Back it up, then run `dunning db upgrade`"
    )


def _script() -> typing.Any:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    config = Config()
    config.set_main_option("script_location", str(LOCATION))
    return ScriptDirectory.from_config(config)


def _known_revisions() -> set[str]:
    return {script.revision for script in _script().walk_revisions()}


def script_head() -> str:
    """The head revision according to the scripts themselves (tests check HEAD against it)."""
    return str(_script().get_current_head())


def upgrade(engine: Engine, revision: str = "head") -> tuple[str | None, str]:
    """Bring the database to `revision` in one transaction; returns (revision before, revision after).

    An empty database gets every revision from the first; one with tables but no version stamp (made
    before migrations existed) is taken to be at the first release — the later revisions add only what is
    missing, so schemas of development builds between releases upgrade too."""
    from alembic import command

    with engine.execution_options(**{WRITE_OPTION: True}).begin() as conn:
        _lock(conn)
        state = schema_state(conn)
        config = _config(conn)
        before = None if state.empty else (state.revision or BASELINE)
        if not state.empty and state.revision is None:
            command.stamp(config, BASELINE)
        command.upgrade(config, revision)
        after = schema_state(conn).revision
    return before, str(after)


def schema_differences(engine: Engine) -> list[typing.Any]:
    """Differences between the database and the models (Alembic's autogenerate comparison); [] when clean."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext
    from sqlmodel import SQLModel

    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        return list(compare_metadata(context, SQLModel.metadata))
