"""Tariff versions over time: the configured ones and those the cloud scheduled
(table tariff_schedule), merged into one timeline per tariff."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import structlog
from pydantic import ValidationError

from gateway.config.tariffs import Price, Tariff
from gateway.model import Medium
from gateway.tariffs.calendar import to_utc
from gateway.units import UnitError, factor_to_canonical

log = structlog.get_logger(__name__)

_CONFIG, _CLOUD = "config", "cloud"


@dataclass(frozen=True, slots=True)
class Version:
    """The prices in force from `effective` (UTC; None: the beginning of time)."""

    effective: datetime | None
    origin: str
    prices: Mapping[Medium, Price]
    cycles: Mapping[str, Decimal]

    @property
    def label(self) -> str:
        """Name the version in breakdowns: where it came from and when it began."""
        if self.effective is None:
            return f"{self.origin}:initial"
        return f"{self.origin}:{self.effective.isoformat()}"


@dataclass(frozen=True, slots=True)
class _Change:
    effective: datetime | None
    origin: str
    prices: Mapping[Medium, Price]
    cycles: Mapping[str, Decimal]


def timeline(
    tariff: Tariff, zone: ZoneInfo, cloud: list[_Change] | None = None
) -> list[Version]:
    """Return the tariff's versions, oldest first, each complete.

    A version names the media and appliances whose price changes; the others
    keep the price they had. When a configured and a cloud version take
    effect at the same moment, the cloud's (the newer instruction) wins.
    """
    changes = [_Change(None, _CONFIG, tariff.prices, tariff.cycles)]
    changes += [
        _Change(to_utc(v.effective_at, zone), _CONFIG, v.prices, v.cycles)
        for v in tariff.versions
    ]
    changes += cloud or []
    earliest = datetime.min.replace(tzinfo=UTC)
    changes.sort(key=lambda c: (c.effective or earliest, c.origin == _CLOUD))

    versions: list[Version] = []
    prices: dict[Medium, Price] = {}
    cycles: dict[str, Decimal] = {}
    for change in changes:
        prices = {**prices, **change.prices}
        cycles = {**cycles, **change.cycles}
        version = Version(change.effective, change.origin, prices, cycles)
        if versions and versions[-1].effective == change.effective:
            versions[-1] = version
        else:
            versions.append(version)
    return versions


class CloudSchedule:
    """The cloud's scheduled tariff versions, reread only when the table changed."""

    def __init__(self) -> None:
        self._seen: int | None = None
        self._warned: set[tuple[str, str, str]] = set()
        self.changes: dict[str, list[_Change]] = {}

    def refresh(self, conn: sqlite3.Connection) -> bool:
        """Reread tariff_schedule if it changed since the last call; say whether."""
        row = conn.execute(
            "SELECT n FROM tariff_schedule_changes WHERE id = 1"
        ).fetchone()
        counter = int(row[0])
        if counter == self._seen:
            return False
        changes: dict[str, list[_Change]] = {}
        for tariff_id, effective_at, prices in conn.execute(
            "SELECT tariff_id, effective_at, prices FROM tariff_schedule"
        ):
            parsed = self._prices(tariff_id, effective_at, prices)
            effective = datetime.fromisoformat(effective_at).astimezone(UTC)
            changes.setdefault(tariff_id, []).append(
                _Change(effective, _CLOUD, parsed, {})
            )
        self.changes = changes
        self._seen = counter
        log.info(
            "tariff_schedule_loaded",
            versions=sum(len(c) for c in changes.values()),
            tariffs=sorted(changes),
        )
        return True

    def _prices(
        self, tariff_id: str, effective_at: str, text: str
    ) -> dict[Medium, Price]:
        raw: Any = json.loads(text)
        out: dict[Medium, Price] = {}
        for medium_name, fields in raw.items():
            try:
                medium = Medium(medium_name)
                price = Price.model_validate(fields)
                factor_to_canonical(price.per, medium)
            except (ValueError, ValidationError, UnitError) as err:
                # A bad scheduled price must not stop billing: the medium
                # keeps its previous price, and the operator is told once.
                key = (tariff_id, effective_at, medium_name)
                if key not in self._warned:
                    self._warned.add(key)
                    log.warning(
                        "tariff_schedule_price_ignored",
                        tariff=tariff_id,
                        effective_at=effective_at,
                        medium=medium_name,
                        error=str(err).splitlines()[0],
                    )
                continue
            out[medium] = price
        return out
