"""IMST iM871A wireless M-Bus USB stick: its HCI serial framing, the
link-mode configuration request, and a receiver over pyserial-asyncio-fast."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from enum import IntEnum

import serial_asyncio_fast
import structlog

from gateway.clock import Clock
from gateway.model import LinkError

from .base import RawTelegram, Receiver, Streams

log = structlog.get_logger(__name__)

SOF = 0xA5
FLAG_CRC = 0x80
FLAG_RSSI = 0x40
FLAG_TIMESTAMP = 0x20

ENDPOINT_DEVMGMT = 0x01
ENDPOINT_RADIOLINK = 0x02
_ENDPOINTS = (0x01, 0x02, 0x03, 0x04)  # device management, radio, test, hw test

DEVMGMT_PING_REQ = 0x01
DEVMGMT_PING_RSP = 0x02
DEVMGMT_SET_CONFIG_REQ = 0x03
DEVMGMT_SET_CONFIG_RSP = 0x04
RADIOLINK_WMBUSMSG_IND = 0x03


class LinkMode(IntEnum):
    """iM871A link-mode numbers of the device-management configuration."""

    S1 = 0
    S1M = 1
    S2 = 2
    T1 = 3
    T2 = 4
    R2 = 5
    C1A = 6
    C1B = 7
    C2A = 8
    C2B = 9


def _crc_table() -> list[int]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x8408 if crc & 1 else crc >> 1
        table.append(crc)
    return table


_TABLE = _crc_table()


def hci_crc(data: bytes) -> int:
    """CRC-16 of the HCI (reflected CCITT, init 0xFFFF, final complement)."""
    crc = 0xFFFF
    for byte in data:
        crc = (crc >> 8) ^ _TABLE[(crc ^ byte) & 0xFF]
    return ~crc & 0xFFFF


def rssi_dbm(raw: int) -> int:
    """Convert the stick's RSSI byte to dBm (linear, per the HCI manual)."""
    return round(raw * 8 / 15 - 380 / 3)


def rssi_raw(dbm: int) -> int:
    """Convert dBm to the stick's RSSI byte (for the simulator)."""
    return max(0, min(255, round((dbm + 380 / 3) * 15 / 8)))


@dataclass(frozen=True, slots=True)
class HciMessage:
    """One HCI message: endpoint, message id, payload and optional trailer."""

    endpoint: int
    message_id: int
    payload: bytes
    timestamp: int | None = None
    rssi: int | None = None  # raw byte


def encode_hci(
    endpoint: int,
    message_id: int,
    payload: bytes = b"",
    *,
    crc: bool = True,
    rssi: int | None = None,
    timestamp: int | None = None,
) -> bytes:
    """Build an HCI message; the CRC covers everything after the SOF byte."""
    if len(payload) > 255:
        raise ValueError("an HCI payload holds at most 255 bytes")
    control = endpoint & 0x0F
    control |= FLAG_CRC if crc else 0
    control |= FLAG_RSSI if rssi is not None else 0
    control |= FLAG_TIMESTAMP if timestamp is not None else 0
    body = bytearray([control, message_id, len(payload)]) + payload
    if timestamp is not None:
        body += timestamp.to_bytes(4, "little")
    if rssi is not None:
        body.append(rssi & 0xFF)
    if crc:
        body += hci_crc(bytes(body)).to_bytes(2, "little")
    return bytes([SOF]) + bytes(body)


def set_mode_request(mode: LinkMode) -> bytes:
    """Configuration request: receive in `mode`, RAM only, power saving off.

    Payload: not stored in NVM (0), IIFlag1 0x03 (device mode and link mode
    follow), device mode 0 (other, i.e. a gateway), the link mode, IIFlag2
    0x08 (automatic power saving follows) and 0 (off).
    """
    payload = bytes([0x00, 0x03, 0x00, int(mode), 0x08, 0x00])
    return encode_hci(ENDPOINT_DEVMGMT, DEVMGMT_SET_CONFIG_REQ, payload)


