"""Laundry: bookings of washing machines and dryers, the hold a booking places
on the resident's funds, enabling a machine only inside its booked slot,
billing at the end of each cycle, and releasing no-shows.

Holds and the balance. A booking in state booked or running holds its
amount. A hold is not a ledger entry: the balance (the sum of entries) does
not change when a booking is made or released. What changes is the
*available* balance, `available(conn, account) = balance - open holds`,
which is what a further booking must cover (together with the account's
credit line) and what supply decisions should judge. At the end of a
cycle the real charge is booked as a consumption entry (medium "laundry")
and the hold is released in the same transaction, so the money is never
counted twice.

A cycle that started inside its slot runs to its end: the machine stays
enabled past the slot's end, and even when the credit runs out.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import structlog

from gateway import ledger, outbox
from gateway.clock import Stamp
from gateway.money import Money
from gateway.site import SitePlan
from gateway.store import transaction

log = structlog.get_logger(__name__)

MEDIUM = "laundry"
_OPEN = ("booked", "running")


class LaundryError(Exception):
    """A laundry request that cannot be done; the message says why."""


class BookingRefused(LaundryError):
    """A booking that was refused: overlap, no funds, bad slot, unknown machine."""


class NoBooking(LaundryError):
    """A machine was asked to start without a booking for this moment."""


@dataclass(frozen=True, slots=True)
class Booking:
    """One booking of a machine by an account for a slot."""

    id: int
    request_id: str
    unit_id: str
    account_id: str
    slot_start: datetime
    slot_end: datetime
    hold: Money
    state: str
    duplicate: bool = False

    def to_message(self) -> dict[str, Any]:
        """Return the booking as an uplink payload."""
        return {
            "booking_id": self.id,
            "request_id": self.request_id,
            "unit_id": self.unit_id,
            "account_id": self.account_id,
            "slot_start": _iso(self.slot_start),
            "slot_end": _iso(self.slot_end),
            "hold_minor": self.hold.minor,
            "currency": self.hold.currency,
            "state": self.state,
        }


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds")


def row_to_booking(row: sqlite3.Row, duplicate: bool = False) -> Booking:
    """Return a laundry_bookings row as a Booking."""
    return Booking(
        row["id"],
        row["request_id"],
        row["unit_id"],
        row["account_id"],
        datetime.fromisoformat(row["slot_start"]),
        datetime.fromisoformat(row["slot_end"]),
        Money(row["hold_minor"], row["currency"]),
        row["state"],
        duplicate,
    )


@contextmanager
def joined_transaction(conn: sqlite3.Connection) -> Iterator[None]:
    """Join the caller's transaction, or run as one of our own."""
    if conn.in_transaction:
        yield
    else:
        with transaction(conn):
            yield


def sync_machines(conn: sqlite3.Connection, site: SitePlan) -> None:
    """Store the configured machines and their rules (in the caller's transaction)."""
    machines = [] if site.config.laundry is None else site.config.laundry.machines
    for m in machines:
        price = m.price if m.billing == "cycle" else Decimal(0)
        hold = m.hold if m.hold is not None else m.price
        conn.execute(
            """INSERT INTO laundry_machines (unit_id, appliance, billing, price_minor,
                   price_per, hold_minor, no_show_minutes, no_show_fee_minor,
                   max_slot_minutes) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
               ON CONFLICT(unit_id) DO UPDATE SET appliance = excluded.appliance,
                   billing = excluded.billing, price_minor = excluded.price_minor,
                   price_per = excluded.price_per, hold_minor = excluded.hold_minor,
                   no_show_minutes = excluded.no_show_minutes,
                   no_show_fee_minor = excluded.no_show_fee_minor,
                   max_slot_minutes = excluded.max_slot_minutes""",
            (
                m.unit,
                m.appliance,
                m.billing,
                site.config.money(price).minor,
                # The price per kWh or minute may be finer than a cent; it is
                # kept as exact text and applied before the one rounding.
                str(m.price),
                Money.round_major(hold, site.currency).minor,
                m.no_show_minutes,
                site.config.money(m.no_show_fee).minor,
                m.max_slot_minutes,
            ),
        )
    names = [m.unit for m in machines]
    marks = ",".join("?" * len(names))
    conn.execute(f"DELETE FROM laundry_machines WHERE unit_id NOT IN ({marks})", names)


def held(conn: sqlite3.Connection, account_id: str) -> Money:
    """Return the sum of the account's open holds."""
    currency = ledger.account_currency(conn, account_id)
    row = conn.execute(
        "SELECT COALESCE(SUM(hold_minor), 0) FROM laundry_bookings "
        "WHERE account_id = ? AND state IN ('booked', 'running')",
        (account_id,),
    ).fetchone()
    return Money(int(row[0]), currency)


