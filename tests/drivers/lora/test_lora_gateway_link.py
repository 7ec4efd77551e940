"""LoraUnitLink against simulated units on a SimulatedRadio ether: switching,
retries, batching, refusing forged and replayed frames, read receipts."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import AsyncIterator, Callable
from decimal import Decimal
from pathlib import Path

import pytest

from drivers.lora.airtime import DutyCycle, LoraParams
from drivers.lora.counters import CounterStore
from drivers.lora.gateway_link import LoraUnitLink, ReadReceipt
from drivers.lora.simulated import Ether, SimulatedRadio
from gateway import store
from gateway.model import LinkError, UnitCommand, UnitState
from simulators.lora_unit import LoopClock, LoraDispensingUnit, run_virtual

KEY = bytes.fromhex("8899aabbccddeeff0011223344556677")
FLAT = 0x0000F1A7


def make_link(
    radio: SimulatedRadio, conn: sqlite3.Connection, **kwargs: object
) -> LoraUnitLink:
    clock = LoopClock()
    return LoraUnitLink(
        radio,
        {FLAT: KEY},
        CounterStore(conn),
        DutyCycle(clock.monotonic),
        clock,
        seed=3,
        **kwargs,  # type: ignore[arg-type]
    )


@contextlib.asynccontextmanager
async def running(unit: LoraDispensingUnit) -> AsyncIterator[LoraDispensingUnit]:
    task = asyncio.create_task(unit.run())
    try:
        yield unit
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def next_matching(
    link: LoraUnitLink, wanted: Callable[[object], bool]
) -> UnitState | ReadReceipt:
    async for item in link.uplinks():
        if wanted(item):
            return item
    raise AssertionError("uplinks ended")


async def test_unit_is_switched_off_and_on(tmp_path: Path) -> None:
    ether = Ether()
    unit = LoraDispensingUnit(ether.radio("flat"), FLAT, KEY, supply_on=True)
    link = make_link(ether.radio("gw"), store.connect(tmp_path / "gw.sqlite3"))
    async with running(unit), link:
        off = await link.apply(FLAT, "flat-7", UnitCommand("flat-7", supply_on=False))
        assert off.supply_on is False
        assert unit.supply_on is False
        assert off.unit_id == "flat-7"

        on = await link.apply(
            FLAT, "flat-7", UnitCommand("flat-7", True, allowance=Decimal("2.5"))
        )
        assert on.supply_on is True and unit.supply_on is True
        assert on.allowance == Decimal("2.500")
        assert unit.allowance == Decimal("2.500")


async def test_unchanged_command_is_not_sent_again(tmp_path: Path) -> None:
    ether = Ether()
    unit = LoraDispensingUnit(ether.radio("flat"), FLAT, KEY)
    gw = ether.radio("gw")
    link = make_link(gw, store.connect(tmp_path / "gw.sqlite3"))
    command = UnitCommand(
        "flat-7", True, allowance=Decimal(1), display_balance_minor=990
    )
    async with running(unit), link:
        await link.apply(FLAT, "flat-7", command)
        frames_after_first = len(gw.airtime_log)
        again = await link.apply(FLAT, "flat-7", command)
        assert len(gw.airtime_log) == frames_after_first
        assert again.supply_on is True
        assert unit.stats.commands_applied == 1

        changed = UnitCommand(
            "flat-7", True, allowance=Decimal(1), display_balance_minor=980
        )
        await link.apply(FLAT, "flat-7", changed)
        assert len(gw.airtime_log) == frames_after_first + 1
        assert unit.balance_minor == 980


def test_lossy_air_is_survived_by_retries_without_double_grants() -> None:
    async def scenario() -> None:
        ether = Ether(loss=0.4, seed=11)
        unit = LoraDispensingUnit(ether.radio("flat"), FLAT, KEY, status_interval_s=1e6)
        link = make_link(ether.radio("gw"), sqlite3.connect(":memory:"), retries=8)
        async with running(unit), link:
            for step in range(10):
                command = UnitCommand("flat-7", step % 2 == 0, allowance=Decimal(step))
                state = await link.apply(FLAT, "flat-7", command)
                assert state.supply_on is (step % 2 == 0 and step > 0)
        # Each command was applied once, however many copies reached the unit.
        assert unit.stats.commands_applied == 10
        assert unit.stats.retries_seen > 0

    run_virtual(scenario())


def test_silent_unit_raises_link_error_after_bounded_retries() -> None:
    async def scenario() -> float:
        ether = Ether()
        gw = ether.radio("gw")
        link = make_link(gw, sqlite3.connect(":memory:"), retries=2)
        loop = asyncio.get_running_loop()
        started = loop.time()
        async with link:
            with pytest.raises(LinkError, match="did not acknowledge after 3 attempts"):
                await link.apply(FLAT, "flat-7", UnitCommand("flat-7", False))
        assert len(gw.airtime_log) == 3
        return loop.time() - started

    elapsed = run_virtual(scenario())
    # Three ack timeouts plus two jittered backoffs (2 s and 4 s nominal).
    assert 3 < elapsed < 20


async def test_forged_and_replayed_uplinks_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "gw.sqlite3"
    ether = Ether()
    unit = LoraDispensingUnit(ether.radio("flat"), FLAT, KEY, status_interval_s=1e6)
    attacker = ether.radio("attacker")
    link = make_link(ether.radio("gw"), store.connect(path))
    async with running(unit), link:
        first = await next_matching(link, lambda item: isinstance(item, UnitState))
        recorded = (await attacker.receive()).frame

        # Replay the unit's genuine status, then forge one with a wrong key.
        await attacker.send(recorded, 868_100_000)
        forged = bytearray(recorded)
        forged[5:9] = (999).to_bytes(4, "big")
        await attacker.send(bytes(forged), 868_100_000)
        await asyncio.sleep(0.05)
        assert link.refused == {"replay": 1, "bad_mic": 1}
        assert isinstance(first, UnitState)

    # After a restart the replay is still refused.
    restarted = make_link(ether.radio("gw2"), store.connect(path))
    async with restarted:
        await attacker.send(recorded, 868_100_000)
        await asyncio.sleep(0.05)
        assert restarted.refused == {"replay": 1}


async def test_read_receipt_reaches_the_gateway_once(tmp_path: Path) -> None:
    ether = Ether()
    unit = LoraDispensingUnit(ether.radio("flat"), FLAT, KEY, status_interval_s=1e6)
    link = make_link(ether.radio("gw"), store.connect(tmp_path / "gw.sqlite3"))
    clock = LoopClock()
    async with running(unit), link:
        command = UnitCommand("flat-7", True, message_id=31)
        await link.apply(FLAT, "flat-7", command, message_text="Credit low")
        assert unit.display() == "-- | Credit low"
        acked = await unit.read_message(clock.now())
        assert acked is True
        receipt = await next_matching(link, lambda item: isinstance(item, ReadReceipt))
        assert isinstance(receipt, ReadReceipt)
        assert receipt.message_id == 31
        assert receipt.unit_id == "flat-7"
        assert unit.display() == "--"


def test_status_uplinks_carry_consumption_and_the_units_own_cut_off() -> None:
    async def scenario() -> list[UnitState]:
        ether = Ether()
        unit = LoraDispensingUnit(
            ether.radio("flat"),
            FLAT,
            KEY,
            flow_per_hour=Decimal(1),
            status_interval_s=600,
        )
        link = make_link(ether.radio("gw"), sqlite3.connect(":memory:"))
        states: list[UnitState] = []
        async with running(unit), link:
            await link.apply(
                FLAT, "flat-7", UnitCommand("flat-7", True, Decimal("0.25"))
            )

            async def collect() -> None:
                async for item in link.uplinks():
                    if isinstance(item, UnitState):
                        states.append(item)

            collector = asyncio.create_task(collect())
            await asyncio.sleep(3600)
            collector.cancel()
        return states

    states = run_virtual(scenario())
    first_on = next(n for n, s in enumerate(states) if s.supply_on)
    cut = [s for s in states[first_on:] if not s.supply_on]
    assert cut, "the unit never reported switching itself off"
    assert cut[0].allowance == Decimal("0.000")
    assert cut[0].extra["consumption"] == Decimal("0.250")
    on = [s for s in states if s.supply_on]
    assert all(s.allowance is not None and s.allowance > 0 for s in on)


@pytest.mark.parametrize("sf", [9])
def test_duty_cycle_holds_for_a_chatty_gateway_over_simulated_hours(sf: int) -> None:
    params = LoraParams(spreading_factor=sf)
    addresses = [0x100 + n for n in range(4)]

    async def scenario() -> tuple[
        list[tuple[float, int, float]], list[list[tuple[float, float]]], int
    ]:
        ether = Ether(loss=0.05, seed=5)
        units = [
            LoraDispensingUnit(
                ether.radio(f"u{a}", params), a, KEY, status_interval_s=120
            )
            for a in addresses
        ]
        gw = ether.radio("gw", params)
        clock = LoopClock()
        link = LoraUnitLink(
            gw,
            {a: KEY for a in addresses},
            CounterStore(sqlite3.connect(":memory:")),
            DutyCycle(clock.monotonic),
            clock,
            seed=9,
        )
        failures = 0
        tasks = [asyncio.create_task(u.run()) for u in units]

        async def chatter(address: int) -> None:
            nonlocal failures
            step = 0
            while True:
                step += 1
                command = UnitCommand(
                    "u", step % 3 != 0, Decimal(step), display_balance_minor=step
                )
                try:
                    await link.apply(address, f"u{address}", command)
                except LinkError:
                    failures += 1
                await asyncio.sleep(2)

        async with link:
            talkers = [asyncio.create_task(chatter(a)) for a in addresses]
            await asyncio.sleep(2 * 3600)
            for task in talkers + tasks:
                task.cancel()
            await asyncio.gather(*talkers, *tasks, return_exceptions=True)
        return gw.airtime_log, [u.stats.sent for u in units], failures

    gw_log, unit_logs, failures = run_virtual(scenario())
    assert failures > 0, "the gateway never hit the limit: the test proves nothing"
    gateway_starts = [(start, airtime) for start, _, airtime in gw_log]
    worst = max_sliding_hour(gateway_starts)
    assert 30.0 < worst <= 36.0 + 1e-6
    for sent in unit_logs:
        assert max_sliding_hour(sent) <= 36.0 + 1e-6


def max_sliding_hour(sent: list[tuple[float, float]]) -> float:
    """Return the most airtime any hour-long window ending at a start holds."""
    worst = 0.0
    for end, _ in sent:
        total = sum(a for start, a in sent if end - 3600 < start <= end)
        worst = max(worst, total)
    return worst
