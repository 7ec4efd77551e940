"""Forged and replayed frames are refused with distinct reasons, also after a
restart on the same SQLite file; keys appear in no message or log line."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from drivers.lora.counters import CounterStore
from drivers.lora.frame import MIC_LEN, Direction, FrameType, Header, UnitKey, seal
from drivers.lora.payloads import GatewayAckBody, StatusBody
from drivers.lora.security import (
    ForgedFrameError,
    FrameGuard,
    ReplayedFrameError,
    UnknownUnitError,
    WrongDirectionError,
)
from gateway import store
from gateway.model import SecurityError

KEY = bytes.fromhex("000102030405060708090a0b0c0d0e0f")
UNIT = 0x00C0FFEE


def gateway_guard(path: Path) -> FrameGuard:
    return FrameGuard(
        {UNIT: UnitKey(KEY)}, CounterStore(store.connect(path)), Direction.UP
    )


def unit_guard() -> FrameGuard:
    counters = CounterStore(sqlite3.connect(":memory:"))
    return FrameGuard({UNIT: UnitKey(KEY)}, counters, Direction.DOWN)


def test_authentic_frames_pass_and_carry_their_payload(tmp_path: Path) -> None:
    gateway, unit = gateway_guard(tmp_path / "gw.sqlite3"), unit_guard()
    for consumption in (10, 20, 30):
        _, raw = unit.seal(UNIT, StatusBody(True, consumption))
        verified = gateway.verify(raw)
        assert verified.body == StatusBody(True, consumption)
    assert verified.header.counter == 3


def test_forged_frame_is_refused_and_moves_no_counter(tmp_path: Path) -> None:
    gateway = gateway_guard(tmp_path / "gw.sqlite3")
    forger = UnitKey(bytes(16))
    raw = seal(
        forger, Header(FrameType.STATUS, UNIT, 1000), StatusBody(True, 1).encode()
    )
    with pytest.raises(ForgedFrameError) as refused:
        gateway.verify(raw)
    assert isinstance(refused.value, SecurityError)
    assert refused.value.reason == "bad_mic"

    # The forged counter 1000 was not recorded: a genuine frame 1 still passes.
    _, genuine = unit_guard().seal(UNIT, StatusBody(True, 2))
    assert gateway.verify(genuine).header.counter == 1


def test_bit_flipped_frame_is_refused_as_forged(tmp_path: Path) -> None:
    gateway = gateway_guard(tmp_path / "gw.sqlite3")
    _, raw = unit_guard().seal(UNIT, StatusBody(True, 2))
    tampered = bytearray(raw)
    tampered[-MIC_LEN - 1] ^= 0x80
    with pytest.raises(ForgedFrameError):
        gateway.verify(bytes(tampered))


def test_replayed_frame_is_refused_also_after_restart(tmp_path: Path) -> None:
    path = tmp_path / "gw.sqlite3"
    unit = unit_guard()
    _, first = unit.seal(UNIT, StatusBody(True, 1))
    _, second = unit.seal(UNIT, StatusBody(True, 2))

    gateway = gateway_guard(path)
    gateway.verify(second)
    with pytest.raises(ReplayedFrameError) as same:
        gateway.verify(second)
    assert same.value.reason == "replay"
    with pytest.raises(ReplayedFrameError, match="not above the last accepted 2"):
        gateway.verify(first)

    # A restart: a new connection and CounterStore on the same file.
    restarted = gateway_guard(path)
    with pytest.raises(ReplayedFrameError):
        restarted.verify(second)
    _, third = unit.seal(UNIT, StatusBody(True, 3))
    assert restarted.verify(third).body == StatusBody(True, 3)


def test_gateway_counters_continue_after_restart(tmp_path: Path) -> None:
    path = tmp_path / "gw.sqlite3"
    gateway = gateway_guard(path)
    sent = [gateway.reserve_counter(UNIT) for _ in range(3)]
    again = gateway_guard(path).reserve_counter(UNIT)
    assert sent == [1, 2, 3]
    assert again == 4


def test_reflected_and_unknown_frames_are_refused(tmp_path: Path) -> None:
    gateway = gateway_guard(tmp_path / "gw.sqlite3")
    _, downlink = gateway.seal(UNIT, GatewayAckBody(1))
    with pytest.raises(WrongDirectionError):
        gateway.verify(downlink)
    stranger = seal(UnitKey(KEY), Header(FrameType.STATUS, 0x99, 1), b"\x00" * 5)
    with pytest.raises(UnknownUnitError, match="0x00000099"):
        gateway.verify(stranger)


def test_keys_appear_in_no_error_and_no_log_line(tmp_path: Path) -> None:
    gateway = gateway_guard(tmp_path / "gw.sqlite3")
    forged = seal(UnitKey(bytes(16)), Header(FrameType.STATUS, UNIT, 5), b"\x01" * 5)
    texts: list[str] = [repr(gateway), repr(gateway.key_for(UNIT))]
    with capture_logs() as logs:
        try:
            gateway.verify(forged)
        except SecurityError as err:
            texts.append(str(err))
            texts.append(repr(err))
    texts.extend(str(entry) for entry in logs)
    blob = " ".join(texts).lower()
    assert KEY.hex() not in blob
    assert KEY.hex(" ") not in blob
    assert str(list(KEY)) not in blob
