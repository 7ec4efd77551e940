"""The tariff section of a site's configuration: prices per medium, their
versions over time, time-of-use bands, inclining blocks and cycle prices."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime, time
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    field_validator,
)

from gateway.model import Medium
from gateway.units import UnitError, factor_to_canonical

Ident = Annotated[
    str,
    Field(
        min_length=1,
        max_length=64,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$",
        description="letters, digits, '.', '_' or '-'",
    ),
]

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
MINUTES_A_DAY = 24 * 60


class _Strict(BaseModel):
    """Refuse unknown keys, so a typo is an error instead of a silent default."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def _clock_minutes(value: Any) -> int:
    """Read "HH:MM" (00:00 to 24:00) as minutes after local midnight."""
    if isinstance(value, int) and not isinstance(value, bool):
        # YAML 1.1 reads an unquoted 22:00 as the sexagesimal number 1320.
        raise ValueError(
            f"YAML read this time as the number {value}: put the time in quotes, "
            f'e.g. "22:00"'
        )
    if not isinstance(value, str):
        raise ValueError('expected a time of day in quotes, e.g. "07:00"')
    hours, sep, minutes = value.strip().partition(":")
    if not (sep and hours.isdigit() and minutes.isdigit() and len(minutes) == 2):
        raise ValueError(f'{value!r} is not a time of day: write it like "07:00"')
    total = int(hours) * 60 + int(minutes)
    if int(minutes) > 59 or total > MINUTES_A_DAY:
        raise ValueError(f"{value!r} is not between 00:00 and 24:00")
    return total


ClockMinutes = Annotated[int, BeforeValidator(_clock_minutes)]


def _local_start(value: Any) -> Any:
    """Let a plain date mean its local midnight."""
    if isinstance(value, date) and not isinstance(value, datetime):
        return datetime.combine(value, time())
    return value


def _no_offset(value: datetime) -> datetime:
    if value.tzinfo is not None:
        raise ValueError(
            "write the local date-time without an offset: the site timezone applies"
        )
    return value


LocalDateTime = Annotated[
    datetime, BeforeValidator(_local_start), AfterValidator(_no_offset)
]


Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]


def _every_day() -> list[Weekday]:
    return ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]


class Band(_Strict):
    """A time-of-use band: a price between two local wall-clock times on some days."""

    name: str = Field("band", min_length=1, max_length=32)
    days: list[Weekday] = Field(default_factory=_every_day, min_length=1)
    start: ClockMinutes = Field(description='local time the band begins, "07:00"')
    end: ClockMinutes = Field(description='local time it ends, up to "24:00"')
    price: Decimal = Field(ge=0)

    def weekday_numbers(self) -> frozenset[int]:
        """Return the days as Python weekday numbers (Monday is 0)."""
        return frozenset(WEEKDAYS.index(d) for d in self.days)


class Block(_Strict):
    """One step of an inclining-block tariff: this price up to a period's total."""

    up_to: Decimal = Field(gt=0, description="period total this step ends at")
    price: Decimal = Field(ge=0)


class Price(_Strict):
    """What one unit of a medium costs, and its daily standing charge.

    `price` is what applies when nothing more specific does: outside every
    band, or above the last block.
    """

    price: Decimal = Field(ge=0)
    per: str = Field(description="unit the price is per, e.g. kWh, m3, l, min")
    standing_charge_per_day: Decimal = Field(Decimal(0), ge=0)
    bands: list[Band] = Field(
        default_factory=list, description="time-of-use bands in local time"
    )
    blocks: list[Block] = Field(
        default_factory=list, description="inclining blocks, cheapest first"
    )
    block_period: Literal["month", "year"] = "month"

    @property
    def kind(self) -> str:
        """Say which kind of tariff this is: flat, time_of_use or blocks."""
        if self.bands:
            return "time_of_use"
        if self.blocks:
            return "blocks"
        return "flat"

    def highest(self) -> Decimal:
        """Return the highest price any unit can cost under this price."""
        return max(
            [
                self.price,
                *(b.price for b in self.bands),
                *(b.price for b in self.blocks),
            ]
        )


