"""Consumption and cost per day, week or month, per medium, from the ledger."""

from __future__ import annotations

import sqlite3
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Literal
from zoneinfo import ZoneInfo

from gateway.money import Money

Bucket = Literal["day", "week", "month"]


@dataclass(frozen=True, slots=True)
class Period:
    """One row of history: what a medium cost in one day, week or month."""

    start: date
    medium: str
    quantity: Decimal
    unit: str
    cost: Money
    standing: Money


def _utc_text(moment: datetime) -> str:
    # The ledger's booked_at is Stamp.iso() of a UTC time: the same format
    # makes comparing text the same as comparing time.
    return moment.astimezone(UTC).isoformat(timespec="milliseconds")


def period_start(day: date, bucket: Bucket) -> date:
    """Return the first local day of the day's week (Monday) or month."""
    if bucket == "week":
        return day - timedelta(days=day.weekday())
    if bucket == "month":
        return day.replace(day=1)
    return day


def history(
    conn: sqlite3.Connection,
    account_id: str | None,
    *,
    zone: ZoneInfo,
    since: datetime,
    bucket: Bucket,
    currency: str,
    until: datetime | None = None,
) -> list[Period]:
    """Sum consumption debits and standing charges by local period and medium.

    `account_id` None sums every account (the building). The span is
    [since, until), compared on the ledger's UTC booking times.
    """
    rows = conn.execute(
        """SELECT kind, medium, quantity, unit, amount_minor, booked_at
           FROM ledger_entries
           WHERE (:account IS NULL OR account_id = :account)
             AND kind IN ('consumption', 'standing_charge')
             AND booked_at >= :since AND (:until IS NULL OR booked_at < :until)""",
        {
            "account": account_id,
            "since": _utc_text(since),
            "until": None if until is None else _utc_text(until),
        },
    ).fetchall()
    quantity: dict[tuple[date, str], Decimal] = defaultdict(Decimal)
    cost: dict[tuple[date, str], int] = defaultdict(int)
    standing: dict[tuple[date, str], int] = defaultdict(int)
    units: dict[str, str] = {}
    for r in rows:
        day = datetime.fromisoformat(r["booked_at"]).astimezone(zone).date()
        key = (period_start(day, bucket), r["medium"] or "-")
        if r["kind"] == "consumption":
            quantity[key] += Decimal(r["quantity"] or 0)
            cost[key] -= r["amount_minor"]
            units[key[1]] = r["unit"] or ""
        else:
            standing[key] -= r["amount_minor"]
    keys = sorted(set(quantity) | set(standing))
    return [
        Period(
            k[0],
            k[1],
            quantity.get(k, Decimal(0)),
            units.get(k[1], ""),
            Money(cost.get(k, 0), currency),
            Money(standing.get(k, 0), currency),
        )
        for k in keys
    ]
