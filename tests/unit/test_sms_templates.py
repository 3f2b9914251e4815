"""Short messages for SMS channels (a webhook named `sms`): one segment each, in English (GSM-7, at most 160
septets) and in Chinese (UCS-2, at most 70 characters), with the longest values a book plausibly holds."""

from __future__ import annotations

from datetime import date, datetime, timezone
from decimal import Decimal
from pathlib import Path

import pytest

from engine.templates import Renderer

TEMPLATES = Path(__file__).resolve().parents[2] / "rules" / "templates"
GSM7 = set(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿"
    "abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENDED = set("^{}\\[~]|€")  # two septets each


def septets(text: str) -> int | None:
    """Length in GSM-7 septets, or None when the text needs UCS-2."""
    if any(ch not in GSM7 and ch not in GSM7_EXTENDED for ch in text):
        return None
    return sum(2 if ch in GSM7_EXTENDED else 1 for ch in text)


def ucs2_units(text: str) -> int:
    return len(text.encode("utf-16-be")) // 2


def context(language: str, stage: str) -> dict[str, object]:
    invoice = {
        "number": "INV-2026-000123456",
        "amount": Decimal("1234567.89"),
        "open_amount": Decimal("1234567.89"),
        "currency": "EUR" if language == "en" else "CNY",
        "issued_on": date(2026, 1, 1),
        "due_on": date(2026, 1, 31),
        "days_overdue": -3 if stage == "courtesy" else 123,
    }
    return {
        "customer": {
            "name": "上海远航国际物流供应链管理有限公司" if language != "en" else "Acme Robotics International Ltd"
        },
        "invoice": invoice,
        "invoices": [invoice],
        "stage": stage,
        "policy": "default",
        "repeat": 0,
        "company": {
            "name": "北风零部件（上海）有限公司" if language != "en" else "Northwind Components GmbH & Co. KG",
            "phone": "+49 40 1234 5670 123",
        },
        "as_of": datetime(2026, 6, 3, 9, tzinfo=timezone.utc),
        "deadline": date(2026, 6, 13),
        "totals": {},
    }


@pytest.mark.parametrize("stage", ["courtesy", "reminder", "letter"])
def test_english_sms_is_one_gsm7_segment(stage: str) -> None:
    text = Renderer(TEMPLATES).render_parts(stage, "sms", context("en", stage), language="en", html=False).text
    length = septets(text)
    assert length is not None, f"not GSM-7: {text!r}"
    assert 0 < length <= 160, (length, text)
    assert "INV-2026-000123456" in text and "€1,234,567.89" in text
    assert "email" not in text.lower() and "letter" not in text.lower()


@pytest.mark.parametrize("stage", ["courtesy", "reminder", "letter"])
def test_chinese_sms_is_one_ucs2_segment(stage: str) -> None:
    text = Renderer(TEMPLATES).render_parts(stage, "sms", context("zh_CN", stage), language="zh_CN", html=False).text
    assert septets(text) is None  # Chinese needs UCS-2
    assert 0 < ucs2_units(text) <= 70, (ucs2_units(text), text)
    assert "¥1,234,567.89" in text and "邮件" not in text
