"""The gateway's end of the LoRa link to dispensing units: confirmed commands with
bounded retries inside the duty cycle, and a stream of verified uplinks."""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from types import TracebackType

import structlog

from drivers.lora.airtime import DutyCycle, DutyCycleExceeded, Policy, time_on_air
from drivers.lora.counters import CounterStore
from drivers.lora.frame import OVERHEAD, Direction, UnitKey
from drivers.lora.payloads import (
    CommandBody,
    GatewayAckBody,
    ReadReceiptBody,
    StatusBody,
    UnitAckBody,
    from_thousandths,
)
from drivers.lora.radio import Radio, RadioError
from drivers.lora.security import FrameGuard
from gateway.clock import Clock, Stamp
from gateway.model import FrameError, LinkError, SecurityError, UnitCommand, UnitState

log = structlog.get_logger(__name__)

# The longest unit answer: UNIT_ACK with an allowance (2 + 9 bytes of payload).
_LONGEST_ANSWER = OVERHEAD + 11


@dataclass(frozen=True, slots=True)
class ReadReceipt:
    """A resident read a display message on a unit.

    `read_at` is the unit's own clock; `stamp` is when the gateway heard it.
    """

    unit_id: str
    address: int
    message_id: int
    read_at: datetime
    stamp: Stamp


Uplink = UnitState | ReadReceipt


