"""Amber / Würth AMB8465 wireless M-Bus USB stick: command-mode framing
(0xFF, command, length, payload, XOR checksum), transparent mode framed by
the L-field, and the volatile link-mode request."""

from __future__ import annotations

from enum import IntEnum

import serial_asyncio_fast

from gateway.clock import Clock
from gateway.model import LinkError

from .base import Receiver, Streams

SOF = 0xFF
CMD_DATA_IND = 0x03
CMD_SET_MODE_REQ = 0x04
CONFIRM = 0x80


class AmberMode(IntEnum):
    """AMB8465 receive modes for CMD_SET_MODE_REQ (gateway side).

    LIMITATION: these values follow one public driver and the vendor
    manual's tables as we read them; confirm on a real stick before relying
    on S1.
    """

    S1 = 0x03
    T1 = 0x08
    C1 = 0x0E


def checksum(data: bytes) -> int:
    """XOR of every byte, start byte included."""
    out = 0
    for byte in data:
        out ^= byte
    return out


def encode_command(command: int, payload: bytes = b"") -> bytes:
    """Build a command-mode frame."""
    body = bytes([SOF, command, len(payload)]) + payload
    return body + bytes([checksum(body)])


def set_mode_request(mode: AmberMode) -> bytes:
    """Ask the stick to receive in `mode` (volatile; lost on reset)."""
    return encode_command(CMD_SET_MODE_REQ, bytes([int(mode)]))


def rssi_dbm(raw: int) -> int:
    """Convert the AMB8465 RSSI byte (two's complement, half-dB steps) to dBm."""
    signed = raw - 256 if raw >= 128 else raw
    return signed // 2 - 74


class AmberDecoder:
    """Cut frames out of the stick's byte stream, in either UART mode."""

    def __init__(
        self, *, transparent: bool = False, rssi_appended: bool = True
    ) -> None:
        self.transparent = transparent
        self.rssi_appended = rssi_appended
        self._buf = bytearray()
        self.dropped = 0
        self.confirmations: list[int] = []

    def feed(self, chunk: bytes) -> list[tuple[bytes, int | None]]:
        """Add bytes; return (frame from L-field, RSSI dBm or None) pairs."""
        self._buf += chunk
        return self._transparent() if self.transparent else self._command()

    def _transparent(self) -> list[tuple[bytes, int | None]]:
        out: list[tuple[bytes, int | None]] = []
        extra = 1 if self.rssi_appended else 0
        while self._buf:
            total = self._buf[0] + 1 + extra
            if self._buf[0] < 10:
                # Too short to be a telegram: resynchronise byte by byte.
                self.dropped += 1
                del self._buf[:1]
                continue
            if len(self._buf) < total:
                break
            frame = bytes(self._buf[: self._buf[0] + 1])
            rssi = rssi_dbm(self._buf[total - 1]) if extra else None
            del self._buf[:total]
            out.append((frame, rssi))
        return out

    def _command(self) -> list[tuple[bytes, int | None]]:
        out: list[tuple[bytes, int | None]] = []
        while True:
            start = self._buf.find(SOF)
            if start < 0:
                self.dropped += len(self._buf)
                self._buf.clear()
                return out
            self.dropped += start
            del self._buf[:start]
            if len(self._buf) < 3:
                return out
            total = self._buf[2] + 4
            if len(self._buf) < total:
                return out
            message = bytes(self._buf[:total])
            if checksum(message[:-1]) != message[-1]:
                self.dropped += 1
                del self._buf[:1]
                continue
            del self._buf[:total]
            command, payload = message[1], message[3:-1]
            if command & CONFIRM:
                self.confirmations.append(command & 0x7F)
            elif command == CMD_DATA_IND and payload:
                rssi = None
                if self.rssi_appended:
                    payload, rssi = payload[:-1], rssi_dbm(payload[-1])
                # Like the iM871A, the stick leaves out the L-field.
                out.append((bytes([len(payload)]) + payload, rssi))


class AmberReceiver(Receiver):
    """Receive telegrams from an AMB8465 stick on a serial port."""

    def __init__(
        self,
        port: str,
        mode: AmberMode = AmberMode.T1,
        *,
        baudrate: int = 9600,
        transparent: bool = False,
        rssi_appended: bool = True,
        silence_timeout_s: float = 900.0,
        clock: Clock | None = None,
    ) -> None:
        super().__init__(silence_timeout_s, clock)
        self.port = port
        self.mode = mode
        self.baudrate = baudrate
        self._decoder = AmberDecoder(
            transparent=transparent, rssi_appended=rssi_appended
        )

    async def _connect(self) -> Streams:
        try:
            return await serial_asyncio_fast.open_serial_connection(
                url=self.port, baudrate=self.baudrate
            )
        except OSError as exc:
            raise LinkError(
                f"cannot open AMB8465 on {self.port}: {exc.strerror or exc};"
                " check the port name in the receiver settings"
            ) from None

    async def _configure(self) -> None:
        # In transparent mode the stick takes no commands; its mode must have
        # been stored beforehand with the vendor tool.
        if not self._decoder.transparent:
            await self._write(set_mode_request(self.mode))

    def __repr__(self) -> str:
        return f"AmberReceiver({self.port!r}, {self.mode.name})"

    def _feed(self, chunk: bytes) -> list[tuple[bytes, int | None]]:
        return self._decoder.feed(chunk)
