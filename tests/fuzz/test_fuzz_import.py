"""Fuzzed import files (CSV and JSON Lines, customers, invoices and payments, hostile values): an import
either takes every row or writes nothing at all, and every problem is located `FILE:ROW: column: message`."""

from __future__ import annotations

import csv
import hashlib
import io
import itertools
import json
import re
import shutil
import tempfile
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st
from sqlalchemy import text

from engine.clock import FixedClock
from engine.errors import DunningError, ImportRejected
from engine.importer import Importer
from engine.store.database import Repository
from tests.fuzz.conftest import examples
from tests.fuzz.hostile import nasty_text

TABLES = ("customers", "invoices", "payments", "events", "notifications")
COLUMNS = {
    "customers": [
        "id",
        "name",
        "email",
        "phone",
        "address",
        "credit_grade",
        "segment",
        "owner",
        "language",
        "timezone",
        "tags",
    ],
    "invoices": ["number", "customer_id", "currency", "amount", "issued_on", "due_on", "tags"],
    "payments": ["invoice", "amount", "paid_on", "reference"],
}
PLAUSIBLE = {
    "id": st.sampled_from(["C1", "C2", "C9", "发票客户", "c-1"]),
    "name": st.sampled_from(["Acme", "北京远航物流", "O'Neil & Sons"]),
    "email": st.sampled_from(["ap@acme.example", "", "not-an-email"]),
    "phone": st.sampled_from(["+49 30 1234", ""]),
    "address": st.sampled_from(["1 Main St", ""]),
    "credit_grade": st.sampled_from(["A", "B", "D", ""]),
    "segment": st.sampled_from(["smb", "enterprise", ""]),
    "owner": st.sampled_from(["alice", ""]),
    "language": st.sampled_from(["en", "de", "zh_CN", "", "xx"]),
    "timezone": st.sampled_from(["Europe/Berlin", "Asia/Shanghai", "", "Mars/Base"]),
    "tags": st.sampled_from(["", "vip", "vip;key", "a,b"]),
    "number": st.sampled_from(["INV-1", "INV-2", "INV-9", "INV/1", "发票1"]),
    "customer_id": st.sampled_from(["C1", "C2", "C404"]),
    "currency": st.sampled_from(["EUR", "JPY", "BHD", "XAF", "XYZ", "eur"]),
    "amount": st.sampled_from(["100.00", "0.01", "1", "-5", "0", "12.345", "1e3", "1,000.00", "99999999999999999999"]),
    "issued_on": st.sampled_from(["2026-01-01", "2026-02-30", "0001-01-01", "9999-12-31"]),
    "due_on": st.sampled_from(["2026-02-01", "2025-12-31", "01/02/2026"]),
    "invoice": st.sampled_from(["INV-1", "INV-2", "INV-404"]),
    "paid_on": st.sampled_from(["2026-02-02", "0001-01-01", "2026-13-01"]),
    "reference": st.sampled_from(["BANK-1", "", "BANK-2"]),
}
value = st.one_of(nasty_text, st.just(""))
LOCATED = re.compile(r"^(?P<file>.+):(?P<row>\d+): (?P<column>[^:]+): \S")


@pytest.fixture(scope="module")
def world() -> Iterator[tuple[Importer, Path]]:
    folder = Path(tempfile.mkdtemp(prefix="fuzz-import-"))
    repo = Repository.open(f"sqlite:///{folder / 'fuzz.db'}")
    importer = Importer(
        repo, zone=ZoneInfo("Europe/Berlin"), clock=FixedClock(datetime(2026, 3, 1, tzinfo=timezone.utc))
    )
    importer.import_rows(
        "customers",
        [
            {"id": "C1", "name": "Acme", "email": "ap@acme.example"},
            {"id": "C2", "name": "Bolt", "email": "ap@bolt.example"},
        ],
    )
    importer.import_rows(
        "invoices",
        [
            {
                "number": n,
                "customer_id": "C1",
                "currency": "EUR",
                "amount": "100.00",
                "issued_on": "2026-01-01",
                "due_on": "2026-02-01",
            }
            for n in ("INV-1", "INV-2")
        ],
    )
    yield importer, folder
    repo.dispose()
    shutil.rmtree(folder, ignore_errors=True)


def snapshot(importer: Importer) -> str:
    """A digest of everything an import could write."""
    digest = hashlib.sha256()
    with importer.repo.read() as session:
        conn = session.connection()
        for table in TABLES:
            for row in conn.execute(text(f"SELECT * FROM {table} ORDER BY id")):
                digest.update(repr(tuple(row)).encode("utf-8", "surrogatepass"))
    return digest.hexdigest()


