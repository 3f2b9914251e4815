"""Hostile values from customer data never reach an email header, and imports refuse what is not a
currency, a language or an ASCII number (issue 11: defects 1 and 13)."""

from __future__ import annotations

import email
import json
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from channels.base import ChannelContext, PermanentDeliveryError
from channels.email import EmailChannel
from engine.clock import FixedClock
from engine.currencies import MINOR_UNITS, minor_units
from engine.errors import ImportRejected
from engine.importer import Importer
from engine.store.database import Repository
from tests.integration.test_email import message

NOW = datetime(2026, 3, 10, 8, 30, tzinfo=timezone.utc)
INJECTION = "en\r\nBcc: someone@else.example\r\n\r\n<html>pay to another account</html>"


@pytest.fixture
def importer(tmp_path: Path) -> Iterator[Importer]:
    repo = Repository.open(f"sqlite:///{tmp_path}/t.db")
    yield Importer(repo, zone=ZoneInfo("Europe/Berlin"), clock=FixedClock(NOW), actor="tester")
    repo.dispose()


def rejected(importer: Importer, tmp_path: Path, kind: str, rows: list[dict[str, object]]) -> list[str]:
    path = tmp_path / f"{kind}.jsonl"
    path.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), encoding="utf-8")
    with pytest.raises(ImportRejected) as caught:
        importer.import_file(kind, path)
    return [str(problem) for problem in caught.value.problems]


def invoice_problems(importer: Importer, tmp_path: Path, *, currency: str = "EUR", amount: str = "10.00") -> list[str]:
    """The problems of importing one invoice of customer C1 in `currency` for `amount`."""
    importer.import_rows("customers", [{"id": "C1", "name": "A"}])
    row = {
        "number": "I1",
        "customer_id": "C1",
        "currency": currency,
        "amount": amount,
        "issued_on": "2026-01-01",
        "due_on": "2026-02-01",
    }
    return rejected(importer, tmp_path, "invoices", [row])


def test_a_language_with_line_breaks_is_a_row_error(importer: Importer, tmp_path: Path) -> None:
    problems = rejected(
        importer,
        tmp_path,
        "customers",
        [
            {"id": "C1", "name": "Fine", "language": "zh-CN"},
            {"id": "C2", "name": "Hostile", "language": INJECTION},
            {"id": "C3", "name": "Typo", "language": "klingon"},
        ],
    )
    assert len(problems) == 2
    assert problems[0].startswith(f"{tmp_path / 'customers.jsonl'}:2: language:")
    assert "is not a language" in problems[0] and "Bcc" in problems[0]
    assert problems[1].startswith(f"{tmp_path / 'customers.jsonl'}:3: language:")


def test_known_locales_import(importer: Importer, tmp_path: Path) -> None:
    path = tmp_path / "customers.csv"
    path.write_text("id,name,language\nC1,A,en\nC2,B,en-GB\nC3,C,zh-CN\nC4,D,zh_Hans_CN\nC5,E,\n", encoding="utf-8")
    assert importer.import_file("customers", path).created == 5


def test_no_header_is_added_or_body_replaced_by_a_hostile_language(tmp_path: Path) -> None:
    channel = EmailChannel("email", {"from": "ar@acme.example"}, ChannelContext(output_dir=tmp_path))
    raw = channel.build(message(language=INJECTION))
    parsed = email.message_from_bytes(raw)
    assert parsed["Bcc"] is None
    assert parsed["Content-Language"] is None  # not a language tag: left out, the message still goes
    assert b"pay to another account" not in raw
    assert parsed.get_content_type() == "multipart/alternative"


def test_a_line_break_in_the_recipient_is_a_permanent_failure(tmp_path: Path) -> None:
    channel = EmailChannel("email", {"from": "ar@acme.example"}, ChannelContext(output_dir=tmp_path))
    with pytest.raises(PermanentDeliveryError, match="To header would carry a line break"):
        channel.build(message(recipient="ap@customer.example\r\nBcc: thief@else.example"))


def test_encoded_subjects_still_fold(tmp_path: Path) -> None:
    channel = EmailChannel("email", {"from": "ar@acme.example"}, ChannelContext(output_dir=tmp_path))
    long_subject = "发票 " * 60 + "\r\nBcc: x@y.example"
    parsed = email.message_from_bytes(channel.build(message(subject=long_subject)))
    assert parsed["Bcc"] is None
    assert "Bcc: x@y.example" in str(email.header.make_header(email.header.decode_header(parsed["Subject"])))


@pytest.mark.parametrize("code", ["XYZ", "ZZZ", "ABC", "EUX"])
def test_unknown_currencies_are_refused(importer: Importer, tmp_path: Path, code: str) -> None:
    problems = invoice_problems(importer, tmp_path, currency=code, amount="10.00")
    assert problems == [
        f"{tmp_path / 'invoices.jsonl'}:1: currency: {code!r} is not an ISO 4217 currency code "
        f"(such as EUR, USD, CNY or JPY)" + problems[0].split("JPY)", 1)[1]
    ]


def test_did_you_mean_for_a_near_currency(importer: Importer, tmp_path: Path) -> None:
    problems = invoice_problems(importer, tmp_path, currency="EUO", amount="10")
    assert problems[0].endswith("did you mean EUR?")


@pytest.mark.parametrize("code", ["XAF", "XOF", "PYG", "RWF"])
def test_currencies_without_minor_units_refuse_cents(importer: Importer, tmp_path: Path, code: str) -> None:
    assert minor_units(code) == 0
    problems = invoice_problems(importer, tmp_path, currency=code, amount="1000.50")
    assert len(problems) == 1 and "amount" in problems[0] and "at most 0" in problems[0]


def test_the_table_is_the_full_iso_list() -> None:
    assert len(MINOR_UNITS) > 150
    assert {MINOR_UNITS[c] for c in ("EUR", "USD", "CNY", "GBP")} == {2}
    assert (MINOR_UNITS["JPY"], MINOR_UNITS["BHD"], MINOR_UNITS["CLF"]) == (0, 3, 4)


@pytest.mark.parametrize("amount", ["١٢٣", "１２３", "१२३.४५"])
def test_amounts_in_non_ascii_digits_are_refused(importer: Importer, tmp_path: Path, amount: str) -> None:
    problems = invoice_problems(importer, tmp_path, currency="EUR", amount=amount)
    assert len(problems) == 1 and ": amount: " in problems[0] and "is not a number" in problems[0]
