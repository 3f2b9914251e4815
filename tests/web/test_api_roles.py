"""Every API endpoint × every role (and no credentials), from ONE table: allowed, 401 or 403.

A row names the least role that may call it; rows on another collector's customer need a manager (the
collector's owner scope). Each role works on a book of its own, so an allowed action really runs (and its
event carries that user as the actor), and a refused one changed nothing and is in the security log.
"""

from __future__ import annotations

import pathlib
from typing import Any, NamedTuple

import pytest

from engine.web.api.common import encode_cursor
from tests.web.conftest import NAMES, ROLES, WebBook, build_web_book, logged

EDITED = "name: web\nstages:\n  - {name: reminder, after_days: 2, channels: [email]}\n"


class Row(NamedTuple):
    method: str
    path: str
    least: str | None  # None: public
    body: Any = None
    ok: int = 200


TABLE: list[Row] = [
    Row("GET", "/healthz", None),
    Row("GET", "/me", "viewer"),
    Row("GET", "/invoices?status=all&limit=5", "viewer"),
    Row("GET", "/invoices/INV-NOTE-OWN", "viewer"),
    Row("GET", "/invoices/INV-NOTE-OWN/history", "viewer"),
    Row("GET", "/invoices/INV-NOTE-OWN/explain", "viewer"),
    Row("GET", "/invoices/INV-NOTE-OWN/charges?as_of=2026-01-20", "viewer"),
    # collector actions: own customers for a collector, any for a manager
    Row("POST", "/invoices/INV-DISPUTE-OWN/actions/dispute", "collector", {"reason": "goods damaged"}),
    Row("POST", "/invoices/INV-DISPUTE-OTHER/actions/dispute", "manager", {"reason": "goods damaged"}),
    Row("POST", "/invoices/INV-PROMISE-OWN/actions/promise", "collector", {"amount": 400, "by": "2026-02-01"}),
    Row("POST", "/invoices/INV-PROMISE-OTHER/actions/promise", "manager", {"amount": "400", "by": "2026-02-01"}),
    Row("POST", "/invoices/INV-PLAN-OWN/actions/plan", "collector", {"installments": "2026-02-01:500,2026-03-01:500"}),
    Row(
        "POST",
        "/invoices/INV-PLAN-OTHER/actions/plan",
        "manager",
        {"installments": [{"due_on": "2026-02-01", "amount": 500}]},
    ),
    Row("POST", "/invoices/INV-NOTE-OWN/actions/note", "collector", {"text": "called, will pay"}),
    Row("POST", "/invoices/INV-NOTE-OTHER/actions/note", "manager", {"text": "called, will pay"}),
    Row("POST", "/tasks/{task_own}/done", "collector", {"outcome": "no_answer", "note": "voicemail"}),
    Row("POST", "/tasks/{task_other}/done", "manager", {"outcome": "paid"}),
    # manager actions, on the collector's own customers too
    Row("POST", "/invoices/INV-WRITE-OFF-OWN/actions/write-off", "manager", {"reason": "insolvent"}),
    Row("POST", "/invoices/INV-MOVE-OWN/actions/move", "manager", {"to": "phone", "reason": "call them"}),
    Row("POST", "/invoices/INV-RESOLVE/actions/resolve", "manager", {"note": "credit note issued"}),
    Row("POST", "/invoices/INV-APPROVE/actions/approve", "manager"),
    Row("POST", "/outbox/{failed}/retry", "manager"),
    Row("GET", "/customers", "viewer"),
    Row("GET", "/customers/C-OWN", "viewer"),
    Row("GET", "/customers/C-OWN/history", "viewer"),
    Row("GET", "/customers/C-OWN/credit-check?amount=100&currency=EUR", "viewer"),
    Row("GET", "/warnings?status=all", "viewer"),
    # a collector acknowledges the warnings of their own customers, a manager any
    Row("POST", "/warnings/{warning_own}/ack", "collector", {"note": "called alice's customer"}),
    Row("POST", "/warnings/{warning_other}/ack", "manager", {"note": "on it"}),
    # the inbound webhook is signed, not authenticated: without $DUNNING_INBOUND_SECRET it is off for everyone
    Row("POST", "/inbound/messages", None, ok=503),
    Row("GET", "/inbound/messages?unmatched=true", "viewer"),
    Row("GET", "/inbound/messages/{message_own}", "viewer"),
    Row("POST", "/inbound/messages/{message_unmatched}/assign", "collector", {"invoice": "INV-TASK-OWN"}),
    Row("POST", "/inbound/messages/{message_unmatched_2}/assign", "manager", {"invoice": "INV-TASK-OTHER"}),
    Row("POST", "/inbound/messages/{message_own}/confirm", "collector", {"intent": "promise"}),
    Row("POST", "/inbound/messages/{message_other}/confirm", "manager", {"intent": "promise", "amount": 300}),
    Row("GET", "/tasks?all=true", "viewer"),
    Row("GET", "/outbox?status=failed", "viewer"),
    *(Row("GET", f"/reports/{name}", "viewer") for name in ("aging", "kpis", "effectiveness", "owners", "forecast")),
    Row("GET", "/audit/verify", "viewer"),
    Row("GET", "/audit/export?format=csv", "viewer"),
    Row("GET", "/audit/export?format=jsonl&kind=import", "viewer"),
    Row("GET", "/policies", "viewer"),
    Row("GET", "/policies/check", "viewer"),
    Row("GET", "/policies/versions", "viewer"),
    Row("POST", "/simulations", "manager", {"to": "2026-01-20"}, ok=202),
    Row("POST", "/policy-diffs", "manager", {"files": {"web.yaml": EDITED}, "horizon": 10}, ok=202),
    Row("GET", "/simulations/{simulation}", "viewer"),
    Row("GET", "/policy-diffs/{diff}", "viewer"),
]
#: The kind of event each action row records.
EVENT_KIND = {
    "dispute": "dispute",
    "promise": "promise",
    "plan": "plan",
    "note": "note",
    "write-off": "write_off",
    "move": "override",
    "resolve": "dispute_resolved",
    "approve": "approval",
    "retry": "retry",
    "ack": "warning_acknowledged",
}

