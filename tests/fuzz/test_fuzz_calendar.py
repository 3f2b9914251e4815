"""Business-day arithmetic (engine.policy.calendar) against a day-by-day walk written from the `holidays`
package alone: the same counts and the same reached days for random starts and counts, in countries with
Friday–Saturday weekends, a Friday-only weekend, make-up working days (CN) and subdivisions; and huge counts
are answered without walking."""

from __future__ import annotations

from datetime import date, timedelta
from functools import cache

import holidays
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.policy.calendar import YEARS, working_days
from tests.fuzz.conftest import examples

#: SA, IL: Friday–Saturday; IR: Friday alone; CN: Saturdays and Sundays worked around long holidays.
COUNTRIES = ["SA", "IL", "IR", "CN", "DE", "US", "GB-ENG", None]
#: Starts on both sides of the years with holidays (2000–2060), so walks cross the table's edges.
starts = st.dates(min_value=date(1997, 1, 1), max_value=date(2063, 12, 31))


@cache
def reference_year(country: str | None, year: int) -> tuple[frozenset[int], frozenset[date], frozenset[date]]:
    """(weekend weekdays, holidays, make-up working days) of one year, straight from `holidays`; outside the
    table's years the documented rule is weekends only."""
    if country is None or year not in YEARS:
        weekend = {5, 6}
        if country is not None:
            code, _, subdivision = country.partition("-")
            weekend = set(holidays.country_holidays(code, subdiv=subdivision or None, years=2026).weekend)
        return frozenset(weekend), frozenset(), frozenset()
    code, _, subdivision = country.partition("-")
    source = holidays.country_holidays(code, subdiv=subdivision or None, years=year)
    return frozenset(source.weekend), frozenset(source), frozenset(getattr(source, "weekend_workdays", ()))


def works(country: str | None, day: date) -> bool:
    weekend, off, worked = reference_year(country, day.year)
    return (day.weekday() not in weekend or day in worked) and day not in off


def walked_between(country: str | None, start: date, end: date) -> int:
    step = 1 if end >= start else -1
    days = range(1, (end - start).days + 1) if step == 1 else range(0, (end - start).days, -1)
    return step * sum(works(country, start + timedelta(days=n)) for n in days)


def walked_reach(country: str | None, start: date, count: int) -> date:
    """The earliest day d with walked_between(start, d) >= count, one day at a time."""
    day, counted = start, 0
    if count > 0:
        while counted < count:
            day += timedelta(days=1)
            counted += works(country, day)
        return day
    # back from start while the day before still keeps the count at or above `count`
    while counted - works(country, day) >= count:
        counted -= works(country, day)
        day -= timedelta(days=1)
    return day


@settings(max_examples=examples(120))
@given(st.sampled_from(COUNTRIES), starts, st.integers(-500, 500))
def test_between_matches_the_walk(country: str | None, start: date, span: int) -> None:
    end = start + timedelta(days=span)
    assert working_days(country).between(start, end) == walked_between(country, start, end)


@settings(max_examples=examples(120))
@given(st.sampled_from(COUNTRIES), starts, st.integers(-300, 300))
def test_reach_matches_the_walk(country: str | None, start: date, count: int) -> None:
    assert working_days(country).reach(start, count) == walked_reach(country, start, count)


@settings(max_examples=examples(60))
@given(st.sampled_from(COUNTRIES), starts, st.integers(10**4, 10**6))
def test_huge_counts_reach_the_first_day_with_that_many_working_days(
    country: str | None, start: date, count: int
) -> None:
    # `after_days: 1000000` with `days: business` once walked day by day (30 s for 30 invoices); now a few
    # look-ups (a million working days from 2063 is still before year 9999).
    days = working_days(country)
    reached = days.reach(start, count)
    assert days.between(start, reached) >= count > days.between(start, reached - timedelta(days=1))
    assert works(country, reached)
