"""LoraUnits, the actuator's link to LoRa units: which command changes spend
airtime at once and which wait for the display refresh, against a simulated
unit on the ether and a real database."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from drivers.lora.simulated import named_ether
from gateway import messages, store
from gateway.clock import ManualClock
from gateway.config.model import Unit
from gateway.config.radio import LoraBus
from gateway.health import DeviceHealth
from gateway.lora_units import LoraUnits
from gateway.model import UnitCommand
from simulators.lora_unit import LoraDispensingUnit

KEY = "8899aabbccddeeff0011223344556677"
ADDRESS = 7


@dataclass
class Rig:
    link: LoraUnits
    clock: ManualClock
    sent: list[tuple[float, str, int, float]]
    unit: LoraDispensingUnit
    conn: sqlite3.Connection


def _command(on: bool, allowance: str, balance: int) -> UnitCommand:
    return UnitCommand("valve", on, Decimal(allowance), balance)


@contextlib.asynccontextmanager
async def _link(tmp_path: Path) -> AsyncIterator[Rig]:
    ether = f"t-{uuid.uuid4().hex}"
    bus = LoraBus.model_validate(
        {
            "id": "radio",
            "kind": "lora",
            "radio": "simulated",
            "ether": ether,
            "spreading_factor": 7,
            "display_refresh_s": 600,
        }
    )
    unit = Unit.model_validate(
        {
            "id": "valve",
            "bus": "radio",
            "address": ADDRESS,
            "kind": "valve",
            "meters": ["m"],
            "key": KEY,
        }
    )
    conn = store.connect(tmp_path / "gw.sqlite3")
    clock = ManualClock(datetime(2026, 3, 1, tzinfo=UTC))
    air = named_ether(ether)
    sim = LoraDispensingUnit(
        air.radio("unit"), ADDRESS, bytes.fromhex(KEY), status_interval_s=3600
    )
    task = asyncio.create_task(sim.run())
    link = LoraUnits(bus, [unit], conn, DeviceHealth(conn), clock)
    await link.open()
    try:
        yield Rig(link, clock, air.sent, sim, conn)
    finally:
        await link.close()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        conn.close()


def _gateway_frames(sent: list[tuple[float, str, int, float]]) -> int:
    return sum(1 for _, name, _, _ in sent if name.startswith("gateway:"))


async def test_small_changes_wait_and_topups_and_switching_go_at_once(
    tmp_path: Path,
) -> None:
    async with _link(tmp_path) as rig:
        link, clock, sent = rig.link, rig.clock, rig.sent
        state = await link.apply(ADDRESS, "valve", _command(True, "5", 1000))
        assert state.supply_on and _gateway_frames(sent) == 1

        # Consumption lowered the allowance and the balance: held.
        state = await link.apply(ADDRESS, "valve", _command(True, "4.9", 990))
        assert link.held == 1 and _gateway_frames(sent) == 1
        assert state.allowance == Decimal("5.000")

        # A top-up grows the allowance well past the slack: sent at once.
        state = await link.apply(ADDRESS, "valve", _command(True, "9", 1800))
        assert _gateway_frames(sent) == 2 and state.allowance == Decimal("9.000")

        # A balance-only change goes out once the refresh time has passed.
        await link.apply(ADDRESS, "valve", _command(True, "9", 1790))
        assert _gateway_frames(sent) == 2
        clock.advance(timedelta(seconds=600))
        await link.apply(ADDRESS, "valve", _command(True, "9", 1790))
        assert _gateway_frames(sent) == 3

        # A cut-off is sent at once, whatever the refresh time.
        state = await link.apply(ADDRESS, "valve", _command(False, "0", -120))
        assert _gateway_frames(sent) == 4 and not state.supply_on


async def test_message_text_reaches_the_display_and_its_receipt_is_stored(
    tmp_path: Path,
) -> None:
    async with _link(tmp_path) as rig:
        message_id = messages.send(
            rig.conn, "Water off Tuesday 9-12", rig.clock.now(), unit_id="valve"
        )
        command = UnitCommand("valve", True, Decimal(5), 1000, message_id=message_id)
        await rig.link.apply(ADDRESS, "valve", command)
        assert rig.unit.display() == "10.00 | Water off Tuesday 9-12"

        assert await rig.unit.read_message(rig.clock.now())
        for _ in range(100):
            row = rig.conn.execute(
                "SELECT unit_id FROM display_message_receipts WHERE message_id = ?",
                (message_id,),
            ).fetchone()
            if row is not None:
                break
            await asyncio.sleep(0.02)
        assert row is not None and row[0] == "valve"
