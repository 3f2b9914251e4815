"""Counting days the way a policy says: calendar days, or working days of a country.

Business-day counting is on the sweep's hot path (once per invoice), so holidays become a sorted list of
day ordinals and a count is two bisections plus arithmetic, cached per (from, to) pair.
"""

from __future__ import annotations

from bisect import bisect_right
from datetime import date, timedelta
from functools import lru_cache

import holidays

from engine.policy.model import DayCount, Policy


class DayCounter:
    """Signed number of counted days from `start` to `end` (positive when end is later)."""

    def between(self, start: date, end: date) -> int:
        return (end - start).days

    def reach(self, start: date, count: int) -> date:
        """The first day on which `count` days have been counted since `start`."""
        return start + timedelta(days=count)


class BusinessDays(DayCounter):
    def __init__(self, country: str | None, years: range = range(2000, 2061)):
        self.country = country
        holiday_days: set[int] = set()
        if country:
            for day in holidays.country_holidays(country, years=years):
                if day.weekday() < 5:
                    holiday_days.add(day.toordinal())
        self._holidays = sorted(holiday_days)
        self.between = lru_cache(maxsize=65536)(self._between)  # type: ignore[method-assign]

    def is_working_day(self, day: date) -> bool:
        ordinal = day.toordinal()
        index = bisect_right(self._holidays, ordinal)
        is_holiday = index > 0 and self._holidays[index - 1] == ordinal
        return day.weekday() < 5 and not is_holiday

    def _working_days_until(self, ordinal: int) -> int:
        """Working days in [epoch, ordinal] — prefix counts make any span two look-ups."""
        # date.fromordinal(1) is a Monday, so full weeks contribute 5 each.
        weeks, rest = divmod(ordinal, 7)
        weekdays = weeks * 5 + min(rest, 5)
        return weekdays - bisect_right(self._holidays, ordinal)

    def reach(self, start: date, count: int) -> date:
        # Working days never outnumber calendar days, so the calendar answer is a lower bound to walk from.
        day = start + timedelta(days=min(count, 0) * 2 if count < 0 else count)
        while self.between(start, day) < count:
            day += timedelta(days=1)
        while self.between(start, day - timedelta(days=1)) >= count:
            day -= timedelta(days=1)
        return day

    def _between(self, start: date, end: date) -> int:
        return self._working_days_until(end.toordinal()) - self._working_days_until(start.toordinal())


CALENDAR_DAYS = DayCounter()


@lru_cache(maxsize=64)
def _business(country: str | None) -> BusinessDays:
    return BusinessDays(country)


def day_counter(policy: Policy) -> DayCounter:
    if policy.days is DayCount.BUSINESS:
        return _business(policy.country)
    return CALENDAR_DAYS
