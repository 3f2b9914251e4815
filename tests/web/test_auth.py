"""Sessions, CSRF, the login rate limit, tokens and the security log, through the real application."""

from __future__ import annotations

from datetime import timedelta

import pytest
from fastapi import Depends

from engine.config import Settings
from engine.errors import ConfigError
from engine.store import users
from engine.web.app import create_app, safe_next
from engine.web.auth import MAX_FAILURES_PER_USER, Role, WebUser, hash_password, page_user, permits
from tests.web.conftest import NAMES, PASSWORD, SECRET, WebBook, logged


def kinds(web: WebBook) -> list[str]:
    return [e["kind"] for e in logged(web.book.app.repo)]


def test_login_sets_a_signed_httponly_lax_cookie_and_records_it(web_book: WebBook) -> None:
    client = web_book.client()
    page = client.get("/login")
    assert page.status_code == 200 and 'name="csrf_token"' in page.text
    client = web_book.login("collector")
    cookie = next(c for c in client.cookies.jar if c.name == "dunning_session")
    assert cookie.has_nonstandard_attr("HttpOnly") or "httponly" in str(cookie._rest).lower()
    answer = client.get("/api/v1/me")
    assert answer.json()["name"] == "alice" and answer.json()["role"] == "collector"
    entry = logged(web_book.book.app.repo)[-1]
    assert entry["kind"] == "login" and entry["user"] == "alice" and entry["address"] == "testclient"
    # a tampered cookie is no session
    tampered = web_book.client()
    tampered.cookies.set("dunning_session", cookie.value[:-3] + "abc")
    assert tampered.get("/api/v1/me").status_code == 401


def test_set_cookie_header_flags(web_book: WebBook) -> None:
    client = web_book.client()
    csrf = client.get("/login").text.split('name="csrf_token" value="')[1].split('"')[0]
    answer = client.post(
        "/login", data={"username": "alice", "password": PASSWORD, "csrf_token": csrf}, follow_redirects=False
    )
    header = answer.headers["set-cookie"].lower()
    assert "httponly" in header and "samesite=lax" in header and "path=/" in header


def test_every_form_without_the_csrf_token_is_refused(web_book: WebBook) -> None:
    client = web_book.client()
    client.get("/login")
    refused = client.post("/login", data={"username": "alice", "password": PASSWORD})
    assert refused.status_code == 403 and refused.headers["content-type"].startswith("application/problem+json")
    wrong = client.post("/login", data={"username": "alice", "password": PASSWORD, "csrf_token": "guess"})
    assert wrong.status_code == 403
    assert "login" not in kinds(web_book)
    session = web_book.login("manager")
    assert session.post("/logout", data={}).status_code == 403
    assert session.get("/api/v1/me").status_code == 200  # still logged in
    assert session.post("/logout", data={"csrf_token": session.csrf}, follow_redirects=False).status_code == 303
    assert session.get("/api/v1/me").status_code == 401
    assert kinds(web_book)[-1] == "logout"


def test_api_writes_with_the_session_cookie_need_the_csrf_header(web_book: WebBook) -> None:
    session = web_book.login("collector")
    body = {"text": "called"}
    refused = session.post("/api/v1/invoices/INV-NOTE-OWN/actions/note", json=body)
    assert refused.status_code == 403 and "X-CSRF-Token" in refused.json()["detail"]
    done = session.post("/api/v1/invoices/INV-NOTE-OWN/actions/note", json=body, headers={"X-CSRF-Token": session.csrf})
    assert done.status_code == 200 and done.json()["actor"] == "alice"


def test_a_session_ends_after_the_idle_limit(web_book: WebBook) -> None:
    clock = web_book.book.clock
    session = web_book.login("viewer")
    clock.at += timedelta(minutes=29)
    assert session.get("/api/v1/me").status_code == 200  # within 30 idle minutes: still on, and refreshed
    clock.at += timedelta(minutes=29)
    assert session.get("/api/v1/me").status_code == 200
    clock.at += timedelta(minutes=31)
    assert session.get("/api/v1/me").status_code == 401
    assert session.get("/api/v1/me").status_code == 401  # the cookie was cleared, not revived


def test_a_session_ends_after_the_absolute_limit_however_busy(web_book: WebBook) -> None:
    clock = web_book.book.clock
    session = web_book.login("viewer")
    for _ in range(12 * 3 - 1):  # a request every 20 minutes for just under 12 hours
        clock.at += timedelta(minutes=20)
        assert session.get("/api/v1/me").status_code == 200
    clock.at += timedelta(minutes=21)
    assert session.get("/api/v1/me").status_code == 401


def test_login_is_rate_limited_per_user_name_and_per_address(web_book: WebBook) -> None:
    client = web_book.client()

    def csrf() -> str:
        return client.get("/login").text.split('name="csrf_token" value="')[1].split('"')[0]

    def attempt(name: str, password: str) -> int:
        return client.post(
            "/login", data={"username": name, "password": password, "csrf_token": csrf()}, follow_redirects=False
        ).status_code

    for _ in range(MAX_FAILURES_PER_USER):
        assert attempt("alice", "wrong password") == 401
    limited = client.post("/login", data={"username": "alice", "password": PASSWORD, "csrf_token": csrf()})
    assert limited.status_code == 429 and int(limited.headers["retry-after"]) > 0
    assert "too many failed logins" in limited.text
    assert attempt("mona", PASSWORD) == 303  # another user from the same address is not locked out yet
    web_book.book.clock.at += timedelta(minutes=16)
    assert attempt("alice", PASSWORD) == 303
    # per address: many names tried from one address
    for index in range(20):
        attempt(f"guess{index}", "wrong password")
    assert attempt("adam", PASSWORD) == 429
    log = kinds(web_book)
    assert log.count("login_failed") == MAX_FAILURES_PER_USER + 20 and "refused" in log


