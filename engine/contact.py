"""When a customer may be contacted: quiet hours, weekends and holidays in *their* time zone, and a cap.

Applied by the dispatcher at claim time (`ContactGate.hold`), so it governs every way the outbox is sent —
the daemon, `dunning run` and `dunning dispatch` alike. A notification that may not go out now is not
sent: it goes back to `pending` with `due_at` moved to the next allowed instant, and the claim's attempt is
given back (holding a message is not a delivery attempt).

- The customer's local time comes from `customers.timezone`, else the company time zone.
- Holidays come from the customer's country: a `country:XX` customer tag (e.g. `country:CN`, or with a
  subdivision `country:GB-ENG`, `country:DE-BY`), else
  `quiet_hours.country`, else the top-level `country`; with none, only Saturday and Sunday are held.
  Weekends are the country's own (per the `holidays` package), and CN's make-up working days (调休) on a
  weekend count as working days.
- The contact cap counts messages *sent* to the customer, on any channel, in the last `per_days` days; a
  message over the cap waits until the oldest of those is `per_days` old (then for the quiet window).
"""

from __future__ import annotations

import zoneinfo
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from datetime import date, datetime, time, timedelta, tzinfo
from functools import lru_cache
from typing import Any

from engine.config import ContactCapSettings, QuietHoursSettings, Settings
from engine.policy.calendar import working_days
from engine.store import outbox
from engine.store.database import Connection

__all__ = ["ContactGate", "QuietHours", "customer_country", "gate_for"]

COUNTRY_TAG = "country:"


@lru_cache(maxsize=256)
def _zone(name: str) -> tzinfo | None:
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return None


def customer_country(tags: Iterable[str] | None, default: str | None) -> str | None:
    """The country of a customer: its `country:XX` tag, else `default`."""
    for tag in tags or ():
        if isinstance(tag, str) and tag.lower().startswith(COUNTRY_TAG):
            code = tag[len(COUNTRY_TAG) :].strip().upper()
            if code:
                return code
    return default


class QuietHours:
    """Whether an instant is inside the allowed window for a customer, and when the next window opens."""

    def __init__(self, start: time, end: time, *, weekends: bool = True, holidays: bool = True):
        self.start = start
        self.end = end
        self.weekends = weekends
        self.holidays = holidays

    @classmethod
    def from_settings(cls, settings: QuietHoursSettings) -> QuietHours:
        return cls(settings.start, settings.end, weekends=settings.weekends, holidays=settings.holidays)

    def is_quiet_time(self, moment: time) -> bool:
        if self.start == self.end:
            return False
        if self.start < self.end:
            return self.start <= moment < self.end
        return moment >= self.start or moment < self.end  # spans midnight

    def is_blocked_day(self, day: date, country: str | None) -> bool:
        # The engine's one working-day rule (engine.policy.calendar), the same as `days: business` counts.
        calendar = working_days(country)
        return (self.holidays and calendar.is_holiday(day)) or (self.weekends and calendar.is_weekend(day))

    def allows(self, instant: datetime, zone: tzinfo, country: str | None) -> bool:
        local = instant.astimezone(zone)
        return not self.is_blocked_day(local.date(), country) and not self.is_quiet_time(local.time())

    def next_open(self, instant: datetime, zone: tzinfo, country: str | None) -> datetime:
        """`instant` itself when allowed, else the first allowed instant after it (customer-local rules)."""
        local = instant.astimezone(zone)
        for _ in range(400):  # a year of blocked days is a configuration mistake, not a loop to spin in
            if self.is_blocked_day(local.date(), country):
                local = datetime.combine(local.date() + timedelta(days=1), time(0), tzinfo=zone)
                continue
            if self.is_quiet_time(local.time().replace(tzinfo=None)):
                day = local.date()
                if self.start > self.end and local.time().replace(tzinfo=None) >= self.start:
                    day += timedelta(days=1)  # quiet since this evening: open tomorrow morning
                local = datetime.combine(day, self.end, tzinfo=zone)
                continue
            return local.astimezone(instant.tzinfo)
        return local.astimezone(instant.tzinfo)


