"""Link layer: CRC-16 of EN 13757, frame formats A and B, header fields, and
that no bytes at all can crash the decoder."""

from __future__ import annotations

import contextlib
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.wmbus import CrcError, MeterKey, TruncatedFrameError, decode_frame
from drivers.wmbus.crc import crc16_en13757, strip_link_crcs
from drivers.wmbus.link import manufacturer_code, manufacturer_field, meter_id
from drivers.wmbus.records import decode_records
from gateway.model import FrameError


def to_format_a(frame: bytes) -> bytes:
    """Add format-A CRCs: after the first 10 bytes, then every 16."""
    out = bytearray()
    blocks = [frame[:10]] + [frame[i : i + 16] for i in range(10, len(frame), 16)]
    for block in blocks:
        out += block + crc16_en13757(block).to_bytes(2, "big")
    return bytes(out)


def test_crc_check_value() -> None:
    # The catalogued check value of CRC-16/EN-13757 for "123456789".
    assert crc16_en13757(b"123456789") == 0xC2B7


def test_format_a_round_trip(rows: list[dict[str, Any]]) -> None:
    plain = bytes.fromhex(rows[2]["hex"])
    with_crcs = to_format_a(plain)
    assert strip_link_crcs(with_crcs) == (plain, "A")
    assert decode_frame(with_crcs).frame_format == "A"


def test_format_a_bad_crc_is_refused(rows: list[dict[str, Any]]) -> None:
    with_crcs = bytearray(to_format_a(bytes.fromhex(rows[2]["hex"])))
    with_crcs[40] ^= 0xFF
    with pytest.raises(CrcError, match="block 3"):
        strip_link_crcs(bytes(with_crcs))


def test_format_b_is_detected_and_l_field_fixed(rows: list[dict[str, Any]]) -> None:
    stripped, kind = strip_link_crcs(bytes.fromhex(rows[43]["hex"]))
    assert kind == "B"
    assert stripped == bytes.fromhex(rows[44]["hex"])


def test_frame_without_crcs_passes_unchanged(rows: list[dict[str, Any]]) -> None:
    plain = bytes.fromhex(rows[9]["hex"])
    assert strip_link_crcs(plain) == (plain, "none")


def test_short_frame_says_what_is_wrong() -> None:
    with pytest.raises(TruncatedFrameError, match="at least 11 bytes"):
        decode_frame(b"\x05\x44\x01")
    with pytest.raises(TruncatedFrameError, match="L-field says"):
        decode_frame(bytes.fromhex("1844AE4C4455223368077A5500"))


def test_manufacturer_codes() -> None:
    assert manufacturer_code(0x4CAE) == "SEN"
    assert manufacturer_code(0xA697) == "ITW"  # top bit set by Itron
    assert manufacturer_field("KAM") == 0x2C2D
    with pytest.raises(ValueError, match="three letters"):
        manufacturer_field("K4")


def test_meter_ids_print_as_on_the_label() -> None:
    assert meter_id(bytes.fromhex("44552233")) == "33225544"
    assert meter_id(bytes.fromhex("F3628920")) == "208962f3"


def test_negative_bcd_and_float_exponent() -> None:
    records = decode_records(bytes.fromhex("0C13123456F0" + "051300004841"))
    assert str(records[0].value) == "-563.412"
    # 12.5 in units of 1 litre (VIF 0x13) is 0.0125 m3.
    assert records[1].value == Decimal("0.0125")


def test_ff_filled_registers_are_missing_not_minus_one() -> None:
    records = decode_records(
        bytes.fromhex("0413FFFFFFFF" + "0C13FFFFFFFF" + "04130A000000")
    )
    assert [r.value for r in records[:2]] == [None, None]
    assert records[2].value == Decimal("0.01")


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=300))
def test_random_bytes_raise_only_frame_errors(data: bytes) -> None:
    with contextlib.suppress(FrameError):
        decode_frame(data)


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 53), st.integers(0, 400), st.integers(0, 255))
def test_corrupted_corpus_frames_raise_only_frame_errors(
    rows: list[dict[str, Any]], index: int, pos: int, value: int
) -> None:
    row = rows[index]
    frame = bytearray.fromhex(row["hex"])
    frame[pos % len(frame)] = value
    key = MeterKey.from_hex(row["key"]) if row["key"] else None
    with contextlib.suppress(FrameError):
        decode_frame(bytes(frame), key)


def test_fewer_bytes_than_encrypted_blocks_is_truncated(
    rows: list[dict[str, Any]],
) -> None:
    frame = bytearray.fromhex(rows[38]["hex"])[:30]
    frame[0] = len(frame) - 1
    with pytest.raises(TruncatedFrameError, match="encrypted blocks"):
        decode_frame(bytes(frame), MeterKey.from_hex(rows[38]["key"]))
