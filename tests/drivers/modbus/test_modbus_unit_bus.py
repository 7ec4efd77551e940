"""ModbusUnitBus against simulated units: pymodbus's real server on a pty."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from drivers.modbus import registers as regs
from drivers.modbus.unit_bus import ModbusUnitBus
from gateway.clock import ManualClock
from gateway.model import FrameError, LinkError, UnitCommand
from simulators.dispensing_unit import DispensingUnitSimulator

TIMEOUT_S = 0.1
RETRIES = 1


class FakeMonotonic:
    """A monotonic clock for the simulated units that moves only when told."""

    def __init__(self) -> None:
        self.now = 5000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def unit_clock() -> FakeMonotonic:
    return FakeMonotonic()


@pytest.fixture
def sim(unit_clock: FakeMonotonic) -> Iterator[DispensingUnitSimulator]:
    with DispensingUnitSimulator([11, 12], monotonic=unit_clock) as simulator:
        yield simulator


@pytest.fixture
async def bus(sim: DispensingUnitSimulator) -> AsyncIterator[ModbusUnitBus]:
    # ptys refuse parity on this machine; real lines keep the default "E".
    clock = ManualClock(datetime(2026, 3, 1, 8, 0, tzinfo=UTC))
    unit_bus = ModbusUnitBus(
        sim.port,
        parity="N",
        timeout_s=TIMEOUT_S,
        retries=RETRIES,
        watchdog_s=60,
        clock=clock,
    )
    await unit_bus.open()
    yield unit_bus
    await unit_bus.close()


def on(allowance: str | None = None, **more: object) -> UnitCommand:
    limit = None if allowance is None else Decimal(allowance)
    return UnitCommand("u11", supply_on=True, allowance=limit, **more)  # type: ignore[arg-type]


async def test_apply_on_then_off_reports_feedback(
    bus: ModbusUnitBus, sim: DispensingUnitSimulator
) -> None:
    state = await bus.apply(11, "u11", on("2.5"))
    assert state.supply_on is True and sim.relay_on(11)
    assert state.allowance == Decimal("2.5") and sim.allowance(11) == Decimal("2.5")
    assert state.stamp.at == datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
    assert state.extra["output_kind"] == "contactor"
    assert state.extra["watchdog_left_s"] == 60

    state = await bus.apply(11, "u11", UnitCommand("u11", supply_on=False))
    assert state.supply_on is False and not sim.relay_on(11)
    assert not sim.relay_on(12), "the other unit was never commanded"


async def test_supply_on_is_the_feedback_not_the_command(
    bus: ModbusUnitBus, sim: DispensingUnitSimulator
) -> None:
    sim.set_relay_stuck(11, False)
    state = await bus.apply(11, "u11", on("1"))
    assert state.supply_on is False
    assert state.extra["relay_fault"] is True


async def test_allowance_runs_out_and_the_unit_switches_off_by_itself(
    bus: ModbusUnitBus, sim: DispensingUnitSimulator
) -> None:
    await bus.apply(11, "u11", on("0.5"))
    assert sim.consume(11, Decimal("0.3")) == Decimal("0.3")
    assert sim.relay_on(11)
    assert sim.allowance(11) == Decimal("0.2")

    assert sim.consume(11, Decimal("0.4")) == Decimal("0.2")
    assert not sim.relay_on(11)
    assert sim.consume(11, Decimal("1")) == 0

    state = await bus.read_state(11, "u11")
    assert state.supply_on is False
    assert state.allowance == 0
    assert state.extra["allowance_exhausted"] is True
    assert state.extra["consumption"] == Decimal("0.5")


async def test_unlimited_allowance_never_stops(
    bus: ModbusUnitBus, sim: DispensingUnitSimulator
) -> None:
    state = await bus.apply(11, "u11", on(None))
    assert state.allowance is None
    assert sim.consume(11, Decimal("1000")) == Decimal("1000")
    assert sim.relay_on(11)


@pytest.mark.parametrize(
    ("minor", "decimals"),
    [(-1234, 2), (0, 2), (987_654, 3), (2**31 - 1, 0), (-(2**31) + 1, 2)],
)
async def test_display_balance_round_trip(
    bus: ModbusUnitBus, sim: DispensingUnitSimulator, minor: int, decimals: int
) -> None:
    command = on(
        "1", display_balance_minor=minor, display_decimals=decimals, message_id=4
    )
    await bus.apply(11, "u11", command)
    assert sim.display_balance(11) == (minor, decimals)
    assert sim.display_message(11) == 4


async def test_no_balance_blanks_the_display(
    bus: ModbusUnitBus, sim: DispensingUnitSimulator
) -> None:
    await bus.apply(11, "u11", on("1", display_balance_minor=-5))
    await bus.apply(11, "u11", on("1"))
    assert sim.display_balance(11) == (None, 2)


async def test_dead_unit_fails_in_bounded_time_and_the_bus_stays_usable(
    bus: ModbusUnitBus, sim: DispensingUnitSimulator
) -> None:
    sim.set_dead(12, True)
    bound = TIMEOUT_S * (RETRIES + 1)

    for _ in range(6):  # past pymodbus's "retries + 3" disconnect count
        started = time.monotonic()
        with pytest.raises(LinkError, match=r"address 12 .* did not answer"):
            await bus.apply(12, "u12", on("1"))
        assert time.monotonic() - started < bound + 0.15
    assert not sim.relay_on(12), "a dead unit must not act on the write"

    started = time.monotonic()
    state = await bus.apply(11, "u11", on("1"))
    assert state.supply_on is True
    assert time.monotonic() - started < bound

    sim.set_dead(12, False)
    assert (await bus.apply(12, "u12", on("1"))).supply_on is True


async def test_status_bits_reach_the_gateway(
    bus: ModbusUnitBus, sim: DispensingUnitSimulator
) -> None:
    sim.set_tamper(11, True)
    sim.set_manual_override(11, True)
    state = await bus.read_state(11, "u11")
    assert state.tamper is True and state.manual_override is True
    assert state.supply_on is True, "the local switch forces supply on"
    assert state.extra["watchdog_expired"] is False

    sim.set_tamper(11, False)
    sim.set_manual_override(11, None)
    state = await bus.read_state(11, "u11")
    assert state.tamper is False and state.manual_override is False
    assert state.supply_on is False


async def test_watchdog_falls_back_to_the_safe_state(
    bus: ModbusUnitBus, sim: DispensingUnitSimulator, unit_clock: FakeMonotonic
) -> None:
    await bus.apply(11, "u11", on(None))
    unit_clock.now += 61
    state = await bus.read_state(11, "u11")
    assert state.supply_on is False
    assert state.extra["watchdog_expired"] is True

    state = await bus.apply(11, "u11", on(None))
    assert state.supply_on is True and state.extra["watchdog_expired"] is False

    await bus.configure(11, "u11", safe_state=regs.SafeState.HOLD)
    unit_clock.now += 61
    state = await bus.read_state(11, "u11")
    assert state.supply_on is True and state.extra["watchdog_expired"] is True


async def test_exception_response_is_a_frame_error(
    bus: ModbusUnitBus, sim: DispensingUnitSimulator
) -> None:
    sim.set_exception_reply(11, 6)
    with pytest.raises(FrameError, match="exception 6 \\(device busy\\)"):
        await bus.apply(11, "u11", on("1"))
    sim.set_exception_reply(11, None)
    assert (await bus.read_state(11, "u11")).supply_on is False


async def test_garbled_reply_is_a_frame_error(
    bus: ModbusUnitBus, sim: DispensingUnitSimulator
) -> None:
    sim.set_garbled(11, True)
    with pytest.raises(FrameError, match="no valid Modbus RTU frame"):
        await bus.read_state(11, "u11")


async def test_unit_speaking_another_map_is_refused(
    bus: ModbusUnitBus, sim: DispensingUnitSimulator
) -> None:
    sim.set_map_version(11, 2)
    with pytest.raises(FrameError, match="register map 2"):
        await bus.read_state(11, "u11")


async def test_bad_command_is_refused_before_anything_is_sent(
    bus: ModbusUnitBus, sim: DispensingUnitSimulator
) -> None:
    with pytest.raises(ValueError, match="display decimals 7"):
        await bus.apply(11, "u11", on("1", display_decimals=7))
    with pytest.raises(ValueError, match="address 0 must be 1 to 247"):
        await bus.read_state(0, "u0")
    assert not sim.relay_on(11)


async def test_missing_port_is_a_link_error() -> None:
    bus = ModbusUnitBus("/dev/does-not-exist", parity="N", timeout_s=0.1)
    with pytest.raises(LinkError, match="cannot open Modbus serial port"):
        await bus.open()


def test_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="parity 'X'"):
        ModbusUnitBus("/dev/ttyUSB0", parity="X")
    with pytest.raises(ValueError, match="watchdog_s"):
        ModbusUnitBus("/dev/ttyUSB0", watchdog_s=70_000)
