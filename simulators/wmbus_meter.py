"""Simulated wireless M-Bus meters: real corpus telegrams used as templates,
re-encrypted with a fresh access number and a growing billing register, sent
through a virtual iM871A stick on a pseudo-terminal or as hex lines."""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import select
import socket
import threading
import time
import tty
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal

from drivers.wmbus.receivers.im871a import (
    DEVMGMT_SET_CONFIG_REQ,
    DEVMGMT_SET_CONFIG_RSP,
    ENDPOINT_DEVMGMT,
    ENDPOINT_RADIOLINK,
    RADIOLINK_WMBUSMSG_IND,
    HciDecoder,
    encode_hci,
    rssi_raw,
)
from drivers.wmbus.records import decode_records, record_spans, vif_scale
from drivers.wmbus.security import MARKER, MeterKey, decrypt_cbc, encrypt_cbc, mode5_iv

# Real telegrams from the shared corpus (wmbusmeters test data): a Sensus
# iPerl water meter in clear, and a Diehl warm-water meter in mode 5 with
# the key published beside it.
PLAIN_TEMPLATE = "1844AE4C4455223368077A55000000041389E20100023B0000"
MODE5_TEMPLATE = (
    "3944FA122162092002067A3604202567C94D48D00DC47B11213E23383DB51968A705AAFA"
    "60C60E263D50CD259D7C9A03FD0C08000002FD0B0011"
)
MODE5_TEMPLATE_KEY = "BEDB81B52C29B5C143388CBB0D15A051"


