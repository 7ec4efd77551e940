"""Tenancy changes: a resident moving out closes the account with a snapshot of
its meters' last readings and its balance. Debt stays with the resident's
account; the meters stay with the flat.

What happens to the meters. The meters are not reset: the billing step keys
its state by meter (gateway.billing). While a closed account is still named
in the configuration, readings of its meters are stored and advance the
meter's last value but debit nobody (the flat is vacant). When the
installer assigns the meter to the next resident's account, billing notices
the new account and starts its cost accrual from zero, from the meter's
last value: the new resident pays only for what is used from then on.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from typing import Any

import structlog

from gateway import laundry, ledger, outbox
from gateway.clock import Stamp
from gateway.money import Money
from gateway.store import transaction

log = structlog.get_logger(__name__)


class TenancyError(Exception):
    """A move-out that cannot be done; the message says why."""


@dataclass(frozen=True, slots=True)
class Snapshot:
    """An account as it was when its resident moved out."""

    account_id: str
    closed_at: str
    balance: Money
    readings: list[dict[str, Any]]
    cancelled_bookings: int


def move_out(conn: sqlite3.Connection, account_id: str, stamp: Stamp) -> Snapshot:
    """Close an account: snapshot its meters and balance, release its holds.

    The balance is kept as it is, positive or negative: a debt is the
    resident's, to be settled outside the gateway (or by a top-up). Open
    laundry bookings are cancelled and their holds released.
    """
    with transaction(conn):
        row = conn.execute(
            "SELECT closed_at FROM accounts WHERE id = ?", (account_id,)
        ).fetchone()
        if row is None:
            raise TenancyError(f"no account {account_id!r}")
        if row["closed_at"] is not None:
            raise TenancyError(
                f"account {account_id} was already closed at {row['closed_at']}"
            )
        readings = [
            {
                "meter_id": r["meter_id"],
                "medium": r["medium"],
                "value": r["last_value"],
                "unit": r["last_unit"],
                "taken_at": r["last_taken_at"],
            }
            for r in conn.execute(
                "SELECT * FROM meter_state WHERE account_id = ? ORDER BY meter_id",
                (account_id,),
            )
        ]
        cancelled = laundry.cancel_all(conn, account_id, stamp, reason="move-out")
        balance = ledger.balance(conn, account_id)
        conn.execute(
            "UPDATE accounts SET closed_at = ? WHERE id = ?", (stamp.iso(), account_id)
        )
        conn.execute(
            """INSERT INTO tenancy_snapshots (account_id, closed_at, clock_synced,
                   balance_minor, currency, readings) VALUES (?, ?, ?, ?, ?, ?)""",
            (
                account_id,
                stamp.iso(),
                int(stamp.synced),
                balance.minor,
                balance.currency,
                json.dumps(readings, sort_keys=True),
            ),
        )
        outbox.enqueue(
            conn,
            "tenancy",
            {
                "account_id": account_id,
                "event": "move_out",
                "closed_at": stamp.iso(),
                "balance_minor": balance.minor,
                "currency": balance.currency,
                "readings": readings,
            },
            stamp,
            message_id=f"tenancy:move_out:{account_id}",
        )
    log.info(
        "account_closed",
        account=account_id,
        balance=str(balance),
        meters=len(readings),
        cancelled_bookings=cancelled,
    )
    return Snapshot(account_id, stamp.iso(), balance, readings, cancelled)
