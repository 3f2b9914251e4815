"""`CronSchedule`: which scheduled sweep is due — the daemon's catch-up after downtime, on any clock."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from engine.errors import ConfigError
from engine.service.scheduler import CronSchedule, check_cron

BERLIN = ZoneInfo("Europe/Berlin")


def local(text: str, zone: ZoneInfo = BERLIN) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=zone)


def test_a_daemon_down_over_several_instants_catches_up_once_as_of_the_latest() -> None:
    daily = CronSchedule("0 9 * * *", BERLIN)
    last_sweep = local("2026-03-02T09:00")
    due = daily.latest_due(local("2026-03-05T10:30"), last_sweep)
    assert due == local("2026-03-05T09:00")  # not 03-03 and 03-04 one by one: one sweep, as of the latest
    # once that sweep is recorded, nothing more is due until the next instant
    assert daily.latest_due(local("2026-03-05T10:30"), due) is None
    assert daily.latest_due(local("2026-03-06T08:59"), due) is None
    assert daily.latest_due(local("2026-03-06T09:00"), due) == local("2026-03-06T09:00")


def test_the_window_is_after_the_last_sweep_exclusive_and_up_to_now_inclusive() -> None:
    daily = CronSchedule("0 9 * * *", BERLIN)
    instant = local("2026-03-05T09:00")
    assert daily.latest_due(instant, local("2026-03-04T09:00")) == instant  # the very instant counts
    assert daily.latest_due(instant, instant) is None  # swept as of it already
    assert daily.latest_due(instant - timedelta(microseconds=1), local("2026-03-04T09:00")) is None


def test_a_missed_weekend_is_nothing_to_catch_up_on_a_weekday_schedule() -> None:
    weekdays = CronSchedule("0 9 * * mon-fri", BERLIN)
    friday = local("2026-03-06T09:00")
    assert weekdays.latest_due(local("2026-03-09T08:00"), friday) is None  # Monday, before nine
    assert weekdays.latest_due(local("2026-03-09T09:30"), friday) == local("2026-03-09T09:00")
    assert weekdays.next_after(friday) == local("2026-03-09T09:00")


def test_a_new_database_sweeps_once_as_of_the_latest_scheduled_instant() -> None:
    now = local("2026-07-15T12:00")
    assert CronSchedule("*/5 * * * *", BERLIN).latest_due(now) == local("2026-07-15T12:00")
    assert CronSchedule("0 9 * * *", BERLIN).latest_due(now) == local("2026-07-15T09:00")
    assert CronSchedule("0 6 1 * *", BERLIN).latest_due(now) == local("2026-07-01T06:00")
    assert CronSchedule("0 9 1 1 *", BERLIN).latest_due(now) == local("2026-01-01T09:00")
    # the rarest schedule there is: leap days, found across the last four years
    assert CronSchedule("0 9 29 2 *", BERLIN).latest_due(now) == local("2024-02-29T09:00")


def test_a_long_downtime_on_a_minutely_schedule_still_catches_up_once() -> None:
    minutely = CronSchedule("* * * * *", BERLIN)
    now = local("2026-03-20T10:00:30")
    assert minutely.latest_due(now, local("2026-03-01T00:00")) == local("2026-03-20T10:00")


def test_instants_are_local_wall_time_across_daylight_saving() -> None:
    daily = CronSchedule("0 9 * * *", BERLIN)
    before, after = local("2026-03-28T09:00"), local("2026-03-30T09:00")  # DST began on 2026-03-29
    assert daily.latest_due(local("2026-03-30T12:00"), before) == after
    assert before.astimezone(timezone.utc).hour == 8 and after.astimezone(timezone.utc).hour == 7
    # the same question asked on a UTC clock gets the same instant
    assert daily.latest_due(local("2026-03-30T12:00").astimezone(timezone.utc), before) == after


def test_next_after_is_strict() -> None:
    daily = CronSchedule("30 8 * * *", BERLIN)
    instant = local("2026-03-05T08:30")
    assert daily.next_after(instant) == local("2026-03-06T08:30")
    assert daily.next_after(instant - timedelta(seconds=1)) == instant


def test_schedules_in_the_daylight_saving_hour_are_detected() -> None:
    assert CronSchedule("30 2 * * *", BERLIN).fires_in_hour(2, local("2026-03-01T00:00"))
    assert not CronSchedule("0 9 * * *", BERLIN).fires_in_hour(2, local("2026-03-01T00:00"))


def test_bad_expressions_say_what_a_crontab_line_looks_like() -> None:
    with pytest.raises(ValueError, match="five fields: minute hour day month day-of-week"):
        check_cron("every day at nine")
    assert check_cron("0 9 * * mon-fri") == "0 9 * * mon-fri"
    with pytest.raises(ConfigError, match="schedule.sweep"):
        CronSchedule("61 9 * * *", BERLIN)
