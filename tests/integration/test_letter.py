"""The letter channel writes a real PDF: the tests open it and read its text (pypdf), CJK included."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from channels.base import ChannelContext
from channels.letter import LetterChannel
from tests.integration.test_email import COMPANY, TEMPLATES, message

pypdf = pytest.importorskip("pypdf")


def text_of(path: Path) -> str:
    return "\n".join(page.extract_text() for page in pypdf.PdfReader(str(path)).pages)


def test_letter_pdf_has_letterhead_address_invoices_total_and_instructions(tmp_path: Path) -> None:
    ch = LetterChannel("letter", {"output_dir": str(tmp_path / "print")}, ChannelContext(tmp_path, COMPANY))
    receipt = asyncio.run(ch.send(message(language="en")))
    path = Path(receipt.detail)
    assert path.parent == tmp_path / "print" and path.suffix == ".pdf"
    text = text_of(path)
    for expected in (
        "Acme Trading Ltd",
        "1 Harbour Rd, Shanghai",
        "上海市浦东新区世纪大道 100 号",
        "INV-7",
        "INV-8",
        "29",
        "19",
        "CN¥12,000.00",
        "CN¥1,500.50",
        "Total due: CN¥13,500.50",
        "Payment instructions",
        "IBAN DE00 1234 5678",
        "Reminder: invoice INV-7 is 29 days overdue",
    ):
        assert expected in text, expected


def test_chinese_letter_renders_cjk_text(tmp_path: Path) -> None:
    ch = LetterChannel("letter", {}, ChannelContext(tmp_path, COMPANY))
    receipt = asyncio.run(ch.send(message(language="zh_CN")))
    text = text_of(Path(receipt.detail))
    assert Path(receipt.detail).parent == tmp_path / "letters"
    for expected in ("上海示例贸易有限公司", "付款提醒", "应付合计", "¥13,500.50", "逾期天数", "2026年2月9日"):
        assert expected in text, expected


def test_the_same_notification_writes_the_same_file(tmp_path: Path) -> None:
    ch = LetterChannel("letter", {}, ChannelContext(tmp_path, COMPANY))
    first = asyncio.run(ch.send(message()))
    second = asyncio.run(ch.send(message()))
    assert first.detail == second.detail
    assert len(list((tmp_path / "letters").glob("*.pdf"))) == 1


def test_letter_stage_through_a_sweep(make_book, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from tests.conftest import MEMORY_CHANNELS

    channels = {**MEMORY_CHANNELS, "letter": {"type": "letter", "recipient": "address"}}
    book = make_book(
        channels=channels,
        templates=TEMPLATES,
        company={"name": "Acme Trading Ltd", "payment_instructions": "Pay to IBAN XX00 1"},
    )
    book.customers({"id": "C1", "name": "Kunde AG", "credit_grade": "Z", "address": "Hauptstr. 1, Berlin"})
    book.invoice("INV-1", "C1", "2500.00", "2026-01-01")
    book.run("2026-01-02")  # default policy: reminder at day 1
    book.run("2026-01-21")  # final (letter) at day 20
    letters = list((tmp_path / "out" / "letters").glob("*.pdf"))
    assert len(letters) == 1
    text = text_of(letters[0])
    assert "Kunde AG" in text and "Hauptstr. 1, Berlin" in text and "INV-1" in text and "2,500.00 EUR" in text
    assert "Pay to IBAN XX00 1" in text
    assert [r["status"] for r in book.app.outbox() if r["channel"] == "letter"] == ["sent"]
