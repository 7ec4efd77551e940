"""A simulated LoRa dispensing unit (relay or valve with a display) on a
SimulatedRadio, plus a virtual-time event loop to run simulated hours in
milliseconds."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, TypeVar

import structlog

from drivers.lora.airtime import DutyCycle, DutyCycleExceeded, Policy, time_on_air
from drivers.lora.counters import CounterStore
from drivers.lora.frame import OVERHEAD, Direction, UnitKey, read_header
from drivers.lora.payloads import (
    Body,
    CommandBody,
    GatewayAckBody,
    ReadReceiptBody,
    StatusBody,
    UnitAckBody,
    from_thousandths,
    to_thousandths,
)
from drivers.lora.radio import Radio
from drivers.lora.security import FrameGuard
from gateway.clock import Stamp
from gateway.model import FrameError

log = structlog.get_logger(__name__)
T = TypeVar("T")


@dataclass
class DisplayMessage:
    """A message the unit shows until the resident reads it."""

    message_id: int
    text: str
    read: bool = False


@dataclass
class UnitCounters:
    """What a simulated unit keeps: airtime it used and frames it sent."""

    sent: list[tuple[float, float]] = field(default_factory=list)
    commands_applied: int = 0
    retries_seen: int = 0
    refused: int = 0


class LoraDispensingUnit:
    """A dispensing unit in a flat: switches supply, counts down its allowance,
    switches off at zero by itself, reports status, shows messages."""

    def __init__(
        self,
        radio: Radio,
        address: int,
        key: bytes,
        *,
        flow_per_hour: Decimal = Decimal("0.5"),
        status_interval_s: float = 300.0,
        tick_s: float = 10.0,
        channel_hz: int = 868_100_000,
        receipt_retries: int = 3,
        supply_on: bool = False,
        consumption: Decimal = Decimal(0),
    ) -> None:
        self.radio = radio
        self.address = address
        self.flow_per_hour = flow_per_hour
        self.status_interval_s = status_interval_s
        self.tick_s = tick_s
        self.channel_hz = channel_hz
        self.receipt_retries = receipt_retries

        self.supply_on = supply_on
        self.allowance_milli: int | None = None
        self.consumption_milli = to_thousandths(consumption, "consumption")
        self.tamper = False
        self.manual_override = False
        self.balance_minor: int | None = None
        self.decimals = 2
        self.messages: list[DisplayMessage] = []
        self.stats = UnitCounters()

        # A device keeps its counters in its own memory; an in-memory SQLite
        # database lets it use the same counter code as the gateway.
        self._guard = FrameGuard(
            {address: UnitKey(key)},
            CounterStore(sqlite3.connect(":memory:", isolation_level=None)),
            Direction.DOWN,
        )
        self._duty = DutyCycle(lambda: asyncio.get_running_loop().time())
        self._last_ref: int | None = None
        self._receipt_refs: set[int] = set()
        self._receipt_acked = asyncio.Event()

    # Running ----------------------------------------------------------------

    async def run(self) -> None:
        """Run the unit until cancelled: listen, consume, report."""
        async with asyncio.TaskGroup() as group:
            group.create_task(self._listen())
            group.create_task(self._consume())
            group.create_task(self._report())

    @property
    def consumption(self) -> Decimal:
        """Return the unit's register in its meter's canonical unit."""
        return from_thousandths(self.consumption_milli)

    @property
    def allowance(self) -> Decimal | None:
        """Return what the unit may still dispense; None for unlimited."""
        if self.allowance_milli is None:
            return None
        return from_thousandths(self.allowance_milli)

    def status(self) -> StatusBody:
        """Return the unit's state as it reports it."""
        return StatusBody(
            supply_on=self.supply_on,
            consumption_milli=self.consumption_milli,
            allowance_milli=self.allowance_milli,
            tamper=self.tamper,
            manual_override=self.manual_override,
        )

    async def _send(self, body: Body) -> int | None:
        """Send a frame if the unit's own duty cycle allows; return its counter."""
        counter, raw = self._guard.seal(self.address, body)
        airtime = time_on_air(len(raw), self.radio.params)
        try:
            self._duty.reserve(self.channel_hz, airtime, Policy.REFUSE)
        except DutyCycleExceeded:
            log.info("sim_unit_duty_cycle_full", address=self.address)
            return None
        self.stats.sent.append((asyncio.get_running_loop().time(), airtime))
        await self.radio.send(raw, self.channel_hz)
        return counter

    async def _report(self) -> None:
        while True:
            await self._send(self.status())
            await asyncio.sleep(self.status_interval_s)

    async def _consume(self) -> None:
        # The unit's register counts whole thousandths, like a real meter's;
        # the fraction of a thousandth left over carries to the next tick.
        carry = Decimal(0)
        while True:
            await asyncio.sleep(self.tick_s)
            if not self.supply_on:
                continue
            flow = self.flow_per_hour * Decimal(str(self.tick_s)) / 3600 * 1000 + carry
            used = int(flow)
            carry = flow - used
            if self.allowance_milli is not None:
                used = min(used, self.allowance_milli)
                self.allowance_milli -= used
            self.consumption_milli += used
            if self.allowance_milli == 0:
                # The unit's own cut-off: it never dispenses beyond what the
                # gateway allowed, even with the gateway silent.
                self.supply_on = False
                log.info("sim_unit_allowance_exhausted", address=self.address)
                await self._send(self.status())

    async def _listen(self) -> None:
        while True:
            heard = await self.radio.receive()
            try:
                if read_header(heard.frame).address != self.address:
                    continue
                verified = self._guard.verify(heard.frame)
            except FrameError:
                # Security errors are frame errors too: a unit only counts them.
                self.stats.refused += 1
                continue
            body = verified.body
            if isinstance(body, CommandBody):
                await self._on_command(body)
            elif (
                isinstance(body, GatewayAckBody)
                and body.acked_ref in self._receipt_refs
            ):
                self._receipt_acked.set()

    async def _on_command(self, command: CommandBody) -> None:
        if command.ref == self._last_ref:
            # A retry of a command already applied: acknowledge again but do
            # not re-grant its allowance.
            self.stats.retries_seen += 1
        else:
            self._last_ref = command.ref
            self.stats.commands_applied += 1
            self.allowance_milli = command.allowance_milli
            exhausted = self.allowance_milli == 0
            self.supply_on = command.supply_on and not exhausted
            self.balance_minor = command.balance_minor
            self.decimals = command.decimals
            if command.message_id is not None and all(
                m.message_id != command.message_id for m in self.messages
            ):
                self.messages.append(
                    DisplayMessage(command.message_id, command.message_text)
                )
        await self._send(UnitAckBody(command.ref, self.status()))

    # What a resident does ---------------------------------------------------

    def display(self) -> str:
        """Return what the unit's display shows now."""
        if self.balance_minor is None:
            balance = "--"
        else:
            amount = Decimal(self.balance_minor).scaleb(-self.decimals)
            balance = f"{amount:.{self.decimals}f}"
        unread = [m.text for m in self.messages if not m.read]
        return balance + (f" | {unread[-1]}" if unread else "")

    async def read_message(self, now: Stamp) -> bool:
        """Mark the newest unread message read and confirm it to the gateway.

        Return whether the gateway acknowledged the receipt.
        """
        unread = [m for m in self.messages if not m.read]
        if not unread:
            return False
        message = unread[-1]
        message.read = True
        receipt = ReadReceiptBody(message.message_id, int(now.at.timestamp()))
        timeout = 1.0 + time_on_air(OVERHEAD + 2, self.radio.params) * 2
        self._receipt_refs.clear()
        self._receipt_acked.clear()
        for attempt in range(self.receipt_retries + 1):
            counter = await self._send(receipt)
            if counter is not None:
                self._receipt_refs.add(counter & 0xFFFF)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._receipt_acked.wait(), timeout)
                return True
            await asyncio.sleep(2.0 * 2**attempt)
        return False


