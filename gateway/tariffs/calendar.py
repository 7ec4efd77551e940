"""Local wall-clock time for tariffs: the UTC instants at which the site's clock
reaches given times of day, correct on the 23- and 25-hour days of
daylight-saving changes."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

_PROBE = timedelta(hours=12)
_SECOND = timedelta(seconds=1)

# For a local date, the minutes after local midnight (0 to 1440) at which
# something changes: a band starts or ends, a month begins.
Marks = Callable[[date], Iterable[int]]


def _offset(moment: datetime, zone: ZoneInfo) -> timedelta:
    offset = moment.astimezone(zone).utcoffset()
    assert offset is not None
    return offset


def _transition(lo: datetime, hi: datetime, zone: ZoneInfo) -> datetime:
    """Return the first instant in (lo, hi] whose UTC offset differs from lo's."""
    before = _offset(lo, zone)
    while hi - lo > _SECOND:
        mid = lo + (hi - lo) / 2
        if _offset(mid, zone) == before:
            lo = mid
        else:
            hi = mid
    # Offsets change on whole seconds, so the whole second at or before `hi`
    # is the change unless that second still has the old offset.
    whole = hi.replace(microsecond=0)
    return whole if whole > lo and _offset(whole, zone) != before else hi


def steady_pieces(
    start: datetime, end: datetime, zone: ZoneInfo
) -> list[tuple[datetime, datetime, timedelta]]:
    """Split [start, end) where the zone's UTC offset changes; give each offset."""
    pieces = []
    lo = start
    while lo < end:
        offset = _offset(lo, zone)
        probe = lo
        while True:
            # LIMITATION: two offset changes within one probe step (twelve
            # hours) that cancel out would go unseen; no zone does that.
            nxt = min(probe + _PROBE, end)
            if _offset(nxt, zone) != offset:
                change = _transition(probe, nxt, zone)
                break
            if nxt == end:
                change = end
                break
            probe = nxt
        pieces.append((lo, change, offset))
        lo = change
    return pieces


def crossings(
    start: datetime, end: datetime, zone: ZoneInfo, marks: Marks
) -> list[datetime]:
    """Return the instants strictly inside (start, end) where the local time changes
    kind: every offset change, and every moment the wall clock reaches a mark.

    A mark inside the hour skipped in spring is never reached: the change
    happens at the jump itself, which is an offset change. A mark inside the
    hour repeated in autumn is reached twice, and both moments are returned.
    """
    found: set[datetime] = set()
    for lo, hi, offset in steady_pieces(start, end, zone):
        if lo > start:
            found.add(lo)
        wall_lo = (lo + offset).replace(tzinfo=None)
        wall_hi = (hi + offset).replace(tzinfo=None)
        day = wall_lo.date()
        while day <= wall_hi.date():
            midnight = datetime.combine(day, datetime.min.time())
            for minute in marks(day):
                wall = midnight + timedelta(minutes=minute)
                if wall_lo < wall < wall_hi:
                    found.add((wall - offset).replace(tzinfo=UTC))
            day += timedelta(days=1)
    return sorted(found)


def local_day_start(day: date, zone: ZoneInfo) -> datetime:
    """Return the UTC instant a local calendar day begins."""
    return datetime.combine(day, datetime.min.time(), tzinfo=zone).astimezone(UTC)


def to_utc(local: datetime, zone: ZoneInfo) -> datetime:
    """Return the UTC instant of a local wall-clock time (aware times pass through).

    A time in the skipped spring hour is read with the offset before the
    jump; a time in the repeated autumn hour means its first occurrence.
    """
    if local.tzinfo is None:
        local = local.replace(tzinfo=zone, fold=0)
    return local.astimezone(UTC)
