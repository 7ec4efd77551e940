"""The register map of prepaidgw's own dispensing unit (map version 1), and pure
helpers that turn gateway values into register words and back.

docs/modbus.md explains the map for an installer or a firmware author; this
module is the same map as code. Addresses are PDU addresses (0-based), so
input register 0 is what some tools call 30001 and holding register 0 is
40001.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import ROUND_FLOOR, Decimal
from enum import IntEnum, IntFlag

# What input register 0 holds on every prepaidgw dispensing unit: "PG" in
# ASCII. Any other value means another kind of device sits at that address.
DEVICE_TYPE = 0x5047
# The map this module speaks. A unit reporting another version may have
# registers this gateway would misread, so it is refused.
REGISTER_MAP_VERSION = 1

# 32-bit allowance that means "no limit": the unit never switches off on its
# own count.
UNLIMITED = 0xFFFF_FFFF
# 32-bit display balance that means "show no balance" (the display blanks it).
BALANCE_BLANK = -0x8000_0000
# Allowance and consumption are counted in thousandths of the meter's
# canonical unit: Wh for kWh, litres for m3.
THOUSANDTHS = Decimal(1000)
U32_MAX = 0xFFFF_FFFF
MAX_DISPLAY_DECIMALS = 4
MAX_WATCHDOG_S = 0xFFFF

# Input registers, read with function 04. One read of STATE_COUNT registers
# from STATE_START gives everything the gateway needs to know.
IR_DEVICE_TYPE = 0
IR_OUTPUT_KIND = 1
IR_FIRMWARE = 2
IR_MAP_VERSION = 3
IR_SUPPLY_FEEDBACK = 4
IR_STATUS = 5
IR_ALLOWANCE = 6  # two words: a live copy of HR_ALLOWANCE
IR_CONSUMPTION = 8  # two words
IR_WATCHDOG_LEFT = 10
# The id of the last display message the resident confirmed on the unit
# (its read receipt); 0 until one is confirmed.
IR_MESSAGE_READ = 11
STATE_START = 0
STATE_COUNT = 12

# Holding registers, read with 03, written with 16 (or 06 for one word).
# One write of COMMAND_COUNT registers from COMMAND_START carries a whole
# gateway command.
HR_SUPPLY_COMMAND = 0
HR_ALLOWANCE = 1  # two words, counted down by the unit
HR_DISPLAY_BALANCE = 3  # two words, signed
HR_DISPLAY_DECIMALS = 5
HR_DISPLAY_MESSAGE = 6
HR_WATCHDOG_S = 7
HR_SAFE_STATE = 8
HR_PULSE_WEIGHT = 9
COMMAND_START = 0
COMMAND_COUNT = 8
HOLDING_COUNT = 10


class RegisterMapError(ValueError):
    """Register words that do not fit the map, or a value the map cannot carry."""


class OutputKind(IntEnum):
    """What the unit's relay output switches (input register 1)."""

    WATER_VALVE = 1
    CONTACTOR = 2
    HEATING_VALVE = 3
    APPLIANCE_ENABLE = 4


class SafeState(IntEnum):
    """What the unit does when the gateway watchdog expires (holding register 8)."""

    OFF = 0
    HOLD = 1
    ON = 2


class Status(IntFlag):
    """Status bits of input register 5."""

    TAMPER = 0x0001
    MANUAL_OVERRIDE = 0x0002
    ALLOWANCE_EXHAUSTED = 0x0004
    WATCHDOG_EXPIRED = 0x0008
    RELAY_FAULT = 0x0010


class DisplayMessage(IntEnum):
    """Message ids the unit's display knows (holding register 6).

    Ids 1 to 255 are reserved for built-in texts; ids from 256 up are
    messages the administrator or the cloud sent (gateway.messages).
    """

    NONE = 0
    LOW_BALANCE = 1
    SUPPLY_OFF_NO_CREDIT = 2
    FRIENDLY_HOURS = 3
    EMERGENCY_CREDIT = 4
    CONTACT_MANAGEMENT = 5
    SERVICE = 6


# Every status bit this map defines.
_STATUS_MASK = sum(bit.value for bit in Status)


