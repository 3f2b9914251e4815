"""The workspace in a real browser: Playwright driving Debian's chromium (headless, never a downloaded one)
against a real uvicorn server on the web test book. Each test saves the screenshots the README shows
(docs/screenshots/)."""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest

from engine.store import users
from engine.web.links import LINK_SECRET_ENV, customer_link
from tests.web.conftest import NAMES, PASSWORD, WebBook, build_web_book

CHROMIUM = "/usr/bin/chromium"
SHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
LINK_SECRET = "browser-test-link-secret-0123456789"

playwright_api = pytest.importorskip("playwright.sync_api")
pytestmark = pytest.mark.skipif(
    not Path(CHROMIUM).exists() and os.environ.get("CI") != "true",
    reason="chromium is not installed (Debian: apt-get install chromium; .ci/run does)",
)


@dataclass
class Live:
    web: WebBook
    base: str
    browser: Any

    def page(self, language: str = "en-GB") -> Any:
        context = self.browser.new_context(
            viewport={"width": 1280, "height": 860},
            locale=language.split(",")[0].split(";")[0],
            extra_http_headers={"Accept-Language": language},
        )
        return context.new_page()

    def login(self, role: str, language: str = "en-GB") -> Any:
        page = self.page(language)
        page.goto(f"{self.base}/login")
        page.fill("#username", NAMES[role])
        page.fill("#password", PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_url(f"{self.base}/")
        return page


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def live(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Live]:
    import uvicorn

    monkeypatch.setenv(LINK_SECRET_ENV, LINK_SECRET)
    web = build_web_book(tmp_path)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(web.app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "the server did not start"
        time.sleep(0.05)
    SHOTS.mkdir(parents=True, exist_ok=True)
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=shutil.which("chromium") or CHROMIUM, args=["--no-sandbox"])
        try:
            yield Live(web, f"http://127.0.0.1:{port}", browser)
        finally:
            browser.close()
            server.should_exit = True
            thread.join(timeout=10)


def no_script_errors(page: Any) -> list[str]:
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    return errors


def test_a_collector_records_a_promise_from_the_worklist_and_sees_it_on_the_timeline(live: Live) -> None:
    page = live.login("collector")
    errors = no_script_errors(page)
    page.goto(f"{live.base}/worklist")
    assert page.get_attribute("html", "data-ready") == "1"
    page.screenshot(path=str(SHOTS / "worklist.png"), full_page=True)
    row = page.locator('tr[data-row="INV-PROMISE-OWN"]')
    row.locator("summary", has_text="Promised").click()
    row.locator('input[name="amount"]').fill("600")
    row.locator('input[name="by"]').fill("2026-01-30")
    row.locator("button", has_text="Record promise").click()
    row.locator(".status .answer.ok").wait_for()
    assert page.url == f"{live.base}/worklist"  # acted in place
    assert "Promised" in row.locator(".status").inner_text()
    page.click('a[href="/invoices/INV-PROMISE-OWN"]')
    event = page.locator('li[data-kind="promise"]')
    assert "by alice" in event.inner_text() and "€600.00" in event.inner_text()
    assert "2026" in event.inner_text()
    page.screenshot(path=str(SHOTS / "invoice.png"), full_page=True)
    assert errors == []


def test_a_manager_approves_an_invoice_from_the_queue(live: Live) -> None:
    page = live.login("manager")
    page.goto(f"{live.base}/approvals")
    row = page.locator('tr[data-row="INV-APPROVE"]')
    page.screenshot(path=str(SHOTS / "approvals.png"), full_page=True)
    row.locator("button", has_text="Approve").click()
    row.locator(".status .answer.ok").wait_for()
    page.reload()
    assert page.locator('tr[data-row="INV-APPROVE"]').count() == 0
    approvals = [e for e in live.web.book.app.history("INV-APPROVE") if e["kind"] == "approval"]
    assert approvals and approvals[-1]["actor"] == NAMES["manager"]


def test_a_manager_acknowledges_a_warning_on_the_dashboard(live: Live) -> None:
    warning = live.web.ids["warning_other"]
    page = live.login("manager")
    errors = no_script_errors(page)
    section = page.locator("section.warnings")
    row = section.locator(f'tr[data-row="warning-{warning}"]')
    assert "two_overdue" in row.inner_text() and "Beta SA" in row.inner_text()
    section.screenshot(path=str(SHOTS / "warnings.png"))
    row.locator('input[name="note"]').fill("asked sales to hold new orders")
    row.locator("button", has_text="Acknowledge").click()
    row.locator(".status .answer.ok").wait_for()
    assert page.url == f"{live.base}/"  # acknowledged in place
    page.reload()
    assert page.locator(f'tr[data-row="warning-{warning}"]').count() == 0
    assert page.locator(f'tr[data-row="warning-{live.web.ids["warning_own"]}"]').count() == 1
    acked = [e for e in live.web.book.app.history(customer="C-OTHER") if e["kind"] == "warning_acknowledged"]
    assert [(e["actor"], e["note"]) for e in acked] == [(NAMES["manager"], "asked sales to hold new orders")]
    assert live.web.book.app.credit.warning(warning)["status"] == "acknowledged"
    assert errors == []


def test_a_collector_confirms_a_suggested_promise_on_the_inbound_triage(live: Live) -> None:
    message = live.web.ids["message_own"]
    page = live.login("collector")
    errors = no_script_errors(page)
    page.goto(f"{live.base}/inbound")
    page.screenshot(path=str(SHOTS / "inbound.png"), full_page=True)
    row = page.locator(f'tr[data-row="message-{message}"]')
    assert "INV-7001-OWN" in row.inner_text()
    row.locator("button", has_text="Confirm").click()
    row.locator(".status .answer.ok").wait_for()
    promise = [e for e in live.web.book.app.history("INV-7001-OWN") if e["kind"] == "promise"]
    assert [(e["actor"], e["by"]) for e in promise] == [(NAMES["collector"], "2026-02-01")]
    assert errors == []


def test_a_viewer_sees_verify_ok_and_no_action_buttons(live: Live) -> None:
    page = live.login("viewer")
    page.goto(f"{live.base}/audit")
    verdict = page.locator('[data-verify="ok"]')
    assert "Verify OK" in verdict.inner_text()
    head = page.locator("code.head").inner_text()
    assert len(head) == 64
    page.screenshot(path=str(SHOTS / "audit.png"), full_page=True)
    for url in ("/worklist", "/invoices/INV-APPROVE", "/approvals", "/outbox", "/policies"):
        page.goto(f"{live.base}{url}")
        assert page.locator('main form[method="post"]').count() == 0, url
        assert page.locator('main form[method="post"] button, main summary.button').count() == 0, url


def test_a_customer_link_records_a_dispute(live: Live) -> None:
    link = customer_link(live.base, "C-OWN", secret=LINK_SECRET.encode(), now=live.web.book.clock.now(), days=30)
    page = live.page()
    page.goto(link)
    assert "Alpha GmbH" in page.locator("h1").inner_text()
    page.screenshot(path=str(SHOTS / "customer-view.png"), full_page=True)
    row = page.locator('tr[data-row="INV-DISPUTE-OWN"]')
    row.locator("summary", has_text="I dispute this").click()
    row.locator("textarea").fill("The goods arrived damaged")
    row.locator("button", has_text="Send").click()
    page.locator(".answer.ok").wait_for()
    assert "recorded your dispute" in page.locator(".answer.ok").inner_text()
    assert "under dispute" in page.locator('tr[data-row="INV-DISPUTE-OWN"]').inner_text()
    dispute = [e for e in live.web.book.app.history("INV-DISPUTE-OWN") if e["kind"] == "dispute"]
    assert dispute and dispute[-1]["actor"] == "customer:C-OWN"
    assert "The goods arrived damaged" in dispute[-1]["reason"]
    page.goto(link[:-4] + ("AAAA" if not link.endswith("AAAA") else "BBBB"))
    assert "Alpha" not in page.content() and "INV-" not in page.content()
    expired = customer_link(
        live.base, "C-OWN", secret=LINK_SECRET.encode(), now=live.web.book.clock.now() - timedelta(days=31), days=30
    )
    assert page.goto(expired).status == 403


def test_the_chinese_ui_renders(live: Live) -> None:
    users.set_language(live.web.book.app.repo, NAMES["collector"], "zh-CN")
    page = live.login("collector", language="en-GB")  # the user's own setting wins over the browser's
    assert page.get_attribute("html", "lang") == "zh-CN"
    assert "仪表板" in page.locator("header nav").inner_text()
    assert "近 12 个月趋势" in page.content() and "应收账款账龄" in page.content()
    page.goto(f"{live.base}/worklist")
    assert "工作清单" in page.locator("h1").inner_text() and "无人接听" in page.content()
    page.screenshot(path=str(SHOTS / "worklist-zh.png"), full_page=True)
    browser_only = live.page("zh-CN,zh;q=0.9")  # nobody logged in: the customer page follows the browser
    link = customer_link(live.base, "C-OWN", secret=LINK_SECRET.encode(), now=live.web.book.clock.now(), days=30)
    browser_only.goto(link)
    assert "您的账户" in browser_only.locator("h1").inner_text()


def year_of_business(root: Path) -> WebBook:
    """A book with a year of history — invoices issued every month, most paid (better grades sooner),
    some late or open — under the shipped policies, for the dashboard's charts and trends."""
    import random

    from engine.web.app import create_app
    from engine.web.auth import hash_password
    from tests.conftest import MEMORY_CHANNELS, Book, at
    from tests.web.conftest import SECRET

    rules = Path(__file__).resolve().parents[2] / "rules"
    policies = {f.name: f.read_text(encoding="utf-8") for f in sorted(rules.glob("*.yaml"))}
    book = Book(root, f"sqlite:///{root / 'year.db'}", policies, channels=MEMORY_CHANNELS)
    draw = random.Random(7)
    grades = "AABBCCD"
    book.customers(
        *(
            {
                "id": f"K{i:02d}",
                "name": f"Kunde {i:02d} GmbH" if i % 3 else f"客户 {i:02d} 有限公司",
                "credit_grade": grades[i % len(grades)],
                "owner": ("alice", "bob", "carol")[i % 3],
            }
            for i in range(36)
        )
    )
    today = date(2026, 6, 15)
    invoices, payments = [], []
    for month in range(13):
        issued = date(2025 + (5 + month) // 12, (5 + month) % 12 + 1, 1)
        for i in range(36):
            for n in range(draw.choice((0, 1, 1, 2))):
                due = issued + timedelta(days=30)
                if issued >= today:
                    continue
                number = f"{issued:%y%m}-{i:02d}-{n}"
                amount = draw.choice((800, 1500, 2400, 5000, 9000, 16000)) + draw.randint(0, 99)
                invoices.append(
                    {
                        "number": number,
                        "customer_id": f"K{i:02d}",
                        "currency": "EUR" if i % 4 else "CNY",
                        "amount": str(amount),
                        "issued_on": issued.isoformat(),
                        "due_on": due.isoformat(),
                    }
                )
                lateness = {"A": 4, "B": 12, "C": 35, "D": 70}[grades[i % len(grades)]]
                paid_on = due + timedelta(days=draw.randint(-10, lateness))
                if paid_on <= today and draw.random() < 0.9:
                    payments.append(
                        {
                            "invoice": number,
                            "amount": str(amount),
                            "paid_on": paid_on.isoformat(),
                            "reference": f"R-{number}",
                        }
                    )
    book.app.importer().import_rows("invoices", invoices)
    book.app.importer().import_rows("payments", payments)
    day = date(2026, 4, 1)
    while day <= today:
        book.app.sweeper().run(at(day))
        day += timedelta(days=7)
    book.clock.at = at(today, 10)
    book.app.dispatch(at(today, 10))
    app = create_app(book.settings, secret=SECRET, dunning=book.app)
    for role in ("viewer", "collector", "manager"):
        users.add_user(
            book.app.repo,
            NAMES[role],
            role,
            hash_password(PASSWORD),
            "zh-CN" if role == "collector" else None,
            book.clock.now(),
        )
    return WebBook(book, app)


def test_the_dashboard_of_a_year_of_business(tmp_path: Path) -> None:
    import uvicorn

    web = year_of_business(tmp_path)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(web.app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        assert thread.is_alive()
        time.sleep(0.05)
    try:
        with playwright_api.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=shutil.which("chromium") or CHROMIUM, args=["--no-sandbox"])
            live = Live(web, f"http://127.0.0.1:{port}", browser)
            for role, name in (("viewer", "dashboard.png"), ("collector", "dashboard-zh.png")):
                page = live.login(role)
                errors = no_script_errors(page)
                page.reload()
                page.locator('[data-chart="line"]').first.wait_for()
                assert page.locator('.trends[data-currency="EUR"] [data-chart="line"]').count() == 3
                assert page.locator('.trends[data-currency="CNY"]').count() == 1
                points = page.locator('.trends[data-currency="EUR"] circle').count()
                assert points >= 3 * 10  # DSO, CEI, overdue share for (nearly) every one of the 12 months
                page.screenshot(path=str(SHOTS / name), full_page=True)
                assert errors == []
            browser.close()
    finally:
        server.should_exit = True
        thread.join(timeout=10)
