"""Wall time stamped with whether the system clock was synchronised, and the
monotonic clock for every interval and timeout."""

from __future__ import annotations

import ctypes
import ctypes.util
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol

# adjtimex(2) returns TIME_ERROR while the kernel considers the clock
# unsynchronised (no NTP discipline, or STA_UNSYNC set).
_TIME_ERROR = 5


@dataclass(frozen=True, slots=True)
class Stamp:
    """A moment in UTC, and whether the clock was synchronised when it was read."""

    at: datetime
    synced: bool

    def iso(self) -> str:
        return self.at.isoformat(timespec="milliseconds")


class Clock(Protocol):
    """What the gateway asks of time; tests substitute a controllable one."""

    def now(self) -> Stamp: ...

    def monotonic(self) -> float: ...


def _kernel_says_synced() -> bool | None:
    """Ask the kernel whether NTP has disciplined the clock; None if unknown."""
    libc_name = ctypes.util.find_library("c")
    if libc_name is None:
        return None
    try:
        libc = ctypes.CDLL(libc_name, use_errno=True)
        # struct timex is about 208 bytes; a zeroed, larger buffer with
        # modes=0 asks without changing anything.
        buf = ctypes.create_string_buffer(512)
        state = int(libc.adjtimex(buf))
    except (OSError, AttributeError):
        return None
    if state < 0:
        return None
    return state != _TIME_ERROR


class SystemClock:
    """The machine's clocks. Sync state is re-read at most every 60 seconds."""

    def __init__(self, assume_synced: bool | None = None) -> None:
        self._assume = assume_synced
        self._synced = False
        self._checked_at = -1e9

    def monotonic(self) -> float:
        return time.monotonic()

    def synced(self) -> bool:
        if self._assume is not None:
            return self._assume
        mono = time.monotonic()
        if mono - self._checked_at > 60:
            self._synced = bool(_kernel_says_synced())
            self._checked_at = mono
        return self._synced

    def now(self) -> Stamp:
        return Stamp(datetime.now(UTC), self.synced())


class ManualClock:
    """A clock that moves only when told to; for tests and simulated months."""

    def __init__(self, start: datetime, synced: bool = True) -> None:
        if start.tzinfo is None:
            raise ValueError("ManualClock needs an aware datetime")
        self._at = start.astimezone(UTC)
        self._mono = 1000.0
        self.is_synced = synced

    def now(self) -> Stamp:
        return Stamp(self._at, self.is_synced)

    def monotonic(self) -> float:
        return self._mono

    def advance(self, delta: timedelta) -> None:
        self._at += delta
        self._mono += delta.total_seconds()

    def set(self, at: datetime) -> None:
        at = at.astimezone(UTC)
        if at < self._at:
            raise ValueError("ManualClock does not go backwards")
        self.advance(at - self._at)
