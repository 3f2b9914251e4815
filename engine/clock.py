"""Time: the instant a sweep is "as of", and the company-local day it falls on.

Everything that decides takes an explicit instant; only the CLI and the daemon ask the wall clock, through
a Clock, so tests and simulations run weeks forward without sleeping.
"""

from __future__ import annotations

from datetime import date, datetime, time, timezone, tzinfo
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


def parse_instant(text: str, zone: tzinfo) -> datetime:
    """An ISO date or datetime; a bare date is the start of that day, and a naive time is company-local."""
    text = text.strip()
    try:
        if len(text) == 10:
            return datetime.combine(date.fromisoformat(text), time(0), tzinfo=zone)
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise DunningError(
            f"cannot read {text!r} as a date or time; use ISO 8601 such as 2026-03-31 or 2026-03-31T09:00+01:00"
        ) from None
    return value if value.tzinfo else value.replace(tzinfo=zone)


def local_day(instant: datetime, zone: tzinfo) -> date:
    return instant.astimezone(zone).date()


def iso(instant: datetime | None) -> str | None:
    return instant.astimezone(timezone.utc).isoformat().replace("+00:00", "Z") if instant else None
