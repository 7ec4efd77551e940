"""StreamGuard: duplicates dropped, replays refused, state survives a restart,
and SilenceWatch's liveness reports."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from drivers.wmbus import (
    DuplicateTelegram,
    MeterKey,
    ReplayError,
    SilenceWatch,
    StreamGuard,
    WmbusPipeline,
)
from gateway.clock import Stamp
from simulators.wmbus_meter import PLAIN_TEMPLATE, SimulatedMeter

STAMP = Stamp(datetime(2026, 3, 1, tzinfo=UTC), True)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_duplicate_telegrams_yield_one_reading() -> None:
    meter = SimulatedMeter(PLAIN_TEMPLATE)
    pipeline = WmbusPipeline({}, StreamGuard())
    readings = []
    for _ in range(3):
        frame = meter.next_frame()
        for _repeat in range(3):
            telegram = pipeline.process(frame, STAMP)
            if telegram is not None:
                reading = pipeline.reading(telegram)
                assert reading is not None
                readings.append(reading)
    assert len(readings) == 3
    assert readings[0].value < readings[1].value < readings[2].value
    assert readings[0].unit == "m3"


def test_mode7_same_counter_in_both_forms_is_one_telegram(
    rows: list[dict[str, Any]],
) -> None:
    key = bytes.fromhex(rows[43]["key"])
    pipeline = WmbusPipeline({"43054304": key}, StreamGuard())
    assert pipeline.process(bytes.fromhex(rows[43]["hex"]), STAMP) is not None
    assert pipeline.process(bytes.fromhex(rows[44]["hex"]), STAMP) is None


def test_access_number_wrap_is_normal() -> None:
    guard = StreamGuard()
    guard.admit("m", b"a", 254, None)
    guard.admit("m", b"b", 255, None)
    guard.admit("m", b"c", 0, None)
    guard.admit("m", b"d", 1, None)


def test_access_number_going_back_is_a_replay() -> None:
    guard = StreamGuard()
    guard.admit("m", b"a", 10, None)
    guard.admit("m", b"b", 11, None)
    with pytest.raises(ReplayError, match="went back from 11 to 10"):
        guard.admit("m", b"a", 10, None)


def test_going_back_after_a_long_silence_is_a_plausible_reset() -> None:
    clock = FakeClock()
    guard = StreamGuard(reset_after_s=3600, wall=clock)
    guard.admit("m", b"a", 200, None)
    clock.now += 7200
    guard.admit("m", b"b", 3, None)


def test_message_counter_must_grow() -> None:
    guard = StreamGuard()
    guard.admit("m", b"a", 1, 500)
    with pytest.raises(DuplicateTelegram):
        guard.admit("m", b"b", 2, 500)
    with pytest.raises(ReplayError, match="message counter"):
        guard.admit("m", b"c", 3, 499)


def test_same_bytes_within_window_are_a_duplicate_later_not() -> None:
    clock = FakeClock()
    guard = StreamGuard(window_s=60, wall=clock)
    guard.admit("m", b"x", None, None)
    with pytest.raises(DuplicateTelegram):
        guard.admit("m", b"x", None, None)
    clock.now += 120
    guard.admit("m", b"x", None, None)


def test_state_survives_a_restart_through_json() -> None:
    guard = StreamGuard()
    guard.admit("m", b"a", 10, None)
    guard.admit("n", b"b", 5, 900)
    saved = json.dumps(guard.to_dict())
    restarted = StreamGuard()
    restarted.load_dict(json.loads(saved))
    with pytest.raises(ReplayError):
        restarted.admit("m", b"old", 9, None)
    with pytest.raises(ReplayError):
        restarted.admit("n", b"old", 6, 899)
    restarted.admit("m", b"new", 11, None)


def test_unknown_state_version_is_refused() -> None:
    with pytest.raises(ValueError, match="delete the saved state"):
        StreamGuard().load_dict({"version": 99, "meters": {}})


def test_forget_accepts_a_swapped_meter() -> None:
    guard = StreamGuard()
    guard.admit("m", b"a", 100, 5000)
    guard.forget("m")
    guard.admit("m", b"b", 1, 1)


def test_keys_are_wrapped_on_entry() -> None:
    pipeline = WmbusPipeline({"12345678": bytes(16)}, StreamGuard())
    assert isinstance(pipeline._keys["12345678"], MeterKey)


def test_silence_watch_reports_meters_and_receiver_once() -> None:
    clock = FakeClock()
    watch = SilenceWatch(receiver_timeout_s=60, missed_intervals=3, clock=clock)
    watch.expect("a", 10)
    watch.expect("b", 100)
    clock.now += 25
    watch.heard("b")
    assert watch.poll().newly_silent == []
    clock.now += 10  # a: 35 s = 3 intervals missed
    change = watch.poll()
    assert [m.meter_id for m in change.newly_silent] == ["a"]
    assert change.newly_silent[0].missed_intervals == 3
    assert watch.poll().newly_silent == []  # reported once
    watch.heard("a")
    assert watch.poll().recovered == ["a"]
    clock.now += 61
    change = watch.poll()
    assert change.receiver_silent is True
    assert watch.receiver_silent_for() == pytest.approx(61)
    assert watch.poll().receiver_silent is None
    watch.heard_receiver()
    assert watch.poll().receiver_silent is False
