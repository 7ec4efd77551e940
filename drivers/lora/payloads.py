"""The clear payloads of prepaidgw LoRa frames, one dataclass per frame type,
with exact byte layouts (docs/lora.md lists them byte by byte)."""

from __future__ import annotations

import struct
from dataclasses import dataclass
from decimal import ROUND_FLOOR, Decimal

from drivers.lora.frame import FrameType
from gateway.model import FrameError, UnitCommand

U32_MAX = 0xFFFF_FFFF
MAX_TEXT_BYTES = 48
MAX_DECIMALS = 7
_THOUSANDTH = Decimal("0.001")

# Status flags (STATUS and UNIT_ACK).
_ST_SUPPLY, _ST_TAMPER, _ST_OVERRIDE, _ST_ALLOWANCE = 0x01, 0x02, 0x04, 0x08
# Command flags; bits 4-6 carry the display decimals.
_CMD_SUPPLY, _CMD_ALLOWANCE, _CMD_BALANCE, _CMD_MESSAGE = 0x01, 0x02, 0x04, 0x08


def to_thousandths(value: Decimal, what: str) -> int:
    """Return a non-negative quantity as whole thousandths, rounded down.

    Rounding down means a unit is never allowed more than the gateway meant.
    """
    if not value.is_finite():
        raise ValueError(f"{what} must be a finite number, got {value}")
    scaled = int((max(value, Decimal(0)) / _THOUSANDTH).to_integral_value(ROUND_FLOOR))
    if scaled > U32_MAX:
        raise ValueError(
            f"{what} {value} exceeds the 4294967.295 a LoRa frame carries: "
            f"send None for unlimited"
        )
    return scaled


def from_thousandths(raw: int) -> Decimal:
    return Decimal(raw).scaleb(-3)


def _need(data: bytes, size: int, what: str) -> None:
    if len(data) < size:
        raise FrameError(f"{what} payload is {len(data)} bytes, needs at least {size}")


@dataclass(frozen=True, slots=True)
class StatusBody:
    """What a unit reports: supply state, flags, consumption and allowance left.

    `consumption` is the unit's own meter register in thousandths of the
    meter's canonical unit; it wraps at 2^32 like any meter register.
    """

    supply_on: bool
    consumption_milli: int
    allowance_milli: int | None = None
    tamper: bool = False
    manual_override: bool = False

    def encode(self) -> bytes:
        flags = (
            (_ST_SUPPLY if self.supply_on else 0)
            | (_ST_TAMPER if self.tamper else 0)
            | (_ST_OVERRIDE if self.manual_override else 0)
            | (_ST_ALLOWANCE if self.allowance_milli is not None else 0)
        )
        out = struct.pack(">BI", flags, self.consumption_milli & U32_MAX)
        if self.allowance_milli is not None:
            out += struct.pack(">I", self.allowance_milli)
        return out

    @classmethod
    def decode(cls, data: bytes) -> StatusBody:
        _need(data, 5, "status")
        flags, consumption = struct.unpack_from(">BI", data)
        allowance = None
        if flags & _ST_ALLOWANCE:
            _need(data, 9, "status with allowance")
            (allowance,) = struct.unpack_from(">I", data, 5)
        return cls(
            supply_on=bool(flags & _ST_SUPPLY),
            consumption_milli=consumption,
            allowance_milli=allowance,
            tamper=bool(flags & _ST_TAMPER),
            manual_override=bool(flags & _ST_OVERRIDE),
        )


@dataclass(frozen=True, slots=True)
class UnitAckBody:
    """A unit's answer to a command: which command, and its state after it."""

    acked_ref: int
    status: StatusBody

    def encode(self) -> bytes:
        return struct.pack(">H", self.acked_ref & 0xFFFF) + self.status.encode()

    @classmethod
    def decode(cls, data: bytes) -> UnitAckBody:
        _need(data, 2, "unit ack")
        (ref,) = struct.unpack_from(">H", data)
        return cls(ref, StatusBody.decode(data[2:]))


@dataclass(frozen=True, slots=True)
class ReadReceiptBody:
    """A resident read a display message: which one, and when (Unix seconds)."""

    message_id: int
    read_at: int

    def encode(self) -> bytes:
        return struct.pack(">II", self.message_id, self.read_at)

    @classmethod
    def decode(cls, data: bytes) -> ReadReceiptBody:
        _need(data, 8, "read receipt")
        message_id, read_at = struct.unpack_from(">II", data)
        return cls(message_id, read_at)


@dataclass(frozen=True, slots=True)
class GatewayAckBody:
    """The gateway received a confirmed uplink (a read receipt)."""

    acked_ref: int

    def encode(self) -> bytes:
        return struct.pack(">H", self.acked_ref & 0xFFFF)

    @classmethod
    def decode(cls, data: bytes) -> GatewayAckBody:
        _need(data, 2, "gateway ack")
        return cls(struct.unpack_from(">H", data)[0])


