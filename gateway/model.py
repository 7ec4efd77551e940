"""What crosses the border between drivers and the gateway: readings going in,
unit commands going out, unit states coming back. Plain values, no money."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum

from gateway.clock import Stamp


class Medium(StrEnum):
    """What a meter measures, as the tariff bills it."""

    ELECTRICITY = "electricity"
    WATER = "water"
    WARM_WATER = "warm_water"
    HEAT = "heat"
    COOLING = "cooling"
    GAS = "gas"
    HEAT_COST = "heat_cost"
    OPERATING_TIME = "operating_time"


@dataclass(frozen=True, slots=True)
class Reading:
    """A billing-register value as a meter reported it, in its physical unit."""

    meter_id: str
    value: Decimal
    unit: str
    stamp: Stamp
    source: str
    raw: bytes = b""


@dataclass(frozen=True, slots=True)
class UnitCommand:
    """What the gateway wants a dispensing unit to do now.

    `allowance` is how much the unit may still dispense (in its meter's
    canonical unit) before it must switch off by itself if the gateway goes
    silent; None means unlimited. The display balance is whole minor units
    of the account's currency, signed.
    """

    unit_id: str
    supply_on: bool
    allowance: Decimal | None = None
    display_balance_minor: int | None = None
    display_decimals: int = 2
    message_id: int | None = None


@dataclass(frozen=True, slots=True)
class UnitState:
    """What a dispensing unit reports about itself."""

    unit_id: str
    supply_on: bool
    stamp: Stamp
    tamper: bool = False
    manual_override: bool = False
    allowance: Decimal | None = None
    extra: dict[str, object] = field(default_factory=dict)


class LinkError(Exception):
    """A device did not answer in time, or the port itself failed."""


class FrameError(Exception):
    """Bytes arrived but do not form a valid frame (checksum, length, garbage)."""


class SecurityError(FrameError):
    """A frame failed authentication: wrong key, bad MAC, replay, forged cleartext."""
