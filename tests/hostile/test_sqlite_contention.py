"""SQLite contention is a clear message, not a traceback (issue 11, defect 6): a writer that waited
`database_busy_seconds` for another one says who holds the database, exits 1 and writes nothing."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from tests.acceptance.test_cli import Cli

HOLDER = """
import sys, time
from engine.store.database import Repository
repo = Repository(sys.argv[1])
with repo.write() as session:
    session.connection().exec_driver_sql("UPDATE customers SET name = name")
    print("holding", flush=True)
    time.sleep(float(sys.argv[2]))
"""


def test_a_second_writer_waits_then_names_the_holder(tmp_path: Path) -> None:
    db = tmp_path / "dunning.db"
    cli = Cli(tmp_path, f"sqlite:///{db}")
    cli.write("config.yaml", "database_busy_seconds: 1.5\n")
    cli.env["DUNNING_CONFIG"] = str(tmp_path / "config.yaml")
    cli.write("c.csv", "id,name\nC1,Acme\n")
    cli("import", "customers", "c.csv")
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, f"sqlite:///{db}", "20"], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "holding"
        cli.write("c2.csv", "id,name\nC2,Bolt\n")
        started = time.monotonic()
        result = cli("import", "customers", "c2.csv", ok=False)
        waited = time.monotonic() - started
    finally:
        holder.kill()
        holder.wait()
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert f"the database {db} is busy: process {holder.pid}" in result.stderr
    assert "more than the 1.5 s we wait; nothing was written" in result.stderr
    assert waited >= 1.5
    with sqlite3.connect(db) as conn:
        assert [row[0] for row in conn.execute("SELECT id FROM customers")] == ["C1"]  # nothing written
    cli("import", "customers", "c2.csv")  # and the database still works
