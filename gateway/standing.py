"""Standing charges: one entry per account, medium and local day, booked at
the start of the day, caught up after the gateway was down."""

from __future__ import annotations

import sqlite3
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from gateway import accounts, ledger
from gateway.clock import Stamp
from gateway.ledger import EntryKind, NewEntry
from gateway.money import Money
from gateway.site import SitePlan
from gateway.store import transaction


def accrue(conn: sqlite3.Connection, site: SitePlan, stamp: Stamp) -> int:
    """Book every standing charge due up to today; return how many were booked."""
    zone = ZoneInfo(site.config.site.timezone)
    today = stamp.at.astimezone(zone).date()
    booked = 0
    for account in site.config.accounts:
        media = sorted({m.medium for m in site.meters_of(account.id)})
        last_day = _last_day(conn, account.id, today, zone)
        with transaction(conn):
            for medium in media:
                for day in _days_due(conn, account.id, medium.value, last_day, zone):
                    charge = site.tariffs.standing_charge(
                        account.id, medium, day, conn=conn
                    )
                    amount = Money.round_major(charge, site.currency)
                    if amount.minor == 0:
                        continue
                    posted = ledger.post(
                        conn,
                        NewEntry(
                            id=f"standing:{account.id}:{medium.value}:{day.isoformat()}",
                            account_id=account.id,
                            kind=EntryKind.STANDING_CHARGE,
                            amount=-amount,
                            source="daemon",
                            booked=stamp,
                            medium=medium.value,
                            detail={"day": day.isoformat()},
                        ),
                    )
                    booked += not posted.duplicate
            accounts.evaluate(conn, account.id, stamp)
    return booked


def _last_day(
    conn: sqlite3.Connection, account_id: str, today: date, zone: ZoneInfo
) -> date:
    """Return the last day an account pays for: today, or the day it was closed."""
    row = conn.execute(
        "SELECT closed_at FROM accounts WHERE id = ?", (account_id,)
    ).fetchone()
    if row is None or row["closed_at"] is None:
        return today
    return min(today, datetime.fromisoformat(row["closed_at"]).astimezone(zone).date())


def _days_due(
    conn: sqlite3.Connection, account_id: str, medium: str, today: date, zone: ZoneInfo
) -> list[date]:
    row = conn.execute(
        """SELECT MAX(json_extract(detail, '$.day')) AS last FROM ledger_entries
           WHERE account_id = ? AND kind = 'standing_charge' AND medium = ?""",
        (account_id, medium),
    ).fetchone()
    if row["last"] is not None:
        first = date.fromisoformat(row["last"]) + timedelta(days=1)
    else:
        created = conn.execute(
            "SELECT created_at FROM accounts WHERE id = ?", (account_id,)
        ).fetchone()["created_at"]
        first = datetime.fromisoformat(created).astimezone(zone).date()
    return [first + timedelta(days=n) for n in range((today - first).days + 1)]
