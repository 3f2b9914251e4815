"""Time: the instant a sweep is "as of", and the company-local day it falls on.

Everything that decides takes an explicit instant; only the CLI and the daemon ask the wall clock, through
a Clock, so tests and simulations run weeks forward without sleeping.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone, tzinfo
from typing import Protocol

from engine.errors import DunningError


class Clock(Protocol):
    def now(self) -> datetime: ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(timezone.utc)


class FixedClock:
    """A clock that stands still until told to move (tests, simulations)."""

    def __init__(self, at: datetime):
        self.at = at

    def now(self) -> datetime:
        return self.at


class TickingClock(FixedClock):
    """A clock that stands still until told to move, except that every reading is a microsecond after the
    one before (simulations). What a sweep writes is then recorded before the sweep's own `finished_at`, as
    under a real clock, so the next sweep's "written since the last sweep" safety net does not take the
    sweep's own writes for someone else's and re-read the whole book."""

    def now(self) -> datetime:
        self.at += _TICK
        return self.at


_TICK = timedelta(microseconds=1)


#: The days dunning works with. Beyond them, adding a time zone offset or the days of a ladder would leave
#: Python's date range (year 1 to 9999) and no receivable is dated there anyway.
EARLIEST_DAY = date(1900, 1, 1)
LATEST_DAY = date(9000, 12, 31)


def out_of_range(day: date) -> str | None:
    """Why `day` is outside the supported range, or None when it is inside."""
    if EARLIEST_DAY <= day <= LATEST_DAY:
        return None
    return f"{day.isoformat()} is outside the supported range {EARLIEST_DAY.isoformat()} to {LATEST_DAY.isoformat()}"


def parse_instant(text: str, zone: tzinfo) -> datetime:
    """An ISO date or datetime; a bare date is the start of that day, and a naive time is company-local."""
    text = text.strip()
    try:
        if len(text) == 10:
            value = datetime.combine(date.fromisoformat(text), time(0), tzinfo=zone)
        else:
            value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise DunningError(
            f"cannot read {text!r} as a date or time; use ISO 8601 such as 2026-03-31 or 2026-03-31T09:00+01:00"
        ) from None
    problem = out_of_range(value.date())
    if problem:
        raise DunningError(f"cannot use {text!r}: {problem}")
    return value if value.tzinfo else value.replace(tzinfo=zone)


def local_day(instant: datetime, zone: tzinfo) -> date:
    return instant.astimezone(zone).date()


def iso(instant: datetime | None) -> str | None:
    return instant.astimezone(timezone.utc).isoformat().replace("+00:00", "Z") if instant else None


def local_iso(instant: datetime | None, zone: tzinfo) -> str | None:
    """The instant in ISO 8601 with the company's UTC offset of that moment: `2026-03-04T10:00:00+01:00`."""
    return instant.astimezone(zone).isoformat() if instant else None
