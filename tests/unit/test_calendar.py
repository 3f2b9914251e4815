"""The one working-day rule (engine.policy.calendar): what `days: business` counts is what quiet hours allow."""

from __future__ import annotations

import random
from datetime import date, time, timedelta

import pytest

from engine.contact import QuietHours

# The bug tests (the first three) use only what the code had before the one rule, so they fail on it by
# assertion: `day_counter` for `days: business`, `QuietHours.is_blocked_day` for quiet hours.
from engine.policy.calendar import CALENDAR_DAYS, day_counter
from engine.policy.model import DayCount, Policy, Stage

QUIET = QuietHours(time(20, 0), time(8, 0))
THURSDAY = date(2026, 3, 5)
FRIDAY, SATURDAY, SUNDAY, MONDAY = (THURSDAY + timedelta(days=n) for n in range(1, 5))
#: 14 February 2026: a Saturday worked in China in exchange for a Spring Festival day off (调休).
CN_MAKE_UP_SATURDAY = date(2026, 2, 14)


def business(country: str | None) -> Policy:
    return Policy("p", (Stage("reminder", 1, ("email",)),), days=DayCount.BUSINESS, country=country)


def counted(country: str | None, day: date) -> bool:
    """Whether `days: business` counts `day` (one more day overdue than the day before)."""
    return day_counter(business(country)).between(day - timedelta(days=1), day) == 1


def test_friday_saturday_weekend_country_counts_sunday_to_thursday() -> None:
    counter = day_counter(business("SA"))
    assert [counted("SA", day) for day in (THURSDAY, FRIDAY, SATURDAY, SUNDAY, MONDAY)] == [
        True,
        False,
        False,
        True,
        True,
    ]
    # due on Thursday, `after_days: 1` business day: not reached over the weekend, reached on Sunday
    assert counter.between(THURSDAY, SATURDAY) == 0
    assert counter.reach(THURSDAY, 1) == SUNDAY


def test_cn_make_up_saturday_counts_as_a_business_day() -> None:
    assert counted("CN", CN_MAKE_UP_SATURDAY)
    assert not counted("CN", CN_MAKE_UP_SATURDAY + timedelta(days=7))  # an ordinary Saturday
    assert not counted(None, CN_MAKE_UP_SATURDAY)  # without a country a Saturday is a weekend day


@pytest.mark.parametrize("country", ["SA", "CN", "IR", "DE", "US", "GB", None])
def test_business_days_and_quiet_hours_agree_on_every_day(country: str | None) -> None:
    day = date(2026, 1, 1)
    while day.year == 2026:
        assert counted(country, day) == (not QUIET.is_blocked_day(day, country)), day
        day += timedelta(days=1)


def test_a_subdivision_has_its_own_holidays() -> None:
    from engine.policy.calendar import working_days

    easter_monday = date(2026, 4, 6)
    assert working_days("GB-ENG").is_holiday(easter_monday)
    assert not working_days("GB").is_holiday(easter_monday)


def test_an_unknown_code_means_weekends_only() -> None:
    from engine.policy.calendar import working_days

    assert working_days("XX").weekend == {5, 6}
    assert working_days("XX").between(THURSDAY, MONDAY) == 2


@pytest.mark.parametrize("country", ["DE", "SA", "CN", None])
def test_counts_and_reach_match_a_day_by_day_walk(country: str | None) -> None:
    from engine.policy.calendar import WorkingDays

    days = WorkingDays(country)
    rnd = random.Random(7)
    for _ in range(300):
        # also outside 2000-2060, where the weekly pattern goes on without holidays
        start = date(1990, 1, 1) + timedelta(days=rnd.randrange(0, 365 * 80))
        end = start + timedelta(days=rnd.randrange(0, 90))
        walked = sum(days.is_working_day(start + timedelta(days=n)) for n in range(1, (end - start).days + 1))
        assert days.between(start, end) == walked == -days.between(end, start)
        count = rnd.randrange(-200, 200)
        reached = days.reach(start, count)
        assert days.between(start, reached) >= count > days.between(start, reached - timedelta(days=1))


def test_reach_is_arithmetic_for_large_counts() -> None:
    from engine.policy.calendar import working_days

    days = working_days("DE")
    start = date(2026, 1, 5)
    assert days.reach(start, 250 * 200) > date(2200, 1, 1)  # far beyond the table: no walk, no hang
    assert days.between(start, days.reach(start, 250 * 200)) == 250 * 200


def test_calendar_days_count_every_day() -> None:
    policy = Policy("p", (Stage("reminder", 1, ("email",)),))
    assert day_counter(policy) is CALENDAR_DAYS
    assert CALENDAR_DAYS.between(THURSDAY, MONDAY) == 4
    assert CALENDAR_DAYS.reach(THURSDAY, 2) == SATURDAY


def test_reach_beyond_year_9999_is_the_last_day_not_an_error() -> None:
    from engine.policy.calendar import working_days

    for counter in (CALENDAR_DAYS, working_days("DE"), working_days("SA")):
        assert counter.reach(THURSDAY, 10**10) == date.max
        assert counter.reach(THURSDAY, -(10**10)) == date.min
        assert counter.reach(date(9999, 12, 30), 5) == date.max
