"""Receivers end to end with the simulator: a virtual iM871A on a
pseudo-terminal, hex lines through a subprocess pipe, a FIFO, a file and
TCP; the stick framings byte by byte; silence detection."""

from __future__ import annotations

import asyncio
import os
import sys
import tty
from decimal import Decimal
from pathlib import Path

import pytest

from drivers.wmbus import StreamGuard, Telegram, WmbusPipeline, decode_frame
from drivers.wmbus.receivers import (
    AmberReceiver,
    Im871aReceiver,
    LineReceiver,
    Receiver,
    ReceiverSilent,
    parse_line,
)
from drivers.wmbus.receivers.amber import (
    CMD_DATA_IND,
    AmberDecoder,
    AmberMode,
    encode_command,
    set_mode_request,
)
from drivers.wmbus.receivers.im871a import (
    ENDPOINT_RADIOLINK,
    RADIOLINK_WMBUSMSG_IND,
    HciDecoder,
    LinkMode,
    encode_hci,
    hci_crc,
)
from gateway.model import LinkError
from simulators.wmbus_meter import (
    MODE5_TEMPLATE_KEY,
    Im871aStick,
    LineFeed,
    demo_meters,
)

KEY = bytes.fromhex("F0E1D2C3B4A5968778695A4B3C2D1E0F")
ROOT = Path(__file__).resolve().parents[3]


async def collect(
    receiver: Receiver, pipeline: WmbusPipeline, per_meter: int
) -> dict[str, list[Telegram]]:
    """Read until each of the two demo meters gave `per_meter` telegrams."""
    seen: dict[str, list[Telegram]] = {}
    for _ in range(200):
        raw = await receiver.receive()
        telegram = pipeline.process(raw.frame, raw.stamp, raw.rssi)
        if telegram is not None:
            seen.setdefault(telegram.id, []).append(telegram)
        if len(seen) == 2 and all(len(v) >= per_meter for v in seen.values()):
            return seen
    raise AssertionError(f"too few telegrams: { {k: len(v) for k, v in seen.items()} }")


def check_series(seen: dict[str, list[Telegram]]) -> None:
    for telegrams in seen.values():
        values = [t.billing.value for t in telegrams if t.billing]
        assert values == sorted(values)
        assert len(set(values)) == len(values)  # duplicates dropped
        assert all(t.stamp is not None for t in telegrams)
    assert any(t.encrypted for series in seen.values() for t in series)


async def test_im871a_over_pty_end_to_end() -> None:
    meters = demo_meters(KEY)
    stick = Im871aStick(meters, interval_s=0.02, repeat_probability=0.5, seed=7)
    stick.start()
    try:
        pipeline = WmbusPipeline({meters[1].meter_id: KEY}, StreamGuard())
        receiver = Im871aReceiver(stick.port, LinkMode.C1A, silence_timeout_s=3)
        async with receiver:
            assert stick.configured_modes == [LinkMode.C1A]
            seen = await collect(receiver, pipeline, 4)
            raw = await receiver.receive()
            assert raw.rssi is not None and abs(raw.rssi - -70) <= 1
    finally:
        stick.stop()
    check_series(seen)


async def test_receiver_signals_silence() -> None:
    stick = Im871aStick([], interval_s=3600)  # answers config, sends nothing
    stick.start()
    try:
        receiver = Im871aReceiver(stick.port, silence_timeout_s=0.2)
        async with receiver:
            with pytest.raises(ReceiverSilent, match=r"no telegram for 0\.2 s"):
                await receiver.receive()
    finally:
        stick.stop()


async def test_im871a_without_answer_is_a_link_error() -> None:
    master, slave = os.openpty()
    try:
        receiver = Im871aReceiver(os.ttyname(slave), config_timeout_s=0.2)
        with pytest.raises(LinkError, match="did not confirm link mode"):
            await receiver.open()
        await receiver.close()
    finally:
        os.close(master)
        os.close(slave)


async def test_line_source_from_a_subprocess_pipe() -> None:
    command = [
        sys.executable,
        "-m",
        "simulators.wmbus_meter",
        "--lines",
        "-",
        "--rtl",
        "--interval",
        "0.02",
        "--key",
        KEY.hex(),
    ]
    meters = demo_meters(KEY)
    pipeline = WmbusPipeline({meters[1].meter_id: KEY}, StreamGuard())
    receiver = LineReceiver(command=command, silence_timeout_s=10)
    old_cwd = os.getcwd()
    os.chdir(ROOT)
    try:
        async with receiver:
            seen = await collect(receiver, pipeline, 3)
    finally:
        os.chdir(old_cwd)
    check_series(seen)


async def test_line_source_from_a_fifo(tmp_path: Path) -> None:
    fifo = tmp_path / "telegrams"
    os.mkfifo(fifo)
    meters = demo_meters(KEY)
    receiver = LineReceiver(path=str(fifo), silence_timeout_s=3)
    await receiver.open()
    # The receiver holds the FIFO open already, so this open cannot block.
    with open(fifo, "w", buffering=1) as out:  # noqa: ASYNC230
        feed = LineFeed(meters, write=out.write, interval_s=0.02, seed=3)
        feed.start()
        try:
            pipeline = WmbusPipeline({meters[1].meter_id: KEY}, StreamGuard())
            seen = await collect(receiver, pipeline, 3)
        finally:
            feed.stop()
            await receiver.close()
    check_series(seen)


