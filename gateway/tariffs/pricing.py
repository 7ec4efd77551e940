"""The exact cost of consumption over an interval: split at version changes,
time-of-use band edges and month starts (all in local time), spread the
quantity linearly in time, and price each piece.

Only two register values are known for an interval, so the consumption is
assumed to flow at a constant rate between them: a piece of the interval
gets the share of the quantity that its share of the duration is. The last
piece takes the remainder, so the pieces always add up to the quantity.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

from gateway.config.tariffs import Price
from gateway.model import Medium
from gateway.tariffs.calendar import crossings
from gateway.tariffs.versions import Version
from gateway.units import canonical_unit, convert


class TariffError(LookupError):
    """No price is configured for what was consumed, or it cannot be priced."""


@dataclass(frozen=True, slots=True)
class Line:
    """One priced part of an interval: a version, a band or block, a quantity."""

    start: datetime
    end: datetime
    version: str
    label: str
    quantity: Decimal
    per: str
    price: Decimal
    cost: Decimal

    def to_json(self) -> dict[str, str]:
        """Return the line as text fields for a ledger entry's detail."""
        return {
            "from": self.start.isoformat(),
            "to": self.end.isoformat(),
            "version": self.version,
            "label": self.label,
            "quantity": str(self.quantity),
            "per": self.per,
            "price": str(self.price),
            "cost": str(self.cost),
        }


@dataclass(frozen=True, slots=True)
class Charge:
    """The exact cost of one interval, its breakdown, and its usage per month."""

    cost: Decimal
    lines: tuple[Line, ...]
    months: tuple[tuple[str, Decimal], ...]

    def detail(self) -> list[dict[str, str]]:
        """Return the breakdown as JSON-ready lines."""
        return [line.to_json() for line in self.lines]


@dataclass(frozen=True, slots=True)
class _Piece:
    start: datetime
    end: datetime
    version: Version
    price: Price


# Quantity already billed in a block period ('YYYY-MM' or 'YYYY'), canonical unit.
Used = Callable[[str], Decimal]


def version_at(versions: list[Version], moment: datetime) -> Version:
    """Return the version in force at a moment (the last one begun by then)."""
    found = versions[0]
    for version in versions[1:]:
        assert version.effective is not None
        if version.effective > moment:
            break
        found = version
    return found


def price_of(
    versions: list[Version], tariff_id: str, medium: Medium, moment: datetime
) -> Price:
    """Return the price of a medium in force at a moment, or say what to configure."""
    version = version_at(versions, moment)
    try:
        return version.prices[medium]
    except KeyError:
        raise TariffError(
            f"tariff {tariff_id} has no price for {medium.value} at "
            f"{moment.isoformat()}: add tariffs[{tariff_id}].prices.{medium.value} "
            f"or a version with it that starts earlier"
        ) from None


def price_interval(
    versions: list[Version],
    tariff_id: str,
    medium: Medium,
    quantity: Decimal,
    start: datetime,
    end: datetime,
    zone: ZoneInfo,
    used: Used | None,
) -> Charge:
    """Return the exact cost of `quantity` (canonical unit) used in [start, end]."""
    start, end = start.astimezone(UTC), end.astimezone(UTC)
    pieces = _pieces(versions, tariff_id, medium, start, end, zone)
    shares = _spread(quantity, pieces)

    lines: list[Line] = []
    months: dict[str, Decimal] = {}
    for piece, share in zip(pieces, shares, strict=True):
        local = piece.start.astimezone(zone)
        month = f"{local.year:04d}-{local.month:02d}"
        if share == 0:
            continue
        billed = convert(share, canonical_unit(medium), piece.price.per, medium)
        if piece.price.blocks:
            if used is None:
                raise TariffError(
                    f"tariff {tariff_id} prices {medium.value} in inclining blocks, "
                    f"which need the usage already billed: pass the database "
                    f"connection"
                )
            period = month if piece.price.block_period == "month" else month[:4]
            already = used(period) + sum(
                (q for m, q in months.items() if m.startswith(period)), Decimal(0)
            )
            done = convert(already, canonical_unit(medium), piece.price.per, medium)
            lines += _block_lines(piece, billed, done)
        else:
            label, price = _band(piece.price, local)
            lines.append(
                Line(
                    piece.start,
                    piece.end,
                    piece.version.label,
                    label,
                    billed,
                    piece.price.per,
                    price,
                    billed * price,
                )
            )
        months[month] = months.get(month, Decimal(0)) + share

    merged = _merge(lines)
    cost = sum((line.cost for line in merged), Decimal(0))
    return Charge(cost, tuple(merged), tuple(months.items()))


