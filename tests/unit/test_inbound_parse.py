"""Reading received messages: bounces, auto-replies, replies and the intents they suggest (pure)."""

from __future__ import annotations

from datetime import date

import pytest

from engine.inbound.parse import find_dates, read_message, return_date, strip_quotes
from tests.integration import inbound_corpus as corpus

TODAY = date(2026, 12, 1)


def _reply(body: str, subject: str = "Re: reminder", quoted: str = "") -> object:
    return read_message(corpus.reply("a@b.example", subject, body, mid="<m@b>", quoted=quoted), today=TODAY)


@pytest.mark.parametrize(
    ("body", "kind", "amount", "currency", "on"),
    [
        ("We will pay on 15 December.", "promise", None, None, "2026-12-15"),
        ("We'll transfer $1,250.00 by December 20th.", "promise", "1250.00", "USD", "2026-12-20"),
        ("Payment will be made on 2027-01-05 for EUR 300.", "promise", "300", "EUR", "2027-01-05"),
        ("我们将于12月15日付款", "promise", None, None, "2026-12-15"),
        ("我们会在2027年1月8日支付 8,000 元", "promise", "8000", "CNY", "2027-01-08"),
        ("The goods were not received.", "dispute", None, None, None),
        ("货物有质量问题", "dispute", None, None, None),
        ("We have already paid this invoice.", "payment_claim", None, None, None),
        ("Please find the remittance advice attached.", "payment_claim", None, None, None),
        ("发票已付款，请查收付款凭证", "payment_claim", None, None, None),
    ],
)
def test_intents(body: str, kind: str, amount: str | None, currency: str | None, on: str | None) -> None:
    message = _reply(body)
    assert message.kind == "reply"  # type: ignore[attr-defined]
    first = message.intents[0]  # type: ignore[attr-defined]
    assert (first.kind, first.amount, first.currency, first.on.isoformat() if first.on else None) == (
        kind,
        amount,
        currency,
        on,
    )


def test_quoted_notice_text_suggests_nothing() -> None:
    message = _reply("Thanks, noted.", quoted="If you have already paid, please ignore this reminder.")
    assert message.intents == ()  # type: ignore[attr-defined]
    assert strip_quotes("mine\n> theirs\nmore\n-----Original Message-----\nold") == "mine\nmore"


def test_a_date_without_a_year_is_the_next_one() -> None:
    assert [d for _, d in find_dates("on 5 January", TODAY)] == [date(2027, 1, 5)]
    assert [d for _, d in find_dates("on 20 November", TODAY)] == [date(2026, 11, 20)]  # recent past
    assert return_date("I'm away, back on Monday 7 December", TODAY) == date(2026, 12, 7)
    assert return_date("休假中，12月10日返回", TODAY) == date(2026, 12, 10)
    assert [d for _, d in find_dates("31 February and 2026-13-01", TODAY)] == []  # impossible dates are skipped


def test_bounces() -> None:
    hard = read_message(corpus.dsn("x@y.example", "<abc@us>", mid="<d@mx>"), today=TODAY)
    assert hard.kind == "bounce" and hard.bounce is not None
    assert (hard.bounce.status, hard.bounce.permanent, hard.bounce.recipient, hard.bounce.original_message_id) == (
        "5.1.1",
        True,
        "x@y.example",
        "<abc@us>",
    )
    soft = read_message(
        corpus.dsn("x@y.example", "<abc@us>", mid="<d@mx>", status="4.2.2", action="delayed"), today=TODAY
    )
    assert soft.bounce is not None and not soft.bounce.permanent
    qmail = read_message(corpus.plain_bounce("x@y.example", "<abc@us>", mid="<q@mx>", code="552 5.2.2"), today=TODAY)
    assert qmail.bounce is not None and (qmail.bounce.status, qmail.bounce.recipient) == ("5.2.2", "x@y.example")
    assert "<abc@us>" in qmail.references and not qmail.bounce.standard


def test_auto_reply_signals() -> None:
    assert (
        read_message(corpus.auto_reply("a@b", mid="<1@b>", in_reply_to=None, body="Thanks"), today=TODAY).kind
        == "auto_reply"
    )
    plain = corpus.auto_reply("a@b", mid="<2@b>", in_reply_to=None, body="Thanks", header=False, subject="Hi")
    assert read_message(plain, today=TODAY).kind == "reply"
    flagged = plain.replace(b"Subject:", b"X-Autoreply: yes\nSubject:", 1)
    assert read_message(flagged, today=TODAY).kind == "auto_reply"
    away = corpus.auto_reply(
        "a@b",
        mid="<3@b>",
        in_reply_to=None,
        header=False,
        subject="Re: invoice",
        body="I am out of the office until 9 December.",
    )
    message = read_message(away, today=TODAY)
    assert message.kind == "auto_reply" and message.returns_on == date(2026, 12, 9)


def test_garbage_never_raises() -> None:
    message = read_message(b"\xff\xfe not a message at all", today=TODAY)
    assert message.kind == "reply" and message.message_id.startswith("sha256:")
