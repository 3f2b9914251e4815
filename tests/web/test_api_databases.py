"""The API on both databases: lists, an action per kind, the security log and a session, on SQLite and on
a real PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.web.conftest import build_web_book, logged


def test_the_api_works_on_each_database(tmp_path: Path, database_url: str) -> None:
    web = build_web_book(tmp_path, database_url)
    manager, collector = web.client("manager"), web.login("collector")
    page = manager.get("/api/v1/invoices", params={"limit": 5, "q": "own", "status": "all"}).json()
    assert len(page["items"]) == 5 and page["next_cursor"]
    rest = manager.get(
        "/api/v1/invoices", params={"limit": 5, "q": "own", "status": "all", "cursor": page["next_cursor"]}
    ).json()
    assert {i["number"] for i in rest["items"]}.isdisjoint(i["number"] for i in page["items"])
    promise = collector.post(
        "/api/v1/invoices/INV-PROMISE-OWN/actions/promise",
        json={"amount": "250.50", "by": "2026-02-01"},
        headers={"X-CSRF-Token": collector.csrf},
    )
    assert promise.status_code == 200 and promise.json()["amount"] == "250.50" and promise.json()["actor"] == "alice"
    assert manager.post("/api/v1/invoices/INV-APPROVE/actions/approve").json()["stage"] == "legal"
    assert manager.post(f"/api/v1/outbox/{web.ids['failed']}/retry").json()["kind"] == "retry"
    assert (
        manager.post(
            f"/api/v1/tasks/{web.ids['task_other']}/done",
            json={"outcome": "promised", "amount": 100, "by": "2026-02-02"},
        ).json()["outcome"]
        == "promised"
    )
    customers = manager.get("/api/v1/customers", params={"limit": 2}).json()
    assert [c["id"] for c in customers["items"]] == ["C-NOMAIL", "C-OTHER"] and customers["next_cursor"]
    assert (
        manager.get("/api/v1/customers", params={"cursor": customers["next_cursor"]}).json()["items"][0]["id"]
        == "C-OWN"
    )
    assert manager.get("/api/v1/audit/verify").json()["ok"] is True
    kinds = [e["kind"] for e in logged(web.book.app.repo)]
    assert kinds.count("user_added") == 4 and "login" in kinds and "token_used" in kinds


def test_warnings_credit_and_the_inbound_webhook_on_each_database(
    tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from engine.web import inbound as hook
    from tests.integration.inbound_corpus import reply

    monkeypatch.setenv(hook.SECRET_ENV, "database-test-inbound-secret")
    web = build_web_book(tmp_path, database_url)
    manager = web.client("manager")
    warnings = manager.get("/api/v1/warnings", params={"limit": 1}).json()
    assert len(warnings["items"]) == 1 and warnings["next_cursor"]
    acked = manager.post(f"/api/v1/warnings/{web.ids['warning_own']}/ack", json={"note": "on it"}).json()
    assert acked["kind"] == "warning_acknowledged" and acked["actor"] == "mona"
    check = manager.get("/api/v1/customers/C-OWN/credit-check", params={"amount": "5"}).json()
    assert check["customer_id"] == "C-OWN" and check["ok"] is False  # no credit.yaml: no limit known
    raw = reply("ap@example.com", "Re: INV-7002-OTHER", "We will pay on 2026-02-03.", mid="<db@c>")
    stamp = str(int(web.book.clock.now().timestamp()))
    headers = {
        "Content-Type": "message/rfc822",
        hook.TIMESTAMP_HEADER: stamp,
        hook.SIGNATURE_HEADER: hook.sign(b"database-test-inbound-secret", stamp, raw),
    }
    first = web.client().post("/api/v1/inbound/messages", content=raw, headers=headers).json()
    again = web.client().post("/api/v1/inbound/messages", content=raw, headers=headers).json()
    assert (first["duplicate"], first["match_by"], again["duplicate"]) == (False, "invoice_number", True)
    replies = [
        e for e in web.book.app.history("INV-7002-OTHER") if e["kind"] == "reply" and e["message_id"] == "<db@c>"
    ]
    assert len(replies) == 1
