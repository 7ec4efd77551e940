"""The frame format: sizes, round trips, encryption, MIC, and refusals of
bytes that are not our frames."""

from __future__ import annotations

from decimal import Decimal

import pytest

from drivers.lora.frame import (
    OVERHEAD,
    FrameType,
    Header,
    UnitKey,
    decrypt,
    mic_matches,
    read_header,
    seal,
)
from drivers.lora.payloads import (
    Body,
    CommandBody,
    GatewayAckBody,
    ReadReceiptBody,
    StatusBody,
    UnitAckBody,
    decode_body,
    to_thousandths,
    type_of,
)
from gateway.model import FrameError, UnitCommand

KEY = bytes.fromhex("2b7e151628aed2a6abf7158809cf4f3c")


def roundtrip(body: Body) -> Body:
    key = UnitKey(KEY)
    raw = seal(key, Header(type_of(body), 0x0A0B0C0D, 7), body.encode())
    header = read_header(raw)
    assert header == Header(type_of(body), 0x0A0B0C0D, 7)
    assert mic_matches(key, raw)
    frame = decrypt(key, header, raw)
    return decode_body(header.frame_type, frame.payload)


@pytest.mark.parametrize(
    ("body", "frame_bytes"),
    [
        (StatusBody(True, 123_456), 18),
        (StatusBody(False, 4_294_967_295, 0, tamper=True, manual_override=True), 22),
        (UnitAckBody(0xBEEF, StatusBody(True, 5, 100_000)), 24),
        (ReadReceiptBody(42, 1_767_225_600), 21),
        (CommandBody(1, False), 16),
        (CommandBody(2, True, allowance_milli=25_000), 20),
        (CommandBody(3, True, 25_000, -1234, 2, 77, "Top up soon"), 40),
        (GatewayAckBody(0x1234), 15),
    ],
)
def test_every_body_survives_the_air_and_is_as_small_as_counted(
    body: Body, frame_bytes: int
) -> None:
    assert roundtrip(body) == body
    assert len(body.encode()) + OVERHEAD == frame_bytes


def test_payload_is_encrypted_and_counter_changes_the_ciphertext() -> None:
    key = UnitKey(KEY)
    body = CommandBody(9, True, 25_000, 1500, 2, 5, "Hello flat 4").encode()
    first = seal(key, Header(FrameType.COMMAND, 1, 1), body)
    second = seal(key, Header(FrameType.COMMAND, 1, 2), body)
    assert b"Hello" not in first
    assert first[9:-4] != second[9:-4]


def test_any_flipped_bit_breaks_the_mic() -> None:
    key = UnitKey(KEY)
    raw = seal(key, Header(FrameType.STATUS, 1, 1), StatusBody(True, 1).encode())
    for index in range(len(raw)):
        tampered = bytearray(raw)
        tampered[index] ^= 0x01
        assert not mic_matches(key, bytes(tampered))
    assert not mic_matches(UnitKey(bytes(16)), raw)


def test_header_refuses_short_unknown_and_future_frames() -> None:
    with pytest.raises(FrameError, match="shorter than the 13-byte"):
        read_header(b"\x11\x00")
    with pytest.raises(FrameError, match="type 0x7 is unknown"):
        read_header(bytes([0x17]) + bytes(12))
    with pytest.raises(FrameError, match="version 2"):
        read_header(bytes([0x21]) + bytes(12))


def test_truncated_payload_is_a_frame_error_not_a_crash() -> None:
    with pytest.raises(FrameError, match="status payload is 3 bytes"):
        decode_body(FrameType.STATUS, b"\x01\x00\x00")
    with pytest.raises(FrameError, match="message text"):
        decode_body(FrameType.COMMAND, bytes.fromhex("0001 08 00000001 05 4142"))


def test_key_never_shows() -> None:
    key = UnitKey(KEY)
    assert KEY.hex() not in repr(key)
    assert "redacted" in repr(key)
    with pytest.raises(ValueError) as bad:
        UnitKey(KEY[:15])
    assert KEY[:15].hex() not in str(bad.value)
    assert "16 bytes" in str(bad.value)


def test_command_from_gateway_rounds_allowance_down_and_refuses_long_text() -> None:
    command = UnitCommand(
        "flat-3",
        True,
        allowance=Decimal("1.23456"),
        display_balance_minor=-250,
        message_id=9,
    )
    body = CommandBody.from_unit_command(command, 1, "Balance below zero")
    assert body.allowance_milli == 1234
    assert body.balance_minor == -250
    with pytest.raises(ValueError, match="shorten the message"):
        CommandBody.from_unit_command(command, 1, "x" * 49).encode()
    with pytest.raises(ValueError, match="send None for unlimited"):
        to_thousandths(Decimal("5000000"), "allowance")
    assert to_thousandths(Decimal("-3"), "allowance") == 0