class TariffVersion(_Strict):
    """Prices from a local date-time on; media and appliances it omits keep theirs."""

    effective_at: LocalDateTime = Field(
        description="local date-time (site timezone) the version takes effect"
    )
    prices: dict[Medium, Price] = Field(default_factory=dict)
    cycles: dict[Ident, Decimal] = Field(
        default_factory=dict, description="price per appliance cycle"
    )

    @field_validator("cycles")
    @classmethod
    def _cycles_not_negative(cls, value: dict[str, Decimal]) -> dict[str, Decimal]:
        for name, price in value.items():
            if price < 0:
                raise ValueError(f"cycle price for {name} must be zero or more")
        return value


class Tariff(_Strict):
    """A tariff: prices from the beginning of time, then dated versions."""

    id: Ident
    prices: dict[Medium, Price] = Field(default_factory=dict)
    cycles: dict[Ident, Decimal] = Field(
        default_factory=dict, description="price per appliance cycle"
    )
    versions: list[TariffVersion] = Field(default_factory=list)

    @field_validator("cycles")
    @classmethod
    def _cycles_not_negative(cls, value: dict[str, Decimal]) -> dict[str, Decimal]:
        for name, price in value.items():
            if price < 0:
                raise ValueError(f"cycle price for {name} must be zero or more")
        return value


ProblemTuple = tuple[tuple[str | int, ...], str, object]


def tariff_problems(tariffs: list[Tariff]) -> Iterator[ProblemTuple]:
    """Yield (key path, what to change, bad value) for every tariff that cannot bill.

    The key paths point at the offending entry, so the loader can name its line.
    """
    for i, tariff in enumerate(tariffs):
        here: tuple[str | int, ...] = ("tariffs", i)
        if not tariff.prices and not tariff.cycles and not tariff.versions:
            yield here, "a tariff needs `prices`, `cycles` or `versions`", tariff.id
        for medium, price in tariff.prices.items():
            yield from _price_problems((*here, "prices", medium.value), price, False)
        for j, version in enumerate(tariff.versions):
            at = (*here, "versions", j)
            if j and version.effective_at <= tariff.versions[j - 1].effective_at:
                yield (
                    (*at, "effective_at"),
                    f"must be later than versions[{j - 1}].effective_at "
                    f"({tariff.versions[j - 1].effective_at}): list versions "
                    f"oldest first",
                    str(version.effective_at),
                )
            if not version.prices and not version.cycles:
                yield at, "a version needs `prices` or `cycles`", None
            for medium, price in version.prices.items():
                yield from _price_problems((*at, "prices", medium.value), price, True)


def _price_problems(
    at: tuple[str | int, ...], price: Price, check_unit: bool
) -> Iterator[ProblemTuple]:
    # The loader already checks the unit of the simple form's prices.
    if check_unit:
        try:
            factor_to_canonical(price.per, Medium(str(at[-1])))
        except UnitError as err:
            yield (*at, "per"), str(err), price.per
    if price.bands and price.blocks:
        yield at, "use either `bands` or `blocks` in one price, not both", None
    for k, band in enumerate(price.bands):
        if band.end <= band.start:
            yield (
                (*at, "bands", k, "end"),
                "must be later than `start` on the same day; split a band that "
                'crosses midnight in two (e.g. "22:00"-"24:00" and "00:00"-"06:00")',
                _hhmm(band.end),
            )
    for k, band in enumerate(price.bands):
        for m in range(k):
            other = price.bands[m]
            days = band.weekday_numbers() & other.weekday_numbers()
            if days and band.start < other.end and other.start < band.end:
                day = WEEKDAYS[min(days)]
                yield (
                    (*at, "bands", k),
                    f"overlaps bands[{m}] ({other.name}) on {day} between "
                    f"{_hhmm(max(band.start, other.start))} and "
                    f"{_hhmm(min(band.end, other.end))}: a moment may have one price",
                    None,
                )
    for k in range(1, len(price.blocks)):
        if price.blocks[k].up_to <= price.blocks[k - 1].up_to:
            yield (
                (*at, "blocks", k, "up_to"),
                f"blocks must increase: must exceed blocks[{k - 1}].up_to "
                f"({price.blocks[k - 1].up_to})",
                str(price.blocks[k].up_to),
            )


def _hhmm(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"
