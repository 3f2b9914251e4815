"""The worklist's rows come ready to show from `shown` and its outcome forms from a stencil filled per row:
every value still escaped, every form still carrying its action, task, CSRF token and way back."""

from __future__ import annotations

import re
from datetime import date
from decimal import Decimal
from typing import Any

import pytest
from markupsafe import Markup, escape

from engine.web.auth import Role, WebUser
from engine.web.i18n import translator
from engine.web.pages.render import ENV, Stencil
from engine.web.pages.worklist import shown

HOSTILE = "INV-<b>&\"'1 /ü?#"


def test_a_stencil_escapes_what_it_is_filled_with() -> None:
    stencil = Stencil(Markup('<a href="/i/<number>">#<number> <em><note></em></a>'), "number", "note")
    filled = stencil.fill(number="<x>&\"'", note=Markup("<b>safe</b>"))
    assert filled == '<a href="/i/&lt;x&gt;&amp;&#34;&#39;">#&lt;x&gt;&amp;&#34;&#39; <em><b>safe</b></em></a>'
    assert isinstance(filled, Markup)
    with pytest.raises(KeyError):
        stencil.fill(number="1")  # every stand-in needs its value


def test_text_written_into_a_stencil_cannot_pass_for_a_stand_in() -> None:
    page = ENV.from_string("{% set s %}<p>{{ text }}</p><i><v></i>{% endset %}{{ stencil(s, 'v').fill(v=1) }}")
    assert page.render(text="<v>", stencil=Stencil) == "<p>&lt;v&gt;</p><i>1</i>"
    with pytest.raises(TypeError):
        Stencil("<p><v></p>", "v")  # type: ignore[arg-type]  # text, not the template's escaped HTML


def row(number: str, **changes: Any) -> dict[str, Any]:
    return {
        "number": number,
        "customer_id": "C 1/ü",
        "customer_name": 'Ann & <Bob> "Ltd"',
        "stage": "reminder",
        "currency": "JPY",
        "open_amount": Decimal("-1234.5"),
        "days_overdue": 41,
        "flag": None,
        "promise": None,
        "task_id": None,
        "task_kind": None,
        "owner": "alice",
        **changes,
    }


def render(rows: list[dict[str, Any]], user: WebUser, language: str = "en", root: str = "/ar") -> str:
    t = translator(language)
    return ENV.get_template("worklist.html").render(
        {
            "_": t.gettext,
            "ngettext": t.ngettext,
            "t": t,
            "lang": language,
            "user": user,
            "csrf": "token-1",
            "can": lambda action, owner=None: True,
            "root": root,
            "path": root + "/worklist",
            "here": root + "/worklist?owner=a%26b&x=<y>",
            "rows": shown(rows, t, user, root),
            "owner": None,
            "today": date(2026, 1, 12),
            "page": 1,
            "more": False,
            "first": 1,
        }
    )


def test_each_row_writes_its_values_escaped_and_its_links_quoted() -> None:
    page = render([row(HOSTILE, task_id=7, task_kind="call")], WebUser("alice", Role.COLLECTOR))
    escaped = str(escape(HOSTILE))
    assert f'<tr data-row="{escaped}" class="">' in page
    assert '<a href="/ar/invoices/INV-%3Cb%3E%26%22%271%20/%C3%BC%3F%23">' + escaped + "</a>" in page
    assert '<a href="/ar/customers/C%201/%C3%BC">Ann &amp; &lt;Bob&gt; &#34;Ltd&#34;</a>' in page
    assert '<span class="stage stage-reminder">' in page and "-¥1,234" in page  # rounded half to even, as babel rounds
    assert "<b>" not in page and "<y>" not in page
    forms = re.findall(r'<form method="post" action="([^"]+)" class="inline[^"]*">(.*?)</form>', page, re.S)
    outcome = "/ar/worklist/INV-%3Cb%3E%26%22%271%20/%C3%BC%3F%23/outcome/"
    assert [action for action, _ in forms] == [
        outcome + name for name in ("promised", "disputed", "no_answer", "paid", "wrong_contact")
    ]
    for _, body in forms:
        assert '<input type="hidden" name="csrf_token" value="token-1">' in body
        assert '<input type="hidden" name="task" value="7">' in body
        assert '<input type="hidden" name="next" value="/ar/worklist?owner=a%26b&amp;x=&lt;y&gt;">' in body
    assert 'name="amount" inputmode="decimal" required size="9" value="-1234.5"' in forms[0][1]
    assert 'min="2026-01-12"' in forms[0][1]


def test_rows_the_user_may_not_act_on_have_no_forms_and_flags_show() -> None:
    rows = [
        row("INV-A", flag="broken"),
        row("INV-B", owner="bob", flag="promise_due", promise={"due_on": date(2026, 1, 10)}),
        row("INV-C", owner="bob", task_id=3, task_kind="call"),
    ]
    page = render(rows, WebUser("alice", Role.COLLECTOR), language="zh-CN")
    cells = dict(re.findall(r'<tr data-row="([^"]+)".*?<td class="outcomes">(.*?)</td>', page, re.S))
    assert "/ar/worklist/INV-A/outcome/promised" in cells["INV-A"]
    assert cells["INV-B"].strip() == "" and cells["INV-C"].strip() == ""  # bob's customers
    assert '<tr data-row="INV-A" class="flag-broken">' in page
    assert '<span class="badge broken">承诺未兑现</span>' in page
    assert '<tr data-row="INV-B" class="flag-promise_due">' in page
    assert '<span class="badge due">承诺到期 2026年1月10日</span>' in page
    assert re.search(r'<span class="badge task">[^<]+ #3</span>', page)
    manager = render(rows, WebUser("mona", Role.MANAGER))
    assert manager.count('class="inline one"') == 9  # three one-click outcomes on each of the three rows
