"""Physical units: which one each medium is billed in, and exact factors
between units of the same dimension."""

from __future__ import annotations

from decimal import Decimal

from gateway.model import Medium


class UnitError(ValueError):
    """A unit that does not fit the medium, or that we do not know."""


_ENERGY = {
    "Wh": Decimal("0.001"),
    "kWh": Decimal(1),
    "MWh": Decimal(1000),
    "J": Decimal(1) / Decimal(3_600_000),
    "kJ": Decimal(1) / Decimal(3600),
    "MJ": Decimal(1) / Decimal("3.6"),
    "GJ": Decimal(1000) / Decimal("3.6"),
}
_VOLUME = {"m3": Decimal(1), "l": Decimal("0.001"), "L": Decimal("0.001")}
_HCA = {"HCA": Decimal(1), "units": Decimal(1)}
_TIME = {"s": Decimal(1) / Decimal(60), "min": Decimal(1), "h": Decimal(60)}

# Spellings decoders print for the same unit.
_ALIASES = {
    "m^3": "m3",
    "m³": "m3",
    "litre": "l",
    "liter": "l",
    "sec": "s",
    "minutes": "min",
    "hours": "h",
    "": "HCA",
}

CANONICAL: dict[Medium, tuple[str, dict[str, Decimal]]] = {
    Medium.ELECTRICITY: ("kWh", _ENERGY),
    Medium.HEAT: ("kWh", _ENERGY),
    Medium.COOLING: ("kWh", _ENERGY),
    Medium.WATER: ("m3", _VOLUME),
    Medium.WARM_WATER: ("m3", _VOLUME),
    Medium.GAS: ("m3", _VOLUME),
    Medium.HEAT_COST: ("HCA", _HCA),
    Medium.OPERATING_TIME: ("min", _TIME),
}


def normalise(unit: str) -> str:
    return _ALIASES.get(unit, unit)


def canonical_unit(medium: Medium) -> str:
    return CANONICAL[medium][0]


def factor_to_canonical(unit: str, medium: Medium) -> Decimal:
    """Return f such that value_in_unit * f is the value in the medium's unit."""
    table = CANONICAL[medium][1]
    unit = normalise(unit)
    if unit not in table:
        raise UnitError(
            f"{medium.value} is measured in {', '.join(table)}; not {unit!r}"
        )
    return table[unit]


def convert(value: Decimal, unit: str, to_unit: str, medium: Medium) -> Decimal:
    """Convert between two units of one medium's dimension."""
    if normalise(unit) == normalise(to_unit):
        return value
    return (
        value * factor_to_canonical(unit, medium) / factor_to_canonical(to_unit, medium)
    )
