"""Link-layer frames: what the master sends and how replies are checked."""

from __future__ import annotations

import pytest

from drivers.mbus import frames
from gateway.model import FrameError

KAMSTRUP = bytes.fromhex(
    "681F1F68080072317767172D2C0102000000002F2F04833B881300002F2F2F2F2F2F2F0016"
)


def test_snd_nke_bytes() -> None:
    assert frames.build_snd_nke(1) == bytes.fromhex("1040014116")
    assert frames.build_snd_nke(0xFD) == bytes.fromhex("1040FD3D16")


def test_req_ud2_sets_fcb_only_when_asked() -> None:
    assert frames.build_req_ud2(5, fcb=False) == bytes.fromhex("105B056016")
    assert frames.build_req_ud2(5, fcb=True) == bytes.fromhex("107B058016")


def test_primary_address_out_of_range_is_refused() -> None:
    with pytest.raises(ValueError, match="0 to 250"):
        frames.build_req_ud2(251, fcb=False)


def test_secondary_selection_with_wildcards() -> None:
    frame = frames.build_select_secondary("12345678")
    assert frame.hex().upper() == "680B0B6853FD52785634 12FFFFFFFF".replace(" ", "") + (
        f"{frames.checksum(frame[4:-2]):02X}16"
    )
    parsed = frames.parse_long(frame)
    assert (parsed.c, parsed.a, parsed.ci) == (0x53, 253, 0x52)
    assert parsed.data == bytes.fromhex("78563412FFFFFFFF")


def test_secondary_selection_with_manufacturer_version_medium() -> None:
    frame = frames.build_select_secondary("123456782C2D0102")
    assert frames.parse_long(frame).data == bytes.fromhex("785634122D2C0102")


@pytest.mark.parametrize("bad", ["1234567", "1234567G", "123456781234"])
def test_bad_secondary_address_is_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="8 or 16 hex digits"):
        frames.build_select_secondary(bad)


def test_ack() -> None:
    frames.parse_ack(b"\xe5")
    with pytest.raises(FrameError, match="E5"):
        frames.parse_ack(b"\xe5\xe5")


def test_long_frame_parses() -> None:
    parsed = frames.parse_long(KAMSTRUP)
    assert (parsed.c, parsed.a, parsed.ci) == (0x08, 0x00, 0x72)
    assert parsed.data[:4] == bytes.fromhex("31776717")


def test_long_frame_checksum_error() -> None:
    broken = KAMSTRUP[:-2] + bytes(((KAMSTRUP[-2] + 1) & 0xFF, 0x16))
    with pytest.raises(FrameError, match="checksum"):
        frames.parse_long(broken)


def test_long_frame_length_errors() -> None:
    with pytest.raises(FrameError, match="length bytes differ"):
        frames.parse_long(KAMSTRUP[:1] + b"\x1f\x1e" + KAMSTRUP[3:])
    with pytest.raises(FrameError, match="announces 37 bytes"):
        frames.parse_long(KAMSTRUP[:-1])
    with pytest.raises(FrameError, match="must end with 16"):
        frames.parse_long(KAMSTRUP[:-1] + b"\x17")
    with pytest.raises(FrameError, match="68 L L 68"):
        frames.parse_long(b"\x10\x40\x01\x41\x16")
    with pytest.raises(FrameError, match="empty"):
        frames.parse_long(b"")


def test_with_checksum_repairs_an_edited_frame() -> None:
    edited = bytearray(KAMSTRUP)
    edited[5] = 7
    assert frames.parse_long(frames.with_checksum(bytes(edited))).a == 7


def test_echo_is_stripped_exactly() -> None:
    sent = frames.build_req_ud2(1, fcb=True)
    assert frames.strip_echo(sent + KAMSTRUP, sent) == KAMSTRUP
    assert frames.strip_echo(sent + b"\xe5", sent) == b"\xe5"
    with pytest.raises(FrameError, match="echo"):
        frames.strip_echo(KAMSTRUP, sent)
