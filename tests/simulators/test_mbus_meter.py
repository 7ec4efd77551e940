"""The M-Bus meter simulator, spoken to byte by byte over its pseudo-terminal."""

from __future__ import annotations

import os
import select
import tty
from collections.abc import Iterator
from decimal import Decimal

import pytest

from drivers.mbus import frames
from drivers.mbus.decode import decode_frame
from simulators.mbus_meter import MbusMeterSimulator, SimMeter, corpus_frame


@pytest.fixture
def bus() -> Iterator[tuple[MbusMeterSimulator, int]]:
    meters = [
        SimMeter(1, corpus_frame("electricity"), Decimal(5000), Decimal(1)),
        SimMeter(2, corpus_frame("water"), Decimal("0.5"), Decimal("0.25")),
        SimMeter(9, corpus_frame("water"), Decimal(1), behaviour="dead"),
    ]
    with MbusMeterSimulator(meters) as simulator:
        fd = os.open(simulator.port, os.O_RDWR | os.O_NOCTTY)
        tty.setraw(fd)
        try:
            yield simulator, fd
        finally:
            os.close(fd)


def _ask(fd: int, request: bytes, timeout: float = 0.3) -> bytes:
    os.write(fd, request)
    reply = b""
    while select.select([fd], [], [], timeout)[0]:
        reply += os.read(fd, 4096)
        timeout = 0.05
    return reply


def test_snd_nke_is_acknowledged(bus: tuple[MbusMeterSimulator, int]) -> None:
    _, fd = bus
    assert _ask(fd, frames.build_snd_nke(1)) == b"\xe5"


def test_dead_meter_is_silent(bus: tuple[MbusMeterSimulator, int]) -> None:
    _, fd = bus
    assert _ask(fd, frames.build_snd_nke(9), timeout=0.1) == b""
    assert _ask(fd, frames.build_snd_nke(3), timeout=0.1) == b""


def test_reply_carries_the_current_value_and_address(
    bus: tuple[MbusMeterSimulator, int],
) -> None:
    simulator, fd = bus
    reply = _ask(fd, frames.build_req_ud2(2, fcb=True))
    telegram = decode_frame(reply)  # checks length and checksum too
    assert telegram.address == 2
    assert telegram.billing is not None
    assert (telegram.billing.value, telegram.billing.unit) == (Decimal("0.5"), "m3")
    assert telegram.billing.coding == "8-digit BCD"
    assert simulator.value(2) == Decimal("0.75")


def test_binary_register_is_rewritten(bus: tuple[MbusMeterSimulator, int]) -> None:
    simulator, fd = bus
    simulator.set_value(1, Decimal(987654))
    telegram = decode_frame(_ask(fd, frames.build_req_ud2(1, fcb=True)))
    assert telegram.billing is not None
    assert telegram.billing.value == Decimal(987654)
    assert "integer" in telegram.billing.coding


def test_repeated_fcb_gets_the_same_reply(bus: tuple[MbusMeterSimulator, int]) -> None:
    simulator, fd = bus
    first = _ask(fd, frames.build_req_ud2(2, fcb=True))
    again = _ask(fd, frames.build_req_ud2(2, fcb=True))
    toggled = _ask(fd, frames.build_req_ud2(2, fcb=False))
    assert first == again
    assert toggled != first
    assert simulator.meter(2).reads == 2


def test_secondary_selection(bus: tuple[MbusMeterSimulator, int]) -> None:
    _, fd = bus
    assert _ask(fd, frames.build_select_secondary("1767FFFF")) == b"\xe5"
    reply = _ask(fd, frames.build_req_ud2(frames.ADDRESS_NETWORK_LAYER, fcb=True))
    assert decode_frame(reply).id == "17677731"
    assert _ask(fd, frames.build_select_secondary("99999999"), timeout=0.1) == b""


def test_values_too_fine_for_the_register_are_refused(
    bus: tuple[MbusMeterSimulator, int],
) -> None:
    simulator, _ = bus
    with pytest.raises(ValueError, match="finer"):
        simulator.set_value(2, Decimal("0.0001"))
    with pytest.raises(ValueError, match="BCD digits"):
        simulator.set_value(2, Decimal("123456.789"))


def test_echo_option_repeats_the_request_first() -> None:
    meters = [SimMeter(4, corpus_frame("water"), Decimal(1))]
    with MbusMeterSimulator(meters, echo=True) as simulator:
        fd = os.open(simulator.port, os.O_RDWR | os.O_NOCTTY)
        tty.setraw(fd)
        try:
            request = frames.build_snd_nke(4)
            assert _ask(fd, request) == request + b"\xe5"
        finally:
            os.close(fd)


def test_shipped_frames_exist() -> None:
    with pytest.raises(KeyError, match="electricity"):
        corpus_frame("steam")


def test_module_main_prints_the_port_and_stops_on_ctrl_c() -> None:
    import signal
    import subprocess
    import sys

    process = subprocess.Popen(
        [sys.executable, "-m", "simulators.mbus_meter"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        port = process.stdout.readline().strip()
        assert port.startswith("/dev/")
        assert os.path.exists(port)
    finally:
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=5) == 0
