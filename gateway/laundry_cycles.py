"""Laundry cycles: a cycle starting inside its booked slot, its billing at the
end (per cycle, by measured energy or by running time) with the hold
released in the same transaction, and the release of no-shows.

Bookings, holds and whether a machine may run are in gateway.laundry.
"""

from __future__ import annotations

import sqlite3
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Protocol

import structlog

from gateway import accounts, ledger
from gateway.clock import Stamp
from gateway.laundry import (
    MEDIUM,
    Booking,
    LaundryError,
    NoBooking,
    booked_slot,
    cycle_running,
    joined_transaction,
    machine_rules,
    row_to_booking,
    set_state,
)
from gateway.ledger import EntryKind, NewEntry, Posted
from gateway.money import Money
from gateway.store import transaction

log = structlog.get_logger(__name__)


class CyclePricing(Protocol):
    """The tariff book's price per cycle, where the tariff engine offers one."""

    def cycle_price(
        self,
        account_id: str,
        appliance: str,
        *,
        at: datetime | None = None,
        conn: sqlite3.Connection | None = None,
    ) -> Decimal: ...


def cycle_started(conn: sqlite3.Connection, unit_id: str, stamp: Stamp) -> Booking:
    """Record that a cycle started; raise NoBooking when no slot covers this moment."""
    with joined_transaction(conn):
        if cycle_running(conn, unit_id):
            row = conn.execute(
                "SELECT * FROM laundry_bookings "
                "WHERE unit_id = ? AND state = 'running'",
                (unit_id,),
            ).fetchone()
            return row_to_booking(row, duplicate=True)
        slot = booked_slot(conn, unit_id, stamp.at)
        if slot is None:
            log.warning("laundry_start_without_booking", unit=unit_id, at=stamp.iso())
            raise NoBooking(
                f"{unit_id} cannot start at {stamp.iso()}: no booking covers this "
                f"time; book a slot first"
            )
        after = set_state(
            conn, row_to_booking(slot), "running", stamp, started_at=stamp.iso()
        )
    log.info("laundry_cycle_started", booking=after.id, unit=unit_id)
    return after


def cycle_ended(
    conn: sqlite3.Connection,
    unit_id: str,
    stamp: Stamp,
    *,
    energy_kwh: Decimal | None = None,
    minutes: Decimal | None = None,
    pricing: CyclePricing | None = None,
) -> Posted | None:
    """Bill a finished cycle and release its hold, in one transaction.

    Per cycle: the tariff's cycle price for the machine's appliance when
    `pricing` (the site's TariffBook) has one, else the machine's configured
    price. By energy: price per kWh times
    `energy_kwh`. By time: price per minute times `minutes` (default: from
    the cycle's start to now). The charge is rounded once. Returns None if
    no cycle was running.
    """
    with joined_transaction(conn):
        row = conn.execute(
            "SELECT * FROM laundry_bookings WHERE unit_id = ? AND state = 'running'",
            (unit_id,),
        ).fetchone()
        if row is None:
            return None
        booking = row_to_booking(row)
        machine = machine_rules(conn, unit_id)
        charge, quantity, unit = _charge(
            conn,
            machine,
            booking,
            row["started_at"],
            stamp,
            energy_kwh,
            minutes,
            pricing,
        )
        posted = ledger.post(
            conn,
            NewEntry(
                id=f"laundry:{booking.id}:cycle",
                account_id=booking.account_id,
                kind=EntryKind.CONSUMPTION,
                amount=-charge,
                source=f"unit:{unit_id}",
                booked=stamp,
                ref=booking.request_id,
                medium=MEDIUM,
                quantity=quantity,
                unit=unit,
                detail={
                    "booking_id": booking.id,
                    "appliance": machine["appliance"],
                    "billing": machine["billing"],
                },
            ),
        )
        set_state(
            conn,
            booking,
            "done",
            stamp,
            ended_at=stamp.iso(),
            charge_entry=posted.entry.id,
        )
        accounts.evaluate(conn, booking.account_id, stamp)
    log.info(
        "laundry_cycle_billed",
        booking=booking.id,
        unit=unit_id,
        account=booking.account_id,
        charge=str(charge),
    )
    return posted


def _charge(
    conn: sqlite3.Connection,
    machine: sqlite3.Row,
    booking: Booking,
    started_at: str,
    stamp: Stamp,
    energy_kwh: Decimal | None,
    minutes: Decimal | None,
    pricing: CyclePricing | None,
) -> tuple[Money, Decimal, str]:
    currency = booking.hold.currency
    price = Decimal(machine["price_per"])
    if machine["billing"] == "energy":
        if energy_kwh is None:
            raise LaundryError(
                f"{booking.unit_id} bills by energy: give the cycle's kWh"
            )
        return Money.round_major(price * energy_kwh, currency), energy_kwh, "kWh"
    if machine["billing"] == "time":
        if minutes is None:
            elapsed = stamp.at - datetime.fromisoformat(started_at)
            minutes = Decimal(int(elapsed.total_seconds())) / Decimal(60)
        return Money.round_major(price * minutes, currency), minutes, "min"
    if pricing is not None:
        # The tariff's price for the cycle at its start wins; a tariff that
        # prices no cycle for this appliance leaves the laundry config's.
        try:
            price = pricing.cycle_price(
                booking.account_id,
                machine["appliance"],
                at=datetime.fromisoformat(started_at),
                conn=conn,
            )
        except LookupError as err:
            log.info("laundry_cycle_price_from_config", reason=str(err))
    return Money.round_major(price, currency), Decimal(1), "cycle"


def release_no_shows(conn: sqlite3.Connection, stamp: Stamp) -> int:
    """Release bookings not started within their machine's no-show minutes.

    The hold is released; a configured no-show fee is booked as its own
    entry. The deadline is the slot's start plus the no-show minutes, but
    never later than the slot's end. Returns how many were released.
    """
    released = 0
    rows = conn.execute(
        """SELECT b.*, m.no_show_minutes, m.no_show_fee_minor FROM laundry_bookings b
           JOIN laundry_machines m ON m.unit_id = b.unit_id
           WHERE b.state = 'booked' AND b.slot_start <= ?""",
        (stamp.iso(),),
    ).fetchall()
    for row in rows:
        booking = row_to_booking(row)
        deadline = min(
            booking.slot_start + timedelta(minutes=row["no_show_minutes"]),
            booking.slot_end,
        )
        if stamp.at < deadline:
            continue
        with transaction(conn):
            fee = Money(row["no_show_fee_minor"], booking.hold.currency)
            entry_id = None
            if fee.minor:
                entry_id = f"laundry:{booking.id}:no_show_fee"
                ledger.post(
                    conn,
                    NewEntry(
                        id=entry_id,
                        account_id=booking.account_id,
                        kind=EntryKind.ADJUSTMENT,
                        amount=-fee,
                        source="laundry",
                        booked=stamp,
                        ref=booking.request_id,
                        medium=MEDIUM,
                        detail={"reason": "no-show", "booking_id": booking.id},
                    ),
                )
            set_state(
                conn,
                booking,
                "no_show",
                stamp,
                ended_at=stamp.iso(),
                charge_entry=entry_id,
            )
            accounts.evaluate(conn, booking.account_id, stamp)
        released += 1
        log.info(
            "laundry_no_show_released",
            booking=booking.id,
            unit=booking.unit_id,
            fee=str(fee),
        )
    return released