# Virtual time ---------------------------------------------------------------


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    """An event loop whose clock jumps to the next timer whenever nothing is ready.

    Sockets and pipes still work (they are polled without waiting), so it
    suits in-process simulations; do not use it with real serial ports.
    """

    def __init__(self) -> None:
        super().__init__()
        self._virtual_now = 0.0
        selector = self._selector  # type: ignore[attr-defined]
        real_select = selector.select

        def select(timeout: float | None = None) -> Any:
            events = real_select(0)
            if events:
                return events
            if timeout is None:
                # Nothing scheduled at all: let threads finish their work.
                return real_select(0.01)
            self._virtual_now += max(timeout, 0.0)
            return []

        selector.select = select

    def time(self) -> float:
        return self._virtual_now


def run_virtual(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to completion on a fresh VirtualTimeLoop."""
    loop = VirtualTimeLoop()
    try:
        return loop.run_until_complete(coro)
    finally:
        loop.close()


class LoopClock:
    """A gateway.clock.Clock that follows the running loop's time.

    Under VirtualTimeLoop it moves with simulated time; under a normal loop
    it is the monotonic clock.
    """

    def __init__(self, start: datetime | None = None, synced: bool = True) -> None:
        self._start = (start or datetime(2026, 1, 1, tzinfo=UTC)).astimezone(UTC)
        self._synced = synced

    def monotonic(self) -> float:
        return asyncio.get_running_loop().time()

    def now(self) -> Stamp:
        return Stamp(self._start + timedelta(seconds=self.monotonic()), self._synced)