@st.composite
def import_file(draw: st.DrawFn) -> tuple[str, str, bytes, int]:
    """(kind, file suffix, file bytes, number of data rows)."""
    kind = draw(st.sampled_from(sorted(COLUMNS)))
    columns = list(COLUMNS[kind])
    if draw(st.booleans()):  # a column missing, or an unknown one
        columns = draw(st.permutations(columns))[: draw(st.integers(1, len(columns)))]
        if draw(st.booleans()):
            columns.append(draw(st.sampled_from(["extra", "", "amount", "=cmd"])))
    rows = []
    for _ in range(draw(st.integers(0, 5))):
        rows.append({name: draw(st.one_of(PLAUSIBLE.get(name, value), value)) for name in columns})
    if draw(st.booleans()):
        lines = [
            json.dumps(
                draw(
                    st.one_of(
                        st.just(row),
                        st.dictionaries(
                            st.sampled_from(columns + ["x"]),
                            st.one_of(
                                st.none(),
                                st.integers(),
                                st.floats(allow_nan=True),
                                st.booleans(),
                                value,
                                st.lists(value, max_size=2),
                                st.dictionaries(value, value, max_size=1),
                            ),
                        ),
                    )
                ),
                ensure_ascii=draw(st.booleans()),
            )
            for row in rows
        ]
        if rows and draw(st.booleans()):
            lines[draw(st.integers(0, len(lines) - 1))] = draw(st.sampled_from(["{", "[1]", "null", '"x"', "{}"]))
        data = ("\n".join(lines) + "\n").encode("utf-8", "surrogatepass")
        return kind, ".jsonl", data, len(rows)
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(columns)
    for row in rows:
        writer.writerow([row[name] for name in columns])
    encoded = buffer.getvalue()
    if rows and draw(st.booleans()):  # broken quoting or a ragged row, as spreadsheets export them
        encoded += draw(st.sampled_from(['"unterminated,1\n', "a,b,c,d,e,f,g,h,i,j,k,l,m\n", "only\n", "\n"]))
    return kind, ".csv", encoded.encode(draw(st.sampled_from(["utf-8", "utf-8-sig", "latin-1"])), "replace"), len(rows)


FRESH = itertools.count(1)
#: Free-text columns: any text is a legal value there, stored as given.
FREE_TEXT = {"customers": "name", "invoices": None, "payments": "reference"}


@st.composite
def clean_file(draw: st.DrawFn) -> tuple[str, str, bytes, int, dict[str, str]]:
    """A valid file whose free-text column carries hostile text: (kind, suffix, bytes, rows, key -> text)."""
    kind = draw(st.sampled_from(["customers", "payments"]))
    tag = "TAG"  # replaced by the test with a fresh prefix, so every example's rows are new
    rows, stored = [], {}
    for index in range(draw(st.integers(1, 4))):
        # (a NUL or a lone surrogate is refused, not stored: the chaos property covers those)
        hostile = draw(nasty_text.filter(lambda t: t.strip() and "\x00" not in t and "\ud800" not in t))
        if kind == "customers":
            key = f"F{tag}-{index}"
            rows.append({"id": key, "name": hostile, "email": "ap@example.com", "language": "en"})
        else:
            key = f"{tag}-{index}"
            rows.append({"invoice": "INV-1", "amount": "0.01", "paid_on": "2026-02-02", "reference": key + hostile})
            hostile = hostile.rstrip()
        stored[key] = (
            hostile.strip() if kind == "customers" else hostile
        )  # cells are trimmed, as documented for every import
    if draw(st.booleans()):
        data = "".join(json.dumps(row, ensure_ascii=draw(st.booleans())) + "\n" for row in rows).encode("utf-8")
        return kind, ".jsonl", data, len(rows), stored
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    return kind, ".csv", buffer.getvalue().encode("utf-8"), len(rows), stored


@settings(max_examples=examples(60))
@given(clean_file())
def test_hostile_free_text_is_stored_as_given(
    world: tuple[Importer, Path], case: tuple[str, str, bytes, int, dict[str, str]]
) -> None:
    importer, folder = world
    kind, suffix, data, rows, stored = case
    fresh = f"T{next(FRESH)}x"
    data = data.replace(b"TAG", fresh.encode())
    stored = {key.replace("TAG", fresh): hostile for key, hostile in stored.items()}
    path = folder / f"clean{suffix}"
    path.write_bytes(data)
    before = snapshot(importer)
    try:
        report = importer.import_file(kind, path)
    except ImportRejected as rejected:  # e.g. a value no database can store: located, nothing written
        event("rejected")
        assert snapshot(importer) == before
        assert all(LOCATED.match(str(p)) for p in rejected.problems), rejected
        return
    event("accepted")
    assert report.created == rows
    with importer.repo.read() as session:
        conn = session.connection()
        if kind == "customers":
            found = dict(
                conn.execute(
                    text("SELECT id, name FROM customers WHERE id LIKE :p"),
                    {"p": next(iter(stored)).rsplit("-", 1)[0] + "-%"},
                ).all()
            )
            assert found == stored
        else:
            references = {r[0] for r in conn.execute(text("SELECT reference FROM payments"))}
            assert all(key + hostile in references for key, hostile in stored.items())


@settings(max_examples=examples(150))
@given(import_file())
def test_an_import_takes_every_row_or_nothing_and_locates_each_problem(
    world: tuple[Importer, Path], case: tuple[str, str, bytes, int]
) -> None:
    importer, folder = world
    kind, suffix, data, rows = case
    path = folder / f"fuzzed{suffix}"
    path.write_bytes(data)
    before = snapshot(importer)
    try:
        report = importer.import_file(kind, path)
    except ImportRejected as rejected:
        event("rejected")
        assert snapshot(importer) == before, "a rejected import wrote something"
        assert rejected.problems
        for problem in rejected.problems:
            located = LOCATED.match(str(problem))
            assert located and located["file"] == str(path), f"not located FILE:ROW: column: {problem}"
            assert 1 <= problem.row <= data.count(b"\n") + 2, problem
        return
    except DunningError as refused:  # the file as a whole (unreadable, no header): named, nothing written
        event("refused as a whole")
        assert snapshot(importer) == before, "a refused import wrote something"
        assert str(path) in str(refused), f"the error does not name the file: {refused}"
        return
    event("accepted" if rows else "accepted (no rows)")
    # Accepted: every row was taken (created, updated or recognised as already there).
    assert report.rows >= rows
    assert report.created + report.updated + report.unchanged == report.rows, report
