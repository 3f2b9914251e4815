"""`dunning inbound` in real subprocesses: fetch a drop folder, triage, assign, confirm."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.acceptance.test_cli import DUNNING, Cli
from tests.integration import inbound_corpus as corpus

POLICY = """\
name: standard
stages:
  - name: reminder
    after_days: 3
    channels: [email]
"""


@pytest.fixture
def cli(tmp_path: Path, database_url: str) -> Cli:
    cli = Cli(tmp_path, database_url)
    cli.write("rules/10-standard.yaml", POLICY)
    cli.write(
        "config.yaml",
        """\
        channels:
          email: {type: log}
        inbound:
          folder: drop
          move_to: done
        """,
    )
    cli.write(
        "customers.csv",
        """\
        id,name,email,phone,address,credit_grade,segment,owner,language,timezone,tags
        C1,Acme GmbH,ap@acme.example,+49 30 1234,1 Main St,A,,alice,en,,
        C2,北京示例科技,cw@bj.example,+86 10 5555,北京市朝阳区,B,,bob,zh,,
        """,
    )
    cli.write(
        "invoices.csv",
        """\
        number,customer_id,currency,amount,issued_on,due_on,tags
        INV-1,C1,EUR,1200.00,2026-10-01,2026-11-01,
        INV-2,C2,CNY,8800.00,2026-10-01,2026-11-01,
        """,
    )
    cli("import", "customers", "customers.csv")
    cli("import", "invoices", "invoices.csv")
    (tmp_path / "drop").mkdir()
    return cli


def test_fetch_triage_assign_and_confirm(cli: Cli, tmp_path: Path) -> None:
    drop = tmp_path / "drop"
    (drop / "1.eml").write_bytes(
        corpus.reply("cw@bj.example", "回复：付款", "我们将于2030年1月15日付款8800元。", mid="<zh@bj>")
    )
    (drop / "2.eml").write_bytes(corpus.reply("x@nowhere.example", "hello", "The goods never arrived.", mid="<u@x>"))
    report = cli.json("inbound", "fetch")
    assert report["processed"] == 2 and report["unmatched"] == 1 and report["by_kind"] == {"reply": 2}
    assert sorted(p.name for p in (drop / "done").iterdir()) == ["1.eml", "2.eml"]
    (unmatched,) = cli.json("inbound", "list", "--unmatched")
    assert unmatched["sender"] == "x@nowhere.example" and unmatched["intents"][0]["kind"] == "dispute"
    assigned = cli.json("inbound", "assign", str(unmatched["id"]), "--invoice", "INV-1", "--actor", "alice")
    assert assigned["status"] == "assigned" and assigned["match_by"] == "manual"
    zh = next(m for m in cli.json("inbound", "list") if m["message_id"] == "<zh@bj>")
    assert zh["match_by"] == "sender" and zh["intents"][0]["on"] == "2030-01-15"
    confirmed = cli.json("inbound", "confirm", str(zh["id"]), "--actor", "bob")
    assert confirmed["status"] == "confirmed" and confirmed["confirmed_by"] == "bob"
    history = cli.json("history", "INV-2")
    promise = next(e for e in history if e["kind"] == "promise")
    assert promise["actor"] == "bob" and promise["by"] == "2030-01-15" and promise["amount"] == "8800"
    replies = [t for t in cli.json("tasks") if t["kind"] == "reply"]
    assert sorted(t["owner"] for t in replies) == ["alice", "bob"]
    raw = subprocess.run(
        [DUNNING, "inbound", "show", str(zh["id"]), "--eml"],
        cwd=cli.folder,
        env=cli.env,
        capture_output=True,
        timeout=60,
    )
    assert raw.returncode == 0 and raw.stdout == (drop / "done" / "1.eml").read_bytes()
    # mistakes: a clear message, exit 1
    result = cli("inbound", "confirm", "999", ok=False)
    assert result.returncode == 1 and "no inbound message 999" in result.stderr
    result = cli("inbound", "confirm", str(zh["id"]), ok=False)
    assert result.returncode == 1 and "confirmed already" in result.stderr
    assert cli.json("inbound", "fetch")["processed"] == 0


def test_without_a_source_fetch_says_what_to_configure(cli: Cli) -> None:
    cli.write("config.yaml", "channels:\n  email: {type: log}\n")
    result = cli("inbound", "fetch", ok=False)
    assert result.returncode == 1 and "set `inbound.folder`" in result.stderr
    cli.write("config.yaml", "inbound:\n  imap: {host: mail.example, security: plain}\n")
    result = cli("inbound", "fetch", ok=False)
    assert result.returncode == 1 and "DUNNING_IMAP_USER" in result.stderr