def available(conn: sqlite3.Connection, account_id: str) -> Money:
    """Return the balance less open holds: what decisions and bookings may use."""
    return ledger.balance(conn, account_id) - held(conn, account_id)


def machine_rules(conn: sqlite3.Connection, unit_id: str) -> sqlite3.Row:
    """Return a machine's stored rules; refuse a unit that is not a machine."""
    row: sqlite3.Row | None = conn.execute(
        "SELECT * FROM laundry_machines WHERE unit_id = ?", (unit_id,)
    ).fetchone()
    if row is None:
        known = ", ".join(
            r[0] for r in conn.execute("SELECT unit_id FROM laundry_machines")
        )
        raise BookingRefused(
            f"unit {unit_id!r} is not a laundry machine; machines: {known or 'none'}"
        )
    return row


def book(
    conn: sqlite3.Connection,
    request_id: str,
    unit_id: str,
    account_id: str,
    slot_start: datetime,
    slot_end: datetime,
    stamp: Stamp,
    *,
    source: str,
) -> Booking:
    """Book a machine for a slot and hold the funds; runs in the caller's transaction.

    The same request id again returns the first booking, marked duplicate.
    Refused with a reason: an unknown machine, a slot that is empty, too
    long or already over, an overlap with an open booking of the machine,
    a closed account, or available funds (plus credit line) below the hold.
    """
    if not conn.in_transaction:
        raise LaundryError("laundry.book must run inside store.transaction()")
    first = conn.execute(
        "SELECT * FROM laundry_bookings WHERE request_id = ?", (request_id,)
    ).fetchone()
    if first is not None:
        return row_to_booking(first, duplicate=True)
    machine = machine_rules(conn, unit_id)
    if slot_start.tzinfo is None or slot_end.tzinfo is None:
        raise BookingRefused("give slot times with a time zone (e.g. +01:00 or Z)")
    if slot_end <= slot_start:
        raise BookingRefused("the slot must end after it starts")
    if slot_end - slot_start > timedelta(minutes=machine["max_slot_minutes"]):
        raise BookingRefused(
            f"a slot on {unit_id} may last at most {machine['max_slot_minutes']} "
            f"minutes"
        )
    if slot_end <= stamp.at:
        raise BookingRefused(f"the slot ended at {_iso(slot_end)}, already past")
    acct = conn.execute(
        "SELECT closed_at, credit_line_minor, currency FROM accounts WHERE id = ?",
        (account_id,),
    ).fetchone()
    if acct is None:
        raise BookingRefused(f"no account {account_id!r}")
    if acct["closed_at"] is not None:
        raise BookingRefused(f"account {account_id} is closed (moved out)")
    clash = conn.execute(
        """SELECT id, account_id, slot_start, slot_end FROM laundry_bookings
           WHERE unit_id = ? AND state IN ('booked', 'running')
             AND slot_start < ? AND ? < slot_end ORDER BY slot_start LIMIT 1""",
        (unit_id, _iso(slot_end), _iso(slot_start)),
    ).fetchone()
    if clash is not None:
        raise BookingRefused(
            f"{unit_id} is already booked from {clash['slot_start']} to "
            f"{clash['slot_end']} (booking {clash['id']}); choose another slot"
        )
    hold = Money(machine["hold_minor"], acct["currency"])
    spendable = available(conn, account_id) + Money(
        acct["credit_line_minor"], acct["currency"]
    )
    if spendable < hold:
        raise BookingRefused(
            f"account {account_id} has {spendable} available (balance less holds, "
            f"plus credit line); the booking holds {hold}: top up first"
        )
    cursor = conn.execute(
        """INSERT INTO laundry_bookings (request_id, unit_id, account_id, slot_start,
               slot_end, hold_minor, currency, state, source, created_at)
           VALUES (?, ?, ?, ?, ?, ?, ?, 'booked', ?, ?)""",
        (
            request_id,
            unit_id,
            account_id,
            _iso(slot_start),
            _iso(slot_end),
            hold.minor,
            hold.currency,
            source,
            stamp.iso(),
        ),
    )
    booking = get(conn, int(cursor.lastrowid or 0))
    _announce(conn, booking, stamp)
    log.info(
        "laundry_booked",
        booking=booking.id,
        unit=unit_id,
        account=account_id,
        slot_start=_iso(slot_start),
        slot_end=_iso(slot_end),
        hold=str(hold),
    )
    return booking


def get(conn: sqlite3.Connection, booking_id: int) -> Booking:
    row = conn.execute(
        "SELECT * FROM laundry_bookings WHERE id = ?", (booking_id,)
    ).fetchone()
    if row is None:
        raise LaundryError(f"no booking {booking_id}")
    return row_to_booking(row)


