"""Pretend wired M-Bus meters behind a pseudo-terminal, answering with real
corpus frames whose billing register follows a value the test controls."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import select
import threading
import tty
from dataclasses import dataclass, field
from decimal import Decimal
from importlib import resources
from types import TracebackType
from typing import Literal

from drivers.mbus import frames
from drivers.mbus.decode import decode_frame

Behaviour = Literal["ok", "dead", "garbage_sometimes"]


def corpus_frame(name: str) -> str:
    """Return a shipped corpus frame as hex: "electricity" or "water"."""
    text = resources.files("simulators").joinpath("data/mbus_frames.json").read_text()
    table: dict[str, dict[str, str]] = json.loads(text)
    if name not in table:
        raise KeyError(f"no frame named {name!r}; shipped: {', '.join(table)}")
    return table[name]["hex"]


@dataclass
class SimMeter:
    """One simulated meter: its address, the frame it answers, its register."""

    address: int
    frame_hex: str
    value: Decimal
    advance_per_read: Decimal = Decimal(0)
    behaviour: Behaviour = "ok"
    garbage_probability: float = 0.3
    fcb_seen: list[bool] = field(default_factory=list)
    reads: int = 0


class _Register:
    """Where a frame's billing register sits and how to write a new value."""

    def __init__(self, frame: bytes) -> None:
        telegram = decode_frame(frame)
        billing = telegram.billing
        if billing is None or billing.tariff is None or not billing.data:
            raise ValueError(
                "frame has no single tariff-0 billing register to rewrite; "
                "pick a frame whose billing register is one record"
            )
        record_bytes = billing.header + billing.data
        self.offset = frame.index(record_bytes, 19) + len(billing.header)
        self.size = len(billing.data)
        self.bcd = "BCD" in billing.coding
        if not self.bcd and "integer" not in billing.coding:
            raise ValueError(f"cannot rewrite a {billing.coding} register")
        raw = self._decode(billing.data)
        assert isinstance(billing.value, Decimal)
        self.step = billing.value / raw if raw else _step_from_vif(frame, self)
        self.unit = billing.unit

    def _decode(self, data: bytes) -> int:
        if self.bcd:
            return int(data[::-1].hex())
        return int.from_bytes(data, "little", signed=True)

    def encode(self, value: Decimal) -> bytes:
        raw = value / self.step
        if raw != raw.to_integral_value():
            raise ValueError(
                f"{value} {self.unit} is finer than the register's step {self.step}"
            )
        number = int(raw)
        if self.bcd:
            digits = f"{number:0{self.size * 2}d}"
            if len(digits) > self.size * 2 or number < 0:
                raise ValueError(f"{value} does not fit {self.size * 2} BCD digits")
            return bytes.fromhex(digits)[::-1]
        return number.to_bytes(self.size, "little", signed=True)


def _step_from_vif(frame: bytes, register: _Register) -> Decimal:
    # A register that reads zero cannot tell its scale by division; write a
    # one, decode, and read the scale off the result.
    probe = bytearray(frame)
    one = b"\x01" + b"\x00" * (register.size - 1)
    probe[register.offset : register.offset + register.size] = one
    billing = decode_frame(frames.with_checksum(bytes(probe))).billing
    assert billing is not None and isinstance(billing.value, Decimal)
    return billing.value