MESSAGES = ("message_own", "message_other", "message_unmatched", "message_unmatched_2")
_books: dict[str, WebBook] = {}


def book_for(who: str, tmp_path_factory: pytest.TempPathFactory) -> WebBook:
    """One book per role (and one for anonymous calls), made on first use; it holds a finished job of each kind."""
    if who not in _books:
        web = build_web_book(tmp_path_factory.mktemp(f"roles-{who}"))
        manager = web.client("manager")
        simulation = manager.post("/api/v1/simulations", json={"to": "2026-01-15"}).json()["id"]
        diff = manager.post("/api/v1/policy-diffs", json={"files": {"web.yaml": EDITED}, "horizon": 5}).json()["id"]
        web.ids.update(simulation=simulation, diff=diff)
        _books[who] = web
    return _books[who]


def expected(row: Row, role: str | None) -> int:
    if row.least is None:
        return row.ok
    if role is None:
        return 401
    return row.ok if ROLES.index(role) >= ROLES.index(row.least) else 403


def _id(row: Row) -> str:
    return f"{row.method} {row.path}"


@pytest.mark.parametrize("role", [None, *ROLES], ids=["anonymous", *ROLES])
@pytest.mark.parametrize("row", TABLE, ids=[_id(r) for r in TABLE])
def test_every_endpoint_answers_each_role_as_the_table_says(
    row: Row, role: str | None, tmp_path_factory: pytest.TempPathFactory
) -> None:
    web = book_for(role or "anonymous", tmp_path_factory)
    client = web.client(role)
    path = "/api/v1" + row.path.format(**web.ids)
    refusals_before = len([e for e in logged(web.book.app.repo) if e["kind"] == "refused"])
    answer = client.request(row.method, path, json=row.body)
    want = expected(row, role)
    assert answer.status_code == want, answer.text
    if want >= 400:
        assert answer.headers["content-type"].startswith("application/problem+json")
        assert answer.json()["status"] == want and answer.json()["detail"]
    if want == 403:
        refusals = [e for e in logged(web.book.app.repo) if e["kind"] == "refused"]
        assert len(refusals) == refusals_before + 1 and refusals[-1]["user"] == NAMES[role or ""]
    action = path.rsplit("/", 1)[-1]
    if want == 200 and row.method == "POST" and action in EVENT_KIND:
        event = answer.json()
        assert event["kind"] == EVENT_KIND[action] and event["actor"] == NAMES[role or ""]
    if want == 200 and action in ("assign", "confirm"):
        message = answer.json()
        assert message["status"] == {"assign": "assigned", "confirm": "confirmed"}[action]
        recorded = {"assign": "inbound_assigned", "confirm": "reply_confirmed"}[action]
        number = row.body["invoice"] if action == "assign" else message["invoices"][0]["number"]
        assert [e["actor"] for e in web.book.app.history(number) if e["kind"] == recorded] == [NAMES[role or ""]]
    if want == 200 and action == "done":
        assert answer.json()["done_by"] == NAMES[role or ""] and answer.json()["status"] == "done"


