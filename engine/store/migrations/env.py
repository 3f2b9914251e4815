"""Alembic environment: the project's own engine (SQLite tuned as in engine.store.engines), SQLModel metadata.

Run through `engine.cli.db` (`dunning db upgrade`), which passes an open connection in
`config.attributes["connection"]`; the stand-alone `alembic` command works too with `-x url=...`.
SQLite gets `render_as_batch=True` (its ALTER TABLE is limited: Alembic rebuilds tables where needed).
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection
from sqlmodel import SQLModel

import engine.store.models  # noqa: F401  (registers the tables on SQLModel.metadata)

config = context.config
target_metadata = SQLModel.metadata


def _configure(connection: Connection) -> None:
    dialect = connection.dialect.name
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=dialect == "sqlite",
        compare_type=True,
    )


def run_migrations_offline() -> None:
    url = context.get_x_argument(as_dictionary=True).get("url") or config.get_main_option("sqlalchemy.url")
    context.configure(
        url=url, target_metadata=target_metadata, literal_binds=True, render_as_batch=str(url).startswith("sqlite")
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _configure(connection)
        with context.begin_transaction():
            context.run_migrations()
        return
    from engine.store.engines import WRITE_OPTION, make_engine

    url = context.get_x_argument(as_dictionary=True).get("url") or config.get_main_option("sqlalchemy.url")
    if not url:
        raise SystemExit("alembic: give the database as -x url=sqlite:///PATH (or postgresql+psycopg://...)")
    engine = make_engine(url)
    try:
        with engine.execution_options(**{WRITE_OPTION: True}).connect() as conn:  # BEGIN IMMEDIATE on SQLite
            _configure(conn)
            with context.begin_transaction():
                context.run_migrations()
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
