"""The shipped templates' wording, rendered for real in English and Chinese: plural forms through babel's CLDR
rules, stage titles in the customer's language (from the policy's `title:` or the built-in table), a
capital after the greeting, payment instructions in the plain-text part, phrases that fit every channel."""

from __future__ import annotations

from datetime import date, datetime, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from engine.errors import PolicyError
from engine.policy.loader import load_policies
from engine.templates import Renderer, count, days, ordinal, stage_title

TEMPLATES = Path(__file__).resolve().parents[2] / "rules" / "templates"
INSTRUCTIONS = "Commerzbank Hamburg, IBAN DE89 3704 0044 0532 0130 00"


def context(days_overdue: int, *, repeat: int = 0, chinese: bool = False) -> dict[str, Any]:
    invoice = {
        "number": "INV-7",
        "amount": Decimal("1200.00"),
        "open_amount": Decimal("1200.00"),
        "currency": "CNY" if chinese else "EUR",
        "issued_on": date(2026, 1, 1),
        "due_on": date(2026, 1, 31),
        "days_overdue": days_overdue,
    }
    return {
        "customer": {
            "name": "上海远航物流有限公司" if chinese else "Acme Ltd",
            "id": "C-7",
            "owner": "chen",
            "phone": "+86 21 1",
            "address": "上海市徐汇区 1 号",
        },
        "invoice": invoice,
        "invoices": [invoice],
        "stage": "reminder",
        "policy": "default",
        "repeat": repeat,
        "company": {"name": "Northwind", "payment_instructions": INSTRUCTIONS},
        "as_of": datetime(2026, 2, 1, 9, tzinfo=timezone.utc),
        "today": date(2026, 2, 1),
        "totals": {},
    }


def render(stage: str, language: str, ctx: dict[str, Any], renderer: Renderer | None = None, policy: str = "default"):  # type: ignore[no-untyped-def]
    return (renderer or Renderer(TEMPLATES)).render_parts(
        stage, "email", ctx, language=language, html=False, policy=policy
    )


@pytest.mark.parametrize(("overdue", "expected"), [(1, "is 1 day overdue"), (2, "is 2 days overdue")])
def test_english_counts_days_with_the_plural_rules(overdue: int, expected: str) -> None:
    assert render("reminder", "en", context(overdue)).subject.endswith(expected)
    assert (
        f"{'1 day' if overdue == 1 else '2 days'} after the due date" in render("letter", "en", context(overdue)).text
    )


def test_filters_follow_cldr_in_each_language() -> None:
    assert (days(1), days(2), days(1234), days(1, "zh_CN")) == ("1 day", "2 days", "1,234 days", "1天")
    assert (count(1, "invoice", "invoices"), count(3, "invoice", "invoices")) == ("1 invoice", "3 invoices")
    assert count(1, "次", language="zh_CN") == "1 次" and count(2, "次", language="zh_CN") == "2 次"
    assert [ordinal(n) for n in (1, 2, 3, 4, 11, 12, 13, 21, 22, 101)] == [
        "1st",
        "2nd",
        "3rd",
        "4th",
        "11th",
        "12th",
        "13th",
        "21st",
        "22nd",
        "101st",
    ]
    assert ordinal(2, "zh_CN") == "2"


def test_repeated_reminders_are_counted_in_both_languages() -> None:
    assert render("reminder", "en", context(10)).subject.startswith("Reminder: invoice INV-7")
    assert render("reminder", "en", context(10, repeat=1)).subject.startswith("2nd reminder: invoice INV-7")
    assert render("reminder", "en", context(17, repeat=2)).subject.startswith("3rd reminder: invoice INV-7")
    chinese = render("reminder", "zh_CN", context(17, repeat=1, chinese=True))
    assert chinese.subject.startswith("第 2 次付款提醒：发票 INV-7")


