"""Attachments per stage and statements of account on a schedule (SQLite and PostgreSQL)."""

from __future__ import annotations

import email
from email.header import decode_header, make_header
from pathlib import Path
from typing import Any

import pytest

from engine.errors import ConfigError
from engine.policy.loader import check_policies
from engine.statement import queue_statements, queue_statements_if_due
from tests.conftest import at

pypdf = pytest.importorskip("pypdf")
ROOT = Path(__file__).resolve().parents[2]

POLICY = """\
name: default
stages:
  - {name: courtesy, after_days: -3, channels: [email]}
  - {name: reminder, after_days: 3, channels: [email], attach: [statement]}
  - {name: letter, after_days: 30, channels: [email]}
"""


@pytest.fixture
def book(make_book, tmp_path: Path):  # type: ignore[no-untyped-def]
    channels = {
        "email": {"type": "email", "recipient": "email", "eml_dir": str(tmp_path / "eml"), "attach": ["letter"]}
    }
    book = make_book(
        {"90-default.yaml": POLICY},
        channels=channels,
        templates=ROOT / "rules" / "templates",
        statements={"schedule": "monthly", "day": 1, "channel": "email"},
    )
    book.customers(
        {"id": "C1", "name": "Acme Robotics Ltd", "email": "ap@acme.example", "language": "en"},
        {"id": "C2", "name": "上海远航物流有限公司", "email": "cw@yuanhang.example", "language": "zh_CN"},
        {"id": "C3", "name": "Paid Up Ltd", "email": "ap@paid.example"},
    )
    book.invoice("INV-1", "C1", "1000.00", "2026-02-10")
    book.invoice("INV-2", "C1", "250.00", "2026-02-25", currency="GBP")
    book.invoice("INV-3", "C2", "8800.50", "2026-02-10", currency="CNY")
    return book


def emails(tmp_path: Path, pattern: str) -> list[email.message.Message]:
    return [email.message_from_bytes(p.read_bytes()) for p in sorted((tmp_path / "eml").glob(pattern))]


def attachments(message: Any) -> dict[str, bytes]:
    return {p.get_filename(): p.get_payload(decode=True) for p in message.walk() if p.get_filename()}


def subject(message: Any) -> str:
    return str(make_header(decode_header(message["Subject"])))


def test_attach_per_stage_and_never_a_letter_before_the_due_date(book, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    book.run("2026-02-07")  # courtesy, 3 days before the due date: the channel's letter is not attached
    [courtesy] = emails(tmp_path, "*-INV-1_courtesy_*.eml")
    assert attachments(courtesy) == {}
    book.run("2026-02-13")  # reminder: the stage's attach: [statement] replaces the channel's [letter]
    [reminder] = emails(tmp_path, "*-INV-1_reminder_*.eml")
    assert list(attachments(reminder)) == ["statement-INV-1.pdf"]
    book.run("2026-03-12")  # letter: no attach: of its own, so the channel's letter
    [letter] = emails(tmp_path, "*-INV-1_letter_*.eml")
    assert list(attachments(letter)) == ["letter-INV-1.pdf"]


def test_monthly_statements_to_every_customer_with_open_items(book, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    assert queue_statements_if_due(book.app, at("2026-03-01", 9)) == 2  # C1 and C2; C3 has nothing open
    assert queue_statements_if_due(book.app, at("2026-03-02", 9)) == 0  # this month's are queued already
    book.app.dispatch(at("2026-03-01", 9))
    [english] = emails(tmp_path, "*-statement_C1_*.eml")
    assert subject(english) == "Your statement of account as of March 1, 2026"
    [(name, pdf)] = attachments(english).items()
    assert name.startswith("statement-") and name.endswith(".pdf")
    text = "\n".join(page.extract_text() for page in pypdf.PdfReader(__import__("io").BytesIO(pdf)).pages)
    for expected in ("Statement of account", "INV-1", "INV-2", "Open invoices (EUR)", "Open invoices (GBP)"):
        assert expected in text, expected
    [chinese] = emails(tmp_path, "*-statement_C2_*.eml")
    assert subject(chinese) == "对账单（截至 2026年3月1日）"
    assert [e for e in book.app.history(customer="C1") if e["kind"] == "notification" and e["stage"] == "statement"]
    assert queue_statements(book.app, at("2026-04-03", 9)) == 2  # a new month, new statements


def test_statements_need_a_configured_channel_and_stage_attach_is_checked(make_book, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    book = make_book(
        {"90-default.yaml": POLICY.replace("attach: [statement]", "attach: [statment]")},
        statements={"schedule": "monthly", "channel": "mail"},
    )
    with pytest.raises(ConfigError, match="statements.channel is 'mail', which is no configured channel"):
        queue_statements(book.app, at("2026-03-01"))
    [problem] = [p for p in check_policies(tmp_path / "rules", known_channels=["email"]) if p.severity == "error"]
    assert problem.line == 4 and "did you mean 'statement'" in problem.message
