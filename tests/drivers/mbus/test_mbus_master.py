"""The asyncio master against simulated meters over a real pseudo-terminal."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from decimal import Decimal

import pytest

from drivers.mbus.master import MbusMaster
from gateway.model import FrameError, LinkError, Medium
from simulators.mbus_meter import MbusMeterSimulator, SimMeter, corpus_frame

TIMEOUT = 0.2
ELECTRICITY, WATER, NOISY, DEAD = 1, 2, 5, 7


def _meters() -> list[SimMeter]:
    return [
        SimMeter(ELECTRICITY, corpus_frame("electricity"), Decimal(5000), Decimal(10)),
        SimMeter(WATER, corpus_frame("water"), Decimal("1234.567"), Decimal("0.001")),
        SimMeter(
            NOISY,
            corpus_frame("water"),
            Decimal(1),
            behaviour="garbage_sometimes",
            garbage_probability=1.0,
        ),
        SimMeter(DEAD, corpus_frame("water"), Decimal(1), behaviour="dead"),
    ]


@pytest.fixture
def simulator() -> Iterator[MbusMeterSimulator]:
    with MbusMeterSimulator(_meters()) as running:
        yield running


@pytest.fixture
async def master(simulator: MbusMeterSimulator) -> AsyncIterator[MbusMaster]:
    async with MbusMaster(simulator.port, parity="N", timeout_s=TIMEOUT) as opened:
        yield opened


async def test_reads_billing_registers(master: MbusMaster) -> None:
    electricity = await master.read(ELECTRICITY)
    water = await master.read(WATER)
    assert electricity.billing is not None and water.billing is not None
    assert (electricity.billing.value, electricity.billing.unit) == (
        Decimal(5000),
        "Wh",
    )
    assert electricity.medium_kind is Medium.ELECTRICITY
    assert (water.billing.value, water.billing.unit) == (Decimal("1234.567"), "m3")
    assert water.address == WATER


async def test_value_advances_and_follows_set_value(
    master: MbusMaster, simulator: MbusMeterSimulator
) -> None:
    await master.read(ELECTRICITY)
    second = await master.read(ELECTRICITY)
    assert second.billing is not None and second.billing.value == Decimal(5010)
    simulator.set_value(ELECTRICITY, Decimal(123456))
    third = await master.read(ELECTRICITY)
    assert third.billing is not None and third.billing.value == Decimal(123456)


async def test_fcb_toggles_between_reads(
    master: MbusMaster, simulator: MbusMeterSimulator
) -> None:
    for _ in range(3):
        await master.read(WATER)
    assert simulator.meter(WATER).fcb_seen == [True, False, True]


async def test_secondary_address_selects_the_meter(master: MbusMaster) -> None:
    telegram = await master.read("17677731")
    assert telegram.id == "17677731"
    assert telegram.manufacturer == "KAM"


async def test_garbage_raises_frame_error_and_the_bus_still_works(
    master: MbusMaster,
) -> None:
    with pytest.raises(FrameError):
        await master.read(NOISY)
    telegram = await master.read(WATER)
    assert telegram.billing is not None and telegram.billing.value == Decimal(
        "1234.567"
    )


async def test_dead_meter_costs_about_one_timeout(master: MbusMaster) -> None:
    master.retries = 3  # Retries are for garbled replies, never for silence.
    started = time.monotonic()
    with pytest.raises(LinkError, match="no answer"):
        await master.read(DEAD)
    assert time.monotonic() - started < 2 * TIMEOUT + 0.1
    started = time.monotonic()
    with pytest.raises(LinkError):
        await master.read(DEAD)
    assert time.monotonic() - started < 2 * TIMEOUT + 0.1


async def test_scan_finds_the_live_addresses(master: MbusMaster) -> None:
    seen: list[int] = []
    found = await master.scan(range(0, 6), progress=seen.append)
    assert found == [ELECTRICITY, WATER, NOISY]
    assert seen == list(range(0, 6))


async def test_retries_get_through_a_sometimes_garbled_meter() -> None:
    meters = [
        SimMeter(
            3,
            corpus_frame("water"),
            Decimal(2),
            behaviour="garbage_sometimes",
            garbage_probability=0.4,
        )
    ]
    with MbusMeterSimulator(meters, seed=7) as simulator:
        async with MbusMaster(
            simulator.port, parity="N", timeout_s=TIMEOUT, retries=6
        ) as master:
            for _ in range(3):
                telegram = await master.read(3)
                assert telegram.billing is not None
                assert telegram.billing.value == Decimal(2)
        assert len(simulator.meter(3).fcb_seen) > 3  # some replies were garbage


async def test_echo_is_removed_when_configured() -> None:
    with MbusMeterSimulator(_meters(), echo=True) as simulator:
        async with MbusMaster(
            simulator.port, parity="N", timeout_s=TIMEOUT, echo=True
        ) as master:
            telegram = await master.read(WATER)
            assert telegram.billing is not None
            assert telegram.billing.value == Decimal("1234.567")
            assert await master.scan(range(0, 3)) == [ELECTRICITY, WATER]


async def test_unexpected_echo_is_a_frame_error() -> None:
    with MbusMeterSimulator(_meters(), echo=True) as simulator:
        async with MbusMaster(simulator.port, parity="N", timeout_s=TIMEOUT) as master:
            with pytest.raises(FrameError):
                await master.read(WATER)


async def test_unopened_master_says_so() -> None:
    with pytest.raises(LinkError, match="open"):
        await MbusMaster("/dev/null").read(1)


async def test_missing_port_is_a_link_error() -> None:
    with pytest.raises(LinkError, match="cannot open"):
        await MbusMaster("/dev/does-not-exist", parity="N").open()


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="parity"):
        MbusMaster("/dev/null", parity="X")
    with pytest.raises(ValueError, match="timeout"):
        MbusMaster("/dev/null", timeout_s=0)
