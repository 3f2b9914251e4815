"""Driver-level bulk writes for the hot paths (sweeps, imports, collector actions).

SQLAlchemy's per-row parameter handling costs more than the database itself for large batches, so rows are
converted here with each column's own bind processor and handed to the driver as one executemany per
statement shape. The table-named helpers below are what the use cases call.

On PostgreSQL large batches go through COPY instead (psycopg 3 `cursor.copy`): inserts straight into the
table, updates into a temporary table first and then one `UPDATE … FROM` — several times cheaper than an
executemany of the same rows.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from operator import itemgetter
from typing import Any

from sqlalchemy import JSON, Connection, Table

from engine.store.models import Commitment, Customer, Invoice, Notification, Payment

#: From how many rows a PostgreSQL batch goes through COPY rather than executemany.
COPY_FROM_ROWS = 500

INVOICES: Table = Invoice.__table__  # type: ignore[attr-defined]
CUSTOMERS: Table = Customer.__table__  # type: ignore[attr-defined]
NOTIFICATIONS: Table = Notification.__table__  # type: ignore[attr-defined]
PAYMENTS: Table = Payment.__table__  # type: ignore[attr-defined]
COMMITMENTS: Table = Commitment.__table__  # type: ignore[attr-defined]


class BulkWriter:
    """Set-based writes for hot paths (sweeps, imports): one driver-level executemany per statement.

    SQLAlchemy's per-row parameter handling costs more than the database itself for large batches, so
    values are converted here with each column's own bind processor (cached per distinct value: a sweep's
    instants repeat on every row) and handed to the driver as plain tuples.
    """

    def __init__(self, conn: Connection, table: Table, *, raw: Collection[str] = ()):
        self.conn = conn
        self.table = table
        #: Columns whose values the caller already converted (e.g. JSON text): handed over untouched.
        self.raw = frozenset(raw)
        dialect = conn.dialect
        self._mark = "?" if dialect.paramstyle == "qmark" else "%s"
        self._processors = {column.name: column.type._cached_bind_processor(dialect) for column in table.columns}

    def _column(self, name: str, values: list[Any]) -> list[Any]:
        """One column's values converted for the driver; repeated values are converted once."""
        process = self._processors[name]
        if process is None or name in self.raw:
            return values
        if isinstance(self.table.c[name].type, JSON):  # dicts and lists: unhashable, nothing to share
            return [None if value is None else process(value) for value in values]
        cache: dict[Any, Any] = {None: None}
        converted: list[Any] = []
        append = converted.append
        for value in values:
            try:
                append(cache[value])
            except KeyError:
                result = cache[value] = process(value)
                append(result)
        return converted

    def _tuples(self, names: Sequence[str], rows: Sequence[dict[str, Any]]) -> list[tuple[Any, ...]]:
        try:  # rows from one builder carry every column: read them in C
            get = itemgetter(*names)
            plain = [get(row) for row in rows] if len(names) > 1 else [(get(row),) for row in rows]
        except KeyError:
            plain = [tuple(row.get(name) for name in names) for row in rows]
        converted = [i for i, name in enumerate(names) if self._processors[name] is not None and name not in self.raw]
        if not converted:
            return plain
        columns: list[Any] = list(zip(*plain, strict=True))
        for i in converted:
            columns[i] = self._column(names[i], list(columns[i]))
        return list(zip(*columns, strict=True))

    def insert(self, rows: Sequence[dict[str, Any]], *, copy: bool = False) -> None:
        """Insert rows that all set the same columns (those of the first row); `copy`: through COPY on
        PostgreSQL when the batch is large (see `insert_rows`)."""
        if not rows:
            return
        names = list(rows[0])
        insert_rows(self.conn, self.table, names, self._tuples(names, rows), copy=copy)

    def update(self, rows: Sequence[dict[str, Any]], *, key: str = "id") -> None:
        """Update rows by key; rows may differ in which columns they set (one statement per shape)."""
        by_shape: dict[tuple[str, ...], list[dict[str, Any]]] = {}
        for row in rows:
            by_shape.setdefault(tuple(sorted(k for k in row if k != key)), []).append(row)
        for shape, group in by_shape.items():
            assignments = ", ".join(f"{name} = {self._mark}" for name in shape)
            self.conn.exec_driver_sql(
                f"UPDATE {self.table.name} SET {assignments} WHERE {key} = {self._mark}",
                self._tuples([*shape, key], group),
            )


