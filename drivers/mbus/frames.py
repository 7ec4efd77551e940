"""Wired M-Bus link-layer frames (EN 13757-2): build the master's requests and
check the meter's replies for start, length, checksum and stop bytes."""

from __future__ import annotations

from dataclasses import dataclass

from gateway.model import FrameError

ACK = 0xE5
START_SHORT = 0x10
START_LONG = 0x68
STOP = 0x16

# C fields of the master's requests.
C_SND_NKE = 0x40
C_REQ_UD2 = 0x5B
C_SND_UD = 0x53
FCB = 0x20

# CI field of a secondary-address selection, and the address it goes to.
CI_SELECT = 0x52
ADDRESS_NETWORK_LAYER = 253
ADDRESS_BROADCAST_NO_REPLY = 255
MAX_PRIMARY = 250

LONG_HEADER_LEN = 4  # 68 L L 68
LONG_OVERHEAD = 6  # 68 L L 68 ... CS 16


@dataclass(frozen=True, slots=True)
class LongFrame:
    """A checked long frame: control, address, CI, and the bytes after the CI."""

    c: int
    a: int
    ci: int
    data: bytes
    raw: bytes


def checksum(data: bytes) -> int:
    """Return the arithmetic sum of `data` modulo 256, as the link layer sends."""
    return sum(data) & 0xFF


def _short(c: int, address: int) -> bytes:
    _check_address(address, allow_network=True)
    return bytes((START_SHORT, c, address, checksum(bytes((c, address))), STOP))


def _check_address(address: int, *, allow_network: bool = False) -> None:
    allowed = (ADDRESS_NETWORK_LAYER, 254, ADDRESS_BROADCAST_NO_REPLY)
    if 0 <= address <= MAX_PRIMARY or (allow_network and address in allowed):
        return
    raise ValueError(
        f"primary address {address} is out of range; use 0 to {MAX_PRIMARY}"
    )


def build_snd_nke(address: int) -> bytes:
    """Build SND_NKE, the link reset that also clears the meter's FCB state."""
    return _short(C_SND_NKE, address)


def build_req_ud2(address: int, fcb: bool) -> bytes:
    """Build REQ_UD2 (class 2 data request) with the frame count bit set or not."""
    return _short(C_REQ_UD2 | (FCB if fcb else 0), address)


def build_long(c: int, address: int, ci: int, data: bytes) -> bytes:
    """Build a long frame around `data`, with both length bytes and checksum."""
    body = bytes((c, address, ci)) + data
    if len(body) > 255:
        raise ValueError(f"long frame body is {len(body)} bytes; at most 255 fit")
    size = len(body)
    return (
        bytes((START_LONG, size, size, START_LONG))
        + body
        + bytes((checksum(body), STOP))
    )


def parse_secondary(secondary: str) -> bytes:
    """Turn an 8 or 16 hex digit secondary address into the 8 selection bytes.

    The 8-digit form is the identification number alone; manufacturer,
    version and medium are then wildcards. Within the id, `F` is a wildcard
    digit, as the standard allows. The 16-digit form is id (8), manufacturer
    (4, as the two header bytes are printed, e.g. 2C2D), version (2), medium (2).
    """
    text = secondary.strip().upper()
    if len(text) not in (8, 16) or any(ch not in "0123456789ABCDEF" for ch in text):
        raise ValueError(
            f"secondary address {secondary!r} must be 8 or 16 hex digits "
            "(id, or id + manufacturer + version + medium)"
        )
    ident = bytes.fromhex(text[:8])[::-1]
    if len(text) == 8:
        return ident + b"\xff\xff\xff\xff"
    manufacturer = bytes.fromhex(text[8:12])[::-1]
    return ident + manufacturer + bytes.fromhex(text[12:14] + text[14:16])


def build_select_secondary(secondary: str) -> bytes:
    """Build SND_UD to address 253 with CI 0x52 selecting one meter by id."""
    return build_long(
        C_SND_UD, ADDRESS_NETWORK_LAYER, CI_SELECT, parse_secondary(secondary)
    )


def is_ack(reply: bytes) -> bool:
    """Return whether `reply` is exactly the single-character acknowledgement."""
    return reply == bytes((ACK,))


def parse_ack(reply: bytes) -> None:
    """Accept a single E5 byte; raise FrameError for anything else."""
    if not is_ack(reply):
        raise FrameError(
            f"expected the single byte E5 (ACK), got {len(reply)} bytes "
            f"starting {reply[:8].hex(' ')}"
        )


def long_frame_length(header: bytes) -> int:
    """Return the whole frame length announced by a 4-byte long-frame header."""
    if len(header) < LONG_HEADER_LEN:
        raise FrameError(f"long frame header needs 4 bytes, got {len(header)}")
    if header[0] != START_LONG or header[3] != START_LONG:
        raise FrameError(f"long frame must start 68 L L 68, got {header[:4].hex(' ')}")
    if header[1] != header[2]:
        raise FrameError(
            f"long frame length bytes differ ({header[1]} and {header[2]})"
        )
    if header[1] < 3:
        raise FrameError(f"long frame length {header[1]} is below the minimum 3")
    return header[1] + LONG_OVERHEAD


def parse_long(frame: bytes) -> LongFrame:
    """Check a long frame's start, length, checksum and stop bytes, and split it."""
    if not frame:
        raise FrameError("empty frame")
    expected = long_frame_length(frame[:LONG_HEADER_LEN])
    if len(frame) != expected:
        raise FrameError(
            f"long frame announces {expected} bytes (L={frame[1]}) "
            f"but {len(frame)} arrived"
        )
    body = frame[LONG_HEADER_LEN:-2]
    if frame[-1] != STOP:
        raise FrameError(f"long frame must end with 16, got {frame[-1]:02X}")
    if checksum(body) != frame[-2]:
        raise FrameError(
            f"long frame checksum is {frame[-2]:02X}, "
            f"the bytes add up to {checksum(body):02X}"
        )
    return LongFrame(c=body[0], a=body[1], ci=body[2], data=bytes(body[3:]), raw=frame)


def strip_echo(reply: bytes, sent: bytes) -> bytes:
    """Drop the echo of `sent` from the start of `reply`.

    Level converters that echo repeat exactly what the master sent; anything
    else at the start means the echo was lost or mangled, which we report
    rather than guess around.
    """
    if reply[: len(sent)] == sent:
        return reply[len(sent) :]
    raise FrameError(
        f"expected the echo {sent.hex(' ')} before the reply, "
        f"got {reply[: len(sent)].hex(' ')}; is echo set for this bus?"
    )


def with_checksum(frame: bytes) -> bytes:
    """Return a long frame with its checksum recomputed (after an edit)."""
    body = frame[LONG_HEADER_LEN:-2]
    return frame[:-2] + bytes((checksum(body), STOP))
