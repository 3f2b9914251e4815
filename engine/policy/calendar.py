"""Which days are working days, and counting days the way a policy says: ONE rule for the whole engine.

A day is a *working day* of a country when it is not a public holiday there and either falls outside the
country's weekend or is one of its make-up working days. Weekend and make-up days come from the `holidays`
package itself: Saturday–Sunday for most countries, Friday–Saturday for SA, IL, EG, KW …, Friday alone for
IR; China moves working days onto weekends around its long holidays (调休), and those Saturdays and Sundays
are worked. Without a country (or for a code `holidays` does not know) the weekend is Saturday–Sunday and
there are no holidays. Codes may name a subdivision: `GB-ENG`, `DE-BY`.

Two users, one rule:
- `days: business` policies count working days (`day_counter(policy)`, used by decide, commitments, explain);
- quiet hours hold messages on the days that are not (`engine.contact` asks `working_days(country)`).

Counting is on the sweep's hot path (once per invoice), so nothing here calls `holidays` per invoice: a
country's years 2000–2060 are read once into a table of prefix counts (working days up to each day), and a
count is two look-ups, a `reach` one bisection. Outside those years the weekly pattern continues (weekends
only, no holidays), with arithmetic rather than a walk; single-day questions answer the same way, so a day
is counted exactly when quiet hours let messages out on it. Any count is O(1) (a million working days is as
quick as one); a day beyond 9999-12-31 is reached on 9999-12-31, which the engine reads as "never".
"""

from __future__ import annotations

from bisect import bisect_left
from datetime import date, timedelta
from functools import lru_cache

import holidays

from engine.policy.model import DayCount, Policy

__all__ = [
    "CALENDAR_DAYS",
    "DayCounter",
    "WorkingDays",
    "day_counter",
    "is_known_country",
    "known_countries",
    "working_days",
]

#: The years read from `holidays` into the prefix table.
YEARS = range(2000, 2061)
_MAX_ORDINAL = date.max.toordinal()
#: Saturday and Sunday (`date.weekday()` numbers): the weekend without a country.
DEFAULT_WEEKEND = frozenset({5, 6})


class DayCounter:
    """Signed number of counted days from `start` to `end` (positive when end is later): calendar days."""

    def between(self, start: date, end: date) -> int:
        return (end - start).days

    def reach(self, start: date, count: int) -> date:
        """The first day on which `count` days have been counted since `start` (beyond the calendar's
        range: its last or first day, i.e. never)."""
        try:
            return start + timedelta(days=count)
        except OverflowError:  # past 9999-12-31 (or a count beyond a C int)
            return date.max if count > 0 else date.min


