"""The real daemon in a subprocess on a virtual clock: schedules, quiet hours, holidays, policy reloads.

Virtual time runs thousands of times faster than real time (`--clock-start`, `--clock-rate`), so days of
scheduled sweeps pass in seconds without sleeping through them.
"""

from __future__ import annotations

import json
import re
import signal
import socket
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.daemon_harness import REMINDER_POLICY, Book, utc, wait_for

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def book(tmp_path: Path) -> Iterator[Book]:
    created: list[Book] = []

    def make(**kwargs: object) -> Book:
        b = Book(tmp_path, **kwargs)  # type: ignore[arg-type]
        created.append(b)
        return b

    yield make  # type: ignore[misc]
    for b in created:
        b.cleanup()


def test_sweeps_run_at_scheduled_instants_and_a_missed_run_is_caught_up_once(book) -> None:  # type: ignore[no-untyped-def]
    b = book()
    b.customers("C1,Acme GmbH,ap@acme.example,,1 Main St,A,,,en,Europe/Berlin,")
    b.invoices("INV-1,C1,EUR,100.00,2026-02-01,2026-03-01,")
    # Thursday 08:30 in Berlin, a virtual day per real second: Thu, Fri, (no Sat/Sun), Mon.
    daemon = b.start("2026-03-05T08:30", 86400)
    daemon.wait_log("daemon started")
    wait_for(lambda: utc("2026-03-09T08:00:00Z") in b.sweeps(), 40, lambda: f"Monday's sweep; have {b.sweeps()}")
    assert daemon.stop() == 0
    assert b.sweeps() == [
        utc("2026-03-04T08:00:00Z"),  # the new book catches up the latest missed instant once (Wed 09:00)
        utc("2026-03-05T08:00:00Z"),  # Thu 09:00 CET
        utc("2026-03-06T08:00:00Z"),  # Fri
        utc("2026-03-09T08:00:00Z"),  # Mon: nothing on the weekend
    ]
    # Down from Monday until Thursday noon: Tue, Wed and Thu 09:00 were missed; one sweep, as of Thursday's.
    again = b.start("2026-03-12T12:00", 60)
    again.wait_log("swept")
    assert again.stop() == 0
    assert b.sweeps()[4:] == [utc("2026-03-12T08:00:00Z")]
    assert "catching up a missed run" in again.log()
    keys = b.logged_keys()
    assert len(keys) == len(set(keys)) == len(b.outbox()) > 0  # every notification sent exactly once


def test_quiet_hours_and_holidays_hold_sends_until_the_customers_morning(book) -> None:  # type: ignore[no-untyped-def]
    b = book(
        quiet_hours={"start": "20:00", "end": "08:00", "weekends": True, "holidays": True},
        schedule={"dispatch_every_seconds": 0.1},
    )
    b.customers(
        "NY,NY Corp,ap@ny.example,,1 Broadway,A,,,en,America/New_York,country:US",
        "B1,Berlin Eins GmbH,ap@b1.example,,Unter den Linden 1,A,,,de,Europe/Berlin,",
        "B2,Berlin Zwei GmbH,ap@b2.example,,Unter den Linden 2,A,,,de,Europe/Berlin,",
    )
    b.invoices(
        "INV-NY,NY,USD,100.00,2026-04-01,2026-04-29,",
        "INV-B1,B1,EUR,100.00,2026-04-01,2026-04-29,",
        "INV-B2,B2,EUR,100.00,2026-04-01,2026-04-30,",
    )
    b.cli("run", "--as-of", "2026-04-29T23:00+02:00", "--no-dispatch")  # the book is up to date: nothing due
    # Thu 30 April 08:30 Berlin; Friday 1 May is Labour Day in Germany.
    daemon = b.start("2026-04-30T08:30", 43200)  # 12 virtual hours per real second
    wait_for(
        lambda: b.outbox().get("INV-B2/reminder@20260501T070000Z/0/email", {}).get("status") == "sent",
        40,
        lambda: f"INV-B2's reminder to be sent; outbox {b.outbox()}",
    )
    assert daemon.stop() == 0
    box = {row["invoice"]: row for row in b.outbox().values()}
    # Thu 09:00 Berlin is 03:00 in New York: held until 08:00 EDT (12:00 UTC).
    ny = box["INV-NY"]
    assert ny["created_at"] == utc("2026-04-30T07:00:00Z")
    assert ny["due_at"] == utc("2026-04-30T12:00:00Z")
    # Sent once due, on the customer's same working day (a loaded test machine may tick late).
    assert utc("2026-04-30T12:00:00Z") <= ny["sent_at"] < utc("2026-05-01T04:00:00Z")
    assert ny["attempts"] == 1  # holding a message is not a delivery attempt
    # The Berlin customer is in its working day: sent at once.
    b1 = box["INV-B1"]
    assert b1["due_at"] == b1["created_at"] == utc("2026-04-30T07:00:00Z")
    assert b1["sent_at"] < utc("2026-04-30T12:00:00Z")
    # Fri 1 May (holiday), then the weekend: held until Monday 08:00 Berlin (06:00 UTC).
    b2 = box["INV-B2"]
    assert b2["created_at"] == utc("2026-05-01T07:00:00Z")
    assert b2["due_at"] == utc("2026-05-04T06:00:00Z")
    assert b2["sent_at"] >= utc("2026-05-04T06:00:00Z")


