"""Consumption and cost per day or week, per medium, from the ledger."""

from __future__ import annotations

import sqlite3
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Literal
from zoneinfo import ZoneInfo

from gateway.money import Money

Bucket = Literal["day", "week"]


@dataclass(frozen=True, slots=True)
class Period:
    """One row of history: what a medium cost in one day or week."""

    start: date
    medium: str
    quantity: Decimal
    unit: str
    cost: Money
    standing: Money


def period_start(day: date, bucket: Bucket) -> date:
    return day - timedelta(days=day.weekday()) if bucket == "week" else day


def history(
    conn: sqlite3.Connection,
    account_id: str,
    *,
    zone: ZoneInfo,
    since: datetime,
    bucket: Bucket,
    currency: str,
) -> list[Period]:
    """Sum consumption debits and standing charges by local period and medium."""
    rows = conn.execute(
        """SELECT kind, medium, quantity, unit, amount_minor, booked_at
           FROM ledger_entries
           WHERE account_id = ? AND kind IN ('consumption', 'standing_charge')
             AND booked_at >= ?""",
        (account_id, since.isoformat()),
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
