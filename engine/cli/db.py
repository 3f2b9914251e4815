"""`dunning db upgrade` / `dunning db current` / `dunning db check`: the schema, migrated with Alembic.

These commands open the database without the schema check every other command makes (`Repository.open`
refuses an out-of-date schema and points here).
"""

from __future__ import annotations

from typing import Annotated

import typer

from engine.cli.shared import app, emit_json, guarded, out, state
from engine.store.database import sqlite_file_missing
from engine.store.engines import Engine, make_engine, reachable

__all__ = ["db_app"]

db_app = typer.Typer(help="The database schema: upgrade it to this version of dunning, or show its revision.")
app.add_typer(db_app, name="db")


EMPTY = "the database is empty (no dunning tables); create it with `dunning db upgrade`"


def _engine() -> Engine:
    """The configured database's engine, without the schema check `Repository.open` makes."""
    return make_engine(state.settings().database_url)


def _no_file() -> bool:
    """`db current` and `db check` only look: a missing SQLite file is reported as an empty database, and
    not made by connecting to it."""
    return sqlite_file_missing(state.settings().database_url)


@db_app.command("upgrade")
def db_upgrade(
    revision: Annotated[str, typer.Argument(help="Target revision (default: the newest).")] = "head",
) -> None:
    """Migrate the database to this version's schema (one transaction; an empty database is created).

    Back up first. Safe to run while no daemon is running against an older schema; running it twice does
    nothing the second time."""

    def action() -> None:
        from engine.store.migrations import upgrade

        engine = _engine()
        try:
            with reachable(engine):
                before, after = upgrade(engine, revision)
        finally:
            engine.dispose()
        if before == after:
            out.print(f"the database is already at {after}", markup=False)
        else:
            out.print(f"upgraded the database from {before or 'empty'} to {after}", markup=False)

    guarded(action)


@db_app.command("current")
def db_current(
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """The database's schema revision and the one this version of dunning needs (exit 1 when they differ)."""

    def action() -> int:
        from engine.store.migrations import HEAD, SchemaState, current_state

        if _no_file():
            found = SchemaState(True, None)
        else:
            engine = _engine()
            try:
                with reachable(engine):
                    found = current_state(engine)
            finally:
                engine.dispose()
        revision = None if found.empty else (found.revision or "unversioned (first release)")
        if json_out:
            emit_json({"revision": revision, "head": HEAD, "current": found.current})
        else:
            out.print(f"database: {revision or 'empty (no tables yet)'}", markup=False)
            out.print(f"needed:   {HEAD}{'' if found.current else '  -> run `dunning db upgrade`'}", markup=False)
        return 0 if found.current else 1

    code = guarded(action)
    if code:
        raise typer.Exit(code)


@db_app.command("check")
def db_check() -> None:
    """Compare the database's tables, columns and indexes with the models (exit 1 listing any difference)."""

    def action() -> int:
        from engine.store.migrations import current_state, schema_differences

        if _no_file():
            out.print(EMPTY, markup=False)
            return 1
        engine = _engine()
        try:
            with reachable(engine):
                if current_state(engine).empty:
                    out.print(EMPTY, markup=False)
                    return 1
                differences = schema_differences(engine)
        finally:
            engine.dispose()
        for difference in differences:
            out.print(str(difference), markup=False)
        out.print("schema matches the models" if not differences else f"{len(differences)} difference(s)", markup=False)
        return 1 if differences else 0

    code = guarded(action)
    if code:
        raise typer.Exit(code)