class StorageForm:
    """One table's values in the form its driver takes, for callers that build rows as tuples themselves (the
    sweep's hot path): each column's bind processor, applied once per distinct value."""

    def __init__(self, conn: Connection, table: Table):
        self.conn = conn
        self.table = table
        self._mark = "?" if conn.dialect.paramstyle == "qmark" else "%s"
        self._processors = {column.name: column.type._cached_bind_processor(conn.dialect) for column in table.columns}

    def converter(self, name: str) -> Callable[[Any], Any]:
        """A function turning one value of column `name` into its storage form (remembering each result)."""
        process = self._processors[name]
        if process is None:
            return _same
        cache: dict[Any, Any] = {None: None}

        def convert(value: Any) -> Any:
            try:
                return cache[value]
            except KeyError:
                if len(cache) > 4096:
                    cache.clear()
                    cache[None] = None
                result = cache[value] = process(value)
                return result

        return convert

    def update(self, shape: Sequence[str], rows: Sequence[tuple[Any, ...]], *, key: str = "id") -> None:
        """Update rows given in storage form: the values of the `shape` columns, then the key."""
        if not rows:
            return
        if _copies(self.conn, rows):
            _copy_update(self.conn, self.table, shape, key, rows)
            return
        assignments = ", ".join(f"{name} = {self._mark}" for name in shape)
        self.conn.exec_driver_sql(f"UPDATE {self.table.name} SET {assignments} WHERE {key} = {self._mark}", rows)


def insert_rows(
    conn: Connection, table: Table, columns: Sequence[str], rows: Sequence[tuple[Any, ...]], *, copy: bool = True
) -> None:
    """Insert rows given in storage form (values in the order of `columns`): one executemany, or with `copy`
    on PostgreSQL for a large batch, COPY (whose errors are the driver's own, not SQLAlchemy's: for writers
    that expect none, such as a sweep's events and notices)."""
    if not rows:
        return
    names = ", ".join(_quoted(name) for name in columns)
    if copy and _copies(conn, rows):
        with _cursor(conn).copy(f"COPY {table.name} ({names}) FROM STDIN") as stream:
            for row in rows:
                stream.write_row(row)
        return
    mark = "?" if conn.dialect.paramstyle == "qmark" else "%s"
    conn.exec_driver_sql(f"INSERT INTO {table.name} ({names}) VALUES ({', '.join([mark] * len(columns))})", rows)


def _copies(conn: Connection, rows: Sequence[Any]) -> bool:
    return conn.dialect.name == "postgresql" and len(rows) >= COPY_FROM_ROWS


def _cursor(conn: Connection) -> Any:
    """The driver's own cursor on the connection's transaction (psycopg 3, for COPY)."""
    return conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]


def _quoted(name: str) -> str:
    return f'"{name}"' if name in ("key",) else name


def _copy_update(
    conn: Connection, table: Table, shape: Sequence[str], key: str, rows: Sequence[tuple[Any, ...]]
) -> None:
    """PostgreSQL: the new values copied into a temporary table, then applied with one UPDATE … FROM."""
    columns = ", ".join(_quoted(name) for name in (*shape, key))
    cursor = _cursor(conn)
    cursor.execute(f"CREATE TEMPORARY TABLE bulk_update ON COMMIT DROP AS SELECT {columns} FROM {table.name} LIMIT 0")
    with cursor.copy(f"COPY bulk_update ({columns}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)
    assignments = ", ".join(f"{_quoted(name)} = bulk_update.{_quoted(name)}" for name in shape)
    cursor.execute(
        f"UPDATE {table.name} SET {assignments} FROM bulk_update WHERE {table.name}.{key} = bulk_update.{key}"
    )
    cursor.execute("DROP TABLE bulk_update")


def _same(value: Any) -> Any:
    return value


def update_invoices(conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
    """Update invoices by id; each row names the columns it sets."""
    BulkWriter(conn, INVOICES).update(rows)


def invoice_storage(conn: Connection) -> StorageForm:
    """Invoice values in storage form, for updates built as tuples (`StorageForm.update`)."""
    return StorageForm(conn, INVOICES)


def insert_invoices(conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
    """New invoices, each already checked against the book by the import (numbers unique, customers known):
    through COPY on PostgreSQL for a large batch."""
    BulkWriter(conn, INVOICES).insert(rows, copy=True)


def insert_customers(conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
    BulkWriter(conn, CUSTOMERS).insert(rows)


def update_customers(conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
    BulkWriter(conn, CUSTOMERS).update(rows)


def insert_payments(conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
    BulkWriter(conn, PAYMENTS).insert(rows)


def insert_notifications(conn: Connection, rows: Sequence[dict[str, Any]], *, copy: bool = False) -> None:
    """Outbox rows, as built by `engine.store.outbox.notification` (one shape, so one statement)."""
    BulkWriter(conn, NOTIFICATIONS).insert(rows, copy=copy)


def update_commitments(conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
    BulkWriter(conn, COMMITMENTS).update(rows)
