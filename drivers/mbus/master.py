"""Asyncio M-Bus master for one wired bus: reset, request, read, decode, scan.

One request is on the bus at a time. A silent meter costs exactly one
response timeout per poll and is never retried: on a 2400 baud bus serving
a hundred meters, retrying silence would let one dead meter eat the time
of the live ones, and silence rarely cures itself within a second. A
garbled reply is different: something answered, a collision or noise spoilt
it, and asking again with the same frame count bit makes the meter repeat
the same reply. That is what `retries` is for.
"""

from __future__ import annotations

import asyncio
import contextlib
import termios
from collections.abc import Callable

import serial_asyncio_fast
import structlog

from drivers.mbus import frames
from drivers.mbus.decode import Telegram, decode_frame
from gateway.model import FrameError, LinkError

log = structlog.get_logger(__name__)

BITS_PER_BYTE = 11  # start, 8 data, parity, stop


class MbusMaster:
    """Poll meters on one wired M-Bus line through a serial level converter."""

    def __init__(
        self,
        port: str,
        baudrate: int = 2400,
        parity: str = "E",
        timeout_s: float = 0.5,
        retries: int = 1,
        echo: bool = False,
    ) -> None:
        if parity not in ("N", "E", "O"):
            raise ValueError(f"parity {parity!r} must be N, E or O (M-Bus uses E)")
        if timeout_s <= 0:
            raise ValueError(f"timeout_s must be positive, got {timeout_s}")
        if retries < 0:
            raise ValueError(f"retries must be 0 or more, got {retries}")
        self.port = port
        self.baudrate = baudrate
        self.parity = parity
        self.timeout_s = timeout_s
        self.retries = retries
        self.echo = echo
        # Once a reply has started, bytes follow back to back; a gap of a
        # few dozen characters means the meter stopped mid-frame.
        self.char_timeout_s = min(timeout_s, max(0.05, 30 * BITS_PER_BYTE / baudrate))
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._lock = asyncio.Lock()
        self._fcb: dict[int | str, bool] = {}
        self._failing: set[int | str] = set()

    async def open(self) -> None:
        """Open the serial port; raise LinkError if it cannot be opened."""
        try:
            (
                self._reader,
                self._writer,
            ) = await serial_asyncio_fast.open_serial_connection(
                url=self.port,
                baudrate=self.baudrate,
                parity=self.parity,
                bytesize=8,
                stopbits=1,
            )
        except (OSError, ValueError, termios.error) as error:
            # pyserial lets termios.error through when the device refuses a
            # setting; pseudo-terminals refuse even parity that way.
            raise LinkError(
                f"cannot open M-Bus port {self.port} at {self.baudrate} baud, "
                f"parity {self.parity}: {error}; check the device path, and "
                "use parity N for a simulator on a pseudo-terminal"
            ) from error
        log.info("mbus_port_opened", port=self.port, baudrate=self.baudrate)

    async def close(self) -> None:
        """Close the serial port; safe to call twice."""
        writer, self._writer, self._reader = self._writer, None, None
        self._fcb.clear()
        if writer is not None:
            writer.close()
            # The port may be gone already; closing is all we wanted.
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    async def __aenter__(self) -> MbusMaster:
        await self.open()
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.close()

    async def read(self, address: int | str) -> Telegram:
        """Read and decode one meter, by primary address or secondary id."""
        raw = await self.read_raw(address)
        try:
            telegram = decode_frame(raw)
        except FrameError as error:
            self._note_failure(_address_key(address), error)
            raise
        return telegram

    async def read_raw(self, address: int | str) -> bytes:
        """Return one meter's RSP_UD long frame, checked but not decoded."""
        key = _address_key(address)
        async with self._lock:
            try:
                frame = await self._read_locked(key)
            except (LinkError, FrameError) as error:
                # The meter may have rebooted: reset it again next time.
                self._fcb.pop(key, None)
                self._note_failure(key, error)
                raise
        self._note_success(key)
        return frame

    async def ping(self, address: int) -> bool:
        """Send SND_NKE and return whether the meter acknowledged with E5."""
        async with self._lock:
            return await self._ping_locked(address)

    async def scan(
        self,
        addresses: range = range(0, 251),
        progress: Callable[[int], None] | None = None,
    ) -> list[int]:
        """Return the primary addresses that answer SND_NKE with E5."""
        found: list[int] = []
        for address in addresses:
            async with self._lock:
                if await self._ping_locked(address):
                    found.append(address)
            if progress is not None:
                progress(address)
        log.info("mbus_scan_done", port=self.port, found=found)
        return found

    async def _ping_locked(self, address: int) -> bool:
        request = frames.build_snd_nke(address)
        try:
            reply = await self._exchange(request)
        except LinkError:
            return False
        except FrameError as error:
            # Two meters on one address, or noise: report it, do not count it.
            log.warning("mbus_scan_garbled", address=address, reason=str(error))
            await self._flush()
            return False
        if frames.is_ack(reply):
            self._fcb[address] = True
            return True
        return False

    async def _read_locked(self, key: int | str) -> bytes:
        target = frames.ADDRESS_NETWORK_LAYER if isinstance(key, str) else key
        if isinstance(key, str):
            await self._expect_ack(frames.build_select_secondary(key))
            # LIMITATION: a meter selected by secondary address is never reset
            # (SND_NKE to 253 would deselect it), so its memory of the last
            # FCB is unknown. If it happens to equal ours, the first read of a
            # session returns the meter's previous reply, one poll stale.
            self._fcb.setdefault(key, True)
        elif key not in self._fcb:
            await self._expect_ack(frames.build_snd_nke(key))
            # After a reset the meter expects the first FCB to be set.
            self._fcb[key] = True

        attempts = self.retries + 1
        for attempt in range(1, attempts + 1):
            request = frames.build_req_ud2(target, self._fcb[key])
            try:
                reply = await self._exchange(request)
                long_frame = frames.parse_long(reply)
                _check_reply(long_frame, key)
            except FrameError as error:
                # Same FCB again: the meter repeats its last reply.
                await self._flush()
                if attempt == attempts:
                    raise
                log.debug(
                    "mbus_reply_garbled",
                    address=key,
                    attempt=attempt,
                    reason=str(error),
                )
                continue
            self._fcb[key] = not self._fcb[key]
            return reply
        raise AssertionError("unreachable: the loop returns or raises")

    async def _expect_ack(self, request: bytes) -> None:
        reply = await self._exchange(request)
        if not frames.is_ack(reply):
            await self._flush()
            frames.parse_ack(reply)

    async def _exchange(self, request: bytes) -> bytes:
        """Send one request and return the E5 or the whole long frame after it."""
        _, writer = self._streams()
        await self._flush(quiet_s=0.001)
        writer.write(request)
        await writer.drain()
        if self.echo:
            echo = await self._read_exact(len(request), self.timeout_s, silent_ok=True)
            frames.strip_echo(echo, request)

        first = await self._read_exact(1, self.timeout_s, silent_ok=True)
        if first[0] == frames.ACK:
            return first
        if first[0] != frames.START_LONG:
            raise FrameError(
                f"reply starts with {first.hex()}, neither E5 (ACK) nor 68 (long frame)"
            )
        header = first + await self._read_exact(3, self.char_timeout_s)
        length = frames.long_frame_length(header)
        rest = await self._read_exact(length - 4, self.char_timeout_s)
        return header + rest

    async def _read_exact(
        self, count: int, timeout_s: float, *, silent_ok: bool = False
    ) -> bytes:
        reader, _ = self._streams()
        data = b""
        deadline = timeout_s
        while len(data) < count:
            try:
                chunk = await asyncio.wait_for(reader.read(count - len(data)), deadline)
            except TimeoutError:
                if not data and silent_ok:
                    raise LinkError(
                        f"no answer on {self.port} within {timeout_s:.2f} s"
                    ) from None
                raise FrameError(
                    f"reply stopped after {len(data)} of {count} bytes"
                ) from None
            if not chunk:
                raise LinkError(f"serial port {self.port} closed")
            data += chunk
            deadline = self.char_timeout_s
        return data

    async def _flush(self, quiet_s: float | None = None) -> None:
        """Discard input until the line has been quiet for `quiet_s`."""
        reader, _ = self._streams()
        quiet = self.char_timeout_s if quiet_s is None else quiet_s
        while True:
            try:
                chunk = await asyncio.wait_for(reader.read(4096), quiet)
            except TimeoutError:
                return
            if not chunk:
                return

    def _streams(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self._reader is None or self._writer is None:
            raise LinkError(f"M-Bus port {self.port} is not open; call open() first")
        return self._reader, self._writer

    def _note_failure(self, address: int | str, error: Exception) -> None:
        if address not in self._failing:
            self._failing.add(address)
            log.warning(
                "mbus_meter_failed",
                port=self.port,
                address=address,
                error=type(error).__name__,
                reason=str(error),
            )

    def _note_success(self, address: int | str) -> None:
        if address in self._failing:
            self._failing.discard(address)
            log.info("mbus_meter_recovered", port=self.port, address=address)


def _address_key(address: int | str) -> int | str:
    if isinstance(address, bool):
        raise ValueError("address must be an int or a secondary id string")
    if isinstance(address, int):
        if not 0 <= address <= frames.MAX_PRIMARY:
            raise ValueError(f"primary address {address} is out of range; use 0 to 250")
        return address
    frames.parse_secondary(address)  # Validates, with a message naming the input.
    return address.strip().upper()


def _check_reply(long_frame: frames.LongFrame, key: int | str) -> None:
    if long_frame.c & 0xCF != 0x08:
        raise FrameError(f"C field {long_frame.c:02X} is not RSP_UD (08)")
    if isinstance(key, int) and long_frame.a != key:
        raise FrameError(f"reply came from address {long_frame.a}, we asked {key}")
    if isinstance(key, str) and len(long_frame.data) >= 4:
        ident = long_frame.data[3::-1].hex().upper()
        wanted = key[:8]
        if any(w not in ("F", g) for w, g in zip(wanted, ident, strict=True)):
            raise FrameError(f"reply came from meter {ident}, we selected {wanted}")
