"""The signed inbound webhook (issue 16) and the inbound triage page: a raw RFC 822 message signed with
$DUNNING_INBOUND_SECRET goes through the same mailroom as IMAP and drop-folder mail (processed once, matched,
applied); anything unsigned, wrongly signed, stale, too large or of another type changes nothing."""

from __future__ import annotations

import re

import pytest

from engine.web import inbound as hook
from tests.integration.inbound_corpus import dsn, our_id, reply
from tests.web.conftest import WebBook

SECRET = "inbound-test-secret-0123456789abcdef"
URL = "/api/v1/inbound/messages"
PROMISE = reply("ap@example.com", "Re: INV-7001-OWN", "Hello, we will pay 1000 on 2026-02-01.", mid="<hook1@c>")


@pytest.fixture
def signed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(hook.SECRET_ENV, SECRET)


def headers(web: WebBook, body: bytes, *, age: int = 0, secret: str = SECRET, media: str = "message/rfc822") -> dict:
    stamp = str(int(web.book.clock.now().timestamp()) - age)
    return {
        "Content-Type": media,
        hook.TIMESTAMP_HEADER: stamp,
        hook.SIGNATURE_HEADER: hook.sign(secret.encode(), stamp, body),
    }


def received(web: WebBook) -> list[dict]:
    return [m for m in web.client("viewer").get(URL).json()["items"] if m["mailbox"] == hook.MAILBOX]


def replies(web: WebBook, number: str, message_id: str = "<hook1@c>") -> list[dict]:
    """The reply events of the invoice from the message with that Message-ID."""
    return [e for e in web.book.app.history(number) if e["kind"] == "reply" and e["message_id"] == message_id]


def test_a_signed_message_is_processed_like_imap_mail_and_only_once(web_book: WebBook, signed: None) -> None:
    client = web_book.client()  # no session, no token: the signature is the credential
    answer = client.post(URL, content=PROMISE, headers=headers(web_book, PROMISE))
    assert answer.status_code == 200, answer.text
    message = answer.json()
    assert (message["duplicate"], message["kind"], message["status"], message["match_by"]) == (
        False,
        "reply",
        "matched",
        "invoice_number",
    )
    assert message["invoices"][0]["number"] == "INV-7001-OWN" and message["intents"][0]["kind"] == "promise"
    (event,) = replies(web_book, "INV-7001-OWN")
    assert event["sender"] == "ap@example.com" and event["message_id"] == "<hook1@c>"
    # the same request again (a replay inside the window), and the provider's retry signed anew
    again = client.post(URL, content=PROMISE, headers=headers(web_book, PROMISE))
    retry = client.post(URL, content=PROMISE, headers=headers(web_book, PROMISE, age=60))
    assert (
        again.json()
        == retry.json()
        == {
            "duplicate": True,
            "message_id": "<hook1@c>",
            "mailbox": hook.MAILBOX,
            "uid": again.json()["uid"],
        }
    )
    assert len(replies(web_book, "INV-7001-OWN")) == 1 and len(received(web_book)) == 1


def test_a_hard_bounce_through_the_webhook_fails_the_notice(web_book: WebBook, signed: None) -> None:
    key = next(r["key"] for r in web_book.book.app.outbox() if r["invoice"] == "INV-NOTE-OWN")
    bounce = dsn("ap@example.com", our_id(key), mid="<dsn@mx.example>")
    answer = web_book.client().post(
        URL, content=bounce, headers=headers(web_book, bounce, media="application/octet-stream")
    )
    assert answer.status_code == 200 and answer.json()["kind"] == "bounce" and answer.json()["match_by"] == "reference"
    notice = next(r for r in web_book.book.app.outbox() if r["key"] == key)
    assert notice["status"] == "failed" and "hard bounce 5.1.1" in notice["error"]


@pytest.mark.parametrize(
    ("case", "detail"),
    [
        ("missing", "unsigned"),
        ("wrong secret", "does not match"),
        ("body changed", "does not match"),
        ("too old", "more than 300 seconds"),
        ("from the future", "more than 300 seconds"),
        ("timestamp not a number", "must be Unix seconds"),
    ],
)
def test_bad_signatures_are_401_and_record_nothing(web_book: WebBook, signed: None, case: str, detail: str) -> None:
    sent = headers(web_book, PROMISE)
    if case == "missing":
        del sent[hook.SIGNATURE_HEADER]
    elif case == "wrong secret":
        sent = headers(web_book, PROMISE, secret="another-secret-of-enough-length")
    elif case == "body changed":
        sent = headers(web_book, PROMISE.replace(b"1000", b"1"))
    elif case == "too old":
        sent = headers(web_book, PROMISE, age=hook.WINDOW_SECONDS + 1)
    elif case == "from the future":
        sent = headers(web_book, PROMISE, age=-(hook.WINDOW_SECONDS + 1))
    else:
        sent[hook.TIMESTAMP_HEADER] = "yesterday"
    answer = web_book.client("admin").post(URL, content=PROMISE, headers=sent)  # a token does not stand in
    assert answer.status_code == 401 and answer.headers["content-type"].startswith("application/problem+json")
    assert detail in answer.json()["detail"]
    assert received(web_book) == [] and replies(web_book, "INV-7001-OWN") == []