@dataclass(frozen=True, slots=True)
class CommandBlock:
    """The holding registers one gateway command writes, as plain values."""

    supply_on: bool
    allowance_raw: int
    display_balance_raw: int
    display_decimals: int
    message_id: int
    watchdog_s: int


@dataclass(frozen=True, slots=True)
class StateBlock:
    """The input registers one state read returns, as plain values."""

    device_type: int
    output_kind: int
    firmware: int
    map_version: int
    supply_feedback: bool
    status: Status
    allowance_raw: int
    consumption_raw: int
    watchdog_left_s: int
    message_read: int = 0

    @property
    def firmware_text(self) -> str:
        """Return the firmware version as major.minor."""
        return f"{self.firmware >> 8}.{self.firmware & 0xFF}"


def u32_to_words(value: int) -> list[int]:
    """Split an unsigned 32-bit value into two words, high word first."""
    if not 0 <= value <= U32_MAX:
        raise RegisterMapError(f"{value} does not fit 32 unsigned bits")
    return [value >> 16, value & 0xFFFF]


def words_to_u32(high: int, low: int) -> int:
    """Join two words, high word first, into an unsigned 32-bit value."""
    for word in (high, low):
        if not 0 <= word <= 0xFFFF:
            raise RegisterMapError(f"register word {word} is not 16 bits")
    return (high << 16) | low


def i32_to_words(value: int) -> list[int]:
    """Split a signed 32-bit value (two's complement) into two words."""
    if not -0x8000_0000 <= value <= 0x7FFF_FFFF:
        raise RegisterMapError(f"{value} does not fit 32 signed bits")
    return u32_to_words(value & U32_MAX)


def words_to_i32(high: int, low: int) -> int:
    """Join two words, high word first, into a signed 32-bit value."""
    raw = words_to_u32(high, low)
    return raw - 0x1_0000_0000 if raw & 0x8000_0000 else raw


def allowance_to_raw(allowance: Decimal | None) -> int:
    """Return the register value for an allowance in the canonical unit.

    None is unlimited. The value is rounded down to whole thousandths, so a
    unit never dispenses more than it was allowed; a negative allowance is 0
    (nothing more to dispense); anything too large for 32 bits is capped just
    below the unlimited marker.
    """
    if allowance is None:
        return UNLIMITED
    if not allowance.is_finite():
        raise RegisterMapError(f"allowance {allowance} is not a number")
    raw = int((allowance * THOUSANDTHS).to_integral_value(rounding=ROUND_FLOOR))
    return min(max(raw, 0), UNLIMITED - 1)


def raw_to_allowance(raw: int) -> Decimal | None:
    """Return the allowance in the canonical unit; None for unlimited."""
    if raw == UNLIMITED:
        return None
    return Decimal(raw) / THOUSANDTHS


def raw_to_quantity(raw: int) -> Decimal:
    """Return a thousandths counter as an exact quantity in the canonical unit."""
    return Decimal(raw) / THOUSANDTHS


def quantity_to_raw(quantity: Decimal) -> int:
    """Return a quantity in the canonical unit as a 32-bit thousandths counter."""
    raw = int((quantity * THOUSANDTHS).to_integral_value(rounding=ROUND_FLOOR))
    if not 0 <= raw <= U32_MAX:
        raise RegisterMapError(
            f"{quantity} does not fit the 32-bit thousandths counter "
            f"(0 to {raw_to_quantity(U32_MAX)})"
        )
    return raw


def encode_command(
    *,
    supply_on: bool,
    allowance: Decimal | None,
    display_balance_minor: int | None,
    display_decimals: int,
    message_id: int | None,
    watchdog_s: int,
) -> list[int]:
    """Return the COMMAND_COUNT holding-register words of one gateway command."""
    if display_balance_minor is not None and display_balance_minor == BALANCE_BLANK:
        raise RegisterMapError(
            f"display balance {display_balance_minor} is the 'blank' marker; "
            "use None to blank the display"
        )
    balance_raw = (
        BALANCE_BLANK if display_balance_minor is None else display_balance_minor
    )
    if not -0x8000_0000 <= balance_raw <= 0x7FFF_FFFF:
        raise RegisterMapError(
            f"display balance {balance_raw} minor units does not fit 32 signed bits"
        )
    if not 0 <= display_decimals <= MAX_DISPLAY_DECIMALS:
        raise RegisterMapError(
            f"display decimals {display_decimals} must be 0 to {MAX_DISPLAY_DECIMALS}"
        )
    message = 0 if message_id is None else message_id
    if not 0 <= message <= 0xFFFF:
        raise RegisterMapError(f"display message id {message} must be 0 to 65535")
    if not 0 <= watchdog_s <= MAX_WATCHDOG_S:
        raise RegisterMapError(
            f"watchdog {watchdog_s} s must be 0 (off) to {MAX_WATCHDOG_S}"
        )
    return [
        1 if supply_on else 0,
        *u32_to_words(allowance_to_raw(allowance)),
        *i32_to_words(balance_raw),
        display_decimals,
        message,
        watchdog_s,
    ]


