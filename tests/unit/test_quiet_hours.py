"""Quiet hours, weekends, holidays (CN, US, GB, DE) in the customer's zone, and the contact cap."""

from __future__ import annotations

import zoneinfo
from datetime import datetime, time, timedelta, timezone

import pytest

from engine.config import ContactCapSettings, QuietHoursSettings, Settings
from engine.contact import ContactGate, QuietHours, customer_country, gate_for

UTC = timezone.utc
NY = zoneinfo.ZoneInfo("America/New_York")
BERLIN = zoneinfo.ZoneInfo("Europe/Berlin")
LONDON = zoneinfo.ZoneInfo("Europe/London")
SHANGHAI = zoneinfo.ZoneInfo("Asia/Shanghai")

QUIET = QuietHours(time(20, 0), time(8, 0))


def local(zone: zoneinfo.ZoneInfo, text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=zone)


def test_daytime_on_a_working_day_is_allowed_as_is() -> None:
    instant = local(BERLIN, "2026-03-04T10:30")  # a Wednesday
    assert QUIET.next_open(instant, BERLIN, "DE") == instant


def test_night_waits_for_the_morning_in_the_customers_zone() -> None:
    # 09:00 in Berlin is 03:00 in New York (before the US switch to summer time on 8 March).
    sweep = datetime(2026, 3, 4, 8, 0, tzinfo=UTC)
    opened = QUIET.next_open(sweep, NY, "US")
    assert opened.astimezone(NY) == local(NY, "2026-03-04T08:00")
    assert opened == datetime(2026, 3, 4, 13, 0, tzinfo=UTC)


def test_evening_waits_for_the_next_morning() -> None:
    opened = QUIET.next_open(local(BERLIN, "2026-03-04T21:15"), BERLIN, "DE")
    assert opened.astimezone(BERLIN) == local(BERLIN, "2026-03-05T08:00")


def test_weekend_waits_for_monday_morning() -> None:
    opened = QUIET.next_open(local(LONDON, "2026-03-06T22:00"), LONDON, "GB")  # Friday night
    assert opened.astimezone(LONDON) == local(LONDON, "2026-03-09T08:00")


@pytest.mark.parametrize(
    ("zone", "country", "at", "expected"),
    [
        # US: Independence Day 2026 is a Saturday, observed on Friday 3 July; next working day Monday 6 July.
        (NY, "US", "2026-07-03T10:00", "2026-07-06T08:00"),
        # GB: Christmas Day (Friday) and Boxing Day observed on Monday 28 December 2026.
        (LONDON, "GB", "2026-12-25T11:00", "2026-12-29T08:00"),
        # England (a subdivision code): Good Friday and Easter Monday 2026 (3 and 6 April).
        (LONDON, "GB-ENG", "2026-04-03T11:00", "2026-04-07T08:00"),
        # DE: Labour Day, Friday 1 May 2026.
        (BERLIN, "DE", "2026-05-01T09:00", "2026-05-04T08:00"),
        # CN: Spring Festival 2026 is 15-23 February off (Mon 16 - Mon 23 includes observed days).
        (SHANGHAI, "CN", "2026-02-17T10:00", "2026-02-24T08:00"),
    ],
)
def test_public_holidays_of_the_customers_country(
    zone: zoneinfo.ZoneInfo, country: str, at: str, expected: str
) -> None:
    assert QUIET.next_open(local(zone, at), zone, country).astimezone(zone) == local(zone, expected)


def test_cn_make_up_working_saturday_is_a_working_day() -> None:
    # 14 February 2026 is a Saturday worked in exchange for a Spring Festival day off (调休).
    saturday = local(SHANGHAI, "2026-02-14T10:00")
    assert QUIET.allows(saturday, SHANGHAI, "CN")
    assert not QUIET.allows(saturday, SHANGHAI, None)  # without the country, a Saturday is a weekend


def test_holidays_and_weekends_can_be_switched_off() -> None:
    nights_only = QuietHours(time(20, 0), time(8, 0), weekends=False, holidays=False)
    saturday = local(BERLIN, "2026-05-02T10:00")
    assert nights_only.allows(saturday, BERLIN, "DE")
    assert nights_only.allows(local(BERLIN, "2026-05-01T10:00"), BERLIN, "DE")


def test_quiet_hours_within_one_day() -> None:
    lunch = QuietHours(time(12, 0), time(13, 30), weekends=False, holidays=False)
    assert lunch.next_open(local(BERLIN, "2026-03-04T12:10"), BERLIN, None) == local(BERLIN, "2026-03-04T13:30")
    assert lunch.allows(local(BERLIN, "2026-03-04T13:30"), BERLIN, None)


def test_dst_spring_forward_morning_is_well_defined() -> None:
    # The night Europe moves its clocks (29 March 2026): 08:00 local exists and is 06:00 UTC.
    opened = QuietHours(time(20, 0), time(8, 0), weekends=False).next_open(
        local(BERLIN, "2026-03-29T01:30"), BERLIN, None
    )
    assert opened == datetime(2026, 3, 29, 6, 0, tzinfo=UTC)


