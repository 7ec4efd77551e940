"""Stream hygiene for wireless M-Bus: drop repeated telegrams, refuse replayed
ones (access number or message counter going backwards), and keep that state
across restarts as a plain dict."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .errors import DuplicateTelegram, ReplayError

STATE_VERSION = 1


@dataclass(slots=True)
class _MeterState:
    access_number: int | None
    counter: int | None
    digest: str
    seen_wall: float  # wall clock: survives restarts, unlike the monotonic one


class StreamGuard:
    """Admit each genuine telegram once; refuse duplicates and replays.

    `window_s` is how long a repeat counts as a duplicate. An 8-bit access
    number that steps back by less than half its range is a replay, unless
    the meter was unheard for `reset_after_s` (it may have wrapped or
    restarted meanwhile). A 32-bit AFL message counter must only grow.
    """

    def __init__(
        self,
        window_s: float = 120.0,
        reset_after_s: float = 24 * 3600.0,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.window_s = window_s
        self.reset_after_s = reset_after_s
        self._wall = wall
        self._meters: dict[str, _MeterState] = {}

    def admit(
        self,
        meter_id: str,
        frame: bytes,
        access_number: int | None,
        message_counter: int | None,
    ) -> None:
        """Record an authenticated telegram, or raise DuplicateTelegram/ReplayError."""
        now = self._wall()
        digest = hashlib.blake2s(frame, digest_size=16).hexdigest()
        last = self._meters.get(meter_id)
        if last is not None:
            self._judge(meter_id, last, now, digest, access_number, message_counter)
        self._meters[meter_id] = _MeterState(
            access_number, message_counter, digest, now
        )

    def _judge(
        self,
        meter_id: str,
        last: _MeterState,
        now: float,
        digest: str,
        access_number: int | None,
        counter: int | None,
    ) -> None:
        age = now - last.seen_wall
        if digest == last.digest and age <= self.window_s:
            raise DuplicateTelegram(f"meter {meter_id} repeated its telegram")
        if counter is not None and last.counter is not None:
            if counter == last.counter:
                raise DuplicateTelegram(f"meter {meter_id} repeated counter {counter}")
            if counter < last.counter:
                raise ReplayError(
                    f"replay: meter {meter_id} message counter went back from"
                    f" {last.counter} to {counter}; the telegram is refused"
                )
            return
        if access_number is None or last.access_number is None:
            return
        step = (access_number - last.access_number) % 256
        if step == 0:
            # A repeat outside the window adds nothing either; it is not a
            # replay alarm because some meters hold their access number.
            raise DuplicateTelegram(
                f"meter {meter_id} repeated access number {access_number}"
            )
        if step >= 128 and age < self.reset_after_s:
            raise ReplayError(
                f"replay: meter {meter_id} access number went back from"
                f" {last.access_number} to {access_number}; the telegram is refused"
            )

    def forget(self, meter_id: str) -> None:
        """Drop what is known of a meter, e.g. after it was swapped."""
        self._meters.pop(meter_id, None)

    def to_dict(self) -> dict[str, Any]:
        """Return the state as JSON-ready data, to save."""
        return {
            "version": STATE_VERSION,
            "meters": {
                meter: {
                    "access_number": s.access_number,
                    "message_counter": s.counter,
                    "digest": s.digest,
                    "seen_wall": s.seen_wall,
                }
                for meter, s in self._meters.items()
            },
        }

    def load_dict(self, state: dict[str, Any]) -> None:
        """Restore state saved by to_dict; unknown versions are refused."""
        if state.get("version") != STATE_VERSION:
            raise ValueError(
                f"stream guard state version {state.get('version')!r} is not"
                f" {STATE_VERSION}; delete the saved state to start afresh"
            )
        self._meters = {
            meter: _MeterState(
                m.get("access_number"),
                m.get("message_counter"),
                str(m.get("digest", "")),
                float(m["seen_wall"]),
            )
            for meter, m in dict(state.get("meters", {})).items()
        }
