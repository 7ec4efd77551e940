"""Laundry configuration: which units are washing machines or dryers, how a
cycle is billed, how much a booking holds, and the no-show rule."""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field

if TYPE_CHECKING:
    from gateway.config.model import Config


class Machine(BaseModel):
    """One washing machine or dryer (a unit of kind appliance)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    unit: str = Field(min_length=1, max_length=64)
    appliance: str = Field(
        min_length=1,
        max_length=64,
        pattern=r"^[a-z][a-z0-9_]*$",
        description="washing_machine or dryer: the name the tariff's `cycles` "
        "prices it by",
    )
    billing: Literal["cycle", "energy", "time"] = Field(
        "cycle", description="per cycle, per measured kWh, or per minute running"
    )
    price: Decimal = Field(
        ge=0, description="per cycle, per kWh or per minute, as `billing` says"
    )
    hold: Decimal | None = Field(
        None,
        ge=0,
        description="held from the resident's funds per booking "
        "(default: the price of one cycle)",
    )
    no_show_minutes: int = Field(
        15,
        ge=1,
        le=24 * 60,
        description="a booking not started this long after its slot began is released",
    )
    no_show_fee: Decimal = Field(
        Decimal(0), ge=0, description="charged on a no-show; 0 releases it free"
    )
    max_slot_minutes: int = Field(240, ge=10, le=24 * 60)
    idle_end_s: float = Field(
        600.0,
        gt=0,
        le=3600,
        description="a cycle has ended once the machine's counter stood still this "
        "long (soak and spin pauses are shorter)",
    )


class Laundry(BaseModel):
    """The building's laundry room."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    machines: list[Machine] = Field(min_length=1)


def problems(config: Config) -> Iterable[tuple[tuple[str | int, ...], str, object]]:
    """Yield (key path, message, value) for laundry references the schema cannot see."""
    from gateway.money import minor_digits

    if config.laundry is None:
        return
    units = {u.id: u for u in config.units}
    digits = minor_digits(config.site.currency)
    seen: set[str] = set()
    for i, m in enumerate(config.laundry.machines):
        path = ("laundry", "machines", i)
        unit = units.get(m.unit)
        if unit is None:
            listed = ", ".join(sorted(units)) or "none is configured"
            yield (*path, "unit"), f"no such unit; expected one of: {listed}", m.unit
        elif unit.kind != "appliance":
            yield (
                (*path, "unit"),
                f"unit is a {unit.kind}; make it kind: appliance",
                m.unit,
            )
        if m.unit in seen:
            yield (*path, "unit"), "this unit is listed twice", m.unit
        seen.add(m.unit)
        for name in ("price", "hold", "no_show_fee"):
            amount = getattr(m, name)
            if m.billing != "cycle" and name == "price":
                continue  # a price per kWh or minute may be finer than a cent
            if amount is not None and int(amount.as_tuple().exponent) < -digits:
                yield (
                    (*path, name),
                    f"{config.site.currency} has {digits} decimal places",
                    amount,
                )
