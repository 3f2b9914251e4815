"""The web pages through FastAPI's TestClient on the web test book (tests/web/conftest.py): what each role
sees and may do, the worklist's one-click outcomes, the invoice timeline, approvals, outbox, audit, policies,
the Chinese UI and the CSRF refusal."""

from __future__ import annotations

import html
import re
from decimal import Decimal
from pathlib import Path

import pytest

from engine.store import users
from engine.web.pages.render import ENV
from tests.web.conftest import NAMES, WebBook

PAGES = (
    "/",
    "/worklist",
    "/invoices/INV-PROMISE-OWN",
    "/customers/C-OWN",
    "/approvals",
    "/outbox",
    "/inbound",
    "/audit",
    "/policies",
)


def login(web: WebBook, role: str):  # type: ignore[no-untyped-def]
    """A logged-in client whose `csrf` is the session's token (logging in makes a new one)."""
    client = web.login(role)
    page = client.get("/worklist").text
    client.csrf = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)  # type: ignore[union-attr]
    return client


def action_forms(html: str) -> list[str]:
    """The actions of every POST form on the page except signing out."""
    return [a for a in re.findall(r'<form method="post" action="([^"]+)"', html) if not a.endswith("/logout")]


def events(web: WebBook, number: str, kind: str) -> list[dict]:
    return [e for e in web.book.app.history(number) if e["kind"] == kind]


@pytest.mark.parametrize("role", ["viewer", "collector", "manager", "admin"])
def test_every_page_renders_for_every_role(web_book: WebBook, role: str) -> None:
    client = login(web_book, role)
    for url in PAGES:
        page = client.get(url)
        assert page.status_code == 200, (url, page.text[:500])
        assert "text/html" in page.headers["content-type"]
        assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
        assert f"{NAMES[role]} · {role}" in page.text


def test_pages_need_a_login(web_book: WebBook) -> None:
    client = web_book.client()
    for url in PAGES:
        answer = client.get(url, follow_redirects=False)
        assert answer.status_code == 303 and answer.headers["location"].startswith("/login?next=")


def test_a_viewer_sees_no_action_buttons(web_book: WebBook) -> None:
    client = login(web_book, "viewer")
    for url in PAGES:
        assert action_forms(client.get(url).text) == [], url


def test_a_collector_gets_buttons_only_on_their_own_customers(web_book: WebBook) -> None:
    client = login(web_book, "collector")
    own = action_forms(client.get("/invoices/INV-PROMISE-OWN").text)
    assert any(a.endswith("/do/promise") for a in own) and not any(a.endswith("/do/write-off") for a in own)
    assert action_forms(client.get("/invoices/INV-PROMISE-OTHER").text) == []
    worklist = client.get("/worklist").text
    assert "INV-PROMISE-OWN" in worklist and "INV-PROMISE-OTHER" not in worklist  # their own customers only
    manager = action_forms(login(web_book, "manager").get("/invoices/INV-PROMISE-OTHER").text)
    assert any(a.endswith("/do/write-off") for a in manager) and any(a.endswith("/do/move") for a in manager)


def test_a_promise_from_the_worklist_is_recorded_in_place_with_the_collector_as_actor(web_book: WebBook) -> None:
    client = login(web_book, "collector")
    answer = client.post(
        "/worklist/INV-PROMISE-OWN/outcome/promised",
        data={"csrf_token": client.csrf, "amount": "400", "by": "2026-01-30", "task": ""},
        headers={"X-Requested-With": "fetch"},
    )
    assert answer.status_code == 200 and 'class="answer ok"' in answer.text and "<html" not in answer.text
    promise = events(web_book, "INV-PROMISE-OWN", "promise")
    assert promise and promise[-1]["actor"] == "alice" and Decimal(promise[-1]["amount"]) == Decimal(400)
    timeline = client.get("/invoices/INV-PROMISE-OWN").text
    assert 'data-kind="promise"' in timeline and "by alice" in timeline


