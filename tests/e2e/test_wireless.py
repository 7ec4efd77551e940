"""Wireless meters and LoRa units through the real daemon: duplicates billed
once, an iM871A stick on a pty and a line source on a pipe into the ledger, a
LoRa unit cut off and reconnected over the simulated radio, and forged and
replayed frames refused, also after a restart."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
import uuid
from collections.abc import AsyncIterator, Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from drivers.lora.simulated import SimulatedRadio, named_ether
from gateway.config import load_config
from gateway.daemon import Daemon
from simulators.lora_unit import LoraDispensingUnit
from simulators.wmbus_meter import (
    MODE5_TEMPLATE,
    MODE5_TEMPLATE_KEY,
    PLAIN_TEMPLATE,
    Im871aStick,
    SimulatedMeter,
)
from tests.e2e.building import topup, until

WATER_PRICE = Decimal("4.85")
METER_KEY = "00112233445566778899aabbccddeeff"
UNIT_KEY = "8899aabbccddeeff0011223344556677"
PLAIN_ID = "33225544"  # the Sensus template's id
MODE5_ID = "20096221"  # the Diehl template's id
UNIT_ADDRESS = 77


def _with_id(template_hex: str, new_id: str) -> str:
    """Return a clear template with another meter id in its link header."""
    frame = bytearray(bytes.fromhex(template_hex))
    frame[4:8] = bytes.fromhex(new_id)[::-1]
    return frame.hex()


def _yaml(state: Path, buses: str, meters: str, units: str = "") -> str:
    return f"""
site: {{id: radio-house, currency: EUR, timezone: Europe/Berlin}}
state_dir: {state}
buses:
{buses}
meters:
{meters}
{"units:" + chr(10) + units if units else "units: []"}
accounts:
  - {{id: flat1, name: Flat 1, credit_line: "1.00", low_balance: "2.00"}}
  - {{id: flat2, name: Flat 2, credit_line: "1.00", low_balance: "2.00"}}
tariffs:
  - id: standard
    prices:
      water: {{price: "{WATER_PRICE}", per: m3}}
      warm_water: {{price: "{WATER_PRICE}", per: m3}}
