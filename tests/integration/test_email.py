"""The email channel against a real aiosmtpd on 127.0.0.1: plain, STARTTLS and implicit TLS with AUTH."""

from __future__ import annotations

import asyncio
import io
import time
from datetime import date, datetime, timezone
from decimal import Decimal
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest

from channels.base import ChannelContext, Message, PermanentDeliveryError, TransientDeliveryError
from channels.email import EmailChannel, message_id_for
from engine.templates import Renderer
from tests.integration.smtp_server import SMTPServer, free_port, make_certificate

pypdf = pytest.importorskip("pypdf")
pytestmark = pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")

COMPANY = {
    "name": "Acme Trading Ltd",
    "address": "1 Harbour Rd, Shanghai",
    "email": "ar@acme.example",
    "phone": "+86 21 5555 0100",
    "payment_instructions": "Bank of Example, IBAN DE00 1234 5678",
}
TEMPLATES = Path(__file__).resolve().parents[2] / "rules" / "templates"


def message(
    language: str | None = "zh_CN",
    recipient: str = "ap@customer.example",
    key: str = "INV-7/reminder@20260310T090000Z/0/email",
    **extra: Any,
) -> Message:
    customer = {
        "id": "C7",
        "name": "上海示例贸易有限公司",
        "email": recipient,
        "phone": "+86 21 1234",
        "address": "上海市浦东新区世纪大道 100 号",
        "owner": "li.wei",
        "language": language,
    }
    invoices = [
        {
            "number": "INV-7",
            "amount": Decimal("12000.00"),
            "open_amount": Decimal("12000.00"),
            "currency": "CNY",
            "issued_on": date(2026, 1, 10),
            "due_on": date(2026, 2, 9),
            "days_overdue": 29,
        },
        {
            "number": "INV-8",
            "amount": Decimal("3500.50"),
            "open_amount": Decimal("1500.50"),
            "currency": "CNY",
            "issued_on": date(2026, 1, 20),
            "due_on": date(2026, 2, 19),
            "days_overdue": 19,
        },
    ]
    context = {
        "customer": customer,
        "invoice": invoices[0],
        "invoices": invoices,
        "stage": "reminder",
        "policy": "standard",
        "repeat": 0,
        "company": COMPANY,
        "as_of": datetime(2026, 3, 10, 9, tzinfo=timezone.utc),
    }
    rendered = Renderer(TEMPLATES).render_parts("reminder", "email", context, language=language)
    fields: dict[str, Any] = dict(
        notification_id=1,
        key=key,
        channel="email",
        recipient=recipient,
        subject=rendered.subject,
        body=rendered.text,
        stage="reminder",
        policy="standard",
        customer=customer,
        invoices=tuple(invoices),
        html=rendered.html,
        language=rendered.language,
        context=context,
    )
    fields.update(extra)
    return Message(**fields)


def channel(tmp_path: Path, **options: Any) -> EmailChannel:
    return EmailChannel(
        "email",
        {"from": "ar@acme.example", "from_name": "Acme Accounts", **options},
        ChannelContext(output_dir=tmp_path / "out", company=COMPANY),
    )


def send(ch: EmailChannel, *messages: Message) -> list[Any]:
    async def go() -> list[Any]:
        try:
            return list(await asyncio.gather(*(ch.send(m) for m in messages)))
        finally:
            await ch.aclose()

    return asyncio.run(go())


def parts(mail: EmailMessage) -> dict[str, Any]:
    found: dict[str, Any] = {"attachments": {}}
    for part in mail.walk():
        if part.get_content_disposition() == "attachment":
            found["attachments"][part.get_filename()] = part.get_payload(decode=True)
        elif part.get_content_type() in ("text/plain", "text/html"):
            found[part.get_content_type()] = part.get_content()
    return found


def pdf_text(data: bytes) -> str:
    return "\n".join(page.extract_text() for page in pypdf.PdfReader(io.BytesIO(data)).pages)


