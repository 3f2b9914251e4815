"""The one module that imports APScheduler: cron schedules and the daemon's periodic jobs.

Two halves, deliberately separate:

- `CronSchedule` answers "which scheduled instant is due?" against *any* clock. The daemon never lets
  APScheduler decide when a sweep happens (its triggers follow the wall clock, and a persistent job store
  cannot be shared by several processes — runs get duplicated); instead a short interval job asks the schedule whether an instant
  has passed since the latest sweep recorded in the database. The database holds what is due, so a
  restart, a virtual test clock and a missed tick all reduce to the same question, and a daemon that was
  down over several scheduled instants catches up once, as of the latest of them.
- `JobScheduler` runs plain interval jobs (sweep check, outbox dispatch, policy watch, housekeeping) on an
  in-memory `BackgroundScheduler`: never two runs of one job at once (`max_instances=1`), and runs that
  piled up while the process was busy are coalesced into one.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta, tzinfo
from typing import Any

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger

from engine.errors import ConfigError

__all__ = ["CronSchedule", "JobScheduler", "check_cron"]

logger = logging.getLogger("dunning.scheduler")

#: Look-back windows for the latest scheduled instant: the first one holding a fire time wins, so the
#: walk costs about (window / period) steps whatever the schedule (minutely, daily, monthly, yearly).
_LOOKBACK = (
    timedelta(hours=1),
    timedelta(days=1),
    timedelta(days=8),
    timedelta(days=32),
    timedelta(days=367),
    timedelta(days=4 * 366 + 1),
)


def check_cron(expression: str) -> str:
    """Validate a five-field crontab expression (`0 9 * * mon-fri`); raise ValueError saying what is wrong."""
    try:
        CronTrigger.from_crontab(expression)
    except ValueError as exc:
        raise ValueError(
            f"{expression!r} is not a crontab expression ({exc}); use five fields: minute hour day month "
            "day-of-week, e.g. '0 9 * * mon-fri'"
        ) from None
    return expression


class CronSchedule:
    """A crontab expression in a time zone, asked about instants of an arbitrary (possibly virtual) clock."""

    def __init__(self, expression: str, zone: tzinfo):
        try:
            self.trigger = CronTrigger.from_crontab(expression, timezone=zone)
        except ValueError as exc:
            raise ConfigError(f"schedule.sweep: {exc}; use e.g. '0 9 * * mon-fri'") from None
        self.expression = expression
        self.zone = zone

    def next_after(self, instant: datetime) -> datetime | None:
        """The first scheduled instant strictly after `instant`."""
        # The trigger answers ">= now"; asking from one microsecond later makes it strict.
        return self.trigger.get_next_fire_time(None, instant + timedelta(microseconds=1))

    def latest_due(self, now: datetime, after: datetime | None = None) -> datetime | None:
        """The latest scheduled instant in (`after`, `now`], or None when none has come.

        `after` is the latest sweep already done; without one (a new database) any instant within the
        last few years counts, so a fresh installation sweeps once, as of the latest scheduled instant.
        """
        for window in _LOOKBACK:
            start = now - window
            if after is not None and after > start:
                start = after
            latest = None
            candidate = self.next_after(start)
            while candidate is not None and candidate <= now:
                latest = candidate
                candidate = self.next_after(candidate)
            if latest is not None:
                return latest
            if after is not None and start == after:
                return None  # the whole span since the last sweep holds no scheduled instant
        return None

    def fires_in_hour(self, hour: int, start: datetime, days: int = 8) -> bool:
        """Whether any scheduled instant in the next `days` falls in local hour `hour` (DST checks)."""
        end = start + timedelta(days=days)
        candidate = self.next_after(start)
        for _ in range(20000):
            if candidate is None or candidate > end:
                return False
            if candidate.astimezone(self.zone).hour == hour:
                return True
            candidate = self.next_after(candidate)
        return False


class JobScheduler:
    """Interval jobs in memory on worker threads; one run of each job at a time, missed runs coalesced."""

    def __init__(self, workers: int = 4):
        self._scheduler = BackgroundScheduler(
            executors={"default": ThreadPoolExecutor(max_workers=workers)},
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
            timezone="UTC",
        )
        # A job that is still running when its next tick comes is normal here (a long sweep); APScheduler
        # logs each skipped run as a warning, which would flood the log, so only errors are passed on.
        logging.getLogger("apscheduler").setLevel(logging.ERROR)

    def every(self, name: str, seconds: float, action: Callable[[], Any], *, start_now: bool = False) -> None:
        """Run `action` every `seconds`; with `start_now` the first run is immediate rather than one period on."""
        kwargs: dict[str, Any] = {}
        if start_now:
            kwargs["next_run_time"] = datetime.now().astimezone()
        self._scheduler.add_job(action, "interval", seconds=seconds, id=name, name=name, **kwargs)

    def start(self) -> None:
        self._scheduler.start()

    @property
    def running(self) -> bool:
        return bool(self._scheduler.running)

    def pause(self) -> None:
        """Stop starting new runs; runs in progress carry on."""
        if self._scheduler.running:
            self._scheduler.pause()

    def shutdown(self) -> None:
        """Stop the scheduler without waiting: the daemon waits for in-flight work itself, with a bound."""
        if self._scheduler.running:
            self._scheduler.shutdown(wait=False)
