"""Each account's consumption per medium and local month (table tariff_usage):
what inclining blocks need to know was already billed in a period."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from decimal import Decimal

from gateway.model import Medium


def used(
    conn: sqlite3.Connection, account_id: str, medium: Medium, period: str
) -> Decimal:
    """Return the quantity (canonical unit) billed in a period: 'YYYY-MM' or 'YYYY'."""
    # Decimal text is summed here, not in SQL, where it would become a float.
    pattern = period if len(period) == 7 else f"{period}-__"
    rows = conn.execute(
        "SELECT quantity FROM tariff_usage WHERE account_id = ? AND medium = ? "
        "AND month LIKE ?",
        (account_id, medium.value, pattern),
    )
    return sum((Decimal(r[0]) for r in rows), Decimal(0))


def record(
    conn: sqlite3.Connection,
    account_id: str,
    medium: Medium,
    months: Iterable[tuple[str, Decimal]],
) -> None:
    """Add quantities to their months; run inside the billing transaction."""
    for month, quantity in months:
        if quantity == 0:
            continue
        row = conn.execute(
            "SELECT quantity FROM tariff_usage WHERE account_id = ? AND medium = ? "
            "AND month = ?",
            (account_id, medium.value, month),
        ).fetchone()
        total = quantity + (Decimal(0) if row is None else Decimal(row[0]))
        conn.execute(
            "INSERT INTO tariff_usage (account_id, medium, month, quantity) "
            "VALUES (?, ?, ?, ?) ON CONFLICT(account_id, medium, month) "
            "DO UPDATE SET quantity = excluded.quantity",
            (account_id, medium.value, month, str(total)),
        )
