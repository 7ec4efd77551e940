"""Meter polling: each wired M-Bus line is read meter by meter, cycle after
cycle; every good billing value becomes a Reading for the billing step."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from decimal import Decimal
from typing import TYPE_CHECKING

import structlog

from gateway.clock import Clock
from gateway.config.model import MbusBus, Meter
from gateway.health import DeviceHealth
from gateway.model import FrameError, LinkError, Reading

if TYPE_CHECKING:
    from drivers.mbus.master import MbusMaster

log = structlog.get_logger(__name__)


class MbusPoller:
    """Reads the meters of one M-Bus line in turn and queues their readings."""

    def __init__(
        self,
        bus: MbusBus,
        meters: Sequence[Meter],
        master: MbusMaster,
        readings: asyncio.Queue[Reading],
        health: DeviceHealth,
        clock: Clock,
    ) -> None:
        self.bus = bus
        self._meters = list(meters)
        self._master = master
        self._readings = readings
        self._health = health
        self._clock = clock

    async def run(self) -> None:
        """Open the line and poll until cancelled; the port is closed on the way out."""
        await self._master.open()
        try:
            while True:
                began = self._clock.monotonic()
                await self.cycle()
                spent = self._clock.monotonic() - began
                await asyncio.sleep(max(self.bus.poll_interval_s - spent, 0.05))
        finally:
            await self._master.close()

    async def cycle(self) -> None:
        """Read every meter once; a silent or garbled meter costs only its own turn."""
        for meter in self._meters:
            reading = await self._read(meter)
            if reading is not None:
                await self._readings.put(reading)

    async def _read(self, meter: Meter) -> Reading | None:
        address: int | str = (
            meter.address if meter.address is not None else str(meter.secondary_id)
        )
        try:
            telegram = await self._master.read(address)
        except LinkError as err:
            self._fail(meter, f"no answer: {err}")
            return None
        except FrameError as err:
            self._fail(meter, f"bad frame: {err}")
            return None

        stamp = self._clock.now()
        if meter.secondary_id is not None and telegram.id.lstrip("0") != (
            meter.secondary_id[:8].lstrip("0")
        ):
            self._fail(
                meter,
                f"answered with id {telegram.id}, expected "
                f"{meter.secondary_id[:8]}: was the meter swapped?",
            )
            return None
        billing = telegram.billing
        if billing is None or not isinstance(billing.value, Decimal):
            self._fail(meter, "telegram has no billing register (storage 0, tariff 0)")
            return None
        if not billing.value.is_finite():
            self._fail(meter, f"billing register holds no number ({billing.value})")
            return None
        self._health.succeeded(meter.id, "meter", stamp)
        return Reading(
            meter.id, billing.value, billing.unit, stamp, "mbus", bytes(telegram.raw)
        )

    def _fail(self, meter: Meter, error: str) -> None:
        self._health.failed(meter.id, "meter", error, self._clock.now())
