"""`POST /api/v1/tasks/{id}/done` with `at`, as `dunning tasks done --at`: read as the invoice actions read
it (company time zone when naive), and refused before the latest sweep with nothing recorded."""

from __future__ import annotations

from engine.clock import iso, parse_instant
from tests.web.conftest import WebBook


def task_events(web: WebBook, number: str) -> list[dict]:
    return [e for e in web.book.app.history(number) if e["kind"] in ("task_outcome", "promise")]


def test_an_outcome_dated_after_the_sweep_is_recorded_as_of_then(web_book: WebBook) -> None:
    collector = web_book.client("collector")
    task = web_book.ids["task_own"]
    answer = collector.post(
        f"/api/v1/tasks/{task}/done",
        json={"outcome": "promised", "amount": "700", "by": "2026-01-30", "at": "2026-01-12T09:30"},
    )
    assert answer.status_code == 200, answer.text
    when = iso(parse_instant("2026-01-12T09:30", web_book.book.settings.zone))  # naive: the company's zone
    assert when != iso(web_book.book.clock.now())
    assert (answer.json()["status"], answer.json()["done_at"], answer.json()["done_by"]) == ("done", when, "alice")
    recorded = task_events(web_book, "INV-TASK-OWN")
    assert {e["kind"] for e in recorded} == {"task_outcome", "promise"} and {e["at"] for e in recorded} == {when}


def test_an_outcome_dated_before_the_sweep_is_refused_and_records_nothing(web_book: WebBook) -> None:
    manager = web_book.client("manager")
    task = web_book.ids["task_other"]
    before = web_book.book.app.history("INV-TASK-OTHER")  # the sweep ran as of 09:00 UTC: 08:30 UTC is before
    early = manager.post(
        f"/api/v1/tasks/{task}/done",
        json={"outcome": "promised", "amount": "700", "by": "2026-01-30", "at": "2026-01-12T09:30+01:00"},
    )
    assert early.status_code == 422 and early.headers["content-type"].startswith("application/problem+json")
    assert f"task {task}: the action is dated" in early.json()["detail"]
    assert "before the latest sweep" in early.json()["detail"]
    unreadable = manager.post(f"/api/v1/tasks/{task}/done", json={"outcome": "no_answer", "at": "soon"})
    assert unreadable.status_code == 422 and "cannot read 'soon'" in unreadable.json()["detail"]
    assert web_book.book.app.history("INV-TASK-OTHER") == before
    still = manager.get("/api/v1/tasks").json()["items"]
    assert next(t for t in still if t["id"] == task)["status"] == "open"
