"""The customer view: signed links (engine.web.links), the page without login, "I have paid" and "I dispute
this", and the link in rendered notifications when `web.public_url` is set."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import pytest

from channels.memory import MemoryChannel
from engine.errors import ConfigError, LinkRefused
from engine.web.links import LINK_SECRET_ENV, customer_link, link_maker, sign, verify
from tests.conftest import Book, at
from tests.web.conftest import WebBook

SECRET = "link-secret-for-tests-0123456789"


@pytest.fixture
def link_secret(monkeypatch: pytest.MonkeyPatch) -> bytes:
    monkeypatch.setenv(LINK_SECRET_ENV, SECRET)
    return SECRET.encode()


def page_of(web: WebBook, customer: str, secret: bytes, days: float = 30) -> str:
    link = customer_link("http://testserver", customer, secret=secret, now=web.book.clock.now(), days=days)
    return link.removeprefix("http://testserver")


def csrf_of(html: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)  # type: ignore[union-attr]


def test_a_token_names_its_customer_and_any_change_or_expiry_refuses_it() -> None:
    now = at("2026-01-12")
    token = sign("C1", secret=b"k" * 32, expires=now + timedelta(days=1))
    assert verify(token, secret=b"k" * 32, now=now) == "C1"
    for position in range(len(token)):
        changed = token[:position] + ("A" if token[position] != "A" else "B") + token[position + 1 :]
        with pytest.raises(LinkRefused):
            verify(changed, secret=b"k" * 32, now=now)
    with pytest.raises(LinkRefused):
        verify(token, secret=b"other-secret-xxxxxxxx", now=now)
    with pytest.raises(LinkRefused):
        verify(token, secret=b"k" * 32, now=now + timedelta(days=1, seconds=1))
    for junk in ("", ".", "abc", "a.b.c", "%%%.%%%"):
        with pytest.raises(LinkRefused):
            verify(junk, secret=b"k" * 32, now=now)


def test_links_need_the_secret_once_a_public_url_is_set() -> None:
    assert link_maker(None, 30, lambda: at("2026-01-12"), environ={}) is None
    with pytest.raises(ConfigError, match=LINK_SECRET_ENV):
        link_maker("https://pay.example", 30, lambda: at("2026-01-12"), environ={})
    with pytest.raises(ConfigError, match="shorter"):
        link_maker("https://pay.example", 30, lambda: at("2026-01-12"), environ={LINK_SECRET_ENV: "short"})


def test_the_page_shows_the_customers_open_invoices_and_what_they_owe(web_book: WebBook, link_secret: bytes) -> None:
    client = web_book.client()
    page = client.get(page_of(web_book, "C-OWN", link_secret))
    assert page.status_code == 200 and "Alpha GmbH" in page.text
    for action in ("DISPUTE", "PROMISE", "PLAN", "NOTE", "WRITE-OFF", "MOVE"):
        assert f"INV-{action}-OWN" in page.text
    assert "INV-PROMISE-OTHER" not in page.text and "Beta SA" not in page.text
    assert "€6,800.00" in page.text  # six invoices of 1,000 and one of 800 open
    assert 'name="robots" content="noindex"' in page.text


def test_tampered_expired_or_secretless_links_get_403_and_reveal_nothing(
    web_book: WebBook, link_secret: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = web_book.client()
    good = page_of(web_book, "C-OWN", link_secret)
    tampered = good[:-3] + ("AAA" if not good.endswith("AAA") else "BBB")
    answers = [
        client.get(tampered),
        client.get(page_of(web_book, "C-OWN", b"x" * 32)),
        client.get(page_of(web_book, "C-OWN", link_secret, days=-1)),
        client.get(page_of(web_book, "NO-SUCH-CUSTOMER", link_secret)),
    ]
    monkeypatch.delenv(LINK_SECRET_ENV)
    answers.append(client.get(good))
    for answer in answers:
        assert answer.status_code == 403
        assert "Alpha" not in answer.text and "INV-" not in answer.text and "C-OWN" not in answer.text


def test_i_have_paid_pauses_escalation_and_makes_a_task_for_the_owner(web_book: WebBook, link_secret: bytes) -> None:
    client = web_book.client()
    url = page_of(web_book, "C-OWN", link_secret)
    token = csrf_of(client.get(url).text)
    answer = client.post(
        f"{url}/INV-PLAN-OWN/paid", data={"csrf_token": token, "reference": "BANK-REF 42"}, follow_redirects=False
    )
    assert answer.status_code == 303 and answer.headers["location"] == f"{url}?done=paid"
    assert "We have noted your payment" in client.get(answer.headers["location"]).text
    history = web_book.book.app.history("INV-PLAN-OWN")
    claim = next(e for e in history if e["kind"] == "payment_claimed")
    assert claim["reference"] == "BANK-REF 42" and claim["actor"] == "customer:C-OWN"
    assert claim["paused_until"] == "2026-01-19"  # claim_pause_days: 7
    promise = next(e for e in history if e["kind"] == "promise")
    assert promise["by"] == "2026-01-19" and "BANK-REF 42" in promise["note"]
    assert web_book.book.stage("INV-PLAN-OWN") == "promised"
    tasks = web_book.client("admin").get("/api/v1/tasks", params={"owner": "alice", "kind": "claim"}).json()["items"]
    assert [t["invoices"][0]["number"] for t in tasks] == ["INV-PLAN-OWN"]


def test_i_dispute_this_records_a_dispute_in_the_customers_words(web_book: WebBook, link_secret: bytes) -> None:
    client = web_book.client()
    url = page_of(web_book, "C-OWN", link_secret)
    token = csrf_of(client.get(url).text)
    answer = client.post(f"{url}/INV-NOTE-OWN/dispute", data={"csrf_token": token, "text": "Never delivered\x07!"})
    assert answer.status_code == 200 and "recorded your dispute" in answer.text
    dispute = next(e for e in web_book.book.app.history("INV-NOTE-OWN") if e["kind"] == "dispute")
    assert dispute["actor"] == "customer:C-OWN" and dispute["reason"] == "customer: Never delivered !"
    empty = client.post(f"{url}/INV-MOVE-OWN/dispute", data={"csrf_token": token, "text": "  "})
    assert empty.status_code == 422 and "please write" in empty.text


def test_a_link_cannot_act_on_another_customers_invoice_nor_without_csrf(web_book: WebBook, link_secret: bytes) -> None:
    client = web_book.client()
    url = page_of(web_book, "C-OWN", link_secret)
    token = csrf_of(client.get(url).text)
    foreign = client.post(f"{url}/INV-NOTE-OTHER/dispute", data={"csrf_token": token, "text": "not mine"})
    assert foreign.status_code == 403 and "Beta" not in foreign.text
    assert client.post(f"{url}/INV-NOTE-OWN/dispute", data={"text": "x"}).status_code == 403
    assert not [e for e in web_book.book.app.history("INV-NOTE-OTHER") if e["kind"] == "dispute"]
    assert not [e for e in web_book.book.app.history("INV-NOTE-OWN") if e["kind"] == "dispute"]


def test_rendered_notifications_carry_the_customers_link(tmp_path: Path, link_secret: bytes) -> None:
    from engine.config import Settings

    book = Book(
        tmp_path,
        f"sqlite:///{tmp_path / 'd.db'}",
        {"p.yaml": "name: p\nstages:\n  - {name: reminder, after_days: 1, channels: [email]}\n"},
        templates=Path(__file__).resolve().parents[2] / "rules" / "templates",
        web={"public_url": "https://pay.example/", "link_days": 10},
    )
    assert isinstance(book.settings, Settings)
    book.customers({"id": "C9", "name": "Zeta", "language": "zh-CN"}, {"id": "C8", "name": "Eta"})
    book.invoice("Z-1", "C9", "100.00", due_on="2026-01-01")
    book.invoice("E-1", "C8", "100.00", due_on="2026-01-01")
    book.run("2026-01-03")
    bodies = {m.customer["id"]: m for m in MemoryChannel.sent}
    for customer, message in bodies.items():
        link = re.search(r"https://pay\.example/c/(\S+)", message.body)
        assert link, message.body
        assert verify(link.group(1), secret=link_secret, now=at("2026-01-12")) == customer
        with pytest.raises(LinkRefused):
            verify(link.group(1), secret=link_secret, now=at("2026-01-14"))  # 10 days after the sweep
    assert "查看未付发票" in bodies["C9"].body and "See your open invoices" in bodies["C8"].body


def test_without_a_public_url_templates_print_no_link(tmp_path: Path) -> None:
    book = Book(
        tmp_path,
        f"sqlite:///{tmp_path / 'd.db'}",
        {"p.yaml": "name: p\nstages:\n  - {name: reminder, after_days: 1, channels: [email]}\n"},
        templates=Path(__file__).resolve().parents[2] / "rules" / "templates",
    )
    book.customers({"id": "C8", "name": "Eta"})
    book.invoice("E-1", "C8", "100.00", due_on="2026-01-01")
    book.run("2026-01-03")
    (message,) = MemoryChannel.sent
    assert "/c/" not in message.body and "open invoices, tell us" not in message.body
    assert message.body.rstrip().endswith("Your Company Ltd")
