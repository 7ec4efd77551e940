"""Airtime one LoRa dispensing unit costs per hour in a demo-like building, against
the 36 s an hour that the 1 % duty cycle of sub-band g1 allows.

Run: python bench/bench_lora_airtime.py

Two simulated units report status every five minutes; the gateway re-applies
its wish every minute (unchanged wishes are not sent), updates the displayed
balance every quarter hour, cuts one unit off at 20 minutes and reconnects
it after a top-up at 35 minutes, when the resident also reads the message.
The hour runs in virtual time, at SF7 and at SF12.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import sys
from collections import defaultdict
from decimal import Decimal
from pathlib import Path

import structlog

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from drivers.lora.airtime import DutyCycle, LoraParams, time_on_air
from drivers.lora.counters import CounterStore
from drivers.lora.frame import read_header
from drivers.lora.gateway_link import LoraUnitLink
from drivers.lora.radio import Received
from drivers.lora.simulated import Ether, SimulatedRadio
from gateway.model import UnitCommand
from simulators.lora_unit import LoopClock, LoraDispensingUnit, run_virtual

ALLOWED_S = 36.0
UNITS = {0x0101: "flat-1", 0x0102: "flat-2"}
KEYS = {0x0101: bytes(range(16)), 0x0102: bytes(range(16, 32))}


class CountingRadio:
    """Wrap the gateway's radio and add each downlink's airtime to its unit."""

    def __init__(self, radio: SimulatedRadio, per_unit: dict[int, float]) -> None:
        self._radio = radio
        self._per_unit = per_unit

    @property
    def params(self) -> LoraParams:
        return self._radio.params

    async def send(self, frame: bytes, channel_hz: int) -> None:
        address = read_header(frame).address
        self._per_unit[address] += time_on_air(len(frame), self.params)
        await self._radio.send(frame, channel_hz)

    async def receive(self) -> Received:
        return await self._radio.receive()

    async def close(self) -> None:
        await self._radio.close()


async def one_hour(params: LoraParams) -> tuple[dict[int, float], dict[int, float]]:
    """Return (uplink airtime, downlink airtime) per unit address for one hour."""
    ether = Ether(loss=0.02, seed=4)
    downlink: dict[int, float] = defaultdict(float)
    gateway_radio = CountingRadio(ether.radio("gw", params), downlink)
    units = {
        address: LoraDispensingUnit(
            ether.radio(name, params), address, KEYS[address], status_interval_s=300
        )
        for address, name in UNITS.items()
    }
    clock = LoopClock()
    link = LoraUnitLink(
        gateway_radio,
        KEYS,
        CounterStore(sqlite3.connect(":memory:")),
        DutyCycle(clock.monotonic),
        clock,
        unit_ids=UNITS,
        seed=2,
    )
    tasks = [asyncio.create_task(unit.run()) for unit in units.values()]
    balance = {address: 2500 for address in UNITS}
    loop = asyncio.get_running_loop()
    async with link:
        for minute in range(60):
            if minute % 15 == 0:
                balance = {a: b - 40 for a, b in balance.items()}
            for address, unit_id in UNITS.items():
                cut = address == 0x0101 and 20 <= minute < 35
                command = UnitCommand(
                    unit_id,
                    supply_on=not cut,
                    allowance=None if cut else Decimal(5),
                    display_balance_minor=-120 if cut else balance[address],
                    message_id=(1 if cut else 2)
                    if address == 0x0101 and minute >= 20
                    else None,
                )
                text = None
                if command.message_id == 1:
                    text = "Supply off: top up"
                elif command.message_id == 2:
                    text = "Thank you, supply restored"
                await link.apply(address, unit_id, command, message_text=text)
            if minute == 36:
                await units[0x0101].read_message(clock.now())
            await asyncio.sleep(60 - loop.time() % 60)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
    uplink = {a: sum(airtime for _, airtime in u.stats.sent) for a, u in units.items()}
    return uplink, dict(downlink)


def main() -> None:
    structlog.configure(
        wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING)
    )
    print(
        f"{'SF':>4} {'unit':>8} {'uplink s':>9} {'downlink s':>10} "
        f"{'allowed s':>9} {'unit/allowed':>12} {'gateway/allowed':>15}"
    )
    for sf in (7, 12):
        uplink, downlink = run_virtual(one_hour(LoraParams(spreading_factor=sf)))
        gateway_total = sum(downlink.values())
        for address, name in UNITS.items():
            print(
                f"{sf:>4} {name:>8} {uplink[address]:>9.3f} {downlink[address]:>10.3f} "
                f"{ALLOWED_S:>9.1f} {uplink[address] / ALLOWED_S:>12.2%} "
                f"{gateway_total / ALLOWED_S:>15.2%}"
            )


if __name__ == "__main__":
    main()
