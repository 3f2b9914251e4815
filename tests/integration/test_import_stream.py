"""Streamed file imports: chunk by chunk in one transaction, still all or nothing, with progress."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import engine.importer as importer
from engine.errors import ImportRejected
from engine.store.events import verify_chain
from engine.store.models import Invoice

HEADER = "number,customer_id,currency,amount,issued_on,due_on,tags\n"


def invoices_csv(path: Path, numbers: list[str]) -> Path:
    path.write_text(HEADER + "".join(f"{n},C1,EUR,10.00,2026-01-01,2026-01-31,\n" for n in numbers), encoding="utf-8")
    return path


def test_streamed_import_writes_every_chunk_and_reports_progress(
    make_book,
    tmp_path: Path,  # type: ignore[no-untyped-def]
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(importer, "STREAM_ROWS", 3)
    book = make_book()
    book.customers({"id": "C1", "name": "One"})
    calls: list[tuple[int, int]] = []
    path = invoices_csv(tmp_path / "inv.csv", [f"INV-{i}" for i in range(10)])
    report = book.app.importer().import_file("invoices", path, progress=lambda done, total: calls.append((done, total)))
    assert (report.rows, report.created) == (10, 10)
    assert book.app.repo.count(Invoice) == 10
    size = path.stat().st_size
    assert calls[-1] == (size, size) and len(calls) >= 4
    assert [done for done, _ in calls] == sorted(done for done, _ in calls)


def test_a_bad_row_in_a_later_chunk_rolls_back_the_earlier_ones(
    make_book,
    tmp_path: Path,  # type: ignore[no-untyped-def]
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(importer, "STREAM_ROWS", 3)
    book = make_book()
    book.customers({"id": "C1", "name": "One"})
    numbers = [f"INV-{i}" for i in range(9)] + ["INV-1"]  # a duplicate three chunks after the first
    path = invoices_csv(tmp_path / "inv.csv", numbers)
    text = path.read_text(encoding="utf-8").replace("INV-7,C1", "INV-7,C9")  # an unknown customer in chunk 3
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ImportRejected) as caught:
        book.app.importer().import_file("invoices", path)
    problems = [str(p) for p in caught.value.problems]
    assert any(":9: customer_id: no customer with id 'C9'" in p for p in problems), problems
    assert any(":11: number: duplicate number 'INV-1': already on row 3" in p for p in problems), problems
    assert book.app.repo.count(Invoice) == 0  # nothing of the good chunks before them either


def test_cli_progress_flag(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from engine.cli.main import app

    (tmp_path / "config.yaml").write_text(f"database: sqlite:///{tmp_path / 'd.db'}\n", encoding="utf-8")
    (tmp_path / "c.csv").write_text("id,name\nC1,One\n", encoding="utf-8")
    invoices_csv(tmp_path / "i.csv", ["INV-1", "INV-2"])
    env = {"DUNNING_CONFIG": str(tmp_path / "config.yaml")}
    runner = CliRunner()
    assert runner.invoke(app, ["import", "customers", str(tmp_path / "c.csv"), "--no-progress"], env=env).exit_code == 0
    result = runner.invoke(app, ["import", "invoices", str(tmp_path / "i.csv"), "--progress"], env=env)
    assert result.exit_code == 0, result.output
    assert "invoices: 2 new" in result.output


def test_import_events_in_storage_form_are_the_rows_the_event_builder_makes(make_book, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """New invoices' import events are written in storage form: same data, actor and chain as `new_event` +
    `append_events` give, updates before them in the same order, and the chain still verifies."""
    book = make_book()
    book.customers({"id": "C1", "name": "One"}, {"id": "Ç-2", "name": "Zwei"})
    book.invoice("OLD", "C1", "10.00", due_on="2026-01-31")
    path = tmp_path / "inv.csv"
    path.write_text(
        HEADER
        + "OLD,C1,EUR,12.00,2026-01-31,2026-01-31,\n"
        + 'N-1,Ç-2,JPY,5000,2026-01-01,2026-02-28,vip;"quoted" tag\n'
        + "N-2,C1,EUR,7.5,2026-01-01,2026-03-01,\n",
        encoding="utf-8",
    )
    book.app.importer(actor="José").import_file("invoices", path)
    with book.app.repo.read() as session:
        conn = session.connection()
        rows = conn.exec_driver_sql("SELECT kind, actor, data FROM events WHERE actor = 'José' ORDER BY id").all()
        assert verify_chain(conn).ok
    assert [(kind, actor) for kind, actor, _ in rows] == [("update", "José"), ("import", "José"), ("import", "José")]
    data = [json.loads(text) if isinstance(text, str) else text for _, _, text in rows[1:]]
    assert data == [
        {
            "invoice": "N-1",
            "customer_id": "Ç-2",
            "currency": "JPY",
            "amount": "5000",
            "issued_on": "2026-01-01",
            "due_on": "2026-02-28",
            "tags": ["vip", '"quoted" tag'],
        },
        {
            "invoice": "N-2",
            "customer_id": "C1",
            "currency": "EUR",
            "amount": "7.50",
            "issued_on": "2026-01-01",
            "due_on": "2026-03-01",
            "tags": [],
        },
    ]