BAD_POLICY = """\
name: fallback
min_days_between_stages: 0
stages:
  - name: reminder
    after_days: 1
    channels: [emial]
"""

GOOD_EDIT = REMINDER_POLICY.replace("after_days: 20", "after_days: 15")


def test_a_bad_policy_edit_is_rejected_and_a_good_one_applies_at_the_next_sweep(book) -> None:  # type: ignore[no-untyped-def]
    b = book(schedule={"sweep": "0 * * * *"})  # hourly: a sweep every half second at 7200x
    b.customers("C1,Acme GmbH,ap@acme.example,,1 Main St,A,,,en,Europe/Berlin,")
    b.invoices("INV-1,C1,EUR,100.00,2026-02-01,2026-03-01,")
    daemon = b.start("2026-03-02T08:30", 7200)
    wait_for(lambda: len(b.sweeps()) >= 2, 30, "two sweeps")
    original = b.query("SELECT DISTINCT policy_fingerprint FROM sweeps")
    assert len(original) == 1

    b.write("rules/90-default.yaml", BAD_POLICY)
    daemon.wait_log("policy change rejected")
    check = b.cli("policy", "check", ok=False)
    problems = [line for line in check.stderr.splitlines() if re.match(r".+:\d+:\d+: ", line)]
    assert problems and all(problem in daemon.log() for problem in problems)  # the same FILE:LINE:COLUMN text
    rejected = json.loads(b.cli("policy", "events", "--json").stdout)[-1]
    assert rejected["kind"] == "policy_rejected" and rejected["problems"] == problems
    count = len(b.sweeps())
    wait_for(lambda: len(b.sweeps()) >= count + 2, 30, "sweeps after the rejection")
    assert b.query("SELECT DISTINCT policy_fingerprint FROM sweeps") == original  # still the last good set
    assert daemon.proc.poll() is None

    b.write("rules/90-default.yaml", GOOD_EDIT)
    daemon.wait_log("policies loaded (file change)")
    count = len(b.sweeps())
    wait_for(lambda: len(b.sweeps()) >= count + 1, 30, "a sweep after the good edit")
    fingerprints = [r[0] for r in b.query("SELECT policy_fingerprint FROM sweeps ORDER BY as_of")]
    assert fingerprints[-1] != original[0][0]

    mark = len(daemon.log())
    daemon.send(signal.SIGHUP)
    daemon.wait_log("policies unchanged (SIGHUP)", after=mark)
    assert daemon.stop() == 0

    versions = json.loads(b.cli("policy", "versions", "--json").stdout)
    fallback = [v for v in versions if v["name"] == "fallback"]
    assert len(fallback) == 2 and fallback[0]["sha256"] != fallback[1]["sha256"]
    assert "after_days: 20" in fallback[0]["text"] and "after_days: 15" in fallback[1]["text"]
    assert fallback[0]["took_effect_at"] < fallback[1]["took_effect_at"]
    assert all(v["loaded_at"] for v in fallback)
    # Every transition names the exact text that decided it.
    hashes = {v["sha256"] for v in versions}
    history = json.loads(b.cli("history", "INV-1", "--json").stdout)
    assert {e["policy_hash"] for e in history if e["kind"] == "transition"} <= hashes


def test_a_second_daemon_on_the_same_sqlite_file_is_refused(book) -> None:  # type: ignore[no-untyped-def]
    b = book()
    first = b.start("2026-03-05T08:30", 1)
    first.wait_log("daemon started")
    second = b.start("2026-03-05T08:30", 1)
    assert second.proc.wait(timeout=30) == 1
    assert f"another dunning daemon (pid {first.pid}) is already running against" in second.log()
    assert "use PostgreSQL" in second.log()
    assert first.proc.poll() is None
    assert first.stop() == 0
    third = b.start("2026-03-05T08:30", 1)  # the lock is gone with its holder
    third.wait_log("daemon started")
    assert third.stop() == 0


