"""Tariffs: the exact cost of consumption over an interval, and the daily
standing charge. Costs are exact Decimals in major units; rounding to money
happens once, in the billing step."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from gateway.config.model import Config, Price, Tariff
from gateway.model import Medium
from gateway.units import canonical_unit, convert


class TariffError(LookupError):
    """No price is configured for what was consumed."""


class TariffBook:
    """Every configured tariff, and which account pays by which."""

    def __init__(self, config: Config) -> None:
        self._tariffs: dict[str, Tariff] = {t.id: t for t in config.tariffs}
        only = config.tariffs[0].id if len(config.tariffs) == 1 else None
        self._by_account = {a.id: a.tariff or only for a in config.accounts}

    def tariff_of(self, account_id: str) -> Tariff:
        tariff_id = self._by_account.get(account_id)
        if tariff_id is None:
            raise TariffError(f"account {account_id} has no tariff")
        return self._tariffs[tariff_id]

    def price(self, account_id: str, medium: Medium) -> Price:
        tariff = self.tariff_of(account_id)
        try:
            return tariff.prices[medium]
        except KeyError:
            raise TariffError(
                f"tariff {tariff.id} has no price for {medium.value}: add "
                f"tariffs[{tariff.id}].prices.{medium.value}"
            ) from None

    def cost(
        self,
        account_id: str,
        medium: Medium,
        quantity: Decimal,
        start: datetime,
        end: datetime,
    ) -> Decimal:
        """Return the exact cost of `quantity` (canonical unit) used in [start, end]."""
        del start, end  # a flat price does not depend on when
        price = self.price(account_id, medium)
        billed = convert(quantity, canonical_unit(medium), price.per, medium)
        return billed * price.price

    def standing_charge(self, account_id: str, medium: Medium, day: date) -> Decimal:
        """Return the exact standing charge for one local day."""
        del day
        try:
            return self.price(account_id, medium).standing_charge_per_day
        except TariffError:
            return Decimal(0)

    def headroom_quantity(
        self, account_id: str, medium: Medium, money_major: Decimal
    ) -> Decimal | None:
        """Return how much (canonical unit) money_major buys now; None if it is free."""
        price = self.price(account_id, medium)
        if price.price == 0:
            return None
        per = convert(Decimal(1), canonical_unit(medium), price.per, medium)
        return max(money_major, Decimal(0)) / (price.price * per)
