"""The prepaidgw LoRa frame: header, AES-CTR payload encryption and a truncated
AES-CMAC, shared by the gateway and the dispensing units (docs/lora.md)."""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum
from hmac import compare_digest

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.cmac import CMAC

from gateway.model import FrameError

VERSION = 1
HEADER = struct.Struct(">BII")  # version and type, unit address, frame counter
HEADER_LEN = HEADER.size
MIC_LEN = 4
OVERHEAD = HEADER_LEN + MIC_LEN
MAX_FRAME = 255
MAX_COUNTER = 0xFFFF_FFFF
KEY_LEN = 16


class FrameType(IntEnum):
    """What a frame carries. Bit 3 set means gateway to unit (downlink)."""

    STATUS = 0x1
    READ_RECEIPT = 0x2
    UNIT_ACK = 0x3
    COMMAND = 0x9
    GATEWAY_ACK = 0xA

    @property
    def downlink(self) -> bool:
        return bool(self & 0x8)


class Direction(IntEnum):
    """Which way a frame travels; counters are kept per unit and direction."""

    UP = 0
    DOWN = 1


def direction_of(frame_type: FrameType) -> Direction:
    return Direction.DOWN if frame_type.downlink else Direction.UP


def _kdf(root: bytes, label: bytes) -> bytes:
    """Derive a 128-bit key with AES-CMAC as PRF, in the counter mode of NIST
    SP 800-108: [i=1] || label || 0x00 || [L=128 bits]."""
    mac = CMAC(algorithms.AES(root))
    mac.update(b"\x01" + label + b"\x00" + (128).to_bytes(2, "big"))
    return mac.finalize()


class UnitKey:
    """A unit's AES-128 key, split into an encryption key and a MAC key.

    The root key is not kept. Neither the repr nor any error shows key bytes.
    """

    __slots__ = ("_enc", "_mac")

    def __init__(self, root: bytes) -> None:
        if not isinstance(root, bytes | bytearray) or len(root) != KEY_LEN:
            size = len(root) if isinstance(root, bytes | bytearray) else "no"
            raise ValueError(
                f"a LoRa unit key must be {KEY_LEN} bytes (32 hex digits); "
                f"got {size} bytes"
            )
        self._enc = _kdf(bytes(root), b"prepaidgw-lora-enc")
        self._mac = _kdf(bytes(root), b"prepaidgw-lora-mac")

    def __repr__(self) -> str:
        return "UnitKey(<redacted>)"

    def mic(self, header_and_ciphertext: bytes) -> bytes:
        """Return the truncated CMAC over header and encrypted payload."""
        mac = CMAC(algorithms.AES(self._mac))
        mac.update(header_and_ciphertext)
        return mac.finalize()[:MIC_LEN]

    def crypt(self, header: bytes, data: bytes) -> bytes:
        """Encrypt or decrypt a payload with AES-CTR under this frame's nonce.

        The counter block is the 9-byte header (direction, unit address,
        frame counter) padded with zeros; the last bytes count AES blocks.
        Frame counters never repeat per unit and direction, so neither does
        a counter block under one key.
        """
        nonce = header[:HEADER_LEN] + bytes(16 - HEADER_LEN)
        cipher = Cipher(algorithms.AES(self._enc), modes.CTR(nonce))
        enc = cipher.encryptor()
        return enc.update(data) + enc.finalize()


@dataclass(frozen=True, slots=True)
class Header:
    """The clear part of a frame, read before the MIC is checked."""

    frame_type: FrameType
    address: int
    counter: int

    @property
    def direction(self) -> Direction:
        return direction_of(self.frame_type)


@dataclass(frozen=True, slots=True)
class Frame:
    """A frame whose MIC was checked and whose payload was decrypted."""

    header: Header
    payload: bytes


def read_header(raw: bytes) -> Header:
    """Read the clear header; refuse bytes that cannot be one of our frames."""
    if len(raw) < OVERHEAD:
        raise FrameError(
            f"LoRa frame of {len(raw)} bytes is shorter than the {OVERHEAD}-byte "
            f"header and MIC: not a prepaidgw frame"
        )
    if len(raw) > MAX_FRAME:
        raise FrameError(f"LoRa frame of {len(raw)} bytes exceeds {MAX_FRAME}")
    first, address, counter = HEADER.unpack_from(raw)
    version, type_code = first >> 4, first & 0x0F
    if version != VERSION:
        raise FrameError(
            f"LoRa frame version {version} is not the {VERSION} this gateway "
            f"speaks: update the unit's or the gateway's firmware"
        )
    try:
        frame_type = FrameType(type_code)
    except ValueError:
        raise FrameError(f"LoRa frame type 0x{type_code:x} is unknown") from None
    return Header(frame_type, address, counter)


def seal(key: UnitKey, header: Header, payload: bytes) -> bytes:
    """Encrypt the payload and append the MIC: the bytes to put on air."""
    if not 0 < header.counter <= MAX_COUNTER:
        raise ValueError(
            f"frame counter must be 1 to {MAX_COUNTER}, got {header.counter}"
        )
    if not 0 <= header.address <= 0xFFFF_FFFF:
        raise ValueError(f"unit address must fit 4 bytes, got {header.address}")
    if len(payload) + OVERHEAD > MAX_FRAME:
        raise ValueError(f"payload of {len(payload)} bytes does not fit one LoRa frame")
    head = HEADER.pack(
        (VERSION << 4) | header.frame_type, header.address, header.counter
    )
    body = head + key.crypt(head, payload)
    return body + key.mic(body)


def mic_matches(key: UnitKey, raw: bytes) -> bool:
    """Return whether the frame's MIC is the one its key gives."""
    return compare_digest(key.mic(raw[:-MIC_LEN]), raw[-MIC_LEN:])


def decrypt(key: UnitKey, header: Header, raw: bytes) -> Frame:
    """Return the frame with its payload in clear; call only after `mic_matches`."""
    head = raw[:HEADER_LEN]
    return Frame(header, key.crypt(head, raw[HEADER_LEN:-MIC_LEN]))
