"""The daemon reads the inbound sources on its schedule (`inbound.every_seconds`)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration import inbound_corpus as corpus
from tests.integration.daemon_harness import Book, wait_for

pytestmark = pytest.mark.timeout(120)


def test_the_daemon_reads_the_drop_folder_on_its_schedule(tmp_path: Path) -> None:
    book = Book(tmp_path, inbound={"folder": "drop", "move_to": "done", "every_seconds": 0.2})
    try:
        book.customers("C1,Acme GmbH,ap@acme.example,,1 Main St,A,,,en,Europe/Berlin,")
        book.invoices("INV-1,C1,EUR,100.00,2026-02-01,2026-03-01,")
        (tmp_path / "drop").mkdir()
        daemon = book.start("2026-03-05T10:00", 1)
        (tmp_path / "drop" / "1.eml").write_bytes(
            corpus.reply("ap@acme.example", "Re: INV-1", "We will pay on 20 March.", mid="<d1@acme>")
        )
        wait_for(lambda: book.query("SELECT kind, status, match_by FROM inbound_messages"), 30, "the message read")
        assert book.query("SELECT kind, status, match_by FROM inbound_messages") == [
            ("reply", "matched", "invoice_number")
        ]
        wait_for(lambda: (tmp_path / "drop" / "done" / "1.eml").exists(), 10, "the file moved to done/")
        assert daemon.stop() == 0
        assert "inbound: 1 processed (1 reply), 0 unmatched" in daemon.log()
    finally:
        book.cleanup()