class LoraUnitLink:
    """Talk to LoRa dispensing units through one radio.

    Start it with `async with link:` (or let the first `apply` or
    `uplinks` start it); it runs one receiver task that verifies every frame
    and routes acknowledgements to waiting commands and everything else to
    `uplinks()`.
    """

    def __init__(
        self,
        radio: Radio,
        keys: dict[int, bytes],
        counters: CounterStore,
        airtime: DutyCycle,
        clock: Clock,
        *,
        unit_ids: dict[int, str] | None = None,
        channel_hz: int = 868_100_000,
        retries: int = 3,
        ack_timeout_s: float | None = None,
        backoff_s: float = 2.0,
        max_airtime_wait_s: float = 60.0,
        queue_size: int = 1000,
        seed: int | None = None,
    ) -> None:
        if retries < 0:
            raise ValueError(f"retries must be 0 or more, got {retries}")
        self._radio = radio
        self._guard = FrameGuard(
            {address: UnitKey(key) for address, key in keys.items()},
            counters,
            Direction.UP,
        )
        self._airtime = airtime
        self._airtime.band_of(channel_hz)
        self._clock = clock
        self._channel = channel_hz
        self._unit_ids = dict(unit_ids or {})
        self._retries = retries
        # A unit answers after decoding; give it a second beyond the answer's
        # own time on air.
        self._ack_timeout = ack_timeout_s or 1.0 + time_on_air(
            _LONGEST_ANSWER, radio.params
        )
        self._backoff = backoff_s
        self._max_wait = max_airtime_wait_s
        self._rng = random.Random(seed)

        self._queue: asyncio.Queue[Uplink] = asyncio.Queue(maxsize=queue_size)
        self._tx_lock = asyncio.Lock()
        self._unit_locks: dict[int, asyncio.Lock] = {}
        self._waiting: dict[int, tuple[int, asyncio.Future[UnitState]]] = {}
        self._acked: dict[int, CommandBody] = {}
        self._states: dict[int, UnitState] = {}
        self._last_receipt: dict[int, int] = {}
        self._unreachable: set[int] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._receiver: asyncio.Task[None] | None = None
        self.refused: Counter[str] = Counter()

    # Lifecycle ------------------------------------------------------------

    async def __aenter__(self) -> LoraUnitLink:
        self._start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    def _start(self) -> None:
        if self._receiver is None or self._receiver.done():
            self._receiver = asyncio.create_task(
                self._receive_loop(), name="lora-receiver"
            )

    async def aclose(self) -> None:
        """Stop the receiver and any acknowledgement still being sent."""
        tasks = [*self._tasks, *([self._receiver] if self._receiver else [])]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._receiver = None

    # Commands -------------------------------------------------------------

    def unit_id(self, address: int) -> str:
        return self._unit_ids.get(address, f"lora-{address:08x}")

    def forget(self, address: int) -> None:
        """Forget the last acknowledged command, so the next `apply` is sent."""
        self._acked.pop(address, None)

    async def apply(
        self,
        address: int,
        unit_id: str,
        command: UnitCommand,
        *,
        message_text: str | None = None,
    ) -> UnitState:
        """Send a confirmed command and return the state the unit acknowledged with.

        A command equal to the last acknowledged one is not sent again: the
        unit's last known state is returned. Raises LinkError when no
        acknowledgement came after all retries or the duty cycle leaves no
        room within `max_airtime_wait_s`.
        """
        self._start()
        self._unit_ids[address] = unit_id
        self._guard.key_for(address)
        wish = CommandBody.from_unit_command(command, 0, message_text)
        lock = self._unit_locks.setdefault(address, asyncio.Lock())
        async with lock:
            acked = self._acked.get(address)
            if acked is not None and acked.same_wish(wish) and address in self._states:
                log.debug("lora_command_unchanged", unit=unit_id)
                return self._states[address]
            state = await self._send_confirmed(address, wish)
        self._acked[address] = wish
        return state

    async def _send_confirmed(self, address: int, wish: CommandBody) -> UnitState:
        unit_id = self.unit_id(address)
        future: asyncio.Future[UnitState] = asyncio.get_running_loop().create_future()
        ref = -1
        try:
            for attempt in range(self._retries + 1):
                if attempt:
                    await asyncio.sleep(self._backoff_s(attempt))
                counter = self._guard.reserve_counter(address)
                if ref < 0:
                    # Every retry carries the first attempt's ref, so a unit
                    # that heard an earlier try does not apply it twice.
                    ref = counter & 0xFFFF
                    self._waiting[address] = (ref, future)
                body = CommandBody(
                    ref,
                    wish.supply_on,
                    wish.allowance_milli,
                    wish.balance_minor,
                    wish.decimals,
                    wish.message_id,
                    wish.message_text,
                )
                raw = self._guard.seal_with(address, counter, body)
                await self._transmit(raw, unit_id)
                try:
                    state = await asyncio.wait_for(
                        asyncio.shield(future), self._ack_timeout
                    )
                except TimeoutError:
                    log.debug("lora_ack_missing", unit=unit_id, attempt=attempt + 1)
                    continue
                if address in self._unreachable:
                    self._unreachable.discard(address)
                    log.info("lora_unit_recovered", unit=unit_id)
                return state
        finally:
            self._waiting.pop(address, None)
            future.cancel()
        if address not in self._unreachable:
            self._unreachable.add(address)
            log.warning(
                "lora_unit_unreachable", unit=unit_id, attempts=self._retries + 1
            )
        raise LinkError(
            f"LoRa unit {unit_id} (0x{address:08x}) did not acknowledge after "
            f"{self._retries + 1} attempts: check its power and antenna, or move it "
            f"to a higher spreading factor"
        )

    def _backoff_s(self, attempt: int) -> float:
        # Exponential with jitter, so retries to several units spread out.
        base: float = self._backoff * 2.0 ** (attempt - 1)
        return base * (0.5 + self._rng.random())

    async def _transmit(self, raw: bytes, unit_id: str) -> None:
        """Send one frame once the sub-band's duty cycle allows it."""
        airtime = time_on_air(len(raw), self._radio.params)
        async with self._tx_lock:
            try:
                wait = self._airtime.reserve(self._channel, airtime, Policy.REFUSE)
            except DutyCycleExceeded as full:
                if full.wait_s > self._max_wait:
                    raise LinkError(
                        f"LoRa duty cycle leaves no airtime for {unit_id} within "
                        f"{self._max_wait:.0f} s ({full}); send fewer commands"
                    ) from None
                wait = self._airtime.reserve(self._channel, airtime, Policy.WAIT)
                log.debug("lora_duty_cycle_wait", unit=unit_id, wait_s=round(wait, 3))
                await asyncio.sleep(wait)
            await self._radio.send(raw, self._channel)

    # Uplinks ----------------------------------------------------------------

    async def uplinks(self) -> AsyncIterator[Uplink]:
        """Yield verified unit states and read receipts as they arrive."""
        self._start()
        while True:
            yield await self._queue.get()

    async def _receive_loop(self) -> None:
        radio_failed = False
        while True:
            try:
                heard = await self._radio.receive()
            except RadioError as err:
                if not radio_failed:
                    log.error("lora_radio_failed", error=str(err))
                    radio_failed = True
                await asyncio.sleep(1.0)
                continue
            if radio_failed:
                log.info("lora_radio_recovered")
                radio_failed = False
            self._handle(heard.frame, heard.rssi, heard.snr)

    def _handle(self, raw: bytes, rssi: float, snr: float) -> None:
        try:
            verified = self._guard.verify(raw)
        except SecurityError as err:
            reason = str(getattr(err, "reason", "security"))
            self.refused[reason] += 1
            log.warning("lora_frame_refused", reason=reason, detail=str(err))
            return
        except FrameError as err:
            self.refused["malformed"] += 1
            log.info("lora_frame_malformed", length=len(raw), detail=str(err))
            return

        address = verified.header.address
        body = verified.body
        counter = verified.header.counter
        facts: dict[str, object] = {"rssi": rssi, "snr": snr, "counter": counter}
        if isinstance(body, UnitAckBody):
            state = self._to_state(address, body.status, facts)
            waiting = self._waiting.get(address)
            if waiting and waiting[0] == body.acked_ref and not waiting[1].done():
                waiting[1].set_result(state)
            self._publish(state)
        elif isinstance(body, StatusBody):
            self._publish(self._to_state(address, body, facts))
        elif isinstance(body, ReadReceiptBody):
            self._on_receipt(address, verified.header.counter, body)

    def _to_state(
        self, address: int, body: StatusBody, facts: dict[str, object]
    ) -> UnitState:
        allowance = (
            None
            if body.allowance_milli is None
            else from_thousandths(body.allowance_milli)
        )
        state = UnitState(
            unit_id=self.unit_id(address),
            supply_on=body.supply_on,
            stamp=self._clock.now(),
            tamper=body.tamper,
            manual_override=body.manual_override,
            allowance=allowance,
            extra={
                "address": address,
                "consumption": from_thousandths(body.consumption_milli),
                **facts,
            },
        )
        self._states[address] = state
        acked = self._acked.get(address)
        ran_out = body.allowance_milli == 0
        if acked is not None and acked.supply_on != body.supply_on and not ran_out:
            # The unit is not in the state it acknowledged (it restarted, or
            # was switched by hand): the next command must go out even if
            # the gateway's wish did not change.
            self._acked.pop(address, None)
        return state

    def _publish(self, item: Uplink) -> None:
        if self._queue.full():
            dropped = self._queue.get_nowait()
            log.warning(
                "lora_uplink_dropped", unit=dropped.unit_id, reason="queue_full"
            )
        self._queue.put_nowait(item)

    def _on_receipt(self, address: int, counter: int, body: ReadReceiptBody) -> None:
        # Acknowledge every copy: the unit repeats until it hears one.
        _, raw = self._guard.seal(address, GatewayAckBody(counter & 0xFFFF))
        task = asyncio.create_task(self._send_quietly(raw, self.unit_id(address)))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        if self._last_receipt.get(address) == body.message_id:
            return
        self._last_receipt[address] = body.message_id
        self._publish(
            ReadReceipt(
                unit_id=self.unit_id(address),
                address=address,
                message_id=body.message_id,
                read_at=datetime.fromtimestamp(body.read_at, UTC),
                stamp=self._clock.now(),
            )
        )

    async def _send_quietly(self, raw: bytes, unit_id: str) -> None:
        try:
            await self._transmit(raw, unit_id)
        except LinkError as err:
            log.info("lora_receipt_ack_skipped", unit=unit_id, detail=str(err))
