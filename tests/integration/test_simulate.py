"""Simulation on a real database (SQLite and PostgreSQL): it must be the real sweep, and must change nothing."""

from __future__ import annotations

from datetime import date, time, timedelta
from decimal import Decimal

import pytest

from channels.memory import MemoryChannel
from engine.authoring.simulate import PaymentsModel, SimulationError, Simulator
from engine.policy.loader import load_policies
from tests.conftest import CANONICAL_POLICY, Book


def daily(book: Book, first: str, last: str) -> None:
    day, end = date.fromisoformat(first), date.fromisoformat(last)
    while day <= end:
        book.run(day)
        day += timedelta(days=1)


def fingerprint(book: Book) -> tuple[object, ...]:
    """Everything a simulation could conceivably touch in the user's database."""
    app = book.app
    return (
        app.latest_sweep(),
        app.outbox(),
        app.open_invoices(),
        [app.history(i["number"]) for i in app.open_invoices()],
    )


def real_transitions(book: Book, numbers: list[str], after: str) -> list[tuple[str, str, str, str, str]]:
    rows = []
    for number in numbers:
        for e in book.app.history(number):
            if e["kind"] == "transition" and e["at"][:10] >= after:
                rows.append((e["at"][:10], number, e["from"], e["to"], e["rule"]))
    return sorted(rows)


def real_notifications(book: Book, numbers: list[str], after: str) -> list[tuple[str, str, str, str, int, str]]:
    rows = []
    for number in numbers:
        for e in book.app.history(number):
            if e["kind"] == "notification" and e["at"][:10] >= after:
                rows.append((e["at"][:10], number, e["stage"], e["channel"], e["repeat"], e["recipient"]))
    return sorted(rows, key=lambda r: (r[0], r[1], r[2], r[4], r[3]))


@pytest.fixture
def book(make_book) -> Book:  # type: ignore[no-untyped-def]
    book = make_book()
    book.customers(
        {"id": "C1", "name": "Acme", "credit_grade": "A"},
        {"id": "C2", "name": "Bolt", "credit_grade": "D"},
        {"id": "C3", "name": "New Co"},
    )
    book.invoice("BIG", "C1", "75000.00", due_on="2026-03-01")
    book.invoice("MID", "C1", "20000.00", due_on="2026-03-10")
    book.invoice("SMALL", "C1", "900.00", due_on="2026-02-01")
    book.invoice("LATE", "C1", "60000.00", due_on="2025-12-01")
    book.invoice("D1", "C2", "5000.00", due_on="2026-03-05")
    book.invoice("N1", "C3", "300.00", due_on="2026-03-20")
    return book


NUMBERS = ["BIG", "MID", "SMALL", "LATE", "D1", "N1"]


def test_simulating_then_sweeping_for_real_gives_identical_transitions_and_notifications(book: Book) -> None:
    daily(book, "2026-02-20", "2026-03-05")  # some history first: the simulation starts mid-ladder
    book.pay("MID", "5000.00", "2026-03-05")  # a partial payment the simulation must see
    before = fingerprint(book)
    sent_before = len(MemoryChannel.sent)

    simulation = Simulator(book.app, at=time(9)).run(date(2026, 3, 6), date(2026, 6, 20))

    assert fingerprint(book) == before, "a simulation must not write to the user's database"
    assert len(MemoryChannel.sent) == sent_before, "a simulation must not send anything"
    assert simulation.transitions(), "the book must actually move during the period"

    daily(book, "2026-03-06", "2026-06-20")  # reality, on the very database the simulation read
    assert simulation.transitions() == real_transitions(book, NUMBERS, "2026-03-06")
    assert simulation.notifications() == real_notifications(book, NUMBERS, "2026-03-06")
    total = simulation.total()
    assert sum(total.notifications.values()) == len(real_notifications(book, NUMBERS, "2026-03-06"))
    # amounts entering legal: BIG never (visit then legal at 75,000), LATE and MID do under `standard`
    legal = {(t[1]) for t in simulation.transitions() if t[3] == "legal"}
    assert total.legal_invoices == len(legal)
    assert total.legal_amount["EUR"] == sum(
        Decimal({"BIG": "75000.00", "MID": "15000.00", "LATE": "60000.00"}[n]) for n in legal
    )