class WorkingDays(DayCounter):
    """The working days of one country (see the module docstring); counts only those days.

    `between(start, end)` counts the working days in (start, end]; `reach(start, n)` is the earliest day
    `d` with `between(start, d) >= n`.
    """

    def __init__(self, country: str | None, years: range = YEARS):
        self.country = country
        source = _holiday_source(country, years)
        self.weekend = frozenset(source.weekend) if source is not None else DEFAULT_WEEKEND
        if len(self.weekend) >= 7:
            raise ValueError(f"{country}: a weekend of every day leaves no working day")
        self._holidays = frozenset(day.toordinal() for day in source) if source is not None else frozenset()
        self._make_up = (
            frozenset(day.toordinal() for day in getattr(source, "weekend_workdays", ()))
            if source is not None
            else frozenset()
        )
        # The weekly pattern: ordinal 1 is a Monday, so ordinals 7k+1 … 7k+7 are Monday … Sunday.
        self._per_week = 7 - len(self.weekend)
        self._week_prefix = [sum(1 for weekday in range(r) if weekday not in self.weekend) for r in range(8)]
        self._week_slots = [r for r in range(1, 8) if (r - 1) not in self.weekend]
        # The prefix table: _prefix[i] = working days among the first i days of the table.
        self._first = date(years.start, 1, 1).toordinal()
        self._last = date(years.stop - 1, 12, 31).toordinal()
        prefix = [0]
        for ordinal in range(self._first, self._last + 1):
            prefix.append(prefix[-1] + self._works(ordinal))
        self._prefix = prefix
        self._base = self._pattern_until(self._first - 1)
        self._top = self._base + prefix[-1]
        self.between = lru_cache(maxsize=65536)(self._between)  # type: ignore[method-assign]

    # -- single days ----------------------------------------------------------------------------------

    def is_holiday(self, day: date) -> bool:
        """A public holiday of the country (on any day of the week; none outside the table's years)."""
        return day.toordinal() in self._holidays

    def is_weekend(self, day: date) -> bool:
        """A weekend day that is not worked (a make-up working day is not one)."""
        return day.weekday() in self.weekend and day.toordinal() not in self._make_up

    def is_working_day(self, day: date) -> bool:
        return not self.is_weekend(day) and not self.is_holiday(day)

    def _works(self, ordinal: int) -> int:
        weekday = (ordinal - 1) % 7
        worked = weekday not in self.weekend or ordinal in self._make_up
        return int(worked and ordinal not in self._holidays)

    # -- counting -------------------------------------------------------------------------------------

    def _pattern_until(self, ordinal: int) -> int:
        """Working days of the weekly pattern alone in [1, ordinal] (negative before ordinal 1)."""
        weeks, rest = divmod(ordinal, 7)
        return weeks * self._per_week + self._week_prefix[rest]

    def _pattern_reach(self, count: int) -> int:
        """The ordinal of the `count`-th working day of the weekly pattern (the first d with
        `_pattern_until(d) >= count`; any integer count)."""
        weeks, slot = divmod(count - 1, self._per_week)
        return weeks * 7 + self._week_slots[slot]

    def _until(self, ordinal: int) -> int:
        """Working days up to and including `ordinal`, from a fixed origin: any span is two of these."""
        if ordinal < self._first:
            return self._pattern_until(ordinal)
        if ordinal > self._last:
            return self._top + self._pattern_until(ordinal) - self._pattern_until(self._last)
        return self._base + self._prefix[ordinal - self._first + 1]

    def _between(self, start: date, end: date) -> int:
        return self._until(end.toordinal()) - self._until(start.toordinal())

    def reach(self, start: date, count: int) -> date:
        target = self._until(start.toordinal()) + count
        if target <= self._base:
            ordinal = self._pattern_reach(target)
        elif target > self._top:
            ordinal = self._pattern_reach(target - self._top + self._pattern_until(self._last))
        else:
            return date.fromordinal(self._first - 1 + bisect_left(self._prefix, target - self._base))
        # beyond 9999-12-31 (or before 0001-01-01): the calendar's last (first) day, i.e. never
        return date.fromordinal(min(max(ordinal, 1), _MAX_ORDINAL))


def _holiday_source(country: str | None, years: range) -> holidays.HolidayBase | None:
    if not country:
        return None
    # `GB-ENG` style codes name a subdivision: England has Easter Monday, the UK as a whole does not.
    code, _, subdivision = country.partition("-")
    try:
        return holidays.country_holidays(code, subdiv=subdivision or None, years=years)
    except NotImplementedError:  # an unknown code in a customer tag: weekends only, rather than no sending
        return None


@lru_cache(maxsize=256)
def working_days(country: str | None) -> WorkingDays:
    """The working-day calendar of a country code (`DE`, `GB-ENG`; None: Saturday–Sunday weekends only)."""
    return WorkingDays(country)


CALENDAR_DAYS = DayCounter()


def day_counter(policy: Policy) -> DayCounter:
    """How `policy` counts days: working days of its country for `days: business`, else calendar days."""
    if policy.days is DayCount.BUSINESS:
        return working_days(policy.country)
    return CALENDAR_DAYS


@lru_cache(maxsize=1)
def known_countries() -> frozenset[str]:
    """Every country code `holidays` has a calendar for."""
    return frozenset(holidays.list_supported_countries())


def is_known_country(code: str) -> bool:
    """Whether `holidays` has a public-holiday calendar for this country code (e.g. "DE")."""
    return code in known_countries()