@dataclass
class SimulatedMeter:
    """One meter built from a template telegram (CI 7A, mode 0 or 5).

    Each `next_frame()` advances the access number and the billing register
    by `step` and, for mode 5, encrypts afresh with `key`.
    """

    template_hex: str = PLAIN_TEMPLATE
    template_key: str | None = None
    key: bytes | None = None
    step: Decimal = Decimal("0.001")
    access_number: int = field(default=0, init=False)
    value: Decimal = field(default=Decimal(0), init=False)

    def __post_init__(self) -> None:
        frame = bytes.fromhex(self.template_hex)
        if frame[10] != 0x7A:
            raise ValueError("simulator templates need a short transport header")
        self._head = frame[1:10]
        self.access_number = frame[11]
        self._status = frame[12]
        config = int.from_bytes(frame[13:15], "little")
        self.mode = (config >> 8) & 0x1F
        self._config = config
        body = frame[15:]
        tail = b""
        if self.mode == 5:
            if self.template_key is None or self.key is None:
                raise ValueError("a mode-5 template needs its key and a meter key")
            blocks = ((config >> 4) & 0x0F) * 16
            iv = mode5_iv(frame[2:10], self.access_number)
            tpl_key = MeterKey.from_hex(self.template_key)
            body, tail = decrypt_cbc(tpl_key, iv, body[:blocks]), body[blocks:]
        self._tail = tail
        records = body.lstrip(MARKER[:1])
        self._records = bytearray(records[: record_spans(records)[-1][2]])
        self._locate_register()

    @property
    def meter_id(self) -> str:
        return self._head[6:2:-1].hex()

    def _locate_register(self) -> None:
        decoded = decode_records(bytes(self._records))
        spans = record_spans(bytes(self._records))
        for record, (start, data_start, end, _f) in zip(decoded, spans, strict=False):
            if (
                record.quantity in ("Volume", "Energy")
                and record.storage == 0
                and record.function == "Instantaneous value"
            ):
                header = bytes(self._records[start:data_start])
                self._span = (data_start, end, header[0] & 0x0F)
                self._scale = vif_scale(header)
                self.value = record.value or Decimal(0)
                return
        raise ValueError("template has no volume or energy register to advance")

    def _write_value(self) -> None:
        data_start, end, coding = self._span
        raw = int(self.value / self._scale)
        size = end - data_start
        if coding in (0x09, 0x0A, 0x0B, 0x0C, 0x0E):
            digits = f"{raw:0{size * 2}d}"[-size * 2 :]
            encoded = bytes.fromhex(digits)[::-1]
        else:
            encoded = raw.to_bytes(size, "little")
        self._records[data_start:end] = encoded

    def next_frame(self) -> bytes:
        """Return the next telegram (no link-layer CRCs, from the L-field)."""
        self.access_number = (self.access_number + 1) % 256
        self.value += self.step
        self._write_value()
        plain = MARKER + bytes(self._records)
        config = self._config
        if self.mode == 5:
            assert self.key is not None
            iv = mode5_iv(self._head[1:9], self.access_number)
            body = encrypt_cbc(MeterKey(self.key), iv, plain)
            config = (config & ~0x00F0) | ((len(body) // 16) << 4)
            body += self._tail
        else:
            body = bytes(self._records)
        tpl = bytes([0x7A, self.access_number, self._status]) + config.to_bytes(
            2, "little"
        )
        frame = self._head + tpl + body
        return bytes([len(frame)]) + frame


class _Emitter:
    """A thread that sends each meter's telegrams every interval."""

    def __init__(
        self,
        meters: list[SimulatedMeter],
        interval_s: float,
        repeat_probability: float,
        seed: int | None,
    ) -> None:
        self.meters = meters
        self.interval_s = interval_s
        self.repeat_probability = repeat_probability
        self._random = random.Random(seed)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.sent = 0

    def start(self) -> None:
        """Start sending in a background thread."""
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread and release what it holds."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._close()

    def _telegrams(self) -> list[bytes]:
        out = []
        for meter in self.meters:
            frame = meter.next_frame()
            out.append(frame)
            # Real meters repeat; radios hear the same telegram twice.
            if self._random.random() < self.repeat_probability:
                out.append(frame)
        return out

    def _run(self) -> None:
        next_at = time.monotonic()
        while not self._stop.is_set():
            self._service(max(0.0, next_at - time.monotonic()))
            if time.monotonic() >= next_at:
                for frame in self._telegrams():
                    self._send(frame)
                    self.sent += 1
                next_at += self.interval_s

    def _service(self, wait_s: float) -> None:
        self._stop.wait(wait_s)

    def _send(self, frame: bytes) -> None:
        raise NotImplementedError

    def _close(self) -> None:
        pass


class Im871aStick(_Emitter):
    """A virtual iM871A on a pseudo-terminal; the receiver opens `port`."""

    def __init__(
        self,
        meters: list[SimulatedMeter],
        interval_s: float = 1.0,
        repeat_probability: float = 0.3,
        seed: int | None = None,
        rssi_dbm: int = -70,
    ) -> None:
        super().__init__(meters, interval_s, repeat_probability, seed)
        self._master, self._slave = os.openpty()
        # Raw from the start: bytes written before the receiver opens the
        # port must not be echoed or have their CR/LF translated.
        tty.setraw(self._slave)
        self.port = os.ttyname(self._slave)
        self.rssi_dbm = rssi_dbm
        self._decoder = HciDecoder()
        self.configured_modes: list[int] = []

    def _service(self, wait_s: float) -> None:
        ready, _, _ = select.select([self._master], [], [], min(wait_s, 0.05))
        if not ready:
            return
        try:
            chunk = os.read(self._master, 4096)
        except OSError:
            return
        for msg in self._decoder.feed(chunk):
            if (msg.endpoint, msg.message_id) == (
                ENDPOINT_DEVMGMT,
                DEVMGMT_SET_CONFIG_REQ,
            ):
                self.configured_modes.append(msg.payload[3])
                answer = encode_hci(ENDPOINT_DEVMGMT, DEVMGMT_SET_CONFIG_RSP, b"\x00")
                os.write(self._master, answer)

    def _send(self, frame: bytes) -> None:
        # The stick strips the L-field and appends RSSI and its CRC.
        message = encode_hci(
            ENDPOINT_RADIOLINK,
            RADIOLINK_WMBUSMSG_IND,
            frame[1:],
            rssi=rssi_raw(self.rssi_dbm),
        )
        with contextlib.suppress(OSError):
            os.write(self._master, message)

    def _close(self) -> None:
        for fd in (self._master, self._slave):
            with contextlib.suppress(OSError):
                os.close(fd)


class LineFeed(_Emitter):
    """Hex lines to a writer (a pipe, file or stdout), or to TCP clients."""

    def __init__(
        self,
        meters: list[SimulatedMeter],
        write: Callable[[str], None] | None = None,
        tcp_port: int | None = None,
        interval_s: float = 1.0,
        repeat_probability: float = 0.3,
        seed: int | None = None,
        rtl_style: bool = False,
    ) -> None:
        super().__init__(meters, interval_s, repeat_probability, seed)
        self._write = write
        self.rtl_style = rtl_style
        self._clients: list[socket.socket] = []
        self._server: socket.socket | None = None
        self.tcp_port: int | None = None
        if tcp_port is not None:
            self._server = socket.create_server(("127.0.0.1", tcp_port))
            self._server.setblocking(False)
            self.tcp_port = self._server.getsockname()[1]

    def _service(self, wait_s: float) -> None:
        if self._server is None:
            super()._service(wait_s)
            return
        ready, _, _ = select.select([self._server], [], [], min(wait_s, 0.05))
        if ready:
            client, _addr = self._server.accept()
            self._clients.append(client)

    def _line(self, frame: bytes) -> str:
        if not self.rtl_style:
            return frame.hex().upper() + "\n"
        stamp = time.strftime("%Y-%m-%d %H:%M:%S.000")
        ident = frame[2:10][5:1:-1].hex()
        return f"T1;1;1;{stamp};97;148;{ident};0x{frame.hex()}\n"

    def _send(self, frame: bytes) -> None:
        line = self._line(frame)
        if self._write is not None:
            self._write(line)
        for client in list(self._clients):
            try:
                client.sendall(line.encode())
            except OSError:
                self._clients.remove(client)

    def _close(self) -> None:
        for sock in [*self._clients, *([self._server] if self._server else [])]:
            sock.close()


def demo_meters(key: bytes) -> list[SimulatedMeter]:
    """One meter in clear and one in mode 5 with `key`, from the templates."""
    return [
        SimulatedMeter(PLAIN_TEMPLATE),
        SimulatedMeter(MODE5_TEMPLATE, MODE5_TEMPLATE_KEY, key),
    ]


def main(argv: list[str] | None = None) -> None:
    """Run the simulator until interrupted."""
    parser = argparse.ArgumentParser(description=__doc__)
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--pty", action="store_true", help="virtual iM871A stick")
    where.add_argument("--lines", metavar="PATH", help="hex lines to PATH or -")
    where.add_argument("--tcp", type=int, metavar="PORT", help="hex lines on TCP")
    parser.add_argument("--key", default=MODE5_TEMPLATE_KEY, help="mode-5 key, hex")
    parser.add_argument("--interval", type=float, default=2.0)
    parser.add_argument("--rtl", action="store_true", help="rtl_wmbus line style")
    args = parser.parse_args(argv)

    meters = demo_meters(bytes.fromhex(args.key))
    emitter: _Emitter
    if args.pty:
        emitter = Im871aStick(meters, args.interval)
        print(f"iM871A on {emitter.port}", flush=True)
    elif args.tcp is not None:
        emitter = LineFeed(
            meters, tcp_port=args.tcp, interval_s=args.interval, rtl_style=args.rtl
        )
        print(f"lines on tcp 127.0.0.1:{emitter.tcp_port}", flush=True)
    else:
        out = open(args.lines, "a", buffering=1) if args.lines != "-" else None  # noqa: SIM115

        def write(line: str) -> None:
            if out is None:
                print(line, end="", flush=True)
            else:
                out.write(line)

        emitter = LineFeed(
            meters, write=write, interval_s=args.interval, rtl_style=args.rtl
        )
    emitter.start()
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        emitter.stop()


if __name__ == "__main__":
    main()