def _pieces(
    versions: list[Version],
    tariff_id: str,
    medium: Medium,
    start: datetime,
    end: datetime,
    zone: ZoneInfo,
) -> list[_Piece]:
    if end <= start:
        # No duration to spread over: price everything at the reading's time.
        return [
            _Piece(
                end,
                end,
                version_at(versions, end),
                price_of(versions, tariff_id, medium, end),
            )
        ]
    edges = [start]
    edges += [
        v.effective
        for v in versions
        if v.effective is not None and start < v.effective < end
    ]
    edges.append(end)

    pieces: list[_Piece] = []
    for lo, hi in itertools.pairwise(edges):
        version = version_at(versions, lo)
        price = price_of(versions, tariff_id, medium, lo)
        inner = crossings(lo, hi, zone, _marks(price))
        bounds = [lo, *inner, hi]
        pieces += [_Piece(a, b, version, price) for a, b in itertools.pairwise(bounds)]
    return pieces


def _marks(price: Price) -> Callable[[date], list[int]]:
    """Return the local times of day at which this price's pieces must split."""
    by_day: dict[int, list[int]] = {d: [] for d in range(7)}
    for band in price.bands:
        for day in band.weekday_numbers():
            by_day[day] += [band.start, band.end]

    def marks(day: date) -> list[int]:
        # Midnight splits for a new weekday's bands and for a new month.
        out = list(by_day[day.weekday()])
        if price.bands or day.day == 1:
            out.append(0)
        return out

    return marks


def _spread(quantity: Decimal, pieces: list[_Piece]) -> list[Decimal]:
    """Share the quantity among pieces by duration; the last takes the rest."""
    total = sum(_micros(p) for p in pieces)
    if total == 0:
        return [quantity] + [Decimal(0)] * (len(pieces) - 1)
    shares = [quantity * _micros(p) / total for p in pieces[:-1]]
    return [*shares, quantity - sum(shares, Decimal(0))]


def _micros(piece: _Piece) -> int:
    span = piece.end - piece.start
    return (span.days * 86_400 + span.seconds) * 1_000_000 + span.microseconds


def _band(price: Price, local: datetime) -> tuple[str, Decimal]:
    """Return the band in force at a local wall-clock time, or the default price."""
    minute = local.hour * 60 + local.minute
    for band in price.bands:
        if (
            local.weekday() in band.weekday_numbers()
            and band.start <= minute < band.end
        ):
            return band.name, band.price
    return ("default" if price.bands else "flat"), price.price


def _block_lines(piece: _Piece, billed: Decimal, done: Decimal) -> list[Line]:
    """Price [done, done + billed] over the blocks; `done` was billed before."""
    lines = []
    lower = Decimal(0)
    steps: list[tuple[Decimal | None, Decimal]] = [
        (b.up_to, b.price) for b in piece.price.blocks
    ]
    steps.append((None, piece.price.price))
    for k, (up_to, price) in enumerate(steps, start=1):
        low = max(done, lower)
        high = done + billed if up_to is None else min(done + billed, up_to)
        if high > low:
            amount = high - low
            label = f"block {k}" if up_to is not None else "above blocks"
            lines.append(
                Line(
                    piece.start,
                    piece.end,
                    piece.version.label,
                    label,
                    amount,
                    piece.price.per,
                    price,
                    amount * price,
                )
            )
        if up_to is not None:
            lower = up_to
    return lines


def _merge(lines: list[Line]) -> list[Line]:
    """Join neighbouring lines of one version, band and price into one."""
    merged: list[Line] = []
    for line in lines:
        last = merged[-1] if merged else None
        if (
            last is not None
            and (last.version, last.label, last.price, last.per)
            == (line.version, line.label, line.price, line.per)
            and last.end == line.start
        ):
            merged[-1] = replace(
                last,
                end=line.end,
                quantity=last.quantity + line.quantity,
                cost=last.cost + line.cost,
            )
        else:
            merged.append(line)
    return merged
