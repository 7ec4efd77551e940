"""Friendly hours: the local times (a weekly schedule plus public holidays) in
which nobody is cut off, and the site's settings for them in the database."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

from gateway.clock import Stamp
from gateway.config.credit import WEEKDAYS, FriendlyHours, minutes_of
from gateway.money import Money
from gateway.policy import Moment


@dataclass(frozen=True, slots=True)
class _Window:
    weekday: int
    start: int
    end: int
    label: str


class FriendlyCalendar:
    """Answers whether a moment falls in friendly hours, in the site's local time."""

    def __init__(self, zone: ZoneInfo, hours: FriendlyHours | None) -> None:
        self.zone = zone
        self._windows: list[_Window] = []
        self._holidays = None
        if hours is None:
            return
        for w in hours.windows:
            start, end = minutes_of(w.start), minutes_of(w.end)
            for day in w.days:
                # A window whose end is at or before its start runs past
                # midnight into the next day.
                stop = end if end > start else end + 1440
                label = f"{day} {w.start}-{w.end}"
                self._windows.append(_Window(WEEKDAYS.index(day), start, stop, label))
        if hours.public_holidays is not None:
            import holidays

            region = hours.public_holidays
            self._holidays = holidays.country_holidays(
                region.country, subdiv=region.subdivision
            )

    @property
    def configured(self) -> bool:
        """Say whether any friendly time exists at all."""
        return bool(self._windows) or self._holidays is not None

    def reason_at(self, at: datetime) -> str | None:
        """Name the window or holiday `at` falls in, or return None."""
        local = at.astimezone(self.zone)
        holiday = self.holiday_on(local.date())
        if holiday is not None:
            return f"public holiday {local.date().isoformat()} {holiday}"
        # Wall-clock minutes since the local midnight of the day the window
        # opened; a night window is checked from yesterday's start too.
        minute = local.hour * 60 + local.minute
        for w in self._windows:
            if w.weekday == local.weekday() and w.start <= minute < w.end:
                return f"weekly window {w.label}"
            yesterday = (local.weekday() - 1) % 7
            if w.weekday == yesterday and w.start <= minute + 1440 < w.end:
                return f"weekly window {w.label}"
        return None

    def holiday_on(self, day: date) -> str | None:
        """Return the public holiday's name on a local day, or None."""
        if self._holidays is None:
            return None
        name = self._holidays.get(day)
        return None if name is None else str(name)

    def next_end(
        self, at: datetime, horizon: timedelta = timedelta(days=8)
    ) -> datetime | None:
        """Return when the friendly time around `at` ends (minute resolution)."""
        if self.reason_at(at) is None:
            return at
        probe = at.replace(second=0, microsecond=0)
        step = timedelta(minutes=15)
        while probe - at < horizon:
            probe += step
            if self.reason_at(probe) is None:
                # Narrow down to the minute within the last step.
                back = probe - step
                while self.reason_at(back) is not None:
                    back += timedelta(minutes=1)
                return back
        return None


@lru_cache(maxsize=8)
def _calendar(zone: str, hours_json: str | None) -> FriendlyCalendar:
    hours = (
        None if hours_json is None else FriendlyHours.model_validate_json(hours_json)
    )
    return FriendlyCalendar(ZoneInfo(zone), hours)


def store_settings(
    conn: sqlite3.Connection,
    zone: str,
    hours: FriendlyHours | None,
    unsynced_floor: Money,
    stamp: Stamp,
    reconnect_margin: Money | None = None,
) -> None:
    """Keep the site's friendly hours in the database, where every writer finds them."""
    conn.execute(
        """INSERT INTO credit_settings (id, timezone, friendly_hours,
               unsynced_floor_minor, reconnect_margin_minor, updated_at)
               VALUES (1, ?, ?, ?, ?, ?)
           ON CONFLICT(id) DO UPDATE SET timezone = excluded.timezone,
               friendly_hours = excluded.friendly_hours,
               unsynced_floor_minor = excluded.unsynced_floor_minor,
               reconnect_margin_minor = excluded.reconnect_margin_minor,
               updated_at = excluded.updated_at
           WHERE credit_settings.timezone IS NOT excluded.timezone
              OR credit_settings.friendly_hours IS NOT excluded.friendly_hours
              OR credit_settings.unsynced_floor_minor
                 IS NOT excluded.unsynced_floor_minor
              OR credit_settings.reconnect_margin_minor
                 IS NOT excluded.reconnect_margin_minor""",
        (
            zone,
            None if hours is None else json.dumps(hours.model_dump(mode="json")),
            unsynced_floor.minor,
            0 if reconnect_margin is None else reconnect_margin.minor,
            stamp.iso(),
        ),
    )


def calendar(conn: sqlite3.Connection) -> FriendlyCalendar:
    """Return the site's friendly-hours calendar (none configured: never friendly)."""
    row = conn.execute(
        "SELECT timezone, friendly_hours FROM credit_settings WHERE id = 1"
    ).fetchone()
    if row is None:
        return _calendar("UTC", None)
    return _calendar(row["timezone"], row["friendly_hours"])


def unsynced_floor_minor(conn: sqlite3.Connection) -> int | None:
    """Return the debt beyond the credit line tolerated on an unsynced clock."""
    row = conn.execute(
        "SELECT unsynced_floor_minor FROM credit_settings WHERE id = 1"
    ).fetchone()
    return None if row is None else int(row[0])


def reconnect_margin_minor(conn: sqlite3.Connection) -> int:
    """Return how far above the cut-off limit a cut-off supply must get back."""
    row = conn.execute(
        "SELECT reconnect_margin_minor FROM credit_settings WHERE id = 1"
    ).fetchone()
    return 0 if row is None else int(row[0])


def moment(conn: sqlite3.Connection, stamp: Stamp) -> Moment:
    """Return what the policy needs to know about `stamp`."""
    site_calendar = calendar(conn)
    if not site_calendar.configured:
        # No time-based rule: the cut-off depends on the balance alone.
        return Moment()
    if not stamp.synced:
        # An unsynchronised clock cannot say whether it is inside a window.
        return Moment(clock_trusted=False)
    return Moment(True, site_calendar.reason_at(stamp.at))


def local_day_start(conn: sqlite3.Connection, at: datetime) -> datetime:
    """Return the start of the site's local day containing `at`."""
    zone = calendar(conn).zone
    local = at.astimezone(zone)
    return datetime.combine(local.date(), datetime.min.time(), zone)