def test_oversize_other_media_and_empty_bodies_are_refused(
    web_book: WebBook, signed: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(hook, "MAX_MESSAGE_BYTES", 1000)
    big = PROMISE + b"x" * 1000
    answer = web_book.client().post(URL, content=big, headers=headers(web_book, big))
    assert answer.status_code == 413 and "larger than 1000 bytes" in answer.json()["detail"]

    def chunks():  # no Content-Length: the limit is counted while reading
        yield big[:600]
        yield big[600:]

    streamed = web_book.client().post(URL, content=chunks(), headers=headers(web_book, big))
    assert streamed.status_code == 413
    as_json = web_book.client().post(URL, content=PROMISE, headers=headers(web_book, PROMISE, media="application/json"))
    assert as_json.status_code == 415
    empty = web_book.client().post(URL, content=b"", headers=headers(web_book, b""))
    assert empty.status_code == 422
    assert received(web_book) == []


def test_without_the_secret_the_webhook_is_off(web_book: WebBook, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(hook.SECRET_ENV, raising=False)
    off = web_book.client().post(URL, content=PROMISE, headers=headers(web_book, PROMISE))
    assert off.status_code == 503 and hook.SECRET_ENV in off.json()["detail"]
    monkeypatch.setenv(hook.SECRET_ENV, "short")
    short = web_book.client().post(URL, content=PROMISE, headers=headers(web_book, PROMISE, secret="short"))
    assert short.status_code == 503 and "too short" in short.json()["detail"]
    assert received(web_book) == []


# -- the triage page -----------------------------------------------------------------------------------------


def csrf_of(html: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)  # type: ignore[union-attr]


def test_the_triage_page_assigns_and_confirms_as_the_role_allows(web_book: WebBook) -> None:
    unmatched, own, other = (web_book.ids[k] for k in ("message_unmatched", "message_own", "message_other"))
    collector = web_book.login("collector")
    page = collector.get("/inbound").text
    assert f'data-message="{unmatched}"' in page and "Is this about our account?" in page
    assert f'action="/inbound/{unmatched}/assign"' in page
    assert f'action="/inbound/{own}/confirm"' in page and f'action="/inbound/{other}/confirm"' not in page
    viewer_page = web_book.login("viewer").get("/inbound").text
    assert (
        f'data-message="{unmatched}"' in viewer_page and "/assign" not in viewer_page and "/confirm" not in viewer_page
    )

    csrf = csrf_of(page)
    refused = collector.post(f"/inbound/{unmatched}/assign", data={"invoice": "INV-NOTE-OTHER", "csrf_token": csrf})
    assert refused.status_code == 403 and "owned by bob" in refused.text
    done = collector.post(
        f"/inbound/{unmatched}/assign",
        data={"invoice": "INV-NOTE-OWN", "csrf_token": csrf, "next": "/inbound"},
        follow_redirects=False,
    )
    assert done.status_code == 303 and done.headers["location"] == "/inbound"
    assigned = [e for e in web_book.book.app.history("INV-NOTE-OWN") if e["kind"] == "inbound_assigned"]
    assert [e["actor"] for e in assigned] == ["alice"] and len(replies(web_book, "INV-NOTE-OWN", "<u1@else>")) == 1

    confirmed = collector.post(
        f"/inbound/{own}/confirm",
        data={"intent": "promise", "amount": "800", "on": "2026-02-01", "csrf_token": csrf},
        headers={"X-Requested-With": "fetch"},
    )
    assert confirmed.status_code == 200 and 'class="answer ok"' in confirmed.text
    promise = next(e for e in web_book.book.app.history("INV-7001-OWN") if e["kind"] == "promise")
    assert (promise["actor"], promise["amount"], promise["by"]) == ("alice", "800", "2026-02-01")
    forged = collector.post(f"/inbound/{other}/confirm", data={"intent": "promise", "csrf_token": "forged"})
    assert forged.status_code == 403
    assert [e for e in web_book.book.app.history("INV-7002-OTHER") if e["kind"] == "promise"] == []
    after = collector.get("/inbound").text
    assert f'data-message="{unmatched}"' not in after and f'data-message="{own}"' not in after


def test_the_api_confirm_checks_its_input_before_anything(web_book: WebBook) -> None:
    manager = web_book.client("manager")
    own = web_book.ids["message_own"]
    bad = manager.post(f"/api/v1/inbound/messages/{own}/confirm", json={"on": "soon"})
    assert bad.status_code == 422 and "--on a date" in bad.json()["detail"]
    assert manager.post("/api/v1/inbound/messages/999999/confirm", json={}).status_code == 404
    missing = manager.post(f"/api/v1/inbound/messages/{own}/assign", json={"invoice": "NOPE"})
    assert missing.status_code == 404
    unmatched = web_book.ids["message_unmatched"]
    nothing = manager.post(f"/api/v1/inbound/messages/{unmatched}/confirm", json={})
    assert nothing.status_code == 422 and "matches no invoice" in nothing.json()["detail"]


# -- the list, page by page ----------------------------------------------------------------------------------


def more_mail(web: WebBook) -> dict[str, int]:
    """Six more messages besides the book's four: three that match nothing, three replies to INV-7001-OWN."""
    from engine.replies import Mailroom

    room = Mailroom(web.book.app)
    sent = {}
    for n in range(3):
        sent[f"lost{n}"] = reply("who@else.example", f"Question {n}", "Is this about us?", mid=f"<lost{n}@else>")
        sent[f"own{n}"] = reply("ap@example.com", "Re: INV-7001-OWN", f"Paying soon ({n}).", mid=f"<own{n}@c>")
    return {name: int(room.process(raw, mailbox="paging", uid=name)["id"]) for name, raw in sent.items()}


def walk(client: object, params: dict, *, between: object = None) -> list[list[int]]:
    """The ids of every page of GET /inbound/messages, following next_cursor to the end."""
    pages: list[list[int]] = []
    cursor = None
    while True:
        answer = client.get(URL, params={**params, **({"cursor": cursor} if cursor else {})})  # type: ignore[attr-defined]
        assert answer.status_code == 200, answer.text
        pages.append([m["id"] for m in answer.json()["items"]])
        cursor = answer.json()["next_cursor"]
        if cursor is None:
            return pages
        if between is not None and len(pages) == 1:
            between()  # type: ignore[operator]


def test_the_message_list_pages_newest_first_with_cursors(web_book: WebBook) -> None:
    added = more_mail(web_book)
    known = {k: v for k, v in web_book.ids.items() if k.startswith("message_")}
    every = sorted([*known.values(), *added.values()], reverse=True)
    viewer = web_book.client("viewer")
    pages = walk(viewer, {"limit": 3})
    assert [len(p) for p in pages] == [3, 3, 3, 1]
    assert [i for p in pages for i in p] == every  # each message once, newest first
    default = viewer.get(URL).json()
    assert [m["id"] for m in default["items"]] == every and default["next_cursor"] is None  # 10 < 50

    lost = sorted(
        [known["message_unmatched"], known["message_unmatched_2"], *(added[f"lost{n}"] for n in range(3))],
        reverse=True,
    )
    unmatched = walk(viewer, {"limit": 2, "unmatched": "true"})
    assert [len(p) for p in unmatched] == [2, 2, 1] and [i for p in unmatched for i in p] == lost
    statuses = {m["status"] for m in viewer.get(URL, params={"unmatched": "true"}).json()["items"]}
    assert statuses == {"unmatched"}

    # mail arriving while someone pages neither repeats a message nor pushes one out of the later pages
    late: list[int] = []

    def arrives() -> None:
        from engine.replies import Mailroom

        raw = reply("who@else.example", "Late", "Still there?", mid="<late@else>")
        late.append(int(Mailroom(web_book.book.app).process(raw, mailbox="paging", uid="late")["id"]))

    during = walk(viewer, {"limit": 4}, between=arrives)
    assert [i for p in during for i in p] == every and late and late[0] > every[0]


def test_the_message_list_refuses_what_other_lists_refuse(web_book: WebBook) -> None:
    from engine.web.api.common import encode_cursor

    viewer = web_book.client("viewer")
    for cursor in ("%%%", encode_cursor("soon"), encode_cursor(10**30), encode_cursor(-1)):
        inbound = viewer.get(URL, params={"cursor": cursor})
        invoices = viewer.get("/api/v1/invoices", params={"cursor": cursor})
        assert inbound.status_code == invoices.status_code == 422, (cursor, inbound.text, invoices.text)
        assert inbound.headers["content-type"].startswith("application/problem+json")
        same = {k: v for k, v in inbound.json().items() if k != "instance"}
        assert same == {k: v for k, v in invoices.json().items() if k != "instance"}
        assert "is not one this API gave out" in same["detail"]
    for limit in (0, 501):
        assert viewer.get(URL, params={"limit": limit}).status_code == 422
    assert len(viewer.get(URL, params={"limit": 500}).json()["items"]) == 4