"""


class Pipe:
    """A named pipe the test writes hex lines into, as rtl_wmbus would."""

    def __init__(self, path: Path) -> None:
        os.mkfifo(path)
        self.path = path
        # Read-write so opening never blocks, whoever comes first.
        self._fd = os.open(path, os.O_RDWR | os.O_NONBLOCK)

    def send(self, *frames: bytes) -> None:
        for frame in frames:
            os.write(self._fd, frame.hex().encode() + b"\n")

    def close(self) -> None:
        os.close(self._fd)


@pytest.fixture
def pipe(tmp_path: Path) -> Iterator[Pipe]:
    p = Pipe(tmp_path / "wmbus.fifo")
    yield p
    p.close()


@contextlib.asynccontextmanager
async def running(config_path: Path) -> AsyncIterator[Daemon]:
    daemon = Daemon(load_config(config_path))
    stop = asyncio.Event()
    task = asyncio.create_task(daemon.run_until_stopped(stop))
    await until(lambda: bool(daemon.supervisor.health), 2)
    try:
        yield daemon
    finally:
        stop.set()
        await task


def _db(tmp_path: Path) -> sqlite3.Connection:
    return sqlite3.connect(tmp_path / "state" / "gateway.sqlite3")


def _balance(db: sqlite3.Connection, account: str) -> int:
    row = db.execute(
        "SELECT balance_minor FROM balances WHERE account_id = ?", (account,)
    ).fetchone()
    return int(row[0])


def _readings(db: sqlite3.Connection, meter: str) -> int:
    return int(
        db.execute(
            "SELECT count(*) FROM readings WHERE meter_id = ?", (meter,)
        ).fetchone()[0]
    )


def _open_alarms(db: sqlite3.Connection, kind: str) -> list[str]:
    rows = db.execute(
        "SELECT subject FROM alarms WHERE kind = ? AND cleared_at IS NULL", (kind,)
    ).fetchall()
    return [r[0] for r in rows]


LINES_BUS = "  - {{id: air, kind: wmbus, receiver: lines, path: {path}}}"
PLAIN_METER = (
    f"  - {{id: flat1-water, bus: air, secondary_id: '{PLAIN_ID}', medium: water,"
    " account: flat1, max_rate_per_hour: 100000}"
)
MODE5_METER = (
    f"  - {{id: flat2-water, bus: air, secondary_id: '{MODE5_ID}', medium:"
    f" warm_water, account: flat2, key: '{METER_KEY}', max_rate_per_hour: 100000}}"
)


async def test_a_meter_repeating_itself_is_billed_once(
    tmp_path: Path, pipe: Pipe
) -> None:
    path = tmp_path / "site.yaml"
    path.write_text(
        _yaml(tmp_path / "state", LINES_BUS.format(path=pipe.path), PLAIN_METER)
    )
    meter = SimulatedMeter(PLAIN_TEMPLATE, step=Decimal("0.100"))
    async with running(path):
        db = _db(tmp_path)
        topup(tmp_path / "state" / "gateway.sqlite3", "flat1", "50.00", "open-1")
        frames = [meter.next_frame() for _ in range(5)]
        for frame in frames:
            pipe.send(frame, frame, frame)  # each telegram heard three times
        await until(lambda: _readings(db, "flat1-water") == 5, 5)
        await asyncio.sleep(0.3)  # room for any duplicate to be billed wrongly

    assert _readings(db, "flat1-water") == 5
    # Four steps of 0.1 m3 after the first reading: 0.4 m3 at 4.85 = 1.94 EUR.
    assert _balance(db, "flat1") == 5000 - 194


async def test_im871a_on_a_pty_and_lines_on_a_pipe_reach_the_ledger(
    tmp_path: Path, pipe: Pipe
) -> None:
    key = bytes.fromhex(METER_KEY)
    stick = Im871aStick(
        [
            SimulatedMeter(MODE5_TEMPLATE, MODE5_TEMPLATE_KEY, key, Decimal("0.05")),
        ],
        interval_s=0.1,
        repeat_probability=0.5,
        seed=7,
    )
    buses = "\n".join(
        [
            f"  - {{id: stick, kind: wmbus, receiver: im871a, port: {stick.port},"
            " mode: C1}",
            LINES_BUS.format(path=pipe.path),
        ]
    )
    meters = "\n".join([PLAIN_METER, MODE5_METER.replace("bus: air", "bus: stick")])
    path = tmp_path / "site.yaml"
    path.write_text(_yaml(tmp_path / "state", buses, meters))
    line_meter = SimulatedMeter(PLAIN_TEMPLATE, step=Decimal("0.05"))
    stick.start()
    try:
        async with running(path):
            db = _db(tmp_path)
            for _ in range(4):
                pipe.send(line_meter.next_frame())
            await until(
                lambda: (
                    _readings(db, "flat2-water") >= 4
                    and _readings(db, "flat1-water") == 4
                ),
                5,
            )
    finally:
        stick.stop()

    # The stick was put into C1 mode (iM871A C1A = 6) before it was heard.
    assert stick.configured_modes == [6]
    # Both meters are billed: three steps of 0.05 m3 at least on each.
    # Three steps of 0.05 m3 at 4.85 EUR: 0.7275, rounded once.
    assert _balance(db, "flat1") == -73
    assert _balance(db, "flat2") <= -73
    verdicts = {
        r[0] for r in db.execute("SELECT DISTINCT source FROM readings").fetchall()
    }
    assert verdicts == {"wmbus"}


async def test_forged_and_replayed_telegrams_are_refused_after_a_restart(
    tmp_path: Path, pipe: Pipe
) -> None:
    path = tmp_path / "site.yaml"
    path.write_text(
        _yaml(tmp_path / "state", LINES_BUS.format(path=pipe.path), MODE5_METER)
    )
    meter = SimulatedMeter(
        MODE5_TEMPLATE, MODE5_TEMPLATE_KEY, bytes.fromhex(METER_KEY), Decimal("0.1")
    )
    recorded = [meter.next_frame() for _ in range(3)]
    async with running(path):
        db = _db(tmp_path)
        pipe.send(*recorded)
        await until(lambda: _readings(db, "flat2-water") == 3, 5)

    async with running(path):
        # An eavesdropper replays the first telegram, and forges the last one
        # by changing a byte of its ciphertext.
        forged = bytearray(recorded[-1])
        forged[20] ^= 0x01
        pipe.send(recorded[0], bytes(forged))
        await until(lambda: bool(_open_alarms(db, "wmbus_wrong_key")), 5)
        assert _open_alarms(db, "wmbus_replay") == ["flat2-water"]
        pipe.send(meter.next_frame())  # the genuine meter carries on
        await until(lambda: _readings(db, "flat2-water") == 4, 5)

    assert _open_alarms(db, "wmbus_wrong_key") == ["flat2-water"]
    # Three genuine steps of 0.1 m3 at 4.85 EUR: 1.455, rounded once.
    assert _balance(db, "flat2") == -146


# LoRa -----------------------------------------------------------------------


def _lora_site(tmp_path: Path, pipe: Pipe, ether: str) -> Path:
    buses = "\n".join(
        [
            LINES_BUS.format(path=pipe.path),
            f"  - {{id: radio, kind: lora, radio: simulated, ether: {ether},"
            " spreading_factor: 7, poll_interval_s: 0.3, retries: 2}",
        ]
    )
    units = (
        f"  - {{id: flat1-valve, bus: radio, address: {UNIT_ADDRESS}, kind: valve,"
        f" meters: [flat1-water], key: '{UNIT_KEY}'}}"
    )
    path = tmp_path / "site.yaml"
    path.write_text(_yaml(tmp_path / "state", buses, PLAIN_METER, units))
    return path


@contextlib.asynccontextmanager
async def lora_unit(ether: str) -> AsyncIterator[tuple[LoraDispensingUnit, Sniffer]]:
    air = named_ether(ether)
    unit = LoraDispensingUnit(
        air.radio(f"unit-{UNIT_ADDRESS}"),
        UNIT_ADDRESS,
        bytes.fromhex(UNIT_KEY),
        status_interval_s=0.5,
        tick_s=0.1,
    )
    sniffer = Sniffer(air.radio("sniffer"))
    task = asyncio.create_task(unit.run())
    try:
        yield unit, sniffer
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await unit.radio.close()
        await sniffer.radio.close()


class Sniffer:
    """A radio on the ether that keeps every frame it hears, for replays."""

    def __init__(self, radio: SimulatedRadio) -> None:
        self.radio = radio

    def heard(self) -> list[bytes]:
        frames = []
        while not self.radio._inbox.empty():
            frames.append(self.radio._inbox.get_nowait().frame)
        return frames


def _reported_on(db: sqlite3.Connection) -> int | None:
    row = db.execute(
        "SELECT reported_on FROM unit_state WHERE unit_id = 'flat1-valve'"
    ).fetchone()
    return None if row is None else int(row[0])


async def test_lora_unit_is_cut_off_and_reconnected_and_refuses_replays(
    tmp_path: Path, pipe: Pipe
) -> None:
    ether = f"e2e-{uuid.uuid4().hex}"
    path = _lora_site(tmp_path, pipe, ether)
    db_path = tmp_path / "state" / "gateway.sqlite3"
    meter = SimulatedMeter(PLAIN_TEMPLATE, step=Decimal("0.1"))
    async with lora_unit(ether) as (unit, sniffer), running(path):
        db = _db(tmp_path)
        topup(db_path, "flat1", "3.00", "open-1")
        pipe.send(meter.next_frame())
        await until(lambda: unit.supply_on, 5)
        assert unit.allowance is not None and unit.allowance > 0
        await asyncio.sleep(0.7)  # a status report or two while it is on
        on_frames = sniffer.heard()

        # 1 m3 at 4.85 EUR takes flat 1 below its 1.00 credit line.
        meter.step = Decimal("1.0")
        pipe.send(meter.next_frame())
        await until(lambda: not unit.supply_on, 5)
        await until(lambda: _reported_on(db) == 0, 3)

        topup(db_path, "flat1", "20.00", "receipt-2")
        await until(lambda: unit.supply_on, 5)
        assert unit.balance_minor == 300 - 485 + 2000

        meter.step = Decimal("5.0")
        pipe.send(meter.next_frame())
        await until(lambda: not unit.supply_on, 5)
        await until(lambda: _reported_on(db) == 0, 3)

    # A restarted gateway still refuses the unit's old "supply on" frames and
    # a forged one, with the unit gone quiet: it stays reported off.
    async with running(path):
        await asyncio.sleep(0.3)
        air = named_ether(ether)
        attacker = air.radio("attacker")
        mine = UNIT_ADDRESS.to_bytes(4, "big")
        # Unit-to-gateway frames of this unit: type 1 (status) or 3 (ack).
        replay = [f for f in on_frames if f[1:5] == mine and f[0] & 0x0F in (1, 3)]
        assert replay
        forged = bytearray(replay[-1])
        forged[-1] ^= 0xFF
        for frame in [*replay, bytes(forged)]:
            await attacker.send(frame, 868_100_000)
        await asyncio.sleep(0.3)
        assert _reported_on(db) == 0
        await attacker.close()


async def test_silent_meter_and_receiver_raise_alarms_that_clear_when_heard(
    tmp_path: Path, pipe: Pipe
) -> None:
    bus = (
        f"  - {{id: air, kind: wmbus, receiver: lines, path: {pipe.path},"
        " receiver_timeout_s: 1.0, meter_interval_s: 0.2, missed_intervals: 3}"
    )
    path = tmp_path / "site.yaml"
    path.write_text(_yaml(tmp_path / "state", bus, PLAIN_METER))
    meter = SimulatedMeter(PLAIN_TEMPLATE, step=Decimal("0.001"))
    async with running(path):
        db = _db(tmp_path)
        await until(lambda: _open_alarms(db, "meter_silent") == ["flat1-water"], 3)
        await until(lambda: _open_alarms(db, "receiver_silent") == ["air"], 3)

        # The receiver was closed and reopened meanwhile; it hears the meter.
        pipe.send(meter.next_frame())
        await until(lambda: _readings(db, "flat1-water") == 1, 5)
        await until(lambda: not _open_alarms(db, "meter_silent"), 3)
        assert not _open_alarms(db, "receiver_silent")