def test_plain_smtp_sends_headers_both_parts_attachments_and_chinese(tmp_path: Path) -> None:
    with SMTPServer() as server:
        ch = channel(tmp_path, host="127.0.0.1", port=server.port, security="none", attach=["letter", "statement"])
        (receipt,) = send(ch, message())
    assert len(server.messages) == 1
    mail = server.messages[0]
    key = "INV-7/reminder@20260310T090000Z/0/email"
    assert mail["Message-ID"] == message_id_for(key, "acme.example") == receipt.reference
    assert mail["X-Dunning-Key"] == key
    assert mail["To"] == "ap@customer.example"
    assert "Acme Accounts" in mail["From"] and "ar@acme.example" in mail["From"]
    assert mail["Subject"] == "付款提醒：发票 INV-7 已逾期 29 天"
    found = parts(mail)
    text, html = found["text/plain"], found["text/html"]
    assert "上海示例贸易有限公司" in text and "2026年2月9日" in text  # the zh template, dates for the locale
    assert "¥12,000.00" in text and "INV-8" in text  # money for the locale; the grouped list
    assert "<td>INV-8</td>" in html and "逾期天数" in html
    assert set(found["attachments"]) == {"letter-INV-7.pdf", "statement-INV-7.pdf"}
    letter = pdf_text(found["attachments"]["letter-INV-7.pdf"])
    assert "上海市浦东新区世纪大道" in letter and "INV-8" in letter and "付款方式" in letter


def test_html_part_escapes_what_customers_control(tmp_path: Path) -> None:
    msg = message(language=None)
    hostile = {**msg.customer, "name": "<script>alert(1)</script>"}
    context = {**msg.context, "customer": hostile}
    rendered = Renderer(TEMPLATES).render_parts("reminder", "email", context, language=None)
    assert "<script>" not in (rendered.html or "") and "&lt;script&gt;" in (rendered.html or "")
    assert "<script>" in rendered.text  # plain text stays as written


def test_templates_cannot_run_code_or_read_files(tmp_path: Path) -> None:
    folder = tmp_path / "templates"
    folder.mkdir()
    (folder / "evil.txt").write_text("Subject: x\n{{ ''.__class__.__mro__[1].__subclasses__() }}", encoding="utf-8")
    (folder / "files.txt").write_text("Subject: x\n{% include '/etc/passwd' %}", encoding="utf-8")
    from engine.templates import TemplateProblem

    for stage in ("evil", "files"):
        with pytest.raises(TemplateProblem):
            Renderer(folder).render_parts(stage, "email", message().context, language=None)


def test_starttls_with_auth_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cert = make_certificate(tmp_path)
    monkeypatch.setenv("TEST_SMTP_USER", "billing")
    monkeypatch.setenv("TEST_SMTP_PASSWORD", "s3cret")
    with SMTPServer(tls="starttls", cert=cert, auth=("billing", "s3cret")) as server:
        ch = channel(
            tmp_path,
            host="127.0.0.1",
            port=server.port,
            security="starttls",
            ca_file=str(cert[0]),
            username_env="TEST_SMTP_USER",
            password_env="TEST_SMTP_PASSWORD",
        )
        send(ch, message(language="en"))
    assert server.logins == ["billing"]
    assert len(server.messages) == 1 and server.messages[0]["Subject"].startswith("Reminder: invoice INV-7")


