"""Link-layer CRC of wireless M-Bus (EN 13757-4): compute, verify and strip the
CRC blocks of frame formats A and B, and tell whether a frame carries them."""

from __future__ import annotations

from .errors import CrcError, TruncatedFrameError

_POLY = 0x3D65


def _table() -> list[int]:
    table = []
    for byte in range(256):
        crc = byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ _POLY) if crc & 0x8000 else (crc << 1)
        table.append(crc & 0xFFFF)
    return table


_TABLE = _table()


def crc16_en13757(data: bytes) -> int:
    """Return the EN 13757 CRC-16 (poly 0x3D65, init 0, final complement)."""
    crc = 0
    for byte in data:
        crc = ((crc << 8) & 0xFFFF) ^ _TABLE[((crc >> 8) ^ byte) & 0xFF]
    return crc ^ 0xFFFF


def _block_ok(block: bytes, crc_bytes: bytes) -> bool:
    return crc16_en13757(block) == int.from_bytes(crc_bytes, "big")


def _format_a_blocks(l_field: int) -> list[int]:
    """Data lengths of each CRC block of a format-A frame with this L-field."""
    sizes = [10]
    remaining = l_field + 1 - 10
    while remaining > 0:
        sizes.append(min(16, remaining))
        remaining -= 16
    return sizes


def strip_format_a(frame: bytes) -> bytes:
    """Verify and remove format-A CRCs; the L-field already excludes them."""
    sizes = _format_a_blocks(frame[0])
    expected = sum(sizes) + 2 * len(sizes)
    if len(frame) < expected:
        raise TruncatedFrameError(
            f"format-A frame is {len(frame)} bytes, its L-field needs {expected}"
        )
    out = bytearray()
    pos = 0
    for index, size in enumerate(sizes):
        block = frame[pos : pos + size]
        if not _block_ok(block, frame[pos + size : pos + size + 2]):
            raise CrcError(f"format-A CRC of block {index + 1} does not match")
        out += block
        pos += size + 2
    return bytes(out)


def strip_format_b(frame: bytes) -> bytes:
    """Verify and remove format-B CRCs; the L-field counts them, so fix it up."""
    total = frame[0] + 1
    if len(frame) < total or total < 12:
        raise TruncatedFrameError(
            f"format-B frame is {len(frame)} bytes, its L-field needs {total}"
        )
    frame = frame[:total]
    # Block 2 covers up to 128 bytes from the L-field, its CRC included; a
    # longer frame has a third block with its own CRC.
    second_end = min(total, 128)
    if not _block_ok(frame[: second_end - 2], frame[second_end - 2 : second_end]):
        raise CrcError("format-B CRC of block 2 does not match")
    out = bytearray(frame[: second_end - 2])
    if total > 128:
        if total - 128 < 3:
            raise TruncatedFrameError("format-B block 3 is too short for its CRC")
        if not _block_ok(frame[128:-2], frame[-2:]):
            raise CrcError("format-B CRC of block 3 does not match")
        out += frame[128:-2]
    crc_count = 2 if total > 128 else 1
    out[0] = frame[0] - 2 * crc_count
    return bytes(out)


def strip_link_crcs(frame: bytes) -> tuple[bytes, str]:
    """Return the frame without CRCs and which format it had: "A", "B" or "none".

    A frame exactly as long as format A needs is format A, and a bad CRC is
    an error. A frame of L+1 bytes either has no CRCs or is format B (whose
    L counts its CRCs); the CRCs decide. Bytes past L+1 that are not format-A
    CRCs are dropped: some receivers append a status or RSSI byte.
    """
    if len(frame) < 11:
        raise TruncatedFrameError(
            f"a wireless M-Bus frame has at least 11 bytes; got {len(frame)}"
        )
    l_field = frame[0]
    sizes = _format_a_blocks(l_field)
    if len(frame) == sum(sizes) + 2 * len(sizes):
        return strip_format_a(frame), "A"
    if len(frame) < l_field + 1:
        raise TruncatedFrameError(
            f"frame is {len(frame)} bytes but its L-field says {l_field + 1}"
        )
    frame = frame[: l_field + 1]
    try:
        return strip_format_b(frame), "B"
    except CrcError:
        return frame, "none"