def test_customer_country_comes_from_a_tag() -> None:
    assert customer_country(["vip", "country:cn"], "DE") == "CN"
    assert customer_country(["vip"], "DE") == "DE"
    assert customer_country(None, None) is None


def row(customer: str = "C1", zone: str | None = "Europe/Berlin", tags: list[str] | None = None) -> dict[str, object]:
    return {"customer_id": customer, "c_timezone": zone, "c_tags": tags or []}


def test_contact_cap_waits_until_the_oldest_recent_send_ages_out() -> None:
    gate = ContactGate(BERLIN, None, ContactCapSettings(max=1, per_days=2))
    now = local(BERLIN, "2026-03-04T10:00")
    sent_yesterday = now - timedelta(days=1)
    release = gate.release_at(row(), now, [sent_yesterday])
    assert release == (sent_yesterday + timedelta(days=2), "contact_cap")
    assert gate.release_at(row(), now, [now - timedelta(days=3)]) is None


def test_contact_cap_then_quiet_hours() -> None:
    # The cap ends at 22:00 on a Thursday; the quiet window then holds it to Friday 08:00.
    gate = ContactGate(BERLIN, QUIET, ContactCapSettings(max=2, per_days=1))
    now = local(BERLIN, "2026-03-05T10:00")
    sent = [local(BERLIN, "2026-03-04T22:00"), local(BERLIN, "2026-03-05T09:00")]
    release, reason = gate.release_at(row(), now, sent)  # type: ignore[misc]
    assert release.astimezone(BERLIN) == local(BERLIN, "2026-03-06T08:00")
    assert reason == "contact_cap"


def test_unknown_customer_zone_falls_back_to_the_company_zone() -> None:
    gate = ContactGate(BERLIN, QUIET)
    night = local(BERLIN, "2026-03-04T23:00")
    release, reason = gate.release_at(row(zone="Mars/Olympus"), night, [])  # type: ignore[misc]
    assert release.astimezone(BERLIN) == local(BERLIN, "2026-03-05T08:00") and reason == "quiet_hours"


def test_gate_is_off_unless_configured() -> None:
    assert gate_for(Settings()) is None
    gate = gate_for(Settings(quiet_hours=QuietHoursSettings(country="GB"), country="DE"))
    assert gate is not None and gate.country == "GB" and gate.cap is None
    assert gate_for(Settings(contact_cap=ContactCapSettings())).quiet is None  # type: ignore[union-attr]


def test_invalid_settings_say_what_to_do() -> None:
    with pytest.raises(ValueError, match="crontab"):
        Settings.model_validate({"schedule": {"sweep": "9 * *"}})
    with pytest.raises(ValueError, match="unknown country"):
        Settings.model_validate({"quiet_hours": {"country": "XX"}})


# -- at dispatch time, through the real outbox --------------------------------------------------------

POLICY = """\
name: fallback
min_days_between_stages: 0
stages:
  - name: reminder
    after_days: 1
    channels: [email]
  - name: final
    after_days: 20
    channels: [letter, email]
"""


def test_dispatch_holds_night_messages_until_the_customers_morning(make_book) -> None:  # type: ignore[no-untyped-def]
    book = make_book({"90-default.yaml": POLICY}, quiet_hours=QuietHoursSettings(country="DE"))
    book.customers(
        {"id": "NY", "name": "NY Corp", "timezone": "America/New_York", "tags": "country:US"},
        {"id": "B", "name": "Berlin GmbH", "timezone": "Europe/Berlin"},
    )
    book.invoice("INV-NY", "NY", "100.00", "2026-03-01")
    book.invoice("INV-B", "B", "100.00", "2026-03-01")
    report = book.run("2026-03-04", hour=9)  # 09:00 UTC: 10:00 in Berlin, 04:00 in New York
    assert report.dispatch.sent == {"email": 1}
    rows = {r["invoice"]: r for r in book.app.outbox()}
    assert rows["INV-B"]["status"] == "sent"
    assert rows["INV-NY"]["status"] == "pending" and rows["INV-NY"]["attempts"] == 0
    assert book.app.contact_gate.held["quiet_hours"] == 1
    assert book.app.dispatch(datetime(2026, 3, 4, 12, 59, tzinfo=UTC)).sent == {}
    assert book.app.dispatch(datetime(2026, 3, 4, 13, 0, tzinfo=UTC)).sent == {"email": 1}


def test_dispatch_applies_the_contact_cap_across_channels(make_book) -> None:  # type: ignore[no-untyped-def]
    book = make_book({"90-default.yaml": POLICY}, contact_cap=ContactCapSettings(max=1, per_days=2))
    book.customers({"id": "C", "name": "Cap Ltd"})
    book.invoice("INV-1", "C", "100.00", "2026-03-01")
    book.invoice("INV-2", "C", "100.00", "2026-03-01")
    report = book.run("2026-03-04")
    assert sum(report.dispatch.sent.values()) == 1  # two invoices, one customer: one message now
    held = [r for r in book.app.outbox() if r["status"] == "pending"]
    assert len(held) == 1
    assert book.app.dispatch(datetime(2026, 3, 6, 8, 59, tzinfo=UTC)).sent == {}
    assert book.app.dispatch(datetime(2026, 3, 6, 9, 0, tzinfo=UTC)).sent == {"email": 1}