async def test_line_source_over_tcp() -> None:
    meters = demo_meters(KEY)
    feed = LineFeed(meters, tcp_port=0, interval_s=0.02, seed=5)
    feed.start()
    try:
        assert feed.tcp_port is not None
        receiver = LineReceiver(tcp=("127.0.0.1", feed.tcp_port), silence_timeout_s=3)
        pipeline = WmbusPipeline({meters[1].meter_id: KEY}, StreamGuard())
        async with receiver:
            seen = await collect(receiver, pipeline, 3)
    finally:
        feed.stop()
    check_series(seen)


async def test_line_source_from_a_file_ends(tmp_path: Path) -> None:
    meter = demo_meters(KEY)[0]
    path = tmp_path / "capture.txt"
    path.write_text(
        "# capture\n"
        + meter.next_frame().hex()
        + "\nnot hex\n"
        + meter.next_frame().hex()
        + "\n"
    )
    receiver = LineReceiver(path=str(path), silence_timeout_s=1)
    async with receiver:
        first = await receiver.receive()
        second = await receiver.receive()
        with pytest.raises(LinkError, match="source ended"):
            await receiver.receive()
    assert first.frame != second.frame
    assert receiver.bad_lines == 1


def test_parse_line_forms() -> None:
    frame = bytes.fromhex("1844AE4C4455223368077A55000000041389E20100023B0000")
    assert parse_line(frame.hex()) == frame
    assert parse_line("0x" + frame.hex().upper()) == frame
    assert parse_line(" ".join(f"{b:02x}" for b in frame)) == frame
    rtl = f"T1;1;1;2019-04-03 19:00:42.000;97;148;33225544;0x{frame.hex()}"
    assert parse_line(rtl) == frame
    assert parse_line(rtl.replace("T1;1;1", "T1;0;1")) is None  # CRC failed
    assert parse_line("garbage") is None
    assert parse_line("") is None


def test_hci_framing_and_resync() -> None:
    assert hci_crc(b"123456789") == 0x906E  # CRC-16/X-25 check value
    payload = bytes.fromhex("44AE4C4455223368077A55000000041389E20100023B0000")
    message = encode_hci(
        ENDPOINT_RADIOLINK,
        RADIOLINK_WMBUSMSG_IND,
        payload,
        rssi=120,
        timestamp=0x01020304,
    )
    decoder = HciDecoder()
    stream = b"\x00\xa5\x99" + message + message[:5]
    got = decoder.feed(stream)
    got += decoder.feed(message[5:])
    assert [m.payload for m in got] == [payload, payload]
    assert got[0].rssi == 120 and got[0].timestamp == 0x01020304
    corrupted = bytearray(message)
    corrupted[10] ^= 1
    assert decoder.feed(bytes(corrupted)) == []


def test_amber_command_and_transparent_modes() -> None:
    frame = bytes.fromhex("1844AE4C4455223368077A55000000041389E20100023B0000")
    assert set_mode_request(AmberMode.C1) == bytes([0xFF, 0x04, 0x01, 0x0E, 0xF4])
    indication = encode_command(CMD_DATA_IND, frame[1:] + bytes([0xC8]))
    decoder = AmberDecoder()
    out = decoder.feed(b"\x12" + indication[:7]) + decoder.feed(indication[7:])
    assert out == [(frame, (0xC8 - 256) // 2 - 74)]
    bad = bytearray(indication)
    bad[-1] ^= 0xFF
    assert decoder.feed(bytes(bad)) == []
    transparent = AmberDecoder(transparent=True, rssi_appended=False)
    assert transparent.feed(frame + frame[:4]) == [(frame, None)]
    assert transparent.feed(frame[4:]) == [(frame, None)]


def test_demo_meter_values_advance() -> None:
    plain, mode5 = demo_meters(KEY)
    assert mode5.mode == 5
    assert plain.value == Decimal("123.529")
    plain.next_frame()
    assert plain.value == Decimal("123.530")
    assert MODE5_TEMPLATE_KEY


async def test_amber_receiver_over_pty_sets_mode_and_receives() -> None:
    master, slave = os.openpty()
    tty.setraw(slave)
    meter = demo_meters(KEY)[0]
    try:
        receiver = AmberReceiver(os.ttyname(slave), AmberMode.C1, silence_timeout_s=2)
        async with receiver:
            request = await asyncio.to_thread(os.read, master, 64)
            assert request == set_mode_request(AmberMode.C1)
            frames = [meter.next_frame() for _ in range(3)]
            for frame in frames:
                os.write(master, encode_command(CMD_DATA_IND, frame[1:] + b"\x10"))
            got = [await receiver.receive() for _ in frames]
        assert [g.frame for g in got] == frames
        assert got[0].rssi == 0x10 // 2 - 74
        assert decode_frame(got[-1].frame).billing is not None
    finally:
        os.close(master)
        os.close(slave)