def decode_command(words: Sequence[int]) -> CommandBlock:
    """Read the COMMAND_COUNT holding-register words of one gateway command."""
    if len(words) != COMMAND_COUNT:
        raise RegisterMapError(
            f"a command is {COMMAND_COUNT} registers, not {len(words)}"
        )
    if words[HR_SUPPLY_COMMAND] not in (0, 1):
        raise RegisterMapError(
            f"supply command must be 0 (off) or 1 (on), not {words[0]}"
        )
    return CommandBlock(
        supply_on=words[HR_SUPPLY_COMMAND] == 1,
        allowance_raw=words_to_u32(words[HR_ALLOWANCE], words[HR_ALLOWANCE + 1]),
        display_balance_raw=words_to_i32(
            words[HR_DISPLAY_BALANCE], words[HR_DISPLAY_BALANCE + 1]
        ),
        display_decimals=words[HR_DISPLAY_DECIMALS],
        message_id=words[HR_DISPLAY_MESSAGE],
        watchdog_s=words[HR_WATCHDOG_S],
    )


def encode_state(state: StateBlock) -> list[int]:
    """Return the STATE_COUNT input-register words a unit reports."""
    return [
        state.device_type,
        state.output_kind,
        state.firmware,
        state.map_version,
        1 if state.supply_feedback else 0,
        int(state.status),
        *u32_to_words(state.allowance_raw),
        *u32_to_words(state.consumption_raw),
        state.watchdog_left_s,
        state.message_read,
    ]


def decode_state(words: Sequence[int]) -> StateBlock:
    """Read the STATE_COUNT input-register words a unit reports, checking identity.

    Raises RegisterMapError when the words come from another kind of device,
    from an incompatible map version, or carry values the map does not allow.
    """
    if len(words) != STATE_COUNT:
        raise RegisterMapError(
            f"the state block is {STATE_COUNT} registers, got {len(words)}"
        )
    if words[IR_DEVICE_TYPE] != DEVICE_TYPE:
        raise RegisterMapError(
            f"device type 0x{words[IR_DEVICE_TYPE]:04X} is not a prepaidgw "
            f"dispensing unit (0x{DEVICE_TYPE:04X}): check the unit's address"
        )
    if words[IR_MAP_VERSION] != REGISTER_MAP_VERSION:
        raise RegisterMapError(
            f"the unit speaks register map {words[IR_MAP_VERSION]}, this gateway "
            f"speaks {REGISTER_MAP_VERSION}: update the gateway or the unit firmware"
        )
    feedback = words[IR_SUPPLY_FEEDBACK]
    if feedback not in (0, 1):
        raise RegisterMapError(f"supply feedback must be 0 or 1, not {feedback}")
    return StateBlock(
        device_type=words[IR_DEVICE_TYPE],
        output_kind=words[IR_OUTPUT_KIND],
        firmware=words[IR_FIRMWARE],
        map_version=words[IR_MAP_VERSION],
        supply_feedback=feedback == 1,
        # Bits this map does not define are dropped, so a newer minor
        # firmware that adds a bit cannot confuse the gateway.
        status=Status(words[IR_STATUS] & _STATUS_MASK),
        allowance_raw=words_to_u32(words[IR_ALLOWANCE], words[IR_ALLOWANCE + 1]),
        consumption_raw=words_to_u32(words[IR_CONSUMPTION], words[IR_CONSUMPTION + 1]),
        watchdog_left_s=words[IR_WATCHDOG_LEFT],
        message_read=words[IR_MESSAGE_READ],
    )
