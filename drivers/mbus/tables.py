"""Standard M-Bus constants (EN 13757-3): medium names, what each medium is
billed by, VIF decimal exponents, and unit spellings as gateway/units.py wants."""

from __future__ import annotations

from decimal import Decimal

from gateway.model import Medium

# Medium (device type) byte of the fixed header, named as libmbus prints it
# so that our output lines up with the public test corpus.
MEDIUM_TEXT: dict[int, str] = {
    0x00: "Other",
    0x01: "Oil",
    0x02: "Electricity",
    0x03: "Gas",
    0x04: "Heat: Outlet",
    0x05: "Steam",
    0x06: "Warm water (30-90°C)",
    0x07: "Water",
    0x08: "Heat Cost Allocator",
    0x09: "Compressed Air",
    0x0A: "Cooling load meter: Outlet",
    0x0B: "Cooling load meter: Inlet",
    0x0C: "Heat: Inlet",
    0x0D: "Heat / Cooling load meter",
    0x0E: "Bus/System",
    0x0F: "Unknown Medium",
    0x15: "Hot water (>=90°C)",
    0x16: "Cold water",
    0x17: "Hot/Cold Water meter",
    0x18: "Pressure",
    0x19: "A/D Converter",
}

# What the tariff bills each medium as. Combined heat/cooling meters and
# hot/cold water meters are left out on purpose: which register to bill
# depends on the installation, so they need a per-meter setting.
MEDIUM_KIND: dict[int, Medium] = {
    0x02: Medium.ELECTRICITY,
    0x03: Medium.GAS,
    0x04: Medium.HEAT,
    0x0C: Medium.HEAT,
    0x06: Medium.WARM_WATER,
    0x15: Medium.WARM_WATER,
    0x07: Medium.WATER,
    0x16: Medium.WATER,
    0x08: Medium.HEAT_COST,
    0x0A: Medium.COOLING,
    0x0B: Medium.COOLING,
}

# The quantity (as pymbusparser names it) that holds each medium's bill.
BILLING_QUANTITY: dict[Medium, str] = {
    Medium.ELECTRICITY: "Energy",
    Medium.HEAT: "Energy",
    Medium.COOLING: "Energy",
    Medium.WATER: "Volume",
    Medium.WARM_WATER: "Volume",
    Medium.GAS: "Volume",
    Medium.HEAT_COST: "Dimensionless HCA",
}


def medium_text(code: int) -> str:
    """Return the printed name of a medium byte."""
    return MEDIUM_TEXT.get(code, "Reserved")


def vif_exponent(vif: int) -> int | None:
    """Return the power of ten a primary VIF scales its value by, or None.

    The exponent is relative to the base unit pymbusparser reports (Wh, J,
    m3, kg, W, m3/h, degrees, bar). None means the VIF carries no decimal
    scale we know of (dates, ids, extension tables), so a value stays as is.
    """
    code = vif & 0x7F
    n3 = code & 0x07
    n2 = code & 0x03
    ranges3 = {0x00: -3, 0x08: 0, 0x10: -6, 0x18: -3, 0x28: -3, 0x30: 0, 0x38: -6}
    ranges3 |= {0x40: -7, 0x48: -9, 0x50: -3}
    base3 = code & 0x78
    if base3 in ranges3:
        return n3 + ranges3[base3]
    if 0x58 <= code <= 0x6B:
        return n2 - 3
    if 0x20 <= code <= 0x27 or code == 0x6E:
        return 0
    return None


# pymbusparser's unit spellings to the ones gateway/units.py uses, with the
# exact factor to apply to the value.
_UNITS: dict[str, tuple[str, Decimal]] = {
    "W.h": ("Wh", Decimal(1)),
    "J": ("J", Decimal(1)),
    "m3": ("m3", Decimal(1)),
    "d": ("h", Decimal(24)),
    "h": ("h", Decimal(1)),
    "min": ("min", Decimal(1)),
    "s": ("s", Decimal(1)),
    "Cel": ("°C", Decimal(1)),
    "m3.h-1": ("m3/h", Decimal(1)),
    "m³incrementInputPulseOnChannel0⁻¹": ("m3/pulse", Decimal(1)),
}


def normalise_unit(unit: str | None, quantity: str) -> tuple[str, Decimal]:
    """Return our spelling of a library unit and the factor to scale by."""
    if unit is None:
        return ("HCA", Decimal(1)) if "HCA" in quantity else ("", Decimal(1))
    return _UNITS.get(unit, (unit, Decimal(1)))