def _announce(conn: sqlite3.Connection, booking: Booking, stamp: Stamp) -> None:
    outbox.enqueue(
        conn,
        "laundry_booking",
        booking.to_message(),
        stamp,
        message_id=f"laundry:{booking.id}:{booking.state}",
    )


def set_state(
    conn: sqlite3.Connection, booking: Booking, state: str, stamp: Stamp, **cols: Any
) -> Booking:
    """Move a booking to a new state (and columns), and tell the cloud."""
    sets = ", ".join(f"{name} = ?" for name in ("state", *cols))
    conn.execute(
        f"UPDATE laundry_bookings SET {sets} WHERE id = ?",
        (state, *cols.values(), booking.id),
    )
    after = get(conn, booking.id)
    _announce(conn, after, stamp)
    return after


def cancel(
    conn: sqlite3.Connection, booking_id: int, stamp: Stamp, *, reason: str
) -> Booking:
    """Cancel a booking that has not started and release its hold."""
    with joined_transaction(conn):
        booking = get(conn, booking_id)
        if booking.state == "cancelled":
            return replace(booking, duplicate=True)
        if booking.state != "booked":
            raise LaundryError(
                f"booking {booking_id} is {booking.state}; only a booking that has "
                f"not started can be cancelled"
            )
        after = set_state(conn, booking, "cancelled", stamp, ended_at=stamp.iso())
    log.info("laundry_cancelled", booking=booking_id, reason=reason)
    return after


def cancel_all(
    conn: sqlite3.Connection, account_id: str, stamp: Stamp, *, reason: str
) -> int:
    """Cancel every not-yet-started booking of an account; return how many."""
    ids = [
        r[0]
        for r in conn.execute(
            "SELECT id FROM laundry_bookings WHERE account_id = ? AND state = 'booked'",
            (account_id,),
        )
    ]
    for booking_id in ids:
        cancel(conn, booking_id, stamp, reason=reason)
    return len(ids)


def booked_slot(
    conn: sqlite3.Connection, unit_id: str, at: datetime
) -> sqlite3.Row | None:
    """Return the not-yet-started booking whose slot covers `at`, if any."""
    row: sqlite3.Row | None = conn.execute(
        """SELECT * FROM laundry_bookings WHERE unit_id = ? AND state = 'booked'
             AND slot_start <= ? AND ? < slot_end""",
        (unit_id, _iso(at), _iso(at)),
    ).fetchone()
    return row


def cycle_running(conn: sqlite3.Connection, unit_id: str) -> bool:
    """Return True while a cycle runs on the machine (it must not be cut off)."""
    row = conn.execute(
        "SELECT 1 FROM laundry_bookings WHERE unit_id = ? AND state = 'running'",
        (unit_id,),
    ).fetchone()
    return row is not None


def appliance_enabled(
    conn: sqlite3.Connection, unit_id: str, stamp: Stamp
) -> tuple[bool, str]:
    """Return whether the machine may run now, and why.

    Enabled while a cycle runs (whatever the slot or the credit), or inside
    a booked slot; disabled otherwise, so it cannot start without a booking.
    """
    running = conn.execute(
        "SELECT id, account_id FROM laundry_bookings "
        "WHERE unit_id = ? AND state = 'running'",
        (unit_id,),
    ).fetchone()
    if running is not None:
        return True, (
            f"cycle of booking {running['id']} ({running['account_id']}) is running; "
            f"a cycle is never cut off"
        )
    slot = booked_slot(conn, unit_id, stamp.at)
    if slot is not None:
        return True, (
            f"booked by {slot['account_id']} until {slot['slot_end']} "
            f"(booking {slot['id']})"
        )
    return False, f"no booking for {unit_id} at {stamp.iso()}"


def bookings(
    conn: sqlite3.Connection,
    *,
    unit_id: str | None = None,
    account_id: str | None = None,
    open_only: bool = True,
) -> list[Booking]:
    """Return bookings by slot start, filtered by machine, account and openness."""
    where, args = [], []
    if unit_id is not None:
        where.append("unit_id = ?")
        args.append(unit_id)
    if account_id is not None:
        where.append("account_id = ?")
        args.append(account_id)
    if open_only:
        where.append("state IN ('booked', 'running')")
    clause = f"WHERE {' AND '.join(where)}" if where else ""
    rows = conn.execute(
        f"SELECT * FROM laundry_bookings {clause} ORDER BY slot_start, id", args
    ).fetchall()
    return [row_to_booking(r) for r in rows]


def chore(conn: sqlite3.Connection, site: SitePlan, stamp: Stamp) -> bool:
    """Housekeeping job: store the machines' rules, release no-shows."""
    from gateway.laundry_cycles import release_no_shows

    with transaction(conn):
        sync_machines(conn, site)
    return release_no_shows(conn, stamp) > 0
