"""`/metrics`: the Prometheus text exposition the daemon serves, and the `/healthz` document."""

from __future__ import annotations

import re
import threading
from datetime import datetime, timezone

from engine.service.health import HealthStatus, Metrics

SAMPLE = re.compile(
    r'^(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(?P<labels>\{(?:[a-zA-Z_]\w*="(?:[^"\\\n]|\\[\\"n])*",?)*\})? '
    r"(?P<value>-?[0-9]+(?:\.[0-9]+)?(?:e[+-]?[0-9]+)?)$"
)
AS_OF = datetime(2026, 3, 10, 8, tzinfo=timezone.utc)


def busy_metrics() -> Metrics:
    metrics = Metrics()
    metrics.sweep_done(1.5, {"reminder": 3, "phone": 1})
    metrics.sweep_done(0.25, {"reminder": 1})
    metrics.dispatch_done({"email": 4}, {"email": 1}, {"sms": 2})
    metrics.policy_reload("loaded")
    metrics.job_error("sweep")
    return metrics


GAUGES = {
    "scheduler_running": True,
    "outbox": {"pending": 2, "sending": 0},
    "last_sweep_as_of": AS_OF,
    "held": {"quiet_hours": 3},
}


def test_the_exposition_text_is_exactly_as_documented() -> None:
    assert (
        busy_metrics().render(GAUGES)
        == """\
# HELP dunning_up 1 while the daemon's scheduler is running.
# TYPE dunning_up gauge
dunning_up 1
# HELP dunning_database_up 1 while the database answers (the outbox and sweep gauges are left out while it does not).
# TYPE dunning_database_up gauge
dunning_database_up 1
# HELP dunning_policy_rejected 1 while the policies on disk are rejected and the daemon runs on the last good ones.
# TYPE dunning_policy_rejected gauge
dunning_policy_rejected 0
# HELP dunning_sweeps_total Sweeps run by this daemon.
# TYPE dunning_sweeps_total counter
dunning_sweeps_total 2
# HELP dunning_sweep_duration_seconds Wall time of the sweeps run by this daemon.
# TYPE dunning_sweep_duration_seconds summary
dunning_sweep_duration_seconds_sum 1.75
dunning_sweep_duration_seconds_count 2
# HELP dunning_last_sweep_duration_seconds Wall time of the latest sweep.
# TYPE dunning_last_sweep_duration_seconds gauge
dunning_last_sweep_duration_seconds 0.25
# HELP dunning_transitions_total Stages entered, per stage.
# TYPE dunning_transitions_total counter
dunning_transitions_total{stage="phone"} 1
dunning_transitions_total{stage="reminder"} 4
# HELP dunning_notifications_sent_total Notifications delivered, per channel.
# TYPE dunning_notifications_sent_total counter
dunning_notifications_sent_total{channel="email"} 4
# HELP dunning_notifications_failed_total Notifications failed for good, per channel.
# TYPE dunning_notifications_failed_total counter
dunning_notifications_failed_total{channel="email"} 1
# HELP dunning_notifications_retrying_total Temporary delivery failures scheduled for a retry, per channel.
# TYPE dunning_notifications_retrying_total counter
dunning_notifications_retrying_total{channel="sms"} 2
# HELP dunning_notifications_held_total Notifications held back (quiet_hours, contact_cap), per reason.
# TYPE dunning_notifications_held_total counter
dunning_notifications_held_total{reason="quiet_hours"} 3
# HELP dunning_policy_reloads_total Policy reloads, per result (loaded, rejected).
# TYPE dunning_policy_reloads_total counter
dunning_policy_reloads_total{result="loaded"} 1
# HELP dunning_job_errors_total Daemon jobs that raised, per job.
# TYPE dunning_job_errors_total counter
dunning_job_errors_total{job="sweep"} 1
# HELP dunning_outbox_depth Notifications in the outbox, per status (pending, sending).
# TYPE dunning_outbox_depth gauge
dunning_outbox_depth{status="pending"} 2
dunning_outbox_depth{status="sending"} 0
# HELP dunning_last_sweep_timestamp_seconds The as-of instant of the latest sweep (Unix time).
# TYPE dunning_last_sweep_timestamp_seconds gauge
dunning_last_sweep_timestamp_seconds 1773129600
"""
    )


