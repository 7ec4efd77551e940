"""Laundry cycles as the machine's dispensing unit sees them: energy starts
flowing inside a booked slot (a cycle starts), then stops for a while (the
cycle ended and is billed)."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from decimal import Decimal

import structlog

from gateway import alarms, laundry
from gateway.clock import Stamp
from gateway.laundry import NoBooking
from gateway.laundry_cycles import cycle_ended, cycle_started
from gateway.model import UnitState
from gateway.site import SitePlan, UnitPlan
from gateway.store import transaction

log = structlog.get_logger(__name__)


@dataclass
class _Seen:
    counter: Decimal
    changed_at: float
    cycle_from: Decimal | None = None


class CycleWatch:
    """Turns a machine unit's consumption counter into cycle starts and ends."""

    def __init__(self, site: SitePlan) -> None:
        self._site = site
        machines = site.config.laundry.machines if site.config.laundry else []
        self._idle_end_s = {m.unit: m.idle_end_s for m in machines}
        self._seen: dict[str, _Seen] = {}

    def observe(
        self,
        conn: sqlite3.Connection,
        unit: UnitPlan,
        state: UnitState,
        stamp: Stamp,
        monotonic: float,
    ) -> None:
        """Look at one reported state of a washing machine or dryer."""
        counter = state.extra.get("consumption")
        if not isinstance(counter, Decimal):
            return
        seen = self._seen.get(unit.id)
        if seen is None:
            # LIMITATION: after a restart in the middle of a cycle, a machine
            # billed by energy is billed only from the first state seen since;
            # the counter at the cycle's start is kept in memory only.
            running = laundry.cycle_running(conn, unit.id)
            self._seen[unit.id] = _Seen(
                counter, monotonic, counter if running else None
            )
            return

        if counter > seen.counter:
            before = seen.counter
            seen.counter, seen.changed_at = counter, monotonic
            if seen.cycle_from is None:
                # The cycle began where the counter stood before it moved.
                self._start(conn, unit, stamp, before)
        elif (
            seen.cycle_from is not None
            and monotonic - seen.changed_at >= self._idle_end_s.get(unit.id, 600.0)
        ):
            energy = counter - seen.cycle_from
            seen.cycle_from = None
            posted = cycle_ended(
                conn, unit.id, stamp, energy_kwh=energy, pricing=self._site.tariffs
            )
            if posted is not None:
                log.info("laundry_cycle_ended", unit=unit.id, energy_kwh=str(energy))

    def _start(
        self, conn: sqlite3.Connection, unit: UnitPlan, stamp: Stamp, counter: Decimal
    ) -> None:
        try:
            cycle_started(conn, unit.id, stamp)
        except NoBooking as err:
            # The unit keeps the machine disabled outside a slot, so energy
            # flowing here means a bypassed enable input.
            with transaction(conn):
                alarms.raise_alarm(
                    conn, "laundry_without_booking", unit.id, str(err), stamp
                )
            return
        self._seen[unit.id].cycle_from = counter