def test_a_revoked_or_expired_token_is_refused_at_once(web_book: WebBook) -> None:
    client = web_book.client("collector")
    assert client.get("/api/v1/me").status_code == 200
    assert "token_used" in kinds(web_book)
    assert users.revoke_tokens(web_book.book.app.repo, "alice", web_book.book.clock.now()) == 1
    answer = client.get("/api/v1/me")
    assert answer.status_code == 401 and "revoked" in answer.json()["detail"]
    assert answer.headers["www-authenticate"] == "Bearer"
    viewer = web_book.client("viewer")
    web_book.book.clock.at += timedelta(days=31)  # the fixture's tokens expire after 30 days
    assert viewer.get("/api/v1/me").status_code == 401
    assert web_book.client().get("/api/v1/me", headers={"Authorization": "Basic abc"}).status_code == 401


def test_disabling_a_user_or_changing_the_password_ends_their_sessions(web_book: WebBook) -> None:
    repo, now = web_book.book.app.repo, web_book.book.clock.now()
    viewer, collector = web_book.login("viewer"), web_book.login("collector")
    token_client = web_book.client("viewer")
    users.set_password(repo, "alice", hash_password("another password"), now)
    assert collector.get("/api/v1/me").status_code == 401
    users.disable_user(repo, "vera", now)
    assert viewer.get("/api/v1/me").status_code == 401
    assert token_client.get("/api/v1/me").status_code == 401
    client = web_book.client()
    csrf = client.get("/login").text.split('name="csrf_token" value="')[1].split('"')[0]
    assert client.post("/login", data={"username": "vera", "password": PASSWORD, "csrf_token": csrf}).status_code == 401


def test_role_changes_take_effect_on_the_next_request(web_book: WebBook) -> None:
    client = web_book.client("viewer")
    assert client.post("/api/v1/invoices/INV-APPROVE/actions/approve").status_code == 403
    users.set_role(web_book.book.app.repo, "vera", "manager", web_book.book.clock.now())
    assert client.post("/api/v1/invoices/INV-APPROVE/actions/approve").json()["actor"] == "vera"
    assert "role_changed" in kinds(web_book)


def test_pages_redirect_to_the_login_and_back(web_book: WebBook) -> None:
    @web_book.app.get("/test-only-page")
    def _page(user: WebUser = Depends(page_user)) -> dict[str, str]:
        return {"hello": user.name}

    client = web_book.client()
    answer = client.get("/test-only-page?x=1", follow_redirects=False)
    assert answer.status_code == 303 and answer.headers["location"] == "/login?next=/test-only-page%3Fx%3D1"
    page = client.get(answer.headers["location"])
    csrf = page.text.split('name="csrf_token" value="')[1].split('"')[0]
    assert 'name="next" value="/test-only-page?x=1"' in page.text
    back = client.post(
        "/login",
        data={"username": "adam", "password": PASSWORD, "csrf_token": csrf, "next": "/test-only-page?x=1"},
        follow_redirects=False,
    )
    assert back.headers["location"] == "/test-only-page?x=1"
    assert client.get("/test-only-page").json() == {"hello": "adam"}


@pytest.mark.parametrize("target", ["//evil.example/x", "https://evil.example/", "\\\\evil", "", None, "javascript:x"])
def test_after_login_only_paths_of_this_site(target: str | None) -> None:
    assert safe_next(target) == "/"


def test_the_role_table() -> None:
    def user(role: Role) -> WebUser:
        return WebUser("alice", role)

    assert all(permits(user(r), "read") for r in Role)
    assert not permits(user(Role.VIEWER), "note", owner="alice")
    assert permits(user(Role.COLLECTOR), "promise", owner="alice")
    assert not permits(user(Role.COLLECTOR), "promise", owner="bob")
    assert not permits(user(Role.COLLECTOR), "promise", owner=None)
    assert not permits(user(Role.COLLECTOR), "approve", owner="alice")
    assert permits(user(Role.MANAGER), "promise", owner="bob") and permits(user(Role.MANAGER), "retry")
    assert not permits(user(Role.MANAGER), "users") and permits(user(Role.ADMIN), "users")
    with pytest.raises(ValueError, match="unknown action"):
        permits(user(Role.ADMIN), "launch")


def test_the_server_needs_a_long_secret(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.delenv("DUNNING_WEB_SECRET", raising=False)
    settings = Settings(database=f"sqlite:///{tmp_path / 'x.db'}", base_dir=tmp_path)
    with pytest.raises(ConfigError, match="DUNNING_WEB_SECRET is not set"):
        create_app(settings)
    with pytest.raises(ConfigError, match="too short"):
        create_app(settings, secret="short")
    assert create_app(settings, secret=SECRET).title == "dunning"


def test_there_is_no_default_account(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from fastapi.testclient import TestClient

    app = create_app(Settings(database=f"sqlite:///{tmp_path / 'x.db'}", base_dir=tmp_path), secret=SECRET)
    assert users.list_users(app.state.dunning.repo) == []
    client = TestClient(app)
    csrf = client.get("/login").text.split('name="csrf_token" value="')[1].split('"')[0]
    for name in ("admin", "root"):
        for password in ("admin", "password"):
            assert client.post(
                "/login", data={"username": name, "password": password, "csrf_token": csrf}
            ).status_code in (401, 429)
    assert NAMES  # the fixture's accounts exist only where a test made them
