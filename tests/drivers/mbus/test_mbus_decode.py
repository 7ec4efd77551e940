"""Decoding corrections on top of pymbusparser, on frames built for each trap."""

from __future__ import annotations

import logging
import struct
from decimal import Decimal

import pytest

from drivers.mbus import frames
from drivers.mbus.decode import decode_frame, detect_kind, telegram_to_json
from gateway.model import FrameError, Medium


def _frame(
    records: bytes,
    medium: int = 0x07,
    ident: str = "12345678",
    signature: bytes = b"\x00\x00",
) -> bytes:
    header = (
        bytes.fromhex(ident)[::-1] + bytes.fromhex("2D2C") + bytes((1, medium, 5, 0))
    )
    return frames.build_long(0x08, 1, 0x72, header + signature + records)


def test_header_fields() -> None:
    telegram = decode_frame(_frame(bytes((0x04, 0x13)) + (1234).to_bytes(4, "little")))
    assert telegram.id == "12345678"
    assert telegram.manufacturer == "KAM"
    assert (telegram.version, telegram.medium, telegram.medium_kind) == (
        1,
        "Water",
        Medium.WATER,
    )
    assert telegram.access_number == 5
    assert telegram.address == 1
    assert telegram.billing is not None
    assert telegram.billing.value == Decimal("1.234")
    assert telegram.billing.unit == "m3"


def test_float_record_gets_its_vif_exponent() -> None:
    # VIF 13 is litres; pymbusparser 0.5.3 would return 1.5 m3.
    telegram = decode_frame(_frame(bytes((0x05, 0x13)) + struct.pack("<f", 1.5)))
    assert telegram.records[0].value == Decimal("0.0015")
    energy = decode_frame(_frame(bytes((0x05, 0x07)) + struct.pack("<f", 12.25), 0x02))
    assert energy.billing is not None
    assert (energy.billing.value, energy.billing.unit) == (Decimal("122500"), "Wh")


def test_float_keeps_shortest_decimal() -> None:
    telegram = decode_frame(_frame(bytes((0x05, 0x16)) + struct.pack("<f", 0.1)))
    assert telegram.records[0].value == Decimal("0.1")


def test_ff_filled_integer_register_means_no_value() -> None:
    records = bytes((0x04, 0x13)) + (7).to_bytes(4, "little")
    records += bytes((0x44, 0x13)) + b"\xff\xff\xff\xff"
    telegram = decode_frame(_frame(records))
    assert telegram.records[1].value is None
    assert telegram.billing is not None and telegram.billing.value == Decimal("0.007")


def test_negative_bcd_has_top_nibble_f() -> None:
    telegram = decode_frame(_frame(bytes((0x0C, 0x13)) + bytes.fromhex("341200F0")))
    assert telegram.records[0].value == Decimal("-1.234")


def test_hex_digits_in_id_are_printed_not_refused() -> None:
    telegram = decode_frame(
        _frame(bytes((0x0C, 0x13)) + bytes.fromhex("01000000"), ident="0500023E")
    )
    assert telegram.id == "0500023E"
    assert telegram.billing is not None and telegram.billing.value == Decimal("0.001")


def test_heat_cost_allocator_bills_hca_units() -> None:
    telegram = decode_frame(
        _frame(bytes((0x02, 0x6E)) + (321).to_bytes(2, "little"), 0x08)
    )
    assert telegram.billing is not None
    assert (telegram.billing.value, telegram.billing.unit) == (Decimal(321), "HCA")


def test_export_register_is_not_billed() -> None:
    # VIFE 3C: accumulation of the absolute value only if negative (export).
    records = bytes((0x04, 0x83, 0x3C)) + (99).to_bytes(4, "little")
    records += bytes((0x04, 0x03)) + (42).to_bytes(4, "little")
    telegram = decode_frame(_frame(records, 0x02))
    assert telegram.billing is not None and telegram.billing.value == Decimal(42)


def test_history_only_frame_has_no_billing() -> None:
    telegram = decode_frame(_frame(bytes((0x44, 0x13)) + (5).to_bytes(4, "little")))
    assert telegram.billing is None


def test_encrypted_configuration_is_reported() -> None:
    telegram = decode_frame(_frame(b"\x2f\x2f" * 8, signature=bytes((0x10, 0x05))))
    assert telegram.encrypted
    assert telegram.billing is None


def test_unsupported_ci_is_refused() -> None:
    with pytest.raises(FrameError, match="CI field 7A"):
        decode_frame(frames.build_long(0x08, 1, 0x7A, bytes(8)))


def test_short_header_is_refused() -> None:
    with pytest.raises(FrameError, match="12 bytes"):
        decode_frame(frames.build_long(0x08, 1, 0x72, bytes(5)))


def test_wireless_telegram_is_refused_with_a_reason() -> None:
    with pytest.raises(FrameError, match="wireless"):
        detect_kind(bytes.fromhex("2E4493157856341233037A"))
    with pytest.raises(FrameError, match="nothing"):
        decode_frame(b"")


def test_json_keeps_numbers_exact_as_strings() -> None:
    telegram = decode_frame(_frame(bytes((0x04, 0x13)) + (10**9).to_bytes(4, "little")))
    data = telegram_to_json(telegram)
    assert data["billing"]["value"] == "1000000"
    assert data["billing"]["unit"] == "m3"
    assert data["id"] == "12345678"
    assert data["medium_kind"] == "water"


def test_json_never_uses_exponent_notation() -> None:
    telegram = decode_frame(
        _frame(bytes((0x05, 0x07)) + struct.pack("<f", 12.25), 0x02)
    )
    assert telegram_to_json(telegram)["billing"]["value"] == "122500"


def test_pymeterbus_import_leaves_root_logging_alone() -> None:
    import subprocess
    import sys

    code = (
        "import logging; from drivers.mbus.pymeterbus_quiet import import_meterbus; "
        "import_meterbus(); r = logging.getLogger(); print(len(r.handlers), r.level)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.stdout.split() == ["0", str(logging.WARNING)]