class ContactGate:
    """Holds back claimed notifications that quiet hours or the contact cap don't allow yet."""

    def __init__(
        self,
        zone: tzinfo,
        quiet: QuietHours | None = None,
        cap: ContactCapSettings | None = None,
        country: str | None = None,
    ):
        self.zone = zone
        self.quiet = quiet
        self.cap = cap
        self.country = country
        #: Notifications held back since this gate was made, by reason (for /metrics).
        self.held: Counter[str] = Counter()

    def reason_text(self, reason: str, row: Mapping[str, Any]) -> str:
        """Why a notice waits, for `dunning outbox`: "quiet hours (Asia/Shanghai)", "contact cap (3 per 7 days)"."""
        if reason == "contact_cap" and self.cap is not None:
            return f"contact cap ({self.cap.max} per {self.cap.per_days:g} days)"
        if reason == "quiet_hours":
            zone = row.get("c_timezone") if row.get("c_timezone") and _zone(row["c_timezone"]) else str(self.zone)
            return f"quiet hours ({zone})"
        return reason.replace("_", " ")

    def _customer_zone(self, name: str | None) -> tzinfo:
        return (_zone(name) if name else None) or self.zone

    def release_at(
        self, row: Mapping[str, Any], now: datetime, sent: Sequence[datetime]
    ) -> tuple[datetime, str] | None:
        """When `row` may go out if not now (and why), given the customer's recent sends; None: now."""
        zone = self._customer_zone(row.get("c_timezone"))
        country = customer_country(row.get("c_tags"), self.country)
        at, reason = now, ""
        for _ in range(10):  # cap and window push each other forward; a few rounds settle it
            moved = False
            if self.cap is not None:
                window = timedelta(days=self.cap.per_days)
                recent = sorted(s for s in sent if s > at - window)
                if len(recent) >= self.cap.max:
                    at = recent[len(recent) - self.cap.max] + window
                    reason = reason or "contact_cap"
                    moved = True
            if self.quiet is not None:
                opened = self.quiet.next_open(at, zone, country)
                if opened != at:
                    at = opened
                    reason = reason or "quiet_hours"
                    moved = True
            if not moved:
                break
        return (at, reason) if at > now else None

    def hold(self, conn: Connection, rows: list[dict[str, Any]], now: datetime) -> list[dict[str, Any]]:
        """Return the claimed rows that may go out now; put the others back, due when they may."""
        if not rows:
            return rows
        sent: dict[str, list[datetime]] = defaultdict(list)
        if self.cap is not None:
            since = now - timedelta(days=self.cap.per_days)
            customers = {row["customer_id"] for row in rows}
            for customer_id, sent_at in outbox.sent_since(conn, customers, since):
                sent[customer_id].append(sent_at)
        missing = [row["customer_id"] for row in rows if "c_timezone" not in row]
        if missing:  # a claim that did not join the customer's zone and tags: read them here
            extra = outbox.contact_fields(conn, missing)
            for row in rows:
                found = extra.get(row["customer_id"])
                row.setdefault("c_timezone", found["timezone"] if found else None)
                row.setdefault("c_tags", found["tags"] if found else None)
        allowed: list[dict[str, Any]] = []
        for row in rows:
            verdict = self.release_at(row, now, sent[row["customer_id"]])
            if verdict is None:
                allowed.append(row)
                sent[row["customer_id"]].append(now)  # counts toward the cap for the rest of the batch
                continue
            release, reason = verdict
            self.held[reason] += 1
            outbox.hold_back(conn, row["id"], release, self.reason_text(reason, row))
        return allowed


def gate_for(settings: Settings) -> ContactGate | None:
    """The gate the configuration asks for, or None when neither quiet hours nor a contact cap is set."""
    if settings.quiet_hours is None and settings.contact_cap is None:
        return None
    quiet = QuietHours.from_settings(settings.quiet_hours) if settings.quiet_hours else None
    country = (settings.quiet_hours.country if settings.quiet_hours else None) or settings.country
    return ContactGate(settings.zone, quiet, settings.contact_cap, country)
