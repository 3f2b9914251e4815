"""What the customer receives, end to end through sweeps and dispatch (SQLite and PostgreSQL): the letter as a
company writes one, in English and Chinese, with every font embedded (pdffonts) and rendered by poppler
(pdftoppm); the statement of account; the e-mail's plain text with the payment block; the signed pay link."""

from __future__ import annotations

import email
import re
import shutil
import subprocess
from decimal import Decimal
from email.header import decode_header, make_header
from pathlib import Path
from typing import Any

import pytest

from engine.errors import ConfigError
from engine.notice_context import SECRET_ENV, check_payment_link, signature
from engine.statement import statement_of_account
from tests.conftest import at

pypdf = pytest.importorskip("pypdf")

ROOT = Path(__file__).resolve().parents[2]
POLICY = """\
name: default
stages:
  - {name: reminder, after_days: 3, channels: [email]}
  - {name: letter, after_days: 30, channels: [letter, email]}
charges:
  interest: {basis: statutory, jurisdiction: EU}
  compensation: statutory
  fees:
    - {stage: letter, amount: 25}
"""
CHINA = """\
name: china
applies_to: "customer.language == 'zh_CN'"
stages:
  - {name: reminder, after_days: 3, channels: [email]}
  - {name: letter, after_days: 30, channels: [letter, email]}
charges:
  interest: {basis: statutory, jurisdiction: CN}
"""
COMPANY = {
    "name": "Northwind Components GmbH",
    "address": "Hafenstraße 12, 20457 Hamburg, Germany",
    "email": "receivables@northwind.example",
    "phone": "+49 40 1234 5670",
    "payment_instructions": "Commerzbank Hamburg · IBAN DE89 3704 0044 0532 0130 00",
    "payment_link": "https://pay.northwind.example/?ref={number}&amount={total_due}&cur={currency}&sig={sig}",
    "owners": {
        "anna": {"name": "Anna Becker", "phone": "+49 40 1234 5671", "email": "anna@northwind.example"},
        "chen": {"name": "陈静", "phone": "+86 21 6888 0102"},
    },
    "languages": {
        "zh": {
            "name": "北风零部件有限公司",
            "address": "上海市浦东新区世纪大道 88 号",
            "payment_instructions": "招商银行上海分行 账号 1219 0000 0000 0001",
        }
    },
}
SECRET = "test-secret"


def tool(name: str) -> str:
    found = shutil.which(name)
    assert found, f"{name} is missing: install poppler-utils (.ci/run and scripts/setup do)"
    return found


