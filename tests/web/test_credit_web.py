"""Credit, warnings and charges in the web workspace (issues 13 and 14): `GET /customers/{id}/credit-check` as
`dunning credit check --json`, the warnings list and acknowledgement (API and pages), the customer page's
credit standing, and an invoice's charges (API and page) as `dunning charges --json`."""

from __future__ import annotations

import json
import re
import shutil
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from engine.store import users
from tests.conftest import Book, at
from tests.web.conftest import NAMES, PASSWORD, SECRET, WebBook

RATES = Path(__file__).resolve().parents[2] / "rules" / "rates"
CREDIT = """\
window_days: 365
factors:
  - {name: overdue_now, measure: overdue_share, points: [{upto: 0.1, points: 100}, {points: 0}]}
grades:
  - {grade: A, min_score: 85, limit: 10000, payment_terms_days: 60}
  - {grade: D, min_score: 0, limit: 0, payment_terms_days: 0}
no_history_grade: A
currency: EUR
"""


def csrf_of(html: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)  # type: ignore[union-attr]


# -- credit check ------------------------------------------------------------------------------------------


def test_credit_check_answers_the_cli_shape_whether_ok_or_not(web_book: WebBook) -> None:
    (web_book.book.settings.rules_path / "credit.yaml").write_text(CREDIT, encoding="utf-8")
    viewer = web_book.client("viewer")  # a bearer token, as an ERP calls it
    ok = viewer.get("/api/v1/customers/C-TASK-OWN/credit-check", params={"amount": "2000"})
    assert ok.status_code == 200
    # grade A's limit 10000, open 700 (INV-TASK-OWN): headroom 9300 before the order
    assert ok.json() == {
        "customer_id": "C-TASK-OWN",
        "ok": True,
        "limit": 10000,
        "open": 700,
        "amount": 2000,
        "headroom": 9300,
        "reasons": [],
    }
    over = viewer.get("/api/v1/customers/C-TASK-OWN/credit-check", params={"amount": "9300.01", "currency": "eur"})
    assert over.status_code == 200
    assert over.json()["ok"] is False and over.json()["headroom"] == 9300
    assert (
        over.json()["reasons"]
        == ["over limit: open 700.00 + order 9300.01 exceeds the limit 10000.00 by 0.01"]
        == web_book.book.app.credit.check("C-TASK-OWN", Decimal("9300.01"), "EUR")["reasons"]
    )
    foreign = viewer.get("/api/v1/customers/C-TASK-OWN/credit-check", params={"amount": "1", "currency": "USD"})
    assert foreign.json()["ok"] is False and "no exchange rate" in foreign.json()["reasons"][0]


@pytest.mark.parametrize(
    ("params", "detail"),
    [
        ({"amount": "lots"}, "--amount 'lots' is not an amount; write e.g. 5000 or 1234.50"),
        ({"amount": "NaN"}, "--amount 'NaN' is not an amount; write e.g. 5000 or 1234.50"),
        ({"amount": "Infinity"}, "--amount 'Infinity' is not an amount; write e.g. 5000 or 1234.50"),
        ({"amount": "0"}, "--amount must be more than 0, got 0"),
        ({"amount": "10", "currency": "EUX"}, "--currency 'EUX' is not an ISO 4217 currency code"),
    ],
)
def test_credit_check_bad_input_is_422_with_the_cli_message(
    web_book: WebBook, params: dict[str, str], detail: str
) -> None:
    answer = web_book.client("viewer").get("/api/v1/customers/C-OWN/credit-check", params=params)
    assert answer.status_code == 422 and answer.headers["content-type"].startswith("application/problem+json")
    assert answer.json()["detail"].startswith(detail)


def test_credit_check_of_an_unknown_customer_is_404_and_needs_credentials(web_book: WebBook) -> None:
    missing = web_book.client("viewer").get("/api/v1/customers/NOPE/credit-check", params={"amount": "10"})
    assert missing.status_code == 404 and missing.json()["detail"].startswith("no customer with id 'NOPE'")
    assert web_book.client().get("/api/v1/customers/C-OWN/credit-check", params={"amount": "10"}).status_code == 401


# -- warnings ----------------------------------------------------------------------------------------------