def test_the_worklist_comes_in_pages_keeping_the_priority_order(
    tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from datetime import date

    from engine.actions import Collector
    from engine.store import workspace
    from engine.web.pages import worklist as worklist_page
    from tests.web.conftest import build_web_book

    web_book = build_web_book(tmp_path, database_url)  # the ranking is the database's own arithmetic

    Collector(web_book.book.app, actor="setup").promise("INV-NOTE-OTHER", Decimal(100), date(2026, 1, 12))
    monkeypatch.setattr(worklist_page, "PAGE_SIZE", 4)
    client = login(web_book, "manager")
    shown, page, url = [], 1, "/worklist"
    while url:
        html = client.get(url).text
        rows = re.findall(r'<tr data-row="([^"]+)"', html)
        assert 0 < len(rows) <= 4
        shown += rows
        following = re.search(r'href="(/worklist\?page=(\d+))" rel="next"', html)
        url = following.group(1) if following else ""
        if following:
            page += 1
            assert following.group(2) == str(page)
    assert page > 2  # the book's worklist spans several pages of 4
    everything = workspace.worklist(web_book.book.app.repo, today=date(2026, 1, 12), owner=None, limit=1000)
    assert shown == [r["number"] for r in everything] and len(set(shown)) == len(shown)
    assert shown[0] == "INV-NOTE-OTHER"  # a promise due today comes before any amount × days overdue
    ranked = [r["open_amount"] * r["days_overdue"] for r in everything[1:]]
    assert ranked == sorted(ranked, reverse=True)
    assert 'rel="prev"' in client.get("/worklist?page=2").text


def test_an_outcome_on_a_task_completes_the_task(web_book: WebBook) -> None:
    client = login(web_book, "collector")
    task = web_book.ids["task_own"]
    page = client.get("/worklist").text
    assert f'name="task" value="{task}"' in page
    answer = client.post(
        "/worklist/INV-TASK-OWN/outcome/no_answer",
        data={"csrf_token": client.csrf, "task": str(task)},
        follow_redirects=False,
    )
    assert answer.status_code == 303 and answer.headers["location"] == "/worklist"
    outcome = events(web_book, "INV-TASK-OWN", "task_outcome")
    assert outcome and outcome[-1]["outcome"] == "no_answer" and outcome[-1]["actor"] == "alice"


def test_a_collector_is_refused_on_another_owners_invoice_and_nothing_changes(web_book: WebBook) -> None:
    client = login(web_book, "collector")
    answer = client.post(
        "/invoices/INV-DISPUTE-OTHER/do/dispute",
        data={"csrf_token": client.csrf, "reason": "x"},
        headers={"X-Requested-With": "fetch"},
    )
    assert answer.status_code == 403 and "owned by bob" in answer.text
    assert events(web_book, "INV-DISPUTE-OTHER", "dispute") == []


def test_a_form_without_the_csrf_token_is_refused(web_book: WebBook) -> None:
    client = login(web_book, "manager")
    answer = client.post("/invoices/INV-NOTE-OWN/do/note", data={"text": "hello"})
    assert answer.status_code == 403
    answer = client.post("/invoices/INV-NOTE-OWN/do/note", data={"text": "hello", "csrf_token": "forged"})
    assert answer.status_code == 403
    assert events(web_book, "INV-NOTE-OWN", "note") == []


def test_bad_input_is_shown_with_the_reason(web_book: WebBook) -> None:
    client = login(web_book, "collector")
    answer = client.post(
        "/invoices/INV-PROMISE-OWN/do/promise", data={"csrf_token": client.csrf, "amount": "lots", "by": "2026-01-30"}
    )
    assert answer.status_code == 422 and "is not an amount" in answer.text


def test_the_next_address_cannot_leave_the_site(web_book: WebBook) -> None:
    client = login(web_book, "collector")
    answer = client.post(
        "/invoices/INV-NOTE-OWN/do/note",
        data={"csrf_token": client.csrf, "text": "called", "next": "//evil.example/x"},
        follow_redirects=False,
    )
    assert answer.status_code == 303 and answer.headers["location"] == "/invoices/INV-NOTE-OWN"


def test_a_manager_approves_from_the_queue(web_book: WebBook) -> None:
    client = login(web_book, "manager")
    queue = client.get("/approvals").text
    assert "INV-APPROVE" in queue and "/invoices/INV-APPROVE/do/approve" in queue
    assert "/do/approve" not in login(web_book, "collector").get("/approvals").text
    answer = client.post(
        "/invoices/INV-APPROVE/do/approve",
        data={"csrf_token": client.csrf, "next": "/approvals"},
        follow_redirects=False,
    )
    assert answer.status_code == 303
    assert "INV-APPROVE" not in client.get("/approvals").text
    approval = events(web_book, "INV-APPROVE", "approval")
    assert approval and approval[-1]["actor"] == "mona"


def test_the_invoice_timeline_shows_rules_policy_hashes_and_delivery(web_book: WebBook) -> None:
    page = login(web_book, "viewer").get("/invoices/INV-FAIL").text
    history = web_book.book.app.history("INV-FAIL")
    transition = next(e for e in history if e["kind"] == "transition")
    assert transition["policy_hash"][:12] in page and transition["rule"] in page
    assert 'class="delivery failed"' in page  # the customer has no email address
    assert "Why it is where it is" in page and "Policy: web" in page


def test_the_outbox_lists_the_failure_with_its_reason_and_a_manager_retries_it(web_book: WebBook) -> None:
    failed = web_book.ids["failed"]
    viewer = login(web_book, "viewer").get("/outbox?state=failed").text
    assert f'data-row="{failed}"' in viewer and "/retry" not in viewer
    client = login(web_book, "manager")
    page = client.get("/outbox?state=failed").text
    assert f"/outbox/{failed}/retry" in page
    answer = client.post(
        f"/outbox/{failed}/retry", data={"csrf_token": client.csrf}, headers={"X-Requested-With": "fetch"}
    )
    assert answer.status_code == 200, answer.text
    assert f'data-row="{failed}"' not in client.get("/outbox?state=failed").text


def test_the_audit_page_verifies_with_the_head_hash(web_book: WebBook) -> None:
    from engine.store.workspace import verify_audit

    client = login(web_book, "viewer")
    report = verify_audit(web_book.book.app.repo)
    page = client.get("/audit").text
    assert 'data-verify="ok"' in page and report.head in page
    assert 'data-verify="ok"' in client.get(f"/audit?expect_head={report.head}").text
    assert 'data-verify="broken"' in client.get(f"/audit?expect_head={'0' * 64}").text
    # the export form as a browser without the script sends it: every field, the empty ones empty
    form = page.split('action="/audit/export"')[1].split("</form>")[0]
    fields = dict.fromkeys(re.findall(r'<(?:input|select)[^>]* name="([a-z_]+)"', form), "")
    assert {"format", "from", "to", "customer", "kind"} <= set(fields)
    download = client.get("/audit/export", params={**fields, "format": "csv", "customer": "C-OWN"})
    assert download.status_code == 200 and "attachment" in download.headers["content-disposition"]
    lines = download.text.splitlines()
    assert lines[0].startswith("id,at,recorded_at,kind") and len(lines) > 1
    assert all(",C-OWN," in line for line in lines[1:])


def test_the_policies_page_shows_problems_with_line_and_column(web_book: WebBook) -> None:
    rules = web_book.book.settings.rules_path
    (rules / "50-broken.yaml").write_text(
        "name: broken\nstages:\n  - {name: x, after_days: 1, chanels: [email]}\n", encoding="utf-8"
    )
    page = login(web_book, "viewer").get("/policies").text
    row = re.search(r'<tr class="error"><td>50-broken.yaml</td><td class="n">(\d+)</td><td class="n">(\d+)</td>', page)
    assert row and row.group(1) == "3"
    assert "web.yaml" in page


def test_a_simulation_started_from_the_policies_page_shows_its_result(web_book: WebBook) -> None:
    client = login(web_book, "manager")
    answer = client.post(
        "/policies/simulate", data={"csrf_token": client.csrf, "to": "2026-01-20", "file": ""}, follow_redirects=False
    )
    assert answer.status_code == 303, answer.text
    location = answer.headers["location"]
    job_id = location.rsplit("/", 1)[1]
    from engine.web.api.insight import jobs

    class Holder:  # jobs() reads request.app.state
        app = web_book.app

    jobs(Holder()).wait(job_id, "simulation")  # type: ignore[arg-type]
    page = client.get(location).text
    assert 'data-status="done"' in page and "<th>Stages entered</th>" in page
    assert "&#34;to&#34;: &#34;2026-01-20&#34;" in page  # the CLI's JSON, escaped in the page
    assert "refresh" not in page
    assert "/policies/simulate" not in login(web_book, "collector").get("/policies").text


def test_chinese_from_the_browser_or_the_users_setting(web_book: WebBook) -> None:
    client = login(web_book, "collector")
    page = client.get("/worklist", headers={"Accept-Language": "zh-CN,zh;q=0.9,en;q=0.5"})
    assert page.headers["content-language"] == "zh-CN" and "工作清单" in page.text and 'lang="zh-CN"' in page.text
    assert "Worklist" not in page.text.split("<main>")[1]
    users.set_language(web_book.book.app.repo, "alice", "en")
    page = client.get("/worklist", headers={"Accept-Language": "zh-CN"})
    assert page.headers["content-language"] == "en" and "Worklist" in page.text
    users.set_language(web_book.book.app.repo, "alice", "zh-CN")
    dashboard = client.get("/").text
    assert "仪表板" in dashboard and "近 12 个月趋势" in dashboard and "€" in dashboard


def explanation_of(page: str) -> list[str]:
    block = page.split('<div class="explain-text">')[1].split("</div>")[0]
    return [html.unescape(line) for line in re.findall(r"<p>(.*?)</p>", block)]


@pytest.mark.parametrize("number", ["INV-NOTE-OWN", "INV-RESOLVE", "INV-APPROVE", "INV-PROMISE-OWN"])
def test_the_invoice_page_explains_in_the_users_language(web_book: WebBook, number: str) -> None:
    from datetime import date

    from engine.actions import Collector
    from engine.authoring.explain import explain_invoice

    Collector(web_book.book.app, actor="setup").promise("INV-PROMISE-OWN", Decimal(100), date(2026, 1, 30))
    client = login(web_book, "collector")
    english = explanation_of(client.get(f"/invoices/{number}").text)
    assert english == explain_invoice(web_book.book.app, number).lines()  # what `dunning explain` prints
    users.set_language(web_book.book.app.repo, "alice", "zh-CN")
    chinese = explanation_of(client.get(f"/invoices/{number}").text)
    assert chinese[0].startswith(f"发票 {number}") and "逾期" in chinese[0]
    assert any(line.startswith("策略：web — 默认策略") for line in chinese)
    assert any(line.startswith(("阶段：", "暂停：")) for line in chinese)
    english_words = (
        "Invoice ",
        "Policy:",
        "Stage:",
        "Next:",
        "Paused:",
        "Held back",
        "overdue",
        " since ",
        "default",
        "skipped",
    )
    assert not [line for line in chinese for word in english_words if word in line], chinese


def test_known_reasons_of_explain_are_worded_in_chinese() -> None:
    from engine.web.explain_text import reason_text
    from engine.web.i18n import translator

    t = translator("zh-CN")
    assert (
        reason_text(t, "paused: disputed since 2026-01-11 (price wrong)")
        == "暂停：自 2026-01-11 起有争议（price wrong）"
    )
    assert reason_text(
        t,
        "waiting for approval to enter legal since 2026-01-12 (`dunning approve INV-9`, or a "
        "manager in the web workspace)",
    ) == ("自 2026-01-12 起等待审批进入法律程序（`dunning approve INV-9`，或由经理在网页工作区审批）")
    assert reason_text(t, "something explain says in a new way") == "something explain says in a new way"


def test_every_text_of_the_templates_has_a_chinese_entry() -> None:
    from engine.web.catalog import ZH_CN

    missing = set()
    for name in ENV.list_templates():
        source = ENV.loader.get_source(ENV, name)[0]  # type: ignore[union-attr]
        missing |= {text for text in re.findall(r'_\("([^"]+)"\)', source) if text not in ZH_CN}
        for singular, plural in re.findall(r'ngettext\([^,]+, "([^"]+)", "([^"]+)"\)', source):
            missing |= {text for text in (singular, plural) if text not in ZH_CN}
    assert not missing, sorted(missing)


def test_the_dashboard_draws_aging_in_severity_colours_and_the_trends(web_book: WebBook) -> None:
    page = login(web_book, "viewer").get("/").text
    assert "Receivables aging" in page and "#facc15" in page  # the 1-30 bucket's colour
    assert "Trends over the last 12 months" in page and page.count('data-chart="line"') == 3
    assert "approvals waiting" in page and '>1</div><div class="l">failed' in page


def test_the_dashboard_does_not_wait_for_figures_of_a_large_book(
    web_book: WebBook, monkeypatch: pytest.MonkeyPatch
) -> None:
    import threading

    from engine.web.pages import dashboard

    gate = threading.Event()
    compute = dashboard._compute
    monkeypatch.setattr(dashboard, "WAIT", 0.05)
    monkeypatch.setattr(dashboard, "_compute", lambda *args: (gate.wait(10), compute(*args)))
    client = login(web_book, "viewer")
    waiting = client.get("/").text
    assert 'data-figures="computing"' in waiting and 'http-equiv="refresh"' in waiting
    assert "Receivables aging" not in waiting and "€24,800.00" in waiting  # the counters need no figures
    gate.set()
    for _ in range(100):
        page = client.get("/").text
        if "Receivables aging" in page:
            break
    assert "Receivables aging" in page and 'data-figures="computing"' not in page