class HciDecoder:
    """Cut HCI messages out of a serial byte stream, resynchronising on errors."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self.dropped = 0  # bytes skipped while hunting for a start byte

    def feed(self, chunk: bytes) -> list[HciMessage]:
        """Add bytes; return every complete, intact message."""
        self._buf += chunk
        out: list[HciMessage] = []
        while True:
            start = self._buf.find(SOF)
            if start < 0:
                self.dropped += len(self._buf)
                self._buf.clear()
                return out
            if start:
                self.dropped += start
                del self._buf[:start]
            if len(self._buf) < 4:
                return out
            control, length = self._buf[1], self._buf[3]
            if control & 0x0F not in _ENDPOINTS or control & 0x10:
                # Not a header (unknown endpoint or reserved bit): a stray
                # 0xA5 in noise. Skip it rather than wait for a false length.
                self.dropped += 1
                del self._buf[:1]
                continue
            total = 4 + length
            total += 4 if control & FLAG_TIMESTAMP else 0
            total += 1 if control & FLAG_RSSI else 0
            total += 2 if control & FLAG_CRC else 0
            if len(self._buf) < total:
                return out
            message = bytes(self._buf[:total])
            if control & FLAG_CRC and hci_crc(message[1:-2]) != int.from_bytes(
                message[-2:], "little"
            ):
                # A false start byte inside data; skip it and hunt again.
                self.dropped += 1
                del self._buf[:1]
                continue
            del self._buf[:total]
            out.append(_parse(message))


def _parse(message: bytes) -> HciMessage:
    control, msg_id, length = message[1], message[2], message[3]
    pos = 4 + length
    timestamp = rssi = None
    if control & FLAG_TIMESTAMP:
        timestamp = int.from_bytes(message[pos : pos + 4], "little")
        pos += 4
    if control & FLAG_RSSI:
        rssi = message[pos]
    return HciMessage(control & 0x0F, msg_id, message[4 : 4 + length], timestamp, rssi)


class Im871aReceiver(Receiver):
    """Receive telegrams from an iM871A stick on a serial port."""

    def __init__(
        self,
        port: str,
        mode: LinkMode = LinkMode.T1,
        *,
        baudrate: int = 57600,
        silence_timeout_s: float = 900.0,
        config_timeout_s: float = 2.0,
        clock: Clock | None = None,
    ) -> None:
        super().__init__(silence_timeout_s, clock)
        self.port = port
        self.mode = mode
        self.baudrate = baudrate
        self.config_timeout_s = config_timeout_s
        self._decoder = HciDecoder()
        self._config_answered: asyncio.Event | None = None

    async def _connect(self) -> Streams:
        try:
            reader, writer = await serial_asyncio_fast.open_serial_connection(
                url=self.port, baudrate=self.baudrate
            )
        except OSError as exc:
            raise LinkError(
                f"cannot open iM871A on {self.port}: {exc.strerror or exc};"
                " check the port name in the receiver settings"
            ) from None
        return reader, writer

    async def _configure(self) -> None:
        self._config_answered = asyncio.Event()
        await self._write(set_mode_request(self.mode))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.config_timeout_s
        while not self._config_answered.is_set():
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise LinkError(
                    f"iM871A on {self.port} did not confirm link mode"
                    f" {self.mode.name}; is it an iM871A, and at {self.baudrate} baud?"
                )
            try:
                async with asyncio.timeout(remaining):
                    chunk = await self._read_raw()
            except TimeoutError:
                continue
            for frame, rssi in self._feed(chunk):
                self._pending.append(RawTelegram(frame, rssi, self.clock.now()))
        log.info("im871a_configured", port=self.port, mode=self.mode.name)

    async def _read_raw(self) -> bytes:
        assert self._reader is not None
        chunk = await self._reader.read(4096)
        if not chunk:
            raise LinkError(f"iM871A on {self.port} closed while configuring")
        return chunk

    def __repr__(self) -> str:
        return f"Im871aReceiver({self.port!r}, {self.mode.name})"

    def _feed(self, chunk: bytes) -> list[tuple[bytes, int | None]]:
        out: list[tuple[bytes, int | None]] = []
        for msg in self._decoder.feed(chunk):
            kind = (msg.endpoint, msg.message_id)
            if kind == (ENDPOINT_DEVMGMT, DEVMGMT_SET_CONFIG_RSP):
                if self._config_answered is not None:
                    self._config_answered.set()
            elif kind == (ENDPOINT_RADIOLINK, RADIOLINK_WMBUSMSG_IND) and msg.payload:
                # The stick drops the L-field; its payload starts at C.
                frame = bytes([len(msg.payload)]) + msg.payload
                rssi = rssi_dbm(msg.rssi) if msg.rssi is not None else None
                out.append((frame, rssi))
        return out