def test_timeline_per_invoice_and_weekly_periods(book: Book) -> None:
    simulation = Simulator(book.app).run(date(2026, 2, 25), date(2026, 3, 31))
    timeline = simulation.timelines["BIG"].entries
    assert [(e["day"], e["to"]) for e in timeline if e["kind"] == "transition"] == [
        (date(2026, 2, 26), "courtesy"),
        (date(2026, 3, 4), "reminder"),
        (date(2026, 3, 16), "phone"),
        (date(2026, 3, 31), "letter"),
    ]
    weeks = simulation.periods("week")
    assert len(weeks) == 5 and weeks[0].first == date(2026, 2, 25) and weeks[-1].last == date(2026, 3, 31)
    assert sum(w.entered["reminder"] for w in weeks) == simulation.total().entered["reminder"]
    data = simulation.as_dict(by="week")
    assert data["total"]["notifications"]["letter"] == {"letter": 3, "email": 3}  # BIG, SMALL, LATE
    assert data["invoices"]["BIG"]["customer_id"] == "C1"


def test_other_policies_change_only_the_simulation(book: Book, tmp_path) -> None:  # type: ignore[no-untyped-def]
    folder = tmp_path / "faster"
    folder.mkdir()
    (folder / "10-standard.yaml").write_text(CANONICAL_POLICY.replace("after_days: 15", "after_days: 12"))
    (folder / "90-default.yaml").write_text((book.settings.rules_path / "90-default.yaml").read_text())
    faster = load_policies(folder, known_channels=book.settings.channel_settings().keys())
    simulation = Simulator(book.app, policies=faster).run(date(2026, 3, 1), date(2026, 3, 20))
    phone = [t for t in simulation.transitions() if t[1] == "BIG" and t[3] == "phone"]
    assert phone[0][0] == "2026-03-13"
    assert book.app.policies.by_name("standard").stage("phone").after_days == 15


def test_historical_payments_are_reproducible_and_go_through_the_importer(book: Book) -> None:
    # History: 6 of the 9 invoices that entered `reminder` on 01-04 (the H* and LATE) were paid within days.
    for n in range(8):
        book.invoice(f"H{n}", "C1", "100.00", due_on="2026-01-01")
    daily(book, "2026-01-04", "2026-01-04")
    for n in range(6):
        book.pay(f"H{n}", "100.00", "2026-01-06")
    daily(book, "2026-01-30", "2026-01-30")

    first = Simulator(book.app, payments_model=PaymentsModel.HISTORICAL, seed=3).run(
        date(2026, 2, 1), date(2026, 4, 30)
    )
    again = Simulator(book.app, payments_model=PaymentsModel.HISTORICAL, seed=3).run(
        date(2026, 2, 1), date(2026, 4, 30)
    )
    assert first.payment_rates["reminder"].entered == 9 and first.payment_rates["reminder"].paid == 6
    assert first.transitions() == again.transitions() and first.notifications() == again.notifications()
    assert first.total().payments > 0
    paid = [t for t in first.transitions() if t[3] == "paid"]
    assert paid and all(t[4] == "payment settled the open amount" for t in paid)
    # paid invoices stop escalating
    for day, number, *_ in paid:
        assert all(t[0] <= day for t in first.transitions() if t[1] == number)
    none = Simulator(book.app).run(date(2026, 2, 1), date(2026, 4, 30))
    assert none.total().payments == 0


def test_simulated_payments_replayed_for_real_give_the_same_outcome(book: Book) -> None:
    for n in range(6):
        book.invoice(f"H{n}", "C1", "100.00", due_on="2026-01-01")
    book.run("2026-01-04")
    for n in range(4):
        book.pay(f"H{n}", "100.00", "2026-01-06")
    book.run("2026-01-30")
    simulation = Simulator(book.app, payments_model=PaymentsModel.HISTORICAL, seed=11).run(
        date(2026, 2, 1), date(2026, 3, 31)
    )
    payments = sorted(
        (e["day"], n, e["amount"]) for n, t in simulation.timelines.items() for e in t.entries if e["kind"] == "payment"
    )
    assert payments
    day = date(2026, 2, 1)
    while day <= date(2026, 3, 31):
        book.run(day)
        for paid_day, number, amount in payments:
            if paid_day == day:
                book.pay(number, str(amount), day.isoformat(), reference=f"SIMULATED-{day}-{number}")
        day += timedelta(days=1)
    numbers = list(simulation.timelines)
    assert simulation.transitions() == real_transitions(book, numbers, "2026-02-01")
    assert simulation.notifications() == real_notifications(book, numbers, "2026-02-01")