@dataclass(frozen=True, slots=True)
class CommandBody:
    """What a unit must do now. Every command states the whole wanted state,
    so applying one twice is harmless; `ref` lets a unit see a retry."""

    ref: int
    supply_on: bool
    allowance_milli: int | None = None
    balance_minor: int | None = None
    decimals: int = 2
    message_id: int | None = None
    message_text: str = ""

    def same_wish(self, other: CommandBody) -> bool:
        """Return whether two commands ask for the same thing, whatever their ref."""
        return self.encode()[2:] == other.encode()[2:]

    def encode(self) -> bytes:
        if not 0 <= self.decimals <= MAX_DECIMALS:
            raise ValueError(
                f"display decimals must be 0 to {MAX_DECIMALS}, got {self.decimals}"
            )
        flags = (
            (_CMD_SUPPLY if self.supply_on else 0)
            | (_CMD_ALLOWANCE if self.allowance_milli is not None else 0)
            | (_CMD_BALANCE if self.balance_minor is not None else 0)
            | (_CMD_MESSAGE if self.message_id is not None else 0)
            | (self.decimals << 4)
        )
        out = struct.pack(">HB", self.ref & 0xFFFF, flags)
        if self.allowance_milli is not None:
            out += struct.pack(">I", self.allowance_milli)
        if self.balance_minor is not None:
            if not -(2**31) <= self.balance_minor < 2**31:
                raise ValueError(
                    f"display balance {self.balance_minor} minor units does not fit "
                    f"the 4 signed bytes a LoRa command carries"
                )
            out += struct.pack(">i", self.balance_minor)
        if self.message_id is not None:
            if not 0 <= self.message_id <= U32_MAX:
                raise ValueError(
                    f"message id must be 0 to {U32_MAX}, got {self.message_id}"
                )
            text = self.message_text.encode("utf-8")
            if len(text) > MAX_TEXT_BYTES:
                raise ValueError(
                    f"display text is {len(text)} bytes in UTF-8; a LoRa command "
                    f"carries at most {MAX_TEXT_BYTES}: shorten the message"
                )
            out += struct.pack(">IB", self.message_id, len(text)) + text
        return out

    @classmethod
    def decode(cls, data: bytes) -> CommandBody:
        _need(data, 3, "command")
        ref, flags = struct.unpack_from(">HB", data)
        at = 3
        allowance = balance = message_id = None
        text = ""
        if flags & _CMD_ALLOWANCE:
            _need(data, at + 4, "command allowance")
            (allowance,) = struct.unpack_from(">I", data, at)
            at += 4
        if flags & _CMD_BALANCE:
            _need(data, at + 4, "command balance")
            (balance,) = struct.unpack_from(">i", data, at)
            at += 4
        if flags & _CMD_MESSAGE:
            _need(data, at + 5, "command message")
            message_id, length = struct.unpack_from(">IB", data, at)
            at += 5
            _need(data, at + length, "command message text")
            try:
                text = data[at : at + length].decode("utf-8")
            except UnicodeDecodeError:
                raise FrameError("command message text is not UTF-8") from None
        return cls(
            ref=ref,
            supply_on=bool(flags & _CMD_SUPPLY),
            allowance_milli=allowance,
            balance_minor=balance,
            decimals=(flags >> 4) & 0x07,
            message_id=message_id,
            message_text=text,
        )

    @classmethod
    def from_unit_command(
        cls, command: UnitCommand, ref: int, message_text: str | None = None
    ) -> CommandBody:
        """Translate the gateway's command into frame fields; refuse what cannot fit."""
        allowance = (
            None
            if command.allowance is None
            else to_thousandths(command.allowance, f"allowance of {command.unit_id}")
        )
        if message_text is not None and command.message_id is None:
            raise ValueError("a display text needs a message id to be acknowledged by")
        return cls(
            ref=ref,
            supply_on=command.supply_on,
            allowance_milli=allowance,
            balance_minor=command.display_balance_minor,
            decimals=command.display_decimals,
            message_id=command.message_id,
            message_text=message_text or "",
        )


Body = StatusBody | UnitAckBody | ReadReceiptBody | CommandBody | GatewayAckBody

_DECODERS: dict[FrameType, type[Body]] = {
    FrameType.STATUS: StatusBody,
    FrameType.UNIT_ACK: UnitAckBody,
    FrameType.READ_RECEIPT: ReadReceiptBody,
    FrameType.COMMAND: CommandBody,
    FrameType.GATEWAY_ACK: GatewayAckBody,
}
_TYPES: dict[type[Body], FrameType] = {v: k for k, v in _DECODERS.items()}


def decode_body(frame_type: FrameType, data: bytes) -> Body:
    """Decode a clear payload by its frame type."""
    return _DECODERS[frame_type].decode(data)


def type_of(body: Body) -> FrameType:
    return _TYPES[type(body)]