def test_the_table_covers_every_operation_of_the_openapi_document(tmp_path_factory: pytest.TempPathFactory) -> None:
    spec = book_for("anonymous", tmp_path_factory).client().get("/api/v1/openapi.json").json()
    documented = {(method.upper(), path) for path, item in spec["paths"].items() for method in item}
    covered = set()
    for row in TABLE:
        path = row.path.split("?")[0]
        for name in (
            "task_own",
            "task_other",
            "failed",
            "simulation",
            "diff",
            "warning_own",
            "warning_other",
            *MESSAGES,
        ):
            path = path.replace("{" + name + "}", "X")
        for template_method, template in documented:
            parts, concrete = template.removeprefix("/api/v1").split("/"), path.split("/")
            if (
                template_method == row.method
                and len(parts) == len(concrete)
                and all(a == b or a.startswith("{") for a, b in zip(parts, concrete, strict=True))
            ):
                covered.add((template_method, template))
    assert documented - covered == set()


def test_a_collector_refused_on_another_collectors_invoice_changes_nothing(web_book: WebBook) -> None:
    client = web_book.client("collector")
    answer = client.post("/api/v1/invoices/INV-NOTE-OTHER/actions/note", json={"text": "mine now"})
    assert answer.status_code == 403 and "owned by bob" in answer.json()["detail"]
    history = web_book.client("viewer").get("/api/v1/invoices/INV-NOTE-OTHER/history").json()["items"]
    assert [e for e in history if e["kind"] == "note"] == []


def test_status_order_401_422_404_403_409(web_book: WebBook) -> None:
    anonymous, viewer, manager = web_book.client(), web_book.client("viewer"), web_book.client("manager")
    # no credentials beats bad input
    assert anonymous.post("/api/v1/invoices/NOPE/actions/promise", json={"amount": "lots"}).status_code == 401
    # bad input beats an unknown invoice
    assert viewer.post("/api/v1/invoices/NOPE/actions/promise", json={"amount": "lots"}).status_code == 422
    assert viewer.post("/api/v1/invoices/NOPE/actions/teleport", json={}).status_code == 422
    # an unknown invoice beats the role
    missing = viewer.post("/api/v1/invoices/NOPE/actions/note", json={"text": "x"})
    assert missing.status_code == 404 and missing.json()["detail"].startswith("no invoice numbered 'NOPE'")
    # the role beats the state
    assert viewer.post("/api/v1/invoices/INV-APPROVE/actions/dispute", json={"reason": "x"}).status_code == 403
    written = manager.post("/api/v1/invoices/INV-WRITE-OFF-OWN/actions/write-off", json={"reason": "gone"})
    assert written.status_code == 200
    again = manager.post("/api/v1/invoices/INV-WRITE-OFF-OWN/actions/dispute", json={"reason": "x"})
    assert again.status_code == 409 and "already written off" in again.json()["detail"]


def test_action_errors_carry_the_cli_message(web_book: WebBook) -> None:
    manager = web_book.client("manager")
    early = manager.post("/api/v1/invoices/INV-PROMISE-OWN/actions/promise", json={"amount": 10, "by": "2025-01-01"})
    assert early.status_code == 422
    assert (
        early.json()["detail"] == "the promise date 2025-01-01 is before today (2026-01-12); give a date from today on"
    )
    assert (
        manager.post("/api/v1/invoices/INV-MOVE-OWN/actions/move", json={"to": "nowhere", "reason": "x"})
        .json()["detail"]
        .startswith("policy web has no stage 'nowhere'")
    )


