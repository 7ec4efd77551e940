"""The LoRa dispensing-unit simulator, driven by hand-made gateway frames on a
SimulatedRadio ether, in virtual time."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from decimal import Decimal

from drivers.lora.counters import CounterStore
from drivers.lora.frame import Direction, UnitKey
from drivers.lora.payloads import (
    CommandBody,
    GatewayAckBody,
    ReadReceiptBody,
    StatusBody,
    UnitAckBody,
)
from drivers.lora.security import FrameGuard, Verified
from drivers.lora.simulated import Ether, SimulatedRadio
from simulators.lora_unit import LoopClock, LoraDispensingUnit, run_virtual

KEY = bytes(range(100, 116))
UNIT = 0x2A
CHANNEL = 868_100_000


class HandGateway:
    """A bare gateway end: seals frames and verifies answers, no retries."""

    def __init__(self, radio: SimulatedRadio) -> None:
        self.radio = radio
        counters = CounterStore(sqlite3.connect(":memory:"))
        self.guard = FrameGuard({UNIT: UnitKey(KEY)}, counters, Direction.UP)

    async def send(self, body: CommandBody | GatewayAckBody) -> None:
        _, raw = self.guard.seal(UNIT, body)
        await self.radio.send(raw, CHANNEL)

    async def heard(self, kind: type) -> Verified:
        while True:
            verified = self.guard.verify((await self.radio.receive()).frame)
            if isinstance(verified.body, kind):
                return verified


def run_with_unit(unit_kwargs: dict[str, object], script: object) -> None:
    async def main() -> None:
        ether = Ether()
        unit = LoraDispensingUnit(ether.radio("unit"), UNIT, KEY, **unit_kwargs)  # type: ignore[arg-type]
        gateway = HandGateway(ether.radio("gw"))
        task = asyncio.create_task(unit.run())
        try:
            await script(unit, gateway)  # type: ignore[operator]
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    run_virtual(main())


def test_unit_counts_down_and_switches_off_at_zero_by_itself() -> None:
    async def script(unit: LoraDispensingUnit, gateway: HandGateway) -> None:
        await gateway.send(CommandBody(1, True, allowance_milli=500))
        ack = await gateway.heard(UnitAckBody)
        assert isinstance(ack.body, UnitAckBody)
        assert ack.body.acked_ref == 1
        assert ack.body.status.supply_on

        # 2 units an hour: 0.5 lasts 15 minutes.
        await asyncio.sleep(14 * 60)
        assert unit.supply_on
        await asyncio.sleep(2 * 60)
        assert not unit.supply_on
        assert unit.allowance == Decimal(0)
        assert unit.consumption == Decimal("0.500")
        await asyncio.sleep(3600)
        assert unit.consumption == Decimal("0.500")

    run_with_unit({"flow_per_hour": Decimal(2), "status_interval_s": 1e6}, script)


def test_a_retried_command_is_acknowledged_but_not_granted_twice() -> None:
    async def script(unit: LoraDispensingUnit, gateway: HandGateway) -> None:
        await gateway.send(CommandBody(7, True, allowance_milli=1000))
        await gateway.heard(UnitAckBody)
        await asyncio.sleep(1800)
        left = unit.allowance
        assert left is not None and left < Decimal(1)

        await gateway.send(CommandBody(7, True, allowance_milli=1000))
        ack = await gateway.heard(UnitAckBody)
        assert unit.allowance == left
        assert unit.stats.retries_seen == 1
        assert isinstance(ack.body, UnitAckBody)
        assert ack.body.status.allowance_milli == int(left * 1000)

    run_with_unit({"flow_per_hour": Decimal(1), "status_interval_s": 1e6}, script)


def test_periodic_status_and_display_message_with_receipt_retry() -> None:
    async def script(unit: LoraDispensingUnit, gateway: HandGateway) -> None:
        first = await gateway.heard(StatusBody)
        second = await gateway.heard(StatusBody)
        assert second.header.counter == first.header.counter + 1

        await gateway.send(
            CommandBody(3, False, None, -420, 2, 55, "Supply off: top up")
        )
        await gateway.heard(UnitAckBody)
        assert unit.display() == "-4.20 | Supply off: top up"

        reading = asyncio.create_task(unit.read_message(LoopClock().now()))
        # Ignore the first receipt; acknowledge the repeat.
        await gateway.heard(ReadReceiptBody)
        repeat = await gateway.heard(ReadReceiptBody)
        assert isinstance(repeat.body, ReadReceiptBody)
        assert repeat.body.message_id == 55
        await gateway.send(GatewayAckBody(repeat.header.counter & 0xFFFF))
        assert await reading is True
        assert unit.display() == "-4.20"

    run_with_unit({"status_interval_s": 300}, script)


def test_frames_for_other_units_and_forged_frames_change_nothing() -> None:
    async def script(unit: LoraDispensingUnit, gateway: HandGateway) -> None:
        other = FrameGuard(
            {UNIT: UnitKey(bytes(16))},
            CounterStore(sqlite3.connect(":memory:")),
            Direction.UP,
        )
        _, forged = other.seal(UNIT, CommandBody(9, True, allowance_milli=99_000))
        await gateway.radio.send(forged, CHANNEL)
        await asyncio.sleep(1)
        assert unit.supply_on is False
        assert unit.stats.refused == 1

    run_with_unit({"status_interval_s": 1e6}, script)
