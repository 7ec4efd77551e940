"""What every wireless M-Bus receiver yields, and the shared loop that turns
a byte stream into telegrams with a silence timeout."""

from __future__ import annotations

import abc
import asyncio
import contextlib
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass

import structlog

from gateway.clock import Clock, Stamp, SystemClock
from gateway.model import LinkError

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class RawTelegram:
    """One telegram as heard: bytes from the L-field, RSSI in dBm if known."""

    frame: bytes
    rssi: int | None
    stamp: Stamp


class ReceiverSilent(LinkError):
    """The receiver heard nothing for its silence timeout; reopen it."""


Streams = tuple[asyncio.StreamReader, asyncio.StreamWriter | None]


class Receiver(abc.ABC):
    """A source of raw telegrams over an asyncio byte stream.

    Subclasses say how to open the stream and how to cut frames out of it.
    `receive()` raises ReceiverSilent when nothing arrived for
    `silence_timeout_s`, and LinkError when the stream closed; the caller
    then closes and reopens the receiver.
    """

    def __init__(self, silence_timeout_s: float, clock: Clock | None = None) -> None:
        self.silence_timeout_s = silence_timeout_s
        self.clock: Clock = clock or SystemClock()
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._pending: deque[RawTelegram] = deque()
        self._failing = False

    @abc.abstractmethod
    async def _connect(self) -> Streams:
        """Open the underlying stream."""

    @abc.abstractmethod
    def _feed(self, chunk: bytes) -> list[tuple[bytes, int | None]]:
        """Take bytes; return complete (frame, rssi) pairs found so far."""

    async def _configure(self) -> None:  # noqa: B027 - optional hook
        """Put the device into receive mode; nothing by default."""

    async def open(self) -> None:
        """Open the stream and configure the device."""
        self._reader, self._writer = await self._connect()
        await self._configure()

    async def close(self) -> None:
        """Close the stream; safe to call twice."""
        writer, self._writer, self._reader = self._writer, None, None
        if writer is not None:
            writer.close()
            with contextlib.suppress(OSError, ConnectionError):
                await writer.wait_closed()

    async def __aenter__(self) -> Receiver:
        await self.open()
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.close()

    async def _write(self, data: bytes) -> None:
        if self._writer is None:
            raise LinkError("receiver is not open; call open() first")
        self._writer.write(data)
        await self._writer.drain()

    async def _read_chunk(self, budget_s: float) -> bytes:
        if self._reader is None:
            raise LinkError("receiver is not open; call open() first")
        try:
            async with asyncio.timeout(budget_s):
                chunk = await self._reader.read(4096)
        except TimeoutError:
            self._report("wmbus_receiver_silent", seconds=self.silence_timeout_s)
            raise ReceiverSilent(
                f"no telegram for {self.silence_timeout_s:g} s; check the receiver"
                " and its antenna, then reopen it"
            ) from None
        except OSError as exc:
            raise LinkError(f"receiver stream failed: {exc.strerror or exc}") from None
        if not chunk:
            self._report("wmbus_receiver_closed")
            raise LinkError("receiver stream closed (device unplugged or source ended)")
        if self._failing:
            self._failing = False
            log.info("wmbus_receiver_recovered", receiver=repr(self))
        return chunk

    def _report(self, event: str, **facts: object) -> None:
        """Log a failure once; the next success logs the recovery."""
        if not self._failing:
            self._failing = True
            log.warning(event, receiver=repr(self), **facts)

    async def receive(self) -> RawTelegram:
        """Wait for the next telegram."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.silence_timeout_s
        while not self._pending:
            chunk = await self._read_chunk(max(0.0, deadline - loop.time()))
            stamp = self.clock.now()
            for frame, rssi in self._feed(chunk):
                self._pending.append(RawTelegram(frame, rssi, stamp))
        return self._pending.popleft()

    async def telegrams(self) -> AsyncIterator[RawTelegram]:
        """Yield telegrams until silence or a closed stream raises."""
        while True:
            yield await self.receive()