def test_warnings_list_in_the_cli_shape_with_cursors(web_book: WebBook) -> None:
    viewer = web_book.client("viewer")
    listed = viewer.get("/api/v1/warnings").json()
    assert {w["customer_id"] for w in listed["items"]} == {"C-OWN", "C-OTHER"}
    first = listed["items"][0]
    assert set(first) == {
        "id",
        "rule",
        "customer_id",
        "severity",
        "status",
        "raised_at",
        "cleared_at",
        "acknowledged_by",
        "note",
    }
    assert (first["rule"], first["severity"], first["status"]) == ("two_overdue", "high", "open")
    cli = json.loads(json.dumps(web_book.book.app.credit.warnings(open_only=True), default=str))
    assert [w["id"] for w in listed["items"]] == [w["id"] for w in cli]
    one = viewer.get("/api/v1/warnings", params={"limit": 1}).json()
    rest = viewer.get("/api/v1/warnings", params={"limit": 1, "cursor": one["next_cursor"]}).json()
    assert [w["id"] for w in one["items"] + rest["items"]] == [w["id"] for w in listed["items"]]
    mine = viewer.get("/api/v1/warnings", params={"customer": "C-OWN"}).json()["items"]
    assert [w["customer_id"] for w in mine] == ["C-OWN"]


def test_acknowledging_answers_the_event_and_the_warning_leaves_the_open_list(web_book: WebBook) -> None:
    collector = web_book.client("collector")
    warning = web_book.ids["warning_own"]
    answer = collector.post(f"/api/v1/warnings/{warning}/ack", json={"note": "called, paying Friday"})
    assert answer.status_code == 200
    event = answer.json()
    assert (event["kind"], event["actor"], event["warning"], event["note"]) == (
        "warning_acknowledged",
        "alice",
        warning,
        "called, paying Friday",
    )
    viewer = web_book.client("viewer")
    assert warning not in [w["id"] for w in viewer.get("/api/v1/warnings").json()["items"]]
    every = {w["id"]: w for w in viewer.get("/api/v1/warnings", params={"status": "all"}).json()["items"]}
    assert (every[warning]["status"], every[warning]["acknowledged_by"]) == ("acknowledged", "alice")
    again = web_book.client("manager").post(f"/api/v1/warnings/{warning}/ack", json={})
    assert again.status_code == 422 and "not open" in again.json()["detail"]
    assert web_book.client("manager").post("/api/v1/warnings/999999/ack").status_code == 404
    refused = collector.post(f"/api/v1/warnings/{web_book.ids['warning_other']}/ack", json={"note": "mine?"})
    assert refused.status_code == 403 and "owned by bob" in refused.json()["detail"]
    assert [
        e["kind"] for e in web_book.book.app.history(customer="C-OTHER") if e["kind"] == "warning_acknowledged"
    ] == []


def test_the_dashboard_lists_open_warnings_with_the_ack_button_the_role_allows(web_book: WebBook) -> None:
    manager = web_book.login("manager")
    page = manager.get("/").text
    own, other = web_book.ids["warning_own"], web_book.ids["warning_other"]
    for warning, customer in ((own, "C-OWN"), (other, "C-OTHER")):
        row = re.search(rf'<tr data-row="warning-{warning}".*?</tr>', page, re.S).group(0)  # type: ignore[union-attr]
        assert "two_overdue" in row and f'href="/customers/{customer}"' in row
        assert f'action="/warnings/{warning}/ack"' in row
    collector_page = web_book.login("collector").get("/").text
    assert f'action="/warnings/{own}/ack"' in collector_page and f'action="/warnings/{other}/ack"' not in collector_page
    viewer_page = web_book.login("viewer").get("/").text
    assert "two_overdue" in viewer_page and "/ack" not in viewer_page

    answer = manager.post(
        f"/warnings/{other}/ack",
        data={"note": "escalated to sales", "csrf_token": csrf_of(page), "next": "/#warnings"},
        follow_redirects=False,
    )
    assert answer.status_code == 303 and answer.headers["location"] == "/#warnings"
    acked = [e for e in web_book.book.app.history(customer="C-OTHER") if e["kind"] == "warning_acknowledged"]
    assert [(e["actor"], e["note"]) for e in acked] == [("mona", "escalated to sales")]
    assert f'data-row="warning-{other}"' not in manager.get("/").text
    forged = manager.post(f"/warnings/{own}/ack", data={"note": "x", "csrf_token": "forged"})
    assert forged.status_code == 403 and web_book.book.app.credit.warning(own)["status"] == "open"