def test_stage_titles_are_in_the_customers_language() -> None:
    # a stage without templates of its own renders default[.zh].txt, whose subject is the stage's title
    assert render("final_notice", "zh_CN", context(40, chinese=True)).subject.startswith("最后催告：发票 INV-7")
    assert render("escalation", "zh_CN", context(40, chinese=True)).subject.startswith("付款通知：发票 INV-7")
    assert render("escalation", "en", context(40)).subject.startswith("Escalation: invoice INV-7")
    titled = Renderer(TEMPLATES, stage_titles={("p", "escalation"): {"en": "Last call", "zh_CN": "最后通牒"}})
    assert render("escalation", "en", context(40), titled, "p").subject.startswith("Last call: invoice")
    assert render("escalation", "zh-CN", context(40, chinese=True), titled, "p").subject.startswith("最后通牒：")
    assert stage_title("escalation", None, {"": "Last call"}) == "Last call"  # a plain title, no language
    assert stage_title("escalation", "zh", {"": "Last call"}) == "付款通知"  # never English in a Chinese subject


def test_phone_visit_and_legal_tasks_have_chinese_texts_not_the_customer_letter() -> None:
    for stage, start in (("phone", "致电"), ("visit", "拜访"), ("legal", "移交法务")):
        rendered = Renderer(TEMPLATES).render_parts(
            stage, stage, context(45, chinese=True), language="zh_CN", html=False
        )
        assert rendered.subject.startswith(start), rendered.subject
        assert "Phone" not in rendered.subject and "您好" not in rendered.text
        assert "45 天" in rendered.text


@pytest.mark.parametrize("stage", ["reminder", "letter", "courtesy", "statement", "final_notice"])
def test_a_capital_after_the_greeting(stage: str) -> None:
    text = render(stage, "en", context(5)).text
    greeting, _, rest = text.partition("\n")
    assert greeting == "Dear Acme Ltd,"
    first = rest.lstrip("\n")
    assert first[:1].isupper(), first[:40]


def test_the_built_in_default_starts_with_a_capital_too() -> None:
    text = Renderer(None).render_parts("reminder", "email", context(1), language="en", html=False).text
    assert "\n\nOur records show" in text and "(1 day overdue)" in text


@pytest.mark.parametrize("language", ["en", "zh_CN"])
def test_the_courtesy_text_part_carries_the_payment_instructions(language: str) -> None:
    ctx = context(-3, chinese=language != "en")
    ctx["pay_link"] = "https://pay.example/?ref=INV-7"
    text = render("courtesy", language, ctx).text
    assert INSTRUCTIONS in text and "https://pay.example/?ref=INV-7" in text


@pytest.mark.parametrize("language", ["en", "zh_CN"])
def test_no_reminder_talks_about_an_email_it_may_not_be(language: str) -> None:
    text = render("reminder", language, context(5, chinese=language != "en")).text
    assert "reply to this email" not in text and "回复本邮件" not in text


def test_policy_titles_load_per_language_and_bad_tags_are_refused(tmp_path: Path) -> None:
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "p.yaml").write_text(
        "name: p\nstages:\n"
        "  - {name: reminder, after_days: 3, channels: [email], title: Payment reminder}\n"
        "  - {name: escalation, after_days: 30, channels: [email], title: {en: Last call, zh-CN: 最后通牒}}\n",
        encoding="utf-8",
    )
    [policy] = load_policies(rules, known_channels={"email"}).policies
    assert [s.titles for s in policy.stages] == [
        (("", "Payment reminder"),),
        (("en", "Last call"), ("zh_CN", "最后通牒")),
    ]
    (rules / "p.yaml").write_text(
        "name: p\nstages:\n  - {name: reminder, after_days: 3, channels: [email], title: {'中文': x}}\n",
        encoding="utf-8",
    )
    with pytest.raises(PolicyError, match="title"):
        load_policies(rules, known_channels={"email"})


@pytest.mark.parametrize("key", ["zh", "zh_CN", "zh-CN"])
def test_company_fields_per_language_under_any_spelling_of_the_tag(key: str) -> None:
    from engine.company import company_for

    company = {"name": "Northwind GmbH", "address": "Hamburg", "languages": {key: {"name": "北风有限公司"}}}
    assert company_for(company, "zh_CN") == {"name": "北风有限公司", "address": "Hamburg"}
    assert company_for(company, "zh-CN")["name"] == "北风有限公司"
    assert company_for(company, "en")["name"] == "Northwind GmbH"
