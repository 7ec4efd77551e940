"""Actuators: the account decisions turned into commands for dispensing units,
sent until each unit's own feedback agrees."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Sequence
from contextlib import suppress
from datetime import UTC, datetime
from decimal import Decimal
from typing import Protocol

import structlog

from gateway import accounts, budgets, friendly, laundry, ledger, messages
from gateway.clock import Clock, Stamp
from gateway.health import DeviceHealth
from gateway.laundry_watch import CycleWatch
from gateway.model import FrameError, LinkError, Medium, UnitCommand, UnitState
from gateway.money import minor_digits
from gateway.policy import SupplyState
from gateway.site import SitePlan, UnitPlan
from gateway.store import transaction

log = structlog.get_logger(__name__)

# Allowance is sent in thousandths of the canonical unit; finer is noise.
_ALLOWANCE_STEP = Decimal("0.001")
_LIFELINE_MEDIA = (Medium.WATER, Medium.WARM_WATER)


class UnitLink(Protocol):
    """A bus or radio that reaches dispensing units."""

    async def open(self) -> None: ...

    async def close(self) -> None: ...

    async def apply(
        self, address: int, unit_id: str, command: UnitCommand
    ) -> UnitState: ...


def desired_command(
    conn: sqlite3.Connection, site: SitePlan, unit: UnitPlan, stamp: Stamp
) -> UnitCommand:
    """Return what a unit should do now, from its account's state and balance.

    A cut-off water unit whose account has a lifeline stays open with an
    allowance of what is left of today's lifeline; the unit counts it down
    and closes by itself. A spent sub-budget closes that medium's units only.
    A laundry machine runs only inside a booked slot, and a cycle once
    started is never cut off. An operator's override has the last word.
    """
    balance = ledger.balance(conn, unit.account_id)
    if unit.kind == "appliance":
        supply_on, allowance = _appliance(conn, unit, stamp), None
    else:
        supply_on, allowance = _supply(conn, site, unit, stamp)
    override = _override(conn, unit.id, stamp)
    if override is not None:
        supply_on, allowance = override, None if override else Decimal(0)
    if allowance is not None:
        allowance = allowance.quantize(_ALLOWANCE_STEP, rounding="ROUND_FLOOR")
    return UnitCommand(
        unit_id=unit.id,
        supply_on=supply_on,
        allowance=allowance,
        display_balance_minor=balance.minor,
        display_decimals=minor_digits(balance.currency),
        message_id=messages.pending_for_unit(conn, unit.id, stamp),
    )


def _supply(
    conn: sqlite3.Connection, site: SitePlan, unit: UnitPlan, stamp: Stamp
) -> tuple[bool, Decimal | None]:
    """Return whether a valve or contactor is on, and what it may still dispense."""
    state = accounts.state_of(conn, unit.account_id)
    rules = accounts.rules_of(conn, unit.account_id)
    exhausted = budgets.medium_exhausted(conn, unit.account_id, unit.medium, stamp)
    if state != SupplyState.CUT_OFF and not exhausted:
        headroom = rules.remaining(laundry.available(conn, unit.account_id)).major
        allowance = site.tariffs.headroom_quantity(
            unit.account_id, unit.medium, headroom, at=stamp.at, conn=conn
        )
        return True, allowance
    if rules.lifeline_litres is not None and unit.medium in _LIFELINE_MEDIA:
        left = _lifeline_left(conn, unit, rules.lifeline_litres, stamp.at)
        return left > 0, left
    return False, Decimal(0)


def _appliance(conn: sqlite3.Connection, unit: UnitPlan, stamp: Stamp) -> bool:
    """Return whether a washing machine or dryer may run now."""
    if laundry.cycle_running(conn, unit.id):
        return True
    enabled, _why = laundry.appliance_enabled(conn, unit.id, stamp)
    return enabled


def _override(conn: sqlite3.Connection, unit_id: str, stamp: Stamp) -> bool | None:
    """Return an operator's forced state for the unit (maintenance), if one holds."""
    row = conn.execute(
        "SELECT mode FROM unit_overrides WHERE unit_id = ? "
        "AND (until IS NULL OR until > ?)",
        (unit_id, stamp.iso()),
    ).fetchone()
    return None if row is None else row["mode"] == "on"


