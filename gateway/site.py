"""The configuration resolved into what the running gateway looks up:
each meter's account, medium and limits; each account's rules and units."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from gateway.config.model import Config
from gateway.model import Medium
from gateway.policy import Rules
from gateway.readings import DEFAULT_MAX_RATE_PER_HOUR, Limits
from gateway.tariffs import TariffBook
from gateway.units import canonical_unit


@dataclass(frozen=True, slots=True)
class MeterPlan:
    """One meter as billing sees it."""

    id: str
    medium: Medium
    account_id: str
    limits: Limits

    @property
    def unit(self) -> str:
        return canonical_unit(self.medium)


@dataclass(frozen=True, slots=True)
class UnitPlan:
    """One dispensing unit: its bus, address, and the account it dispenses for."""

    id: str
    bus_id: str
    address: int
    kind: str
    account_id: str
    medium: Medium
    meter_ids: tuple[str, ...]


class SitePlan:
    """Lookups built once from a validated Config."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.currency = config.site.currency
        self.tariffs = TariffBook(config)
        self.meters: dict[str, MeterPlan] = {}
        for m in config.meters:
            rate = m.max_rate_per_hour or DEFAULT_MAX_RATE_PER_HOUR[m.medium]
            modulus = Decimal(10) ** m.register_digits
            self.meters[m.id] = MeterPlan(
                m.id, m.medium, m.account, Limits(modulus, rate)
            )
        self.rules: dict[str, Rules] = {
            a.id: Rules(config.money(a.credit_line), config.money(a.low_balance))
            for a in config.accounts
        }
        self.units: dict[str, UnitPlan] = {}
        for u in config.units:
            first = self.meters[u.meters[0]]
            self.units[u.id] = UnitPlan(
                u.id,
                u.bus,
                u.address,
                u.kind,
                first.account_id,
                first.medium,
                tuple(u.meters),
            )

    def meters_of(self, account_id: str) -> list[MeterPlan]:
        return [m for m in self.meters.values() if m.account_id == account_id]
