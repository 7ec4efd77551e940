"""Time on air against published figures, and the duty-cycle accountant on a
controllable clock."""

from __future__ import annotations

import pytest

from drivers.lora.airtime import (
    DutyCycle,
    DutyCycleExceeded,
    LoraParams,
    Policy,
    time_on_air,
)

G1 = 868_100_000


class FakeMonotonic:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize(
    ("payload", "sf", "cr", "expected_ms"),
    [
        # NOTES.md: a 20-byte payload takes about 57 ms at SF7, 1.3 s at SF12.
        (20, 7, 5, 56.576),
        (20, 12, 5, 1318.912),
        # The AN1200.13 airtime spreadsheet widely used for LoRaWAN planning:
        # 13 bytes at SF9, and 37 bytes (24 + 13) at SF7 to SF12, all 4/5.
        (13, 9, 5, 164.864),
        (37, 7, 5, 82.176),
        (37, 8, 5, 143.872),
        (37, 9, 5, 267.264),
        (37, 10, 5, 493.568),
        (37, 11, 5, 1069.056),
        (37, 12, 5, 1974.272),
    ],
)
def test_time_on_air_matches_published_figures(
    payload: int, sf: int, cr: int, expected_ms: float
) -> None:
    params = LoraParams(spreading_factor=sf, coding_rate=cr)
    assert time_on_air(payload, params) * 1000 == pytest.approx(expected_ms, abs=0.001)


def test_low_data_rate_optimisation_only_for_long_symbols() -> None:
    assert LoraParams(spreading_factor=11).low_data_rate_optimize
    assert LoraParams(spreading_factor=12).low_data_rate_optimize
    assert not LoraParams(spreading_factor=10).low_data_rate_optimize
    assert not LoraParams(
        spreading_factor=12, bandwidth_hz=500_000
    ).low_data_rate_optimize


def test_bad_parameters_say_what_is_allowed() -> None:
    with pytest.raises(ValueError, match="spreading factor must be 6 to 12"):
        LoraParams(spreading_factor=13)
    with pytest.raises(ValueError, match="bandwidth must be one of"):
        LoraParams(bandwidth_hz=62_500)
    with pytest.raises(ValueError, match="0 to 255 bytes"):
        time_on_air(256, LoraParams())


def test_default_channels_get_36_seconds_an_hour() -> None:
    duty = DutyCycle(FakeMonotonic())
    for channel in (868_100_000, 868_300_000, 868_500_000):
        assert duty.band_of(channel).name == "g1"
        assert duty.band_of(channel).limit_s == pytest.approx(36.0)
    assert duty.band_of(869_525_000).limit_s == pytest.approx(360.0)
    assert duty.band_of(868_900_000).limit_s == pytest.approx(3.6)
    with pytest.raises(ValueError, match="no EU868 sub-band"):
        duty.band_of(915_000_000)


def test_refuse_policy_refuses_the_frame_that_would_break_the_hour() -> None:
    clock = FakeMonotonic()
    duty = DutyCycle(clock)
    for _ in range(36):
        assert duty.reserve(G1, 1.0, Policy.REFUSE) == 0.0
        clock.now += 1.0
    assert duty.used_s(G1) == pytest.approx(36.0)
    with pytest.raises(DutyCycleExceeded) as refused:
        duty.reserve(G1, 0.5, Policy.REFUSE)
    # The first second booked leaves the window an hour after it started.
    assert refused.value.wait_s == pytest.approx(3600 - 36)
    # A refusal books nothing, and another sub-band is unaffected.
    assert duty.used_s(G1) == pytest.approx(36.0)
    assert duty.reserve(869_525_000, 1.0, Policy.REFUSE) == 0.0


def test_wait_policy_books_the_earliest_start_that_fits() -> None:
    clock = FakeMonotonic()
    duty = DutyCycle(clock)
    duty.reserve(G1, 20.0, Policy.WAIT)
    clock.now += 100
    duty.reserve(G1, 16.0, Policy.WAIT)
    clock.now += 100
    wait = duty.reserve(G1, 10.0, Policy.WAIT)
    # Only when the first 20 s leave the window does the hour have room.
    assert wait == pytest.approx(3600 - 200)
    # The booking counts from its future start: nothing more fits before it.
    with pytest.raises(DutyCycleExceeded):
        duty.reserve(G1, 0.1, Policy.REFUSE)


def test_a_frame_longer_than_the_whole_allowance_is_refused_outright() -> None:
    duty = DutyCycle(FakeMonotonic())
    with pytest.raises(DutyCycleExceeded):
        duty.reserve(868_900_000, 4.0, Policy.WAIT)
