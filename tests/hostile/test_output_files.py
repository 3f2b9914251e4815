"""Output files never overwrite each other and land where the configuration says (issue 11, defects 2 and 9):
names carry the outbox row id, files are created exclusively inside the configured folder, and channel
folders are resolved against the configuration file's folder, not the working directory."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import pytest

from channels.base import ChannelContext, Message
from channels.email import EmailChannel
from channels.files import inside, notice_stem, write_new
from channels.legal import LegalChannel
from channels.letter import LetterChannel
from engine.config import load_settings
from tests.integration.test_email import COMPANY, message

DUNNING = Path(sys.executable).parent / "dunning"


def numbered(notification_id: int, number: str, customer: str = "C7") -> Message:
    base = message(language="en")
    invoice = {**base.invoices[0], "number": number}
    return dataclasses.replace(
        base,
        notification_id=notification_id,
        key=f"{number}/letter@20260310T090000Z/0/x",
        invoices=(invoice,),
        customer={**base.customer, "id": customer},
        context={**base.context, "invoice": invoice, "invoices": [invoice]},
    )


LOSSY = [
    "INV/1",
    "INV_1",
    "INV 1",
    "发票1",
    "收据1",
    "INV\\1",
    "../INV1",
    "INV:1",
    "inv_1",
    "INV..1",
    "INV\x001",
    "INV\r\n1",
]


def test_twelve_letters_leave_twelve_files(tmp_path: Path) -> None:
    channel = LetterChannel("letter", {}, ChannelContext(tmp_path, COMPANY))
    receipts = [asyncio.run(channel.send(numbered(i + 1, number))) for i, number in enumerate(LOSSY)]
    files = sorted((tmp_path / "letters").iterdir())
    assert len(files) == len(LOSSY) == len({r.detail for r in receipts})
    assert all(f.parent == tmp_path / "letters" and f.suffix == ".pdf" for f in files)
    assert any("发票1" in f.name for f in files) and any("收据1" in f.name for f in files)


def test_eml_files_are_one_per_notification(tmp_path: Path) -> None:
    channel = EmailChannel("email", {"from": "ar@acme.example"}, ChannelContext(tmp_path, COMPANY))

    async def go() -> None:
        for i, number in enumerate(LOSSY):
            await channel.send(numbered(i + 1, number))
        await channel.aclose()

    asyncio.run(go())
    assert len(list((tmp_path / "email").glob("*.eml"))) == len(LOSSY)


def test_case_folders_of_colliding_customer_and_invoice_stay_apart(tmp_path: Path) -> None:
    channel = LegalChannel("legal", {}, ChannelContext(tmp_path, COMPANY))
    a = dataclasses.replace(numbered(1, "B-1", customer="A"), key="x")
    b = dataclasses.replace(numbered(2, "1", customer="A-B"), key="x")
    channel.bundle = lambda m: {"case.json": m.customer["id"].encode()}  # type: ignore[method-assign]
    first, second = asyncio.run(channel.send(a)), asyncio.run(channel.send(b))
    assert first.reference != second.reference
    folders = sorted((tmp_path / "legal").iterdir())
    assert [f.joinpath("case.json").read_text() for f in folders] == ["A", "A-B"]


def test_an_existing_file_is_never_replaced(tmp_path: Path) -> None:
    target = tmp_path / "f.pdf"
    assert write_new(target, b"first")
    assert not write_new(target, b"second")
    assert target.read_bytes() == b"first"
    assert [p.name for p in tmp_path.iterdir()] == ["f.pdf"]  # no temporary file left behind


def test_a_resent_notification_keeps_its_first_file(tmp_path: Path) -> None:
    channel = LetterChannel("letter", {}, ChannelContext(tmp_path, COMPANY))
    first = asyncio.run(channel.send(numbered(5, "INV-5")))
    written = Path(first.detail).read_bytes()
    second = asyncio.run(channel.send(numbered(5, "INV-5")))
    assert first.detail == second.detail and Path(second.detail).read_bytes() == written


@pytest.mark.parametrize("name", ["../escape.pdf", "a/b.pdf", "..", ""])
def test_names_cannot_leave_the_folder(tmp_path: Path, name: str) -> None:
    with pytest.raises(ValueError):
        inside(tmp_path, name)


def test_stems_are_injective_and_plain() -> None:
    stems = [notice_stem(i, number) for i, number in enumerate(LOSSY)]
    assert len(set(stems)) == len(stems)
    assert all("/" not in s and "\\" not in s and "\r" not in s and "\x00" not in s for s in stems)


def test_channel_folders_resolve_against_the_config_file(tmp_path: Path) -> None:
    home = tmp_path / "etc"
    home.mkdir()
    (home / "config.yaml").write_text(
        "channels:\n"
        "  print: {type: letter, output_dir: print}\n"
        "  mail: {type: email, from: ar@acme.example, eml_dir: mail}\n"
        "  audit: {type: log, path: logs/n.log}\n"
        "  abs: {type: letter, output_dir: /srv/letters}\n"
    )
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    cwd = os.getcwd()
    os.chdir(elsewhere)
    try:
        channels = load_settings(home / "config.yaml").channel_settings()
    finally:
        os.chdir(cwd)
    assert channels["print"].options["output_dir"] == str(home / "print")
    assert channels["mail"].options["eml_dir"] == str(home / "mail")
    assert channels["audit"].options["path"] == str(home / "logs" / "n.log")
    assert channels["abs"].options["output_dir"] == "/srv/letters"


def test_a_run_from_another_folder_writes_beside_the_config(tmp_path: Path) -> None:
    home = tmp_path / "etc"
    (home / "rules").mkdir(parents=True)
    (home / "rules" / "p.yaml").write_text("name: p\nstages:\n  - {name: letter, after_days: 1, channels: [print]}\n")
    (home / "config.yaml").write_text(
        "database: sqlite:///dunning.db\nchannels:\n  print: {type: letter, output_dir: print, recipient: address}\n"
    )
    (home / "c.csv").write_text("id,name,address\nC1,Acme,1 Main St\n")
    (home / "i.csv").write_text(
        "number,customer_id,currency,amount,issued_on,due_on\nI1,C1,EUR,10.00,2026-01-01,2026-01-02\n"
    )
    env = {**os.environ, "DUNNING_CONFIG": str(home / "config.yaml")}
    for args in (
        ["import", "customers", str(home / "c.csv")],
        ["import", "invoices", str(home / "i.csv")],
        ["run", "--as-of", "2026-02-01"],
    ):
        subprocess.run([str(DUNNING), *args], check=True, cwd=tmp_path, env=env, capture_output=True, timeout=120)
    assert len(list((home / "print").glob("*.pdf"))) == 1
    assert not (tmp_path / "print").exists()


def test_run_counts_notices_that_failed_for_want_of_an_address(tmp_path: Path) -> None:
    from tests.acceptance.test_cli import Cli

    cli = Cli(tmp_path, f"sqlite:///{tmp_path / 'dunning.db'}")
    cli.write("rules/p.yaml", "name: p\nstages:\n  - {name: reminder, after_days: 1, channels: [log]}\n")
    cli.write("config.yaml", "channels:\n  log: {type: log, recipient: email}\n")
    cli.env["DUNNING_CONFIG"] = str(tmp_path / "config.yaml")
    cli.write("c.csv", "id,name,email\nC1,Acme,ap@acme.example\nC2,Bolt,\n")
    cli.write(
        "i.csv",
        "number,customer_id,currency,amount,issued_on,due_on\n"
        "I1,C1,EUR,10.00,2026-01-01,2026-01-02\nI2,C2,EUR,10.00,2026-01-01,2026-01-02\n",
    )
    cli("import", "customers", "c.csv")
    cli("import", "invoices", "i.csv")
    out = cli("run", "--as-of", "2026-02-01").stdout
    assert "dispatched: 1 sent, 1 failed, 0 to retry" in out
    assert "1 of the failed had no address" in out