def test_once_runs_one_cycle_and_exits(book) -> None:  # type: ignore[no-untyped-def]
    b = book()
    b.customers("C1,Acme GmbH,ap@acme.example,,1 Main St,A,,,en,Europe/Berlin,")
    b.invoices("INV-1,C1,EUR,100.00,2026-02-01,2026-03-01,")
    first = b.cli("daemon", "--once", "--clock-start", "2026-03-05T10:00")
    assert "swept as of 2026-03-05T08:00:00Z" in first.stdout and "1 sent" in first.stdout
    second = b.cli("daemon", "--once", "--clock-start", "2026-03-05T11:00")
    assert "no scheduled sweep was due" in second.stdout and "0 sent" in second.stdout


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_health_metrics_and_json_logs(book) -> None:  # type: ignore[no-untyped-def]
    b = book(quiet_hours={"start": "20:00", "end": "08:00"})
    b.customers(
        "C1,Acme GmbH,ap@acme.example,,1 Main St,A,,,en,Europe/Berlin,",
        "NY,NY Corp,ap@ny.example,,1 Broadway,A,,,en,America/New_York,country:US",
    )
    b.invoices("INV-1,C1,EUR,100.00,2026-02-01,2026-03-01,", "INV-NY,NY,USD,50.00,2026-02-01,2026-03-01,")
    port = free_port()
    daemon = b.start("2026-03-05T08:59:58", 1, "--health-port", str(port), "--log-format", "json")
    wait_for(lambda: len(b.sweeps()) == 2, 30, "the catch-up sweep and Thursday's")
    daemon.wait_log('"event": "dispatched"')
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=10) as reply:
        health = json.loads(reply.read())
        assert reply.status == 200
    assert health["status"] == "ok" and health["scheduler"] == "running" and health["database"] == "ok"
    assert health["last_sweep"] == "2026-03-05T08:00:00Z"
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as reply:
        metrics = reply.read().decode()
        assert reply.headers["Content-Type"].startswith("text/plain")
    assert "dunning_up 1" in metrics
    assert "dunning_sweeps_total 2" in metrics  # the catch-up as of Wednesday, then Thursday 09:00
    assert 'dunning_notifications_sent_total{channel="email"} 1' in metrics
    assert 'dunning_notifications_held_total{reason="quiet_hours"} 1' in metrics
    assert 'dunning_outbox_depth{status="pending"} 1' in metrics
    assert 'dunning_transitions_total{stage="reminder"} 2' in metrics
    assert re.search(r"^dunning_sweep_duration_seconds_count 2$", metrics, re.M)
    assert daemon.stop() == 0
    lines = daemon.json_lines()  # every line of output is a JSON object
    assert {"started", "swept", "dispatched", "stopped"} <= {line.get("event") for line in lines}
    assert all({"ts", "level", "logger", "message"} <= set(line) for line in lines)


def test_once_runs_the_scheduled_credit_review(book) -> None:  # type: ignore[no-untyped-def]
    b = book(schedule={"credit_review": "0 6 1 * *"})
    rules = Path(__file__).resolve().parents[2] / "rules"
    b.write("rules/credit.yaml", (rules / "credit.yaml").read_text(encoding="utf-8"))
    b.customers("C1,Acme GmbH,ap@acme.example,,1 Main St,A,,,en,Europe/Berlin,")
    b.invoices("INV-1,C1,CNY,100.00,2026-01-01,2026-02-01,")  # unpaid and overdue: score 15, grade D
    b.cli("daemon", "--once", "--clock-start", "2026-03-05T10:00")
    changes = [
        e for e in json.loads(b.cli("history", "--customer", "C1", "--json").stdout) if e["kind"] == "grade_changed"
    ]
    assert [(c["old"], c["new"], c["at"], c["actor"]) for c in changes] == [
        ("A", "D", "2026-03-01T05:00:00Z", "daemon")
    ]
    b.cli("daemon", "--once", "--clock-start", "2026-03-06T10:00")  # the March review is done: not again
    again = [
        e for e in json.loads(b.cli("history", "--customer", "C1", "--json").stdout) if e["kind"] == "grade_changed"
    ]
    assert len(again) == 1
