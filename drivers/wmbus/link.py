"""Data-link header of a wireless M-Bus frame (EN 13757-4): L, C, M, A fields,
the manufacturer's three letters, the printed meter id and the medium."""

from __future__ import annotations

from dataclasses import dataclass

from gateway.model import Medium

from .errors import TruncatedFrameError

# Device types of EN 13757-3 table 3, as text; codes a meter prints.
DEVICE_TYPES: dict[int, str] = {
    0x00: "other",
    0x01: "oil",
    0x02: "electricity",
    0x03: "gas",
    0x04: "heat",
    0x05: "steam",
    0x06: "warm water",
    0x07: "water",
    0x08: "heat cost allocation",
    0x09: "compressed air",
    0x0A: "cooling load (outlet)",
    0x0B: "cooling load (inlet)",
    0x0C: "heat (inlet)",
    0x0D: "heat/cooling load",
    0x0E: "bus/system component",
    0x0F: "unknown",
    0x15: "hot water",
    0x16: "cold water",
    0x17: "dual register water",
    0x18: "pressure",
    0x19: "A/D converter",
    0x1A: "smoke detector",
    0x1B: "room sensor",
    0x1C: "gas detector",
    0x20: "breaker (electricity)",
    0x21: "valve (gas or water)",
    0x25: "customer unit (display)",
    0x28: "waste water",
    0x29: "garbage",
    0x31: "communication controller",
    0x32: "unidirectional repeater",
    0x33: "bidirectional repeater",
    0x36: "radio converter (system side)",
    0x37: "radio converter (meter side)",
}

# What the tariff bills each device type as; None where it bills nothing.
MEDIA: dict[int, Medium] = {
    0x02: Medium.ELECTRICITY,
    0x03: Medium.GAS,
    0x04: Medium.HEAT,
    0x06: Medium.WARM_WATER,
    0x07: Medium.WATER,
    0x08: Medium.HEAT_COST,
    0x0A: Medium.COOLING,
    0x0B: Medium.COOLING,
    0x0C: Medium.HEAT,
    0x0D: Medium.HEAT,
    0x15: Medium.WARM_WATER,
    0x16: Medium.WATER,
}


def device_type_text(code: int) -> str:
    """Name a device type code; unknown codes keep their hex value."""
    return DEVICE_TYPES.get(code, f"device type 0x{code:02X}")


def manufacturer_code(raw: int) -> str:
    """Turn the 16-bit M-field into its three letters.

    The top bit is not part of the code; a few meters set it (Itron sends
    0xA697 for "ITW"), so it is masked off.
    """
    raw &= 0x7FFF
    return "".join(chr(((raw >> shift) & 0x1F) + 64) for shift in (10, 5, 0))


def manufacturer_field(code: str) -> int:
    """Encode three letters as an M-field value (the inverse of the above)."""
    if len(code) != 3 or not code.isalpha():
        raise ValueError(f"manufacturer code must be three letters, not {code!r}")
    letters = [ord(c) - 64 for c in code.upper()]
    return (letters[0] << 10) | (letters[1] << 5) | letters[2]


def meter_id(raw: bytes) -> str:
    """Print a 4-byte id the way it is on the meter (BCD, most significant first).

    Ids with non-BCD nibbles (some Sappel and Diehl radios) come out as
    lowercase hex digits, the way their labels print them.
    """
    return raw[::-1].hex()


@dataclass(frozen=True, slots=True)
class Address:
    """The meter part of a header: manufacturer, id, version, device type."""

    manufacturer: str
    id: str
    version: int
    device_type: int
    raw: bytes  # the 8 bytes M(2) A(6) as sent, for IVs and key derivation

    @property
    def medium_text(self) -> str:
        return device_type_text(self.device_type)

    @property
    def medium(self) -> Medium | None:
        return MEDIA.get(self.device_type)


def parse_address(raw: bytes) -> Address:
    """Read M(2) ID(4) version(1) type(1) as both link and long headers send it."""
    if len(raw) < 8:
        raise TruncatedFrameError("an address needs 8 bytes (M, ID, version, type)")
    return Address(
        manufacturer=manufacturer_code(int.from_bytes(raw[0:2], "little")),
        id=meter_id(raw[2:6]),
        version=raw[6],
        device_type=raw[7],
        raw=bytes(raw[:8]),
    )


@dataclass(frozen=True, slots=True)
class LinkHeader:
    """L, C and address of a frame whose CRCs are already removed."""

    length: int
    control: int
    address: Address


def parse_link(frame: bytes) -> LinkHeader:
    """Read the 10-byte link header of a CRC-free frame."""
    if len(frame) < 11:
        raise TruncatedFrameError(
            f"frame has {len(frame)} bytes; a header and CI field need 11"
        )
    if frame[0] + 1 > len(frame):
        raise TruncatedFrameError(
            f"L-field says {frame[0] + 1} bytes but {len(frame)} arrived"
        )
    return LinkHeader(
        length=frame[0], control=frame[1], address=parse_address(frame[2:10])
    )