class MbusMeterSimulator:
    """Serve several simulated meters on one pseudo-terminal, in a thread."""

    def __init__(
        self, meters: list[SimMeter], *, echo: bool = False, seed: int = 1
    ) -> None:
        self._meters = {meter.address: meter for meter in meters}
        self._templates = {m.address: bytes.fromhex(m.frame_hex) for m in meters}
        self._registers = {a: _Register(f) for a, f in self._templates.items()}
        for meter in meters:
            self._registers[meter.address].encode(meter.value)  # Fail early.
        self.echo = echo
        self._random = random.Random(seed)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last: dict[int, tuple[bool, bytes]] = {}
        self._selected: int | None = None
        self._master_fd, self._slave_fd = os.openpty()
        tty.setraw(self._master_fd)
        tty.setraw(self._slave_fd)
        self.port = os.ttyname(self._slave_fd)

    def start(self) -> MbusMeterSimulator:
        """Start answering in a daemon thread."""
        self._thread = threading.Thread(
            target=self._serve, daemon=True, name="mbus-sim"
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop the thread and close the pseudo-terminal."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2)
        for fd in (self._master_fd, self._slave_fd):
            with contextlib.suppress(OSError):  # Closed by an earlier stop().
                os.close(fd)

    def __enter__(self) -> MbusMeterSimulator:
        return self.start()

    def __exit__(
        self,
        _type: type[BaseException] | None,
        _value: BaseException | None,
        _tb: TracebackType | None,
    ) -> None:
        self.stop()

    def set_value(self, address: int, value: Decimal) -> None:
        """Set a meter's billing register, in the unit its frame reports."""
        self._registers[address].encode(value)
        with self._lock:
            self._meters[address].value = value

    def value(self, address: int) -> Decimal:
        """Return a meter's billing register as it stands now."""
        with self._lock:
            return self._meters[address].value

    def meter(self, address: int) -> SimMeter:
        """Return the simulated meter at a primary address."""
        return self._meters[address]

    def unit(self, address: int) -> str:
        """Return the unit a meter's billing register is in."""
        return self._registers[address].unit

    def _serve(self) -> None:
        buffer = b""
        while not self._stop.is_set():
            ready, _, _ = select.select([self._master_fd], [], [], 0.05)
            if not ready:
                continue
            try:
                buffer += os.read(self._master_fd, 4096)
            except OSError:
                continue  # The other end is closed for a moment; keep waiting.
            buffer = self._handle(buffer)

    def _handle(self, buffer: bytes) -> bytes:
        """Answer every complete request in `buffer`; return what is left."""
        while buffer:
            if buffer[0] == frames.START_SHORT:
                if len(buffer) < 5:
                    return buffer
                request, buffer = buffer[:5], buffer[5:]
                self._reply(request, self._answer_short(request[1], request[2]))
            elif buffer[0] == frames.START_LONG:
                if len(buffer) < 4:
                    return buffer
                size = buffer[1] + 6
                if len(buffer) < size:
                    return buffer
                request, buffer = buffer[:size], buffer[size:]
                self._reply(request, self._answer_long(request))
            else:
                buffer = buffer[1:]  # Noise on the line: skip a byte.
        return buffer

    def _reply(self, request: bytes, answer: bytes | None) -> None:
        out = (request if self.echo else b"") + (answer or b"")
        if out:
            os.write(self._master_fd, out)

    def _answer_short(self, c: int, address: int) -> bytes | None:
        if address == frames.ADDRESS_NETWORK_LAYER and self._selected is not None:
            address = self._selected
        meter = self._meters.get(address)
        if meter is None or meter.behaviour == "dead":
            return None
        if c == frames.C_SND_NKE:
            self._last.pop(address, None)
            return bytes((frames.ACK,))
        if c & ~frames.FCB & 0xFF != frames.C_REQ_UD2:
            return None
        fcb = bool(c & frames.FCB)
        with self._lock:
            meter.fcb_seen.append(fcb)
            last = self._last.get(address)
            if last is not None and last[0] == fcb:
                return last[1]  # The master repeated: send the same reply again.
            if meter.behaviour == "garbage_sometimes" and (
                self._random.random() < meter.garbage_probability
            ):
                return self._random.randbytes(self._random.randint(1, 40))
            reply = self._render(address)
            self._last[address] = (fcb, reply)
            meter.reads += 1
            meter.value += meter.advance_per_read
        return reply

    def _render(self, address: int) -> bytes:
        register = self._registers[address]
        frame = bytearray(self._templates[address])
        frame[5] = address
        end = register.offset + register.size
        frame[register.offset : end] = register.encode(self._meters[address].value)
        return frames.with_checksum(bytes(frame))

    def _answer_long(self, request: bytes) -> bytes | None:
        try:
            parsed = frames.parse_long(request)
        except Exception:
            return None
        if parsed.ci != frames.CI_SELECT or parsed.a != frames.ADDRESS_NETWORK_LAYER:
            return None
        matches = [a for a in self._meters if self._matches(a, parsed.data)]
        # LIMITATION: when a wildcard selects several meters, a real bus shows
        # a collision; the simulator selects the first and answers cleanly.
        self._selected = matches[0] if matches else None
        if self._selected is None or self._meters[self._selected].behaviour == "dead":
            return None
        return bytes((frames.ACK,))

    def _matches(self, address: int, selection: bytes) -> bool:
        template = self._templates[address]
        header = template[7:15]  # id (4), manufacturer (2), version, medium
        wanted = selection[:4][::-1].hex().upper()
        have = header[:4][::-1].hex().upper()
        if any(w not in ("F", h) for w, h in zip(wanted, have, strict=True)):
            return False
        for want, got in zip(selection[4:8], header[4:8], strict=False):
            if want != 0xFF and want != got:
                # The manufacturer wildcard is FF FF; any other byte must match.
                return False
        return True


def main() -> None:
    """Serve an electricity meter at 1 and a water meter at 2 until Ctrl-C."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--echo", action="store_true", help="echo every request")
    args = parser.parse_args()
    meters = [
        SimMeter(1, corpus_frame("electricity"), Decimal(5000), Decimal(10)),
        SimMeter(2, corpus_frame("water"), Decimal("1234.567"), Decimal("0.001")),
    ]
    # Ctrl-C may arrive the moment the path is printed, so the whole block
    # sits inside the suppression, not just the wait.
    simulator = MbusMeterSimulator(meters, echo=args.echo)
    with contextlib.suppress(KeyboardInterrupt), simulator:
        print(simulator.port, flush=True)
        threading.Event().wait()


if __name__ == "__main__":
    main()
