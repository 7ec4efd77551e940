"""The wireless M-Bus meter simulator: fresh telegrams that decode, encrypt
with the configured key, advance, repeat, and its command line."""

from __future__ import annotations

import asyncio
import sys
from decimal import Decimal
from pathlib import Path

import pytest

from drivers.wmbus import MeterKey, WrongKeyError, decode_frame
from drivers.wmbus.receivers import Im871aReceiver
from simulators.wmbus_meter import (
    MODE5_TEMPLATE,
    MODE5_TEMPLATE_KEY,
    PLAIN_TEMPLATE,
    LineFeed,
    SimulatedMeter,
)

KEY = bytes.fromhex("11223344556677889900AABBCCDDEEFF")
ROOT = Path(__file__).resolve().parents[2]


def test_mode5_meter_encrypts_with_the_configured_key() -> None:
    meter = SimulatedMeter(MODE5_TEMPLATE, MODE5_TEMPLATE_KEY, KEY)
    frame = meter.next_frame()
    telegram = decode_frame(frame, MeterKey(KEY))
    assert telegram.security_mode == 5
    assert telegram.encrypted
    assert telegram.id == "20096221"
    assert telegram.billing is not None
    assert telegram.billing.value == Decimal("0.107")
    with pytest.raises(WrongKeyError):
        decode_frame(frame, MeterKey.from_hex(MODE5_TEMPLATE_KEY))


def test_access_number_and_value_advance_and_wrap() -> None:
    meter = SimulatedMeter(PLAIN_TEMPLATE, step=Decimal("0.5"))
    numbers = []
    for _ in range(200):
        telegram = decode_frame(meter.next_frame())
        numbers.append(telegram.access_number)
    assert numbers[0] == 0x56
    assert 255 in numbers and 0 in numbers
    assert telegram.billing is not None
    assert telegram.billing.value == Decimal("123.529") + 200 * Decimal("0.5")


def test_telegrams_are_sometimes_repeated() -> None:
    lines: list[str] = []
    feed = LineFeed(
        [SimulatedMeter(PLAIN_TEMPLATE)],
        write=lines.append,
        repeat_probability=0.5,
        seed=11,
    )
    for _ in range(40):
        for frame in feed._telegrams():
            feed._send(frame)
    assert 40 < len(lines) < 80
    assert len(set(lines)) == 40


def test_template_without_short_header_is_refused() -> None:
    long_header = "51440186010905001837721956880101064004DA000020026CA9220E01"
    with pytest.raises(ValueError, match="short transport header"):
        SimulatedMeter(long_header)


async def test_pty_entry_point_serves_a_stick() -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "simulators.wmbus_meter",
        "--pty",
        "--interval",
        "0.05",
        "--key",
        KEY.hex(),
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert process.stdout is not None
        line = (await process.stdout.readline()).decode()
        assert line.startswith("iM871A on /dev/pts/")
        receiver = Im871aReceiver(line.split()[-1], silence_timeout_s=5)
        async with receiver:
            raw = await receiver.receive()
        keys = {"20096221": MeterKey(KEY)}
        assert decode_frame(raw.frame, keys).billing is not None
    finally:
        process.terminate()
        await process.wait()