def _lifeline_left(
    conn: sqlite3.Connection, unit: UnitPlan, litres: Decimal, now: datetime
) -> Decimal:
    """Return the lifeline water (m3) still allowed today since the cut-off."""
    row = conn.execute(
        "SELECT state_since FROM balances WHERE account_id = ?", (unit.account_id,)
    ).fetchone()
    since = friendly.local_day_start(conn, now)
    if row is not None and row["state_since"] is not None:
        since = max(since, datetime.fromisoformat(row["state_since"]))
    marks = ",".join("?" * len(unit.meter_ids))
    drawn = sum(
        (
            Decimal(r["delta"])
            for r in conn.execute(
                f"SELECT delta FROM readings WHERE meter_id IN ({marks}) "
                "AND taken_at > ? AND delta IS NOT NULL",
                (
                    *unit.meter_ids,
                    since.astimezone(UTC).isoformat(timespec="milliseconds"),
                ),
            )
        ),
        Decimal(0),
    )
    # Water is billed in m3; the lifeline is configured in litres.
    return max(litres / 1000 - drawn, Decimal(0))


class Actuator:
    """Keeps the units on one bus in the state their accounts' decisions ask for."""

    def __init__(
        self,
        bus_id: str,
        link: UnitLink,
        units: Sequence[UnitPlan],
        conn: sqlite3.Connection,
        site: SitePlan,
        health: DeviceHealth,
        clock: Clock,
        wake: asyncio.Event,
        interval_s: float,
    ) -> None:
        self.bus_id = bus_id
        self._link = link
        self._units = list(units)
        self._conn = conn
        self._site = site
        self._health = health
        self._clock = clock
        self._wake = wake
        self._interval = interval_s
        self._reported: dict[str, tuple[bool, bool, bool]] = {}
        self._cycles = CycleWatch(site)

    async def run(self) -> None:
        """Open the bus, then bring every unit in line each cycle or on wake-up."""
        await self._link.open()
        try:
            while True:
                await self.cycle()
                with suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self._interval)
                self._wake.clear()
        finally:
            await self._link.close()

    async def cycle(self) -> None:
        """Send each unit its command once; a failing unit does not hold up the rest."""
        for unit in self._units:
            command = desired_command(self._conn, self._site, unit, self._clock.now())
            try:
                state = await self._link.apply(unit.address, unit.id, command)
            except (LinkError, FrameError, ValueError) as err:
                # ValueError: the command does not fit the unit's registers
                # (a balance beyond what its display can show).
                self._health.failed(unit.id, "unit", str(err), self._clock.now())
                continue
            self._health.succeeded(unit.id, "unit", state.stamp)
            self._record(unit, command, state)
            self._receipt(unit, state)
            if unit.kind == "appliance":
                self._cycles.observe(
                    self._conn, unit, state, state.stamp, self._clock.monotonic()
                )

    def _receipt(self, unit: UnitPlan, state: UnitState) -> None:
        """Store the read receipt a unit reports for the message it shows."""
        read = state.extra.get("message_read")
        if not isinstance(read, int) or isinstance(read, bool) or read == 0:
            return
        try:
            messages.record_receipt(
                self._conn, unit.id, read, state.stamp.at, state.stamp
            )
        except messages.MessageError as err:
            log.warning(
                "receipt_refused", unit=unit.id, message_id=read, error=str(err)
            )

    def _record(self, unit: UnitPlan, command: UnitCommand, state: UnitState) -> None:
        seen = (state.supply_on, state.tamper, state.manual_override)
        if self._reported.get(unit.id) == seen:
            return
        self._reported[unit.id] = seen
        if state.supply_on != command.supply_on:
            log.warning(
                "unit_disagrees",
                unit=unit.id,
                wanted_on=command.supply_on,
                reported_on=state.supply_on,
                manual_override=state.manual_override,
            )
        else:
            log.info(
                "unit_switched",
                unit=unit.id,
                account=unit.account_id,
                supply="on" if state.supply_on else "off",
            )
        with transaction(self._conn):
            self._conn.execute(
                """INSERT INTO unit_state (unit_id, desired_on, reported_on, tamper,
                                           manual_override, allowance, updated_at)
                   VALUES (?, ?, ?, ?, ?, ?, ?)
                   ON CONFLICT(unit_id) DO UPDATE SET desired_on = excluded.desired_on,
                       reported_on = excluded.reported_on, tamper = excluded.tamper,
                       manual_override = excluded.manual_override,
                       allowance = excluded.allowance,
                       updated_at = excluded.updated_at""",
                (
                    unit.id,
                    int(command.supply_on),
                    int(state.supply_on),
                    int(state.tamper),
                    int(state.manual_override),
                    None if command.allowance is None else str(command.allowance),
                    state.stamp.iso(),
                ),
            )
