"""Reading integrity: turn a meter's new register value into consumption, or
into nothing and an alarm when the value cannot be trusted.

Pure logic over canonical-unit Decimals; the billing step stores the outcome.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import StrEnum

from gateway.model import Medium

# Readings that must agree with a suspicious new value before the gateway
# accepts it as the meter's new baseline (a swapped meter, a reset register).
CONFIRMATIONS = 3

# The fastest a flat can plausibly consume, per hour, in the canonical unit.
# A 3 x 63 A supply is about 43 kW; a flat's water meter (Q3 2.5) tops out
# near 3 m3/h; operating time cannot pass faster than the clock.
DEFAULT_MAX_RATE_PER_HOUR: dict[Medium, Decimal] = {
    Medium.ELECTRICITY: Decimal(50),
    Medium.WATER: Decimal(5),
    Medium.WARM_WATER: Decimal(3),
    Medium.HEAT: Decimal(50),
    Medium.COOLING: Decimal(50),
    Medium.GAS: Decimal(10),
    Medium.HEAT_COST: Decimal(50),
    Medium.OPERATING_TIME: Decimal(61),
}

# Even right after the previous reading, allow this many minutes of maximum
# flow, so that two polls a second apart do not make a real step implausible.
_MIN_WINDOW_HOURS = Decimal(1) / Decimal(60)


class Verdict(StrEnum):
    """What integrity made of a reading."""

    FIRST = "first"
    ADVANCE = "advance"
    REPEAT = "repeat"
    ROLLOVER = "rollover"
    BACKWARDS = "backwards"
    QUARANTINED = "quarantined"
    REBASELINED = "rebaselined"


@dataclass(frozen=True, slots=True)
class Previous:
    """What the gateway remembers of a meter between readings."""

    value: Decimal | None
    taken_at: datetime | None
    suspect_value: Decimal | None = None
    suspect_count: int = 0


@dataclass(frozen=True, slots=True)
class Assessment:
    """The verdict, the consumption to bill, and what to remember next."""

    verdict: Verdict
    consumption: Decimal
    remember: Previous
    alarm: str | None = None


@dataclass(frozen=True, slots=True)
class Limits:
    """How a meter's register behaves: where it wraps, how fast it may move."""

    modulus: Decimal
    max_rate_per_hour: Decimal

    def plausible(self, step: Decimal, hours: Decimal) -> bool:
        return step <= self.max_rate_per_hour * max(hours, _MIN_WINDOW_HOURS)


def assess(
    previous: Previous, value: Decimal, taken_at: datetime, limits: Limits
) -> Assessment:
    """Judge a new register value against the last accepted one."""
    if previous.value is None or previous.taken_at is None:
        return Assessment(Verdict.FIRST, Decimal(0), Previous(value, taken_at))

    last = previous.value
    hours = Decimal(max((taken_at - previous.taken_at).total_seconds(), 0)) / 3600

    if value == last:
        # Keep the time the register first showed this value: the next step
        # may have built up over the whole time since (coarse registers).
        return Assessment(Verdict.REPEAT, Decimal(0), Previous(last, previous.taken_at))

    if value > last:
        step = value - last
        if limits.plausible(step, hours):
            return Assessment(Verdict.ADVANCE, step, Previous(value, taken_at))
        return _suspect(
            previous,
            value,
            taken_at,
            limits,
            Verdict.QUARANTINED,
            f"register jumped by {step} in {hours:.2f} h, more than "
            f"{limits.max_rate_per_hour} an hour; not billed",
        )

    wrapped = limits.modulus - last + value
    if last >= limits.modulus * Decimal("0.9") and limits.plausible(wrapped, hours):
        return Assessment(Verdict.ROLLOVER, wrapped, Previous(value, taken_at))
    return _suspect(
        previous,
        value,
        taken_at,
        limits,
        Verdict.BACKWARDS,
        f"register went backwards from {last} to {value}; not billed",
    )


def _suspect(
    previous: Previous,
    value: Decimal,
    taken_at: datetime,
    limits: Limits,
    verdict: Verdict,
    alarm: str,
) -> Assessment:
    """Hold a value that cannot be trusted; accept it as a new baseline once confirmed.

    The consumption across the jump is never billed automatically: the raw
    history keeps it, and an operator books an adjustment if it was real.
    """
    agrees = (
        previous.suspect_value is not None
        and value >= previous.suspect_value
        and limits.plausible(value - previous.suspect_value, Decimal(1))
    )
    count = previous.suspect_count + 1 if agrees else 1
    if count >= CONFIRMATIONS:
        return Assessment(
            Verdict.REBASELINED,
            Decimal(0),
            Previous(value, taken_at),
            f"meter now reads {value} after {count} consistent readings; it was "
            f"{previous.value}. New baseline taken, the difference was not billed "
            f"(meter swapped or register reset?)",
        )
    held = Previous(previous.value, previous.taken_at, value, count)
    return Assessment(verdict, Decimal(0), held, alarm)