def test_lists_page_with_cursors_until_the_last(web_book: WebBook) -> None:
    client = web_book.client("viewer")
    seen: list[str] = []
    cursor = None
    while True:
        answer = client.get(
            "/api/v1/invoices", params={"limit": 4, "status": "all", **({"cursor": cursor} if cursor else {})}
        ).json()
        seen += [i["number"] for i in answer["items"]]
        cursor = answer["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == len(set(seen)) == 19
    owned = client.get("/api/v1/invoices", params={"owner": "alice", "q": "own"}).json()["items"]
    assert {i["owner"] for i in owned} == {"alice"} and all("OWN" in i["number"] for i in owned)
    assert client.get("/api/v1/invoices", params={"cursor": "%%%"}).status_code == 422
    # one that decodes to a number no row id can be is refused as well, not handed to the database
    assert client.get("/api/v1/invoices", params={"cursor": encode_cursor(10**30)}).status_code == 422


def test_the_audit_csv_defuses_spreadsheet_formulas(web_book: WebBook) -> None:
    manager = web_book.client("manager")
    manager.post("/api/v1/invoices/INV-DISPUTE-OWN/actions/dispute", json={"reason": '=HYPERLINK("http://x")'})
    text = manager.get("/api/v1/audit/export", params={"format": "csv", "kind": "dispute"}).text
    assert "'=HYPERLINK" in text and ",=HYPERLINK" not in text


def test_openapi_and_healthz_need_no_credentials(web_book: WebBook) -> None:
    client = web_book.client()
    health = client.get("/api/v1/healthz")
    assert health.json() == {"status": "ok"}
    assert health.headers["x-content-type-options"] == "nosniff" and health.headers["x-frame-options"] == "DENY"
    assert client.get("/login").headers["referrer-policy"] == "same-origin"
    spec = client.get("/api/v1/openapi.json").json()
    assert "/api/v1/invoices/{number}/actions/{action}" in spec["paths"]


def test_edited_policies_are_picked_up_by_a_running_server(web_book: WebBook, monkeypatch: pytest.MonkeyPatch) -> None:
    from engine.web import services

    monkeypatch.setattr(services, "RULES_CHECK_SECONDS", 0.0)
    manager = web_book.client("manager")
    assert (
        manager.post("/api/v1/invoices/INV-MOVE-OWN/actions/move", json={"to": "final", "reason": "x"}).status_code
        == 422
    )
    rules = web_book.book.settings.rules_path / "web.yaml"
    rules.write_text(rules.read_text() + "  - {name: final, after_days: 60, channels: [letter]}\n")
    moved = manager.post("/api/v1/invoices/INV-MOVE-OWN/actions/move", json={"to": "final", "reason": "x"})
    assert moved.status_code == 200 and moved.json()["to"] == "final"


def test_behind_a_proxy_under_a_root_path(tmp_path: pathlib.Path) -> None:
    from fastapi.testclient import TestClient

    from engine.web.app import create_app

    web = build_web_book(tmp_path)
    app = create_app(web.book.settings, root_path="/dunning", secret="s" * 40, dunning=web.book.app)
    client = TestClient(app)
    assert client.get("/api/v1/healthz").status_code == 200  # a proxy that strips the prefix
    assert client.get("/dunning/api/v1/healthz").status_code == 200  # one that keeps it
    page = client.get("/dunning/login")  # the browser sees the proxy's paths; the cookie is for them only
    assert 'action="/dunning/login"' in page.text
    csrf = page.text.split('name="csrf_token" value="')[1].split('"')[0]
    answer = client.post(
        "/dunning/login",
        data={"username": "adam", "password": "correct horse battery", "csrf_token": csrf},
        follow_redirects=False,
    )
    assert answer.headers["location"] == "/dunning/" and "path=/dunning" in answer.headers["set-cookie"].lower()
    spec = client.get("/api/v1/openapi.json").json()
    assert spec["servers"] == [{"url": "/dunning"}]
