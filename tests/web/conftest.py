"""The web tests' book: two collectors' customers, invoices ready for every action, a task for each
collector, a failed notification, an invoice awaiting approval; one account and one API token per role."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from engine.errors import SweepBusy
from tests.conftest import MEMORY_CHANNELS, Book, at

SECRET = "test-secret-" + "x" * 40
PASSWORD = "correct horse battery"
ROLES = ("viewer", "collector", "manager", "admin")
#: The account of each role; the collector owns the customers whose owner is "alice".
NAMES = {"viewer": "vera", "collector": "alice", "manager": "mona", "admin": "adam"}

POLICY = """\
name: web
min_days_between_stages: 0
catch_up: jump
stages:
  - {name: reminder, after_days: 1, channels: [email]}
  - {name: phone, after_days: 10, channels: [phone]}
  - {name: legal, after_days: 30, channels: [letter], approval: required}
"""
#: An early warning the sweep raises for C-OWN (alice's) and C-OTHER (bob's): six overdue invoices each.
WARNINGS = """\
warnings:
  - {name: two_overdue, when: "customer.overdue_count >= 2", severity: high}
"""
CHANNELS = {**MEMORY_CHANNELS, "phone": {"type": "phone", "recipient": "phone"}}
#: Invoices the action rows of the role table act on: one owned by alice, one by bob, per action.
ACTIONS = ("dispute", "promise", "plan", "note", "write-off", "move")


@dataclass
class WebBook:
    book: Book
    app: Any
    tokens: dict[str, str] = field(default_factory=dict)
    ids: dict[str, Any] = field(default_factory=dict)

    def client(self, role: str | None = None) -> Any:
        from fastapi.testclient import TestClient

        client = TestClient(self.app)
        if role is not None:
            client.headers["Authorization"] = f"Bearer {self.tokens[role]}"
        return client

    def login(self, role: str, password: str = PASSWORD) -> Any:
        """A client with a logged-in session (no bearer token); `client.csrf` is the session's token."""
        import re

        client = self.client()
        page = client.get("/login")
        client.csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
        answer = client.post(
            "/login",
            data={"username": NAMES[role], "password": password, "csrf_token": client.csrf},
            follow_redirects=False,
        )
        assert answer.status_code == 303, answer.text
        client.csrf = client.get("/api/v1/me").json()["csrf_token"]  # a new session has a new token
        return client


def logged(repo: Any) -> list[dict[str, Any]]:
    """The security log once every line the server handed to its writer thread is written."""
    from engine.store import users
    from engine.web.auth import flush_security_log

    flush_security_log()
    return users.security_log(repo)


def build_web_book(root: Path, url: str = "") -> WebBook:
    from engine.store import users
    from engine.web.app import create_app
    from engine.web.auth import hash_password, new_token, token_digest

    book = Book(
        root, url or f"sqlite:///{root / 'web.db'}", {"web.yaml": POLICY, "warnings.yaml": WARNINGS}, channels=CHANNELS
    )
    base = {"credit_grade": "A"}
    book.customers(
        {**base, "id": "C-OWN", "name": "Alpha GmbH", "owner": "alice"},
        {**base, "id": "C-OTHER", "name": "Beta SA", "owner": "bob"},
        {**base, "id": "C-TASK-OWN", "name": "Gamma Ltd", "owner": "alice"},
        {**base, "id": "C-TASK-OTHER", "name": "Delta BV", "owner": "bob"},
        {**base, "id": "C-NOMAIL", "name": "Epsilon Oy", "owner": "alice", "email": ""},
    )
    for action in ACTIONS:
        key = action.upper()
        book.invoice(f"INV-{key}-OWN", "C-OWN", "1000.00", due_on="2026-01-10")
        book.invoice(f"INV-{key}-OTHER", "C-OTHER", "1000.00", due_on="2026-01-10")
    book.invoice("INV-RESOLVE", "C-OTHER", "500.00", due_on="2026-01-10")
    book.invoice("INV-APPROVE", "C-OTHER", "9000.00", due_on="2025-11-20")
    book.invoice("INV-TASK-OWN", "C-TASK-OWN", "700.00", due_on="2025-12-28")
    book.invoice("INV-TASK-OTHER", "C-TASK-OTHER", "700.00", due_on="2025-12-28")
    book.invoice("INV-FAIL", "C-NOMAIL", "300.00", due_on="2026-01-10")
    book.invoice("INV-7001-OWN", "C-OWN", "800.00", due_on="2026-01-10")
    book.invoice("INV-7002-OTHER", "C-OTHER", "800.00", due_on="2026-01-10")
    for _attempt in range(50):  # the PostgreSQL sweep lock is server-wide: other test runs may hold it a moment
        try:
            book.run("2026-01-12")
            break
        except SweepBusy:
            time.sleep(0.2)
    from engine.actions import Collector

    Collector(book.app, actor="setup").dispute("INV-RESOLVE", "price wrong")
    book.clock.at = at("2026-01-12", 10)
    app = create_app(book.settings, secret=SECRET, dunning=book.app)
    web = WebBook(book, app)
    now = book.clock.now()
    for role in ROLES:
        users.add_user(book.app.repo, NAMES[role], role, hash_password(PASSWORD), None, now)
        web.tokens[role] = new_token()
        users.add_token(book.app.repo, NAMES[role], token_digest(web.tokens[role]), now + timedelta(days=30), now)
    tasks = {t["customer_id"]: t["id"] for t in web.client("admin").get("/api/v1/tasks").json()["items"]}
    failed = web.client("admin").get("/api/v1/outbox", params={"status": "failed"}).json()["items"]
    warnings = {w["customer_id"]: w["id"] for w in book.app.credit.warnings(open_only=True)}
    web.ids = {
        **received_messages(book),
        "task_own": tasks["C-TASK-OWN"],
        "task_other": tasks["C-TASK-OTHER"],
        "failed": failed[0]["id"],
        "warning_own": warnings["C-OWN"],
        "warning_other": warnings["C-OTHER"],
    }
    return web


def received_messages(book: Book) -> dict[str, int]:
    """Inbound replies as the mailroom reads them: one promise to each collector's customer (matched by the
    invoice number in the subject) and two that match nothing."""
    from engine.replies import Mailroom
    from tests.integration.inbound_corpus import reply

    room = Mailroom(book.app)
    messages = {
        "message_own": reply("ap@example.com", "Re: INV-7001-OWN", "We will pay 800 on 2026-02-01.", mid="<r1@c>"),
        "message_other": reply("ap@example.com", "Re: INV-7002-OTHER", "We will pay on 2026-02-02.", mid="<r2@c>"),
        "message_unmatched": reply("who@else.example", "Hello", "Is this about our account?", mid="<u1@else>"),
        "message_unmatched_2": reply("who@else.example", "Hello again", "Anyone there?", mid="<u2@else>"),
    }
    return {
        name: int(room.process(raw, mailbox="test", uid=str(n))["id"]) for n, (name, raw) in enumerate(messages.items())
    }


@pytest.fixture
def web_book(tmp_path: Path) -> WebBook:
    return build_web_book(tmp_path)


@pytest.fixture
def fresh_web_book(tmp_path_factory: pytest.TempPathFactory) -> Callable[[], WebBook]:
    return lambda: build_web_book(tmp_path_factory.mktemp("web"))