def families(text: str) -> dict[str, list[str]]:
    """Parse the exposition as a scraper does: every sample belongs to a family declared just before it."""
    found: dict[str, list[str]] = {}
    declared: str | None = None
    for line in text.splitlines():
        if line.startswith("# HELP "):
            declared = line.split()[2]
            found[declared] = []
            continue
        if line.startswith("# TYPE "):
            assert line.split()[2] == declared and line.split()[3] in ("counter", "gauge", "summary")
            continue
        match = SAMPLE.match(line)
        assert match, f"not a Prometheus sample line: {line!r}"
        assert declared is not None and match["name"] in (declared, f"{declared}_sum", f"{declared}_count"), line
        found[declared].append(line)
    return found


def test_a_fresh_daemon_exposes_every_family_with_zeros() -> None:
    text = Metrics().render({})
    found = families(text)
    assert len(found) == 15 and text.endswith("\n")
    assert found["dunning_up"] == ["dunning_up 0"]
    assert found["dunning_sweeps_total"] == ["dunning_sweeps_total 0"]
    assert found["dunning_last_sweep_timestamp_seconds"] == ["dunning_last_sweep_timestamp_seconds 0"]
    assert found["dunning_transitions_total"] == []  # labelled families without samples yet


def test_label_values_from_configuration_are_escaped() -> None:
    metrics = Metrics()
    metrics.dispatch_done({'sms "eu"\\west\nline': 1}, {}, {})
    (line,) = families(metrics.render({}))["dunning_notifications_sent_total"]
    assert line == 'dunning_notifications_sent_total{channel="sms \\"eu\\"\\\\west\\nline"} 1'


def test_fractions_keep_their_digits_and_whole_numbers_have_none() -> None:
    metrics = Metrics()
    metrics.sweep_done(0.1234567, {})
    found = families(metrics.render({"last_sweep_as_of": datetime(2026, 3, 10, 8, 0, 0, 500000, timezone.utc)}))
    assert found["dunning_last_sweep_duration_seconds"] == ["dunning_last_sweep_duration_seconds 0.1234567"]
    assert found["dunning_last_sweep_timestamp_seconds"] == ["dunning_last_sweep_timestamp_seconds 1773129600.5"]


def test_counters_add_up_across_threads() -> None:
    metrics = Metrics()

    def work() -> None:
        for _ in range(500):
            metrics.dispatch_done({"email": 1}, {}, {"email": 1})
            metrics.sweep_done(0.5, {"reminder": 1})

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    found = families(metrics.render({}))
    assert found["dunning_notifications_sent_total"] == ['dunning_notifications_sent_total{channel="email"} 2000']
    assert found["dunning_sweeps_total"] == ["dunning_sweeps_total 2000"]
    assert found["dunning_transitions_total"] == ['dunning_transitions_total{stage="reminder"} 2000']


def test_health_is_ok_only_with_the_scheduler_running_and_the_database_answering() -> None:
    policies = [{"name": "standard", "sha256": "ab" * 32, "path": "rules/10-standard.yaml"}]
    ok = HealthStatus(True, True, AS_OF, AS_OF, policies=policies)
    assert ok.healthy and ok.as_dict() == {
        "status": "ok",
        "scheduler": "running",
        "database": "ok",
        "last_sweep": "2026-03-10T08:00:00Z",
        "last_sweep_finished_at": "2026-03-10T08:00:00Z",
        "policies": policies,
        "policy_rejection": None,
    }
    down = HealthStatus(True, False, None, None, database_error="connection refused")
    assert not down.healthy
    assert down.as_dict()["database"] == "unreachable: connection refused" and down.as_dict()["last_sweep"] is None
    stopped = HealthStatus(False, True, None, None)
    assert not stopped.healthy and stopped.as_dict()["status"] == "unhealthy"
    assert stopped.as_dict()["scheduler"] == "stopped" and stopped.as_dict()["policies"] == []