def test_implicit_tls_with_auth(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cert = make_certificate(tmp_path)
    monkeypatch.setenv("TEST_SMTP_PASSWORD", "s3cret")
    with SMTPServer(tls="tls", cert=cert, auth=("billing", "s3cret")) as server:
        ch = channel(
            tmp_path,
            host="127.0.0.1",
            port=server.port,
            security="tls",
            ca_file=str(cert[0]),
            username="billing",
            password_env="TEST_SMTP_PASSWORD",
        )
        send(ch, message())
    assert server.logins == ["billing"] and len(server.messages) == 1


def test_untrusted_certificate_is_a_transient_failure(tmp_path: Path) -> None:
    cert = make_certificate(tmp_path)
    with SMTPServer(tls="tls", cert=cert) as server:
        ch = channel(tmp_path, host="127.0.0.1", port=server.port, security="tls")  # no ca_file: not trusted
        with pytest.raises(TransientDeliveryError):
            send(ch, message())
    assert server.messages == []


def test_wrong_password_is_permanent_with_the_servers_reply(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_SMTP_PASSWORD", "wrong")
    with SMTPServer(auth=("billing", "s3cret")) as server:
        ch = channel(
            tmp_path,
            host="127.0.0.1",
            port=server.port,
            security="none",
            username="billing",
            password_env="TEST_SMTP_PASSWORD",
        )
        with pytest.raises(PermanentDeliveryError, match="535"):
            send(ch, message())


def test_missing_password_variable_is_transient_and_says_which(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TEST_SMTP_PASSWORD", raising=False)
    ch = channel(tmp_path, host="127.0.0.1", port=free_port(), security="none", password_env="TEST_SMTP_PASSWORD")
    with pytest.raises(TransientDeliveryError, match=r"\$TEST_SMTP_PASSWORD"):
        send(ch, message())


def test_password_in_the_configuration_is_refused(tmp_path: Path) -> None:
    from engine.errors import ConfigError

    with pytest.raises(ConfigError, match="password_env"):
        channel(tmp_path, host="127.0.0.1", password="plain")


def test_connections_are_reused_and_bounded(tmp_path: Path) -> None:
    with SMTPServer() as server:
        ch = channel(tmp_path, host="127.0.0.1", port=server.port, security="none", connections=2)
        msgs = [message(language=None, key=f"K-{i}") for i in range(30)]
        send(ch, *msgs)
    assert len(server.messages) == 30
    assert server.connections <= 2
    assert len(set(server.ids)) == 30


def test_rate_limit_per_minute(tmp_path: Path) -> None:
    with SMTPServer() as server:
        ch = channel(tmp_path, host="127.0.0.1", port=server.port, security="none", rate_per_minute=600)
        started = time.monotonic()
        send(ch, *[message(language=None, key=f"R-{i}") for i in range(6)])
        elapsed = time.monotonic() - started
    assert len(server.messages) == 6
    assert elapsed >= 0.45  # 600/min = one every 0.1 s: the 6th leaves 0.5 s after the first


def test_refused_recipient_is_permanent_and_busy_mailbox_transient(tmp_path: Path) -> None:
    with SMTPServer() as server:
        ch = channel(tmp_path, host="127.0.0.1", port=server.port, security="none")
        with pytest.raises(PermanentDeliveryError, match="550 5.1.1"):
            send(ch, message(recipient="reject@customer.example"))
        with pytest.raises(TransientDeliveryError, match="451"):
            send(ch, message(recipient="busy@customer.example"))
        with pytest.raises(PermanentDeliveryError, match="not an email address"):
            send(ch, message(recipient="no-at-sign"))


def test_without_a_server_messages_become_eml_files(tmp_path: Path) -> None:
    ch = channel(tmp_path)
    (first,) = send(ch, message())
    (again,) = send(ch, message())  # same key: the same file, the same Message-ID
    files = list((tmp_path / "out" / "email").glob("*.eml"))
    assert len(files) == 1 and first.reference == again.reference
    import email as email_lib
    from email import policy

    mail = email_lib.message_from_bytes(files[0].read_bytes(), policy=policy.default)
    assert mail["Subject"] == "付款提醒：发票 INV-7 已逾期 29 天"
    assert parts(mail)["text/html"]  # type: ignore[arg-type]


def test_sweep_to_a_real_smtp_server_end_to_end(make_book, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    with SMTPServer() as server:
        channels = {
            "email": {
                "type": "email",
                "recipient": "email",
                "host": "127.0.0.1",
                "port": server.port,
                "security": "none",
                "from": "ar@acme.example",
            },
            "phone": {"type": "memory", "recipient": "phone"},
            "letter": {"type": "memory", "recipient": "address"},
            "visit": {"type": "memory", "recipient": "address"},
            "legal": {"type": "memory", "recipient": "address"},
        }
        book = make_book(channels=channels, templates=TEMPLATES)
        book.customers(
            {"id": "C1", "name": "Müller GmbH", "credit_grade": "A", "email": "ap@mueller.example", "language": "en"},
            {
                "id": "C2",
                "name": "北京示例科技有限公司",
                "credit_grade": "A",
                "email": "cw@bj.example",
                "language": "zh-CN",
            },
        )
        book.invoice("INV-1", "C1", "1200.00", "2026-03-01")
        book.invoice("INV-2", "C2", "8800.00", "2026-03-01", currency="CNY")
        report = book.run("2026-03-04")
    assert report.dispatch.sent["email"] == 2
    (english,) = server.to("ap@mueller.example")
    (chinese,) = server.to("cw@bj.example")
    assert english["Subject"] == "Reminder: invoice INV-1 is 3 days overdue"
    assert "€1,200.00" in parts(english)["text/plain"]
    assert chinese["Subject"] == "付款提醒：发票 INV-2 已逾期 3 天"
    assert "¥8,800.00" in parts(chinese)["text/plain"] and "2026年3月1日" in parts(chinese)["text/plain"]
    outbox = {row["invoice"]: row for row in book.app.outbox()}
    assert outbox["INV-2"]["status"] == "sent"
    assert chinese["X-Dunning-Key"] == outbox["INV-2"]["key"]
