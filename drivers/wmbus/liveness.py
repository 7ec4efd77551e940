"""Liveness of wireless meters and receivers: which meter has missed k of its
expected intervals, and whether the receiver has heard nothing at all for
too long. Pure logic; the daemon turns changes into alarms."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class SilentMeter:
    """A meter unheard for longer than its allowed number of intervals."""

    meter_id: str
    silent_for_s: float
    missed_intervals: int


@dataclass(frozen=True, slots=True)
class LivenessChange:
    """What changed since the last poll, so each alarm is raised once."""

    newly_silent: list[SilentMeter]
    recovered: list[str]
    receiver_silent: bool | None  # None when the receiver's state is unchanged


class SilenceWatch:
    """Track when each meter and the receiver were last heard."""

    def __init__(
        self,
        receiver_timeout_s: float,
        missed_intervals: int = 3,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if missed_intervals < 1:
            raise ValueError("missed_intervals must be at least 1")
        self.receiver_timeout_s = receiver_timeout_s
        self.missed_intervals = missed_intervals
        self._clock = clock
        started = clock()
        self._receiver_heard = started
        self._intervals: dict[str, float] = {}
        self._heard: dict[str, float] = {}
        self._silent: set[str] = set()
        self._receiver_was_silent = False

    def expect(self, meter_id: str, interval_s: float) -> None:
        """Say a meter should be heard about every interval_s seconds."""
        self._intervals[meter_id] = interval_s
        self._heard.setdefault(meter_id, self._clock())

    def heard_receiver(self) -> None:
        """Note that the receiver delivered something (any telegram)."""
        self._receiver_heard = self._clock()

    def heard(self, meter_id: str) -> None:
        """Note a valid telegram from a meter (the receiver counts as heard too)."""
        now = self._clock()
        self._heard[meter_id] = now
        self._receiver_heard = now

    def receiver_silent_for(self) -> float | None:
        """Seconds of receiver silence past its timeout, or None if it is alive."""
        silent = self._clock() - self._receiver_heard
        return silent if silent >= self.receiver_timeout_s else None

    def silent_meters(self) -> list[SilentMeter]:
        """Meters unheard for missed_intervals of their expected intervals."""
        now = self._clock()
        out = []
        for meter, interval in self._intervals.items():
            silent = now - self._heard[meter]
            missed = int(silent // interval) if interval > 0 else 0
            if missed >= self.missed_intervals:
                out.append(SilentMeter(meter, silent, missed))
        return out

    def poll(self) -> LivenessChange:
        """Report only what changed since the previous poll."""
        silent = {m.meter_id: m for m in self.silent_meters()}
        newly = [m for meter, m in silent.items() if meter not in self._silent]
        recovered = sorted(self._silent - silent.keys())
        self._silent = set(silent)
        receiver_now = self.receiver_silent_for() is not None
        changed = None
        if receiver_now != self._receiver_was_silent:
            changed = receiver_now
            self._receiver_was_silent = receiver_now
        return LivenessChange(newly, recovered, changed)