@pytest.fixture
def book(make_book, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    monkeypatch.setenv(SECRET_ENV, SECRET)
    shutil.copytree(ROOT / "rules" / "rates", tmp_path / "rules" / "rates")
    channels = {
        "email": {"type": "email", "recipient": "email", "eml_dir": str(tmp_path / "eml"), "attach": ["statement"]},
        "letter": {"type": "letter", "recipient": "address"},
    }
    book = make_book(
        {"10-china.yaml": CHINA, "90-default.yaml": POLICY},
        channels=channels,
        templates=ROOT / "rules" / "templates",
        company=COMPANY,
        timezone="Europe/Berlin",
    )
    book.customers(
        {
            "id": "C-ACME",
            "name": "Acme Robotics Ltd",
            "address": "221 Baker Street, London",
            "owner": "anna",
            "language": "en",
            "email": "ap@acme.example",
        },
        {
            "id": "C-YH",
            "name": "上海远航物流有限公司",
            "address": "上海市徐汇区漕溪北路 398 号",
            "owner": "chen",
            "language": "zh_CN",
            "email": "cw@yuanhang.example",
        },
    )
    book.invoice("INV-1", "C-ACME", "10000.00", "2026-01-31", "2026-01-01")
    book.invoice("INV-2", "C-ACME", "1800.00", "2026-02-19", "2026-01-20", currency="GBP")
    book.invoice("INV-3", "C-YH", "86000.00", "2026-02-04", "2026-01-05", currency="CNY")
    book.pay("INV-1", "4000.00", "2026-02-15")
    book.pay("INV-3", "20000.00", "2026-02-20")
    return book


def letter_of(tmp_path: Path, number: str) -> Path:
    [found] = list((tmp_path / "out" / "letters").glob(f"*-{number}.pdf"))
    return found


def pdf_text(data: bytes | Path) -> str:
    source = str(data) if isinstance(data, Path) else __import__("io").BytesIO(data)
    return "\n".join(page.extract_text() for page in pypdf.PdfReader(source).pages)


def fonts_of(path: Path) -> list[list[str]]:
    lines = subprocess.run([tool("pdffonts"), str(path)], capture_output=True, text=True, check=True).stdout
    return [line.split() for line in lines.splitlines()[2:]]


def rendered_ink(path: Path, tmp_path: Path) -> float:
    """Share of non-white pixels of page 1 as poppler renders it (a page of empty boxes has almost none)."""
    out = tmp_path / f"{path.stem}-page"
    subprocess.run([tool("pdftoppm"), "-r", "40", "-gray", "-f", "1", "-l", "1", str(path), str(out)], check=True)
    [image] = list(tmp_path.glob(f"{path.stem}-page*.pgm"))
    data = image.read_bytes()
    header = re.match(rb"P5\s+(\d+)\s+(\d+)\s+(\d+)\s", data)
    assert header is not None
    pixels = data[header.end() :]
    return sum(1 for value in pixels if value < 128) / len(pixels)


def run_through_letters(book: Any) -> None:
    book.run("2026-02-08")
    book.run("2026-03-09")  # INV-1 (33 days) and INV-3 (33 days) enter the letter stage


def test_english_letter_as_a_company_writes_one(book, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    run_through_letters(book)
    path = letter_of(tmp_path, "INV-1")
    fonts = fonts_of(path)
    assert fonts and all(row[-5] == "yes" for row in fonts), fonts  # the `emb` column: every font embedded
    assert rendered_ink(path, tmp_path) > 0.01
    text = pdf_text(path)
    # interest 1 Feb-9 Mar: 10000*0.1015*14/365 = 38.931507 + 6000*0.1015*23/365 = 38.375342 -> 77.31
    order = [
        "Northwind Components GmbH",
        "Acme Robotics Ltd",
        "221 Baker Street, London",
        "Date: March 9, 2026",
        "Our reference: INV-1",
        "Formal notice of overdue payment: invoice INV-1",
        "Dear Acme Robotics Ltd,",
        "by March 19, 2026",
        "January 31, 2026",
        "€6,000.00",
        "Interest",
        "€77.31",
        "Compensation",
        "€40.00",
        "Fees",
        "€25.00",
        "Total due: €6,142.31",
        "Payment instructions",
        "IBAN DE89",
        "Pay online",
        "Your contact",
        "Anna Becker",
        "+49 40 1234 5671",
        "Yours sincerely,",
        "Northwind Components GmbH",
    ]
    position = 0
    for expected in order:
        found = text.find(expected, position)
        assert found >= 0, f"{expected!r} missing or out of order in:\n{text}"
        position = found + len(expected)
    assert text.count("221 Baker Street, London") == 1  # the recipient block once
    assert not re.search(r"\b2026-\d\d-\d\d\b", text)  # one date style: no ISO dates in a letter
    link = re.search(
        r"https://pay\.northwind\.example/\?ref=INV-1&amount=6142\.31&cur=EUR&sig=([0-9a-f]{64})",
        text.replace("\n", ""),
    )
    assert link is not None and link.group(1) == signature(SECRET, "INV-1", "6142.31", "EUR")


def test_chinese_letter_embeds_its_font_and_uses_the_chinese_company(book, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    run_through_letters(book)
    path = letter_of(tmp_path, "INV-3")
    fonts = fonts_of(path)
    assert any("WenQuanYi" in row[0] for row in fonts) and all(row[-5] == "yes" for row in fonts), fonts
    assert rendered_ink(path, tmp_path) > 0.01
    text = pdf_text(path).replace(" ", "")
    # CN: 86000*0.0005*15 (5-19 Feb) = 645 + 66000*0.0005*18 (20 Feb-9 Mar) = 594 -> 1,239.00
    for expected in (
        "北风零部件有限公司",
        "上海市浦东新区世纪大道88号",
        "致：上海远航物流有限公司",
        "日期：2026年3月9日",
        "尊敬的上海远航物流有限公司：",
        "2026年3月19日",
        "逾期利息",
        "¥1,239.00",
        "应付合计：¥67,239.00",
        "招商银行上海分行",
        "联系人",
        "陈静",
        "此致",
        "敬礼！",
    ):
        assert expected in text, expected
    assert "Northwind" not in text  # the company's Chinese fields replace the plain ones


def test_email_carries_the_payment_block_and_the_real_statement(book, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    book.run("2026-02-25")  # INV-1 (25 days) and INV-2 (6 days) get reminders
    [eml] = list((tmp_path / "eml").glob("*-INV-2_reminder_*.eml"))
    message = email.message_from_bytes(eml.read_bytes())
    assert str(make_header(decode_header(message["Subject"]))) == "Reminder: invoice INV-2 is 6 days overdue"
    [plain] = [p.get_payload(decode=True).decode() for p in message.walk() if p.get_content_type() == "text/plain"]
    # GBP 1800 under the EU pack: 1800*0.1015*6/365 = 3.003288 -> 3.00, plus 40 compensation
    for expected in (
        "Dear Acme Robotics Ltd,\n\nInvoice INV-2",
        "Total due: £1,843.00",
        "Please pay by: March 7, 2026",
        "Payment instructions: Commerzbank Hamburg",
        "Pay online: https://pay.northwind.example/",
        "Kind regards,",
    ):
        assert expected in plain, expected
    [statement] = [p.get_payload(decode=True) for p in message.walk() if p.get_filename()]
    text = pdf_text(statement)
    # the customer's whole account, both currencies, not only this message's invoice
    for expected in (
        "Statement of account",
        "INV-1",
        "INV-2",
        "Open invoices (EUR)",
        "Open invoices (GBP)",
        "Payments received",
        "Total due: £1,843.00",
    ):
        assert expected in text, expected


def test_statement_of_account_per_currency_with_aging_payments_and_charges(book) -> None:  # type: ignore[no-untyped-def]
    found = statement_of_account(book.app, "C-ACME", at("2026-03-09", 12), None).as_dict()
    assert found["as_of"].isoformat() == "2026-03-09" and found["from"].isoformat() == "2026-03-01"
    eur, gbp = found["currencies"]
    assert (eur["currency"], gbp["currency"]) == ("EUR", "GBP")
    [inv1] = eur["invoices"]
    assert (inv1["open_amount"], inv1["interest"], inv1["compensation"], inv1["total_due"]) == (
        Decimal("6000.00"),
        Decimal("77.31"),
        Decimal("40.00"),
        Decimal("6117.31"),
    )
    assert eur["aging"] == {"current": 0, "1_30": 0, "31_60": Decimal("6000.00"), "61_90": 0, "over_90": 0}
    assert eur["payments"] == []  # paid 15 February: before the period
    # GBP 1800 from 20 Feb to 9 Mar (18 days): 1800*0.1015*18/365 = 9.009863 -> 9.01
    assert (gbp["open_amount"], gbp["charges"], gbp["total_due"]) == (
        Decimal("1800.00"),
        Decimal("49.01"),
        Decimal("1849.01"),
    )
    february = statement_of_account(book.app, "C-ACME", at("2026-03-09", 12), at("2026-02-01").date()).as_dict()
    assert february["currencies"][0]["payments"] == [
        {
            "invoice": "INV-1",
            "paid_on": at("2026-02-15").date(),
            "amount": Decimal("4000.00"),
            "reference": "R-INV-1-2026-02-15",
        }
    ]
    assert found["pay_link"] is None  # two currencies: no single amount to pay online


def test_a_pay_link_needs_its_secret_and_known_placeholders(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(SECRET_ENV, raising=False)
    with pytest.raises(ConfigError, match=r"\$DUNNING_PAYMENT_LINK_SECRET is not set"):
        check_payment_link({"payment_link": "https://pay.example/?ref={number}&sig={sig}"})
    with pytest.raises(ConfigError, match="unknown or malformed placeholder 'invoice'"):
        check_payment_link({"payment_link": "https://pay.example/?ref={invoice}"})
    with pytest.raises(ConfigError, match="must be an http"):
        check_payment_link({"payment_link": "javascript:alert(1)"})
    check_payment_link({"payment_link": "https://pay.example/?ref={number}&amount={total_due}"})


def test_statement_shows_the_credits_of_the_period(book) -> None:  # type: ignore[no-untyped-def]
    book.clock.at = at("2026-03-03", 10)
    book.invoice("INV-1", "C-ACME", "9500.00", "2026-01-31", "2026-01-01")  # a credit note of 500 booked against it
    book.clock.at = at("2026-02-27", 10)
    book.invoice("INV-2", "C-ACME", "1900.00", "2026-02-19", "2026-01-20", currency="GBP")  # raised: no credit
    found = statement_of_account(book.app, "C-ACME", at("2026-03-09", 12), None)
    eur, gbp = found.sections
    assert eur.credits == [
        {
            "invoice": "INV-1",
            "on": at("2026-03-03").date(),
            "amount": Decimal("500.00"),
            "amount_before": Decimal("10000.00"),
            "amount_after": Decimal("9500.00"),
        }
    ]
    assert eur.invoices[0]["open_amount"] == Decimal("5500.00")  # 9,500 less the 4,000 paid
    assert gbp.credits == []
    assert found.as_dict()["currencies"][0]["credits"] == eur.credits
    earlier = statement_of_account(book.app, "C-ACME", at("2026-03-02", 12), at("2026-02-01").date())
    assert [s.credits for s in earlier.sections] == [[], []]  # the credit is after that statement's day
    from channels.pdf import statement_document

    text = pdf_text(statement_document(found.as_dict(), COMPANY, "en"))
    assert "Credits (invoice amounts lowered)" in text and "500.00" in text and "9,500.00" in text
    chinese = pdf_text(statement_document(found.as_dict(), COMPANY, "zh_CN"))
    assert "贷项（发票金额调减）" in chinese