def test_simulating_before_the_latest_sweep_is_refused(book: Book) -> None:
    book.run("2026-03-10")
    with pytest.raises(SimulationError, match="simulate from 2026-03-11 or later"):
        Simulator(book.app).run(date(2026, 3, 10), date(2026, 3, 20))
    with pytest.raises(SimulationError, match="before --from"):
        Simulator(book.app).run(date(2026, 3, 20), date(2026, 3, 11))


def test_a_simulated_day_reads_only_what_is_due_not_the_previous_days_own_writes(
    book: Book, monkeypatch: pytest.MonkeyPatch
) -> None:
    import engine.sweep

    seen: list[int] = []
    sweep = engine.sweep.Sweeper.run

    def counted(self, as_of):  # type: ignore[no-untyped-def]
        report = sweep(self, as_of)
        seen.append(report.invoices_seen)
        return report

    monkeypatch.setattr(engine.sweep.Sweeper, "run", counted)
    simulation = Simulator(book.app).run(date(2026, 3, 2), date(2026, 3, 4))
    assert len(seen) == 3 and seen[0] == simulation.invoices_open_at_start == len(NUMBERS)
    # The first sweep wrote every invoice (its next action day); the next days read only the ones due.
    assert max(seen[1:]) < seen[0], seen


def test_folded_events_match_what_the_scratch_sweeps_wrote(book: Book, monkeypatch: pytest.MonkeyPatch) -> None:
    """The simulator folds the events handed over as they are appended; they must be the stored ones."""
    import engine.authoring.simulate as simulate

    stored: list[tuple[str, str, str | None]] = []
    copy = simulate.scratch_copy

    from contextlib import contextmanager

    @contextmanager
    def recording(source):  # type: ignore[no-untyped-def]
        with copy(source) as repo:
            yield repo
            with repo.read() as session:
                rows = session.connection().exec_driver_sql(
                    "SELECT kind, json_extract(data, '$.invoice'), json_extract(data, '$.to') FROM events "
                    "WHERE kind IN ('transition', 'notification') AND at >= '2026-02-25' ORDER BY id"
                )
                stored.extend(tuple(row) for row in rows)

    monkeypatch.setattr(simulate, "scratch_copy", recording)
    book.pay("SMALL", "900.00", "2026-02-20")
    simulation = Simulator(book.app, payments_model=PaymentsModel.HISTORICAL, seed=5).run(
        date(2026, 2, 25), date(2026, 4, 10)
    )
    folded = [
        (e["kind"], number, e.get("to"))
        for number, timeline in simulation.timelines.items()
        for e in timeline.entries
        if e["kind"] in ("transition", "notification")
    ]
    assert stored and sorted(folded, key=str) == sorted(stored, key=str)


def test_the_scratch_copy_is_throwaway_and_the_users_database_keeps_its_indexes(book: Book) -> None:
    from engine.store.scratch import UNREAD_INDEXES, scratch_copy

    def indexes(repo):  # type: ignore[no-untyped-def]
        with repo.read() as session:
            return {name for (name,) in session.connection().exec_driver_sql("SELECT name FROM sqlite_master")}

    with scratch_copy(book.app.repo) as repo:
        with repo.write() as session:
            conn = session.connection()
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "off"
            assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 0
        assert not indexes(repo) & set(UNREAD_INDEXES)
        assert "ix_invoices_customer_id" in indexes(repo)  # what the sweep reads through stays
    if book.app.repo.dialect == "sqlite":
        assert set(UNREAD_INDEXES) <= indexes(book.app.repo)
