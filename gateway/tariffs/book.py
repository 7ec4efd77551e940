"""The tariff book: which account pays by which tariff, and what consumption,
a day's standing charge, or an appliance cycle costs at a given time.

Costs are exact Decimals in major units; rounding to money happens once, in
the billing step. Versions come from the configuration and from the cloud's
schedule (table tariff_schedule), read through a connection the caller
passes in and cached until that table changes.
"""

from __future__ import annotations

import sqlite3
from datetime import date, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

from gateway.config.model import Config
from gateway.config.tariffs import Price, Tariff
from gateway.model import Medium
from gateway.tariffs import usage
from gateway.tariffs.calendar import local_day_start
from gateway.tariffs.pricing import (
    Charge,
    TariffError,
    price_interval,
    price_of,
    version_at,
)
from gateway.tariffs.versions import CloudSchedule, Version, timeline
from gateway.units import canonical_unit, convert


class TariffBook:
    """Every configured tariff, its versions, and which account pays by which."""

    def __init__(self, config: Config) -> None:
        self.zone = ZoneInfo(config.site.timezone)
        self._tariffs: dict[str, Tariff] = {t.id: t for t in config.tariffs}
        only = config.tariffs[0].id if len(config.tariffs) == 1 else None
        self._by_account = {a.id: a.tariff or only for a in config.accounts}
        self._cloud = CloudSchedule()
        self._versions = {t.id: timeline(t, self.zone) for t in config.tariffs}

    # Versions ------------------------------------------------------------

    def refresh(self, conn: sqlite3.Connection) -> None:
        """Take in the cloud's scheduled versions if tariff_schedule changed."""
        if self._cloud.refresh(conn):
            self._versions = {
                t.id: timeline(t, self.zone, self._cloud.changes.get(t.id))
                for t in self._tariffs.values()
            }

    def tariff_of(self, account_id: str) -> Tariff:
        """Return the tariff an account pays by."""
        tariff_id = self._by_account.get(account_id)
        if tariff_id is None:
            raise TariffError(
                f"account {account_id} has no tariff: name one in its `tariff:` key"
            )
        return self._tariffs[tariff_id]

    def versions(
        self, account_id: str, conn: sqlite3.Connection | None = None
    ) -> list[Version]:
        """Return the versions of an account's tariff, oldest first."""
        if conn is not None:
            self.refresh(conn)
        return self._versions[self.tariff_of(account_id).id]

    def price(
        self,
        account_id: str,
        medium: Medium,
        at: datetime | None = None,
        *,
        conn: sqlite3.Connection | None = None,
    ) -> Price:
        """Return the price of a medium at a moment (None: the latest version's)."""
        versions = self.versions(account_id, conn)
        tariff_id = self.tariff_of(account_id).id
        if at is None:
            with_medium = [v for v in versions if medium in v.prices]
            if not with_medium:
                raise TariffError(
                    f"tariff {tariff_id} has no price for {medium.value}: add "
                    f"tariffs[{tariff_id}].prices.{medium.value}"
                )
            return with_medium[-1].prices[medium]
        return price_of(versions, tariff_id, medium, at)

    # Consumption -----------------------------------------------------------

    def quote(
        self,
        account_id: str,
        medium: Medium,
        quantity: Decimal,
        start: datetime,
        end: datetime,
        *,
        conn: sqlite3.Connection | None = None,
    ) -> Charge:
        """Return the exact cost and breakdown of `quantity` (canonical unit)
        used in [start, end], without recording anything."""
        versions = self.versions(account_id, conn)
        used = None
        if conn is not None:

            def used(period: str) -> Decimal:
                return usage.used(conn, account_id, medium, period)

        return price_interval(
            versions,
            self.tariff_of(account_id).id,
            medium,
            quantity,
            start,
            end,
            self.zone,
            used,
        )

    def cost(
        self,
        account_id: str,
        medium: Medium,
        quantity: Decimal,
        start: datetime,
        end: datetime,
        *,
        conn: sqlite3.Connection | None = None,
    ) -> Decimal:
        """Return the exact cost of `quantity` (canonical unit) used in [start, end]."""
        return self.quote(account_id, medium, quantity, start, end, conn=conn).cost

    def charge(
        self,
        conn: sqlite3.Connection,
        account_id: str,
        medium: Medium,
        quantity: Decimal,
        start: datetime,
        end: datetime,
    ) -> Charge:
        """Price consumption and count it towards its months' blocks.

        Call it inside the billing transaction, once per interval: the usage
        it records commits or rolls back with the debit, so a restart neither
        counts an interval twice nor loses it.
        """
        if not conn.in_transaction:
            raise TariffError("TariffBook.charge must run inside store.transaction()")
        charge = self.quote(account_id, medium, quantity, start, end, conn=conn)
        usage.record(conn, account_id, medium, charge.months)
        return charge

    # Other prices ------------------------------------------------------------

    def standing_charge(
        self,
        account_id: str,
        medium: Medium,
        day: date,
        *,
        conn: sqlite3.Connection | None = None,
    ) -> Decimal:
        """Return the exact standing charge for one local day.

        The version in force at the day's local midnight sets it for the
        whole day.
        """
        versions = self.versions(account_id, conn)
        version = version_at(versions, local_day_start(day, self.zone))
        price = version.prices.get(medium)
        return Decimal(0) if price is None else price.standing_charge_per_day

    def cycle_price(
        self,
        account_id: str,
        appliance: str,
        *,
        at: datetime | None = None,
        conn: sqlite3.Connection | None = None,
    ) -> Decimal:
        """Return the price of one appliance cycle (`at` None: the latest price)."""
        versions = self.versions(account_id, conn)
        if at is not None:
            versions = [version_at(versions, at)]
        for version in reversed(versions):
            if appliance in version.cycles:
                return version.cycles[appliance]
        tariff_id = self.tariff_of(account_id).id
        known = sorted({name for v in versions for name in v.cycles})
        raise TariffError(
            f"tariff {tariff_id} has no cycle price for {appliance!r}"
            + (f" (it prices: {', '.join(known)})" if known else "")
            + f": add tariffs[{tariff_id}].cycles.{appliance}"
        )

    def headroom_quantity(
        self,
        account_id: str,
        medium: Medium,
        money_major: Decimal,
        *,
        at: datetime | None = None,
        conn: sqlite3.Connection | None = None,
    ) -> Decimal | None:
        """Return how much (canonical unit) money_major buys at most; None if free.

        A unit's allowance must never let it dispense more than was paid
        for, whatever band or block the consumption falls into, so this uses
        the highest price of every band and block, of the version in force
        at `at` and of every later one (a price rise already scheduled). With
        `at` None, every version counts.
        """
        versions = self.versions(account_id, conn)
        if at is not None:
            current = version_at(versions, at)
            versions = versions[versions.index(current) :]
        prices = [v.prices[medium] for v in versions if medium in v.prices]
        if not prices:
            tariff_id = self.tariff_of(account_id).id
            raise TariffError(
                f"tariff {tariff_id} has no price for {medium.value}: add "
                f"tariffs[{tariff_id}].prices.{medium.value}"
            )
        per_canonical = max(
            p.highest() / convert(Decimal(1), p.per, canonical_unit(medium), medium)
            for p in prices
        )
        if per_canonical == 0:
            return None
        return max(money_major, Decimal(0)) / per_canonical