def test_the_customer_page_shows_its_warnings_grade_limit_and_utilisation(web_book: WebBook) -> None:
    (web_book.book.settings.rules_path / "credit.yaml").write_text(CREDIT, encoding="utf-8")
    page = web_book.login("viewer").get("/customers/C-OWN").text
    credit = re.search(r'<section class="card credit">.*?</section>', page, re.S).group(0)  # type: ignore[union-attr]
    # grade A (imported): limit 10000; open 6 × 1000 + 800 = 6800 → 68.0 %
    assert ">A <small>Imported</small>" in credit and "€10,000.00" in credit and "68.0%" in credit
    assert "60 days" in credit
    warnings = re.search(r'<section class="card warnings".*?</section>', page, re.S).group(0)  # type: ignore[union-attr]
    assert "two_overdue" in warnings and f'data-warning="{web_book.ids["warning_own"]}"' in warnings
    assert f'data-warning="{web_book.ids["warning_other"]}"' not in warnings


# -- charges -----------------------------------------------------------------------------------------------

CHARGING_POLICY = """\
name: eu
stages:
  - {name: reminder, after_days: 3, channels: [email]}
charges:
  interest: {basis: statutory, jurisdiction: EU}
  compensation: statutory
"""


@pytest.fixture
def charging(tmp_path: Path) -> WebBook:
    """The worked example of issue 13: 10,000.00 due 31 January, 4,000.00 paid on 15 February."""
    from engine.web.app import create_app
    from engine.web.auth import hash_password, new_token, token_digest

    shutil.copytree(RATES, tmp_path / "rules" / "rates")
    book = Book(tmp_path, f"sqlite:///{tmp_path / 'c.db'}", {"90-eu.yaml": CHARGING_POLICY}, timezone="Europe/Berlin")
    book.customers({"id": "C1", "name": "Acme GmbH", "owner": "alice"})
    book.invoice("INV-1", "C1", "10000.00", "2026-01-31")
    book.pay("INV-1", "4000.00", "2026-02-15")
    book.clock.at = at("2026-03-02", 12)
    web = WebBook(book, create_app(book.settings, secret=SECRET, dunning=book.app))
    now = book.clock.now()
    users.add_user(book.app.repo, NAMES["viewer"], "viewer", hash_password(PASSWORD), None, now)
    web.tokens["viewer"] = new_token()
    users.add_token(book.app.repo, NAMES["viewer"], token_digest(web.tokens["viewer"]), now + timedelta(days=9), now)
    return web


def test_invoice_charges_api_is_the_cli_json(charging: WebBook) -> None:
    from engine.app import json_ready
    from engine.charging import invoice_charges

    viewer = charging.client("viewer")
    answer = viewer.get("/api/v1/invoices/INV-1/charges", params={"as_of": "2026-03-02"})
    assert answer.status_code == 200
    found = answer.json()
    assert (found["principal_open"], found["interest"], found["compensation"], found["fees"]) == (6000, 65.63, 40, 0)
    assert found["total_due"] == 6105.63 and "2011/7/EU" in found["basis"]
    assert [(p["from"], p["to"], p["days"], p["principal"]) for p in found["periods"]] == [
        ("2026-02-01", "2026-02-14", 14, 10000),
        ("2026-02-15", "2026-03-02", 16, 6000),
    ]
    assert found == json_ready(invoice_charges(charging.book.app, "INV-1").as_dict())  # the clock's day: 2 March
    assert viewer.get("/api/v1/invoices/NOPE/charges").status_code == 404
    assert viewer.get("/api/v1/invoices/INV-1/charges", params={"as_of": "March"}).status_code == 422


def test_the_invoice_page_shows_the_charges(charging: WebBook) -> None:
    page = charging.login("viewer").get("/invoices/INV-1").text
    section = re.search(r'<section class="card charges".*?</section>', page, re.S).group(0)  # type: ignore[union-attr]
    assert 'data-total-due="6105.63"' in section
    for text in ("€6,000.00", "€65.63", "€40.00", "€6,105.63", "2011/7/EU", "10.15 % a year"):
        assert text in section, text


def test_the_invoice_page_has_no_charges_section_when_the_policy_charges_nothing(web_book: WebBook) -> None:
    page = web_book.login("viewer").get("/invoices/INV-NOTE-OWN").text
    assert 'class="card charges"' not in page


def test_a_missing_reference_rate_is_named_on_the_invoice_page_and_the_page_stays_up(charging: WebBook) -> None:
    shutil.rmtree(charging.book.settings.rules_path / "rates")
    page = charging.login("viewer").get("/invoices/INV-1")
    assert page.status_code == 200 and "Timeline" in page.text
    section = re.search(r'<section class="card charges">.*?</section>', page.text, re.S).group(0)  # type: ignore[union-attr]
    assert 'class="error"' in section and "ecb.yaml" in section
    answer = charging.client("viewer").get("/api/v1/invoices/INV-1/charges")
    assert answer.status_code == 422 and "ecb.yaml" in answer.json()["detail"]
