"""Forecast: how fast an account spends (its daily cost over recent days and
the trend against the days before), and how many days until its credit is
used up at that pace."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from gateway import laundry, ledger
from gateway.clock import Stamp
from gateway.money import Money

# Spending counts what consumption, standing charges and laundry cycles
# cost; top-ups, adjustments and grants are not spending.
_SPENDING = ("consumption", "standing_charge")


@dataclass(frozen=True, slots=True)
class Forecast:
    """An account's pace of spending and when its credit runs out.

    `daily_cost` is exact (major units a day). `trend` is the ratio of the
    recent window's pace to the window before it (1.25: spending 25 % more),
    None when there is nothing to compare. `days_left` is None when nothing
    is being spent; 0 when the credit is already used up.
    """

    account_id: str
    window_days: int
    daily_cost: Decimal
    trend: Decimal | None
    credit: Money
    days_left: Decimal | None
    empty_at: datetime | None

    @property
    def daily_cost_money(self) -> Money:
        return Money.round_major(self.daily_cost, self.credit.currency)


def _spent(
    conn: sqlite3.Connection, account_id: str, start: datetime, end: datetime
) -> int:
    row = conn.execute(
        """SELECT COALESCE(-SUM(amount_minor), 0) FROM ledger_entries
           WHERE account_id = ? AND kind IN (?, ?) AND booked_at >= ?
             AND booked_at < ?""",
        (account_id, *_SPENDING, _text(start), _text(end)),
    ).fetchone()
    return int(row[0])


def _text(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds")


def daily_cost(
    conn: sqlite3.Connection, account_id: str, stamp: Stamp, window_days: int
) -> Decimal | None:
    """Return the exact spending a day (major units) over the last `window_days`.

    An account younger than the window is averaged over its life; one younger
    than a day has no pace yet (None): a first hour says nothing about a day.
    """
    created = conn.execute(
        "SELECT created_at FROM accounts WHERE id = ?", (account_id,)
    ).fetchone()[0]
    start = max(stamp.at - timedelta(days=window_days), datetime.fromisoformat(created))
    span = Decimal(str((stamp.at - start).total_seconds())) / Decimal(86400)
    if span < 1:
        return None
    currency = ledger.account_currency(conn, account_id)
    spent = _spent(conn, account_id, start, stamp.at)
    return Money(spent, currency).major / span


def forecast(
    conn: sqlite3.Connection, account_id: str, stamp: Stamp, *, window_days: int = 7
) -> Forecast:
    """Return the pace over the last `window_days` and the days until credit is gone.

    The credit is what decisions can still use: the balance less laundry
    holds, plus the credit line.
    """
    if window_days < 1:
        raise ValueError("the forecast window must be at least one day")
    window = timedelta(days=window_days)
    now = stamp.at
    currency = ledger.account_currency(conn, account_id)
    daily = daily_cost(conn, account_id, stamp, window_days) or Decimal(0)
    recent = _spent(conn, account_id, now - window, now)
    before = _spent(conn, account_id, now - 2 * window, now - window)
    trend = None if before <= 0 else Decimal(recent) / Decimal(before)

    line = conn.execute(
        "SELECT credit_line_minor FROM accounts WHERE id = ?", (account_id,)
    ).fetchone()[0]
    credit = laundry.available(conn, account_id) + Money(int(line), currency)
    if daily <= 0:
        return Forecast(account_id, window_days, daily, trend, credit, None, None)
    days_left = max(credit.major, Decimal(0)) / daily
    empty_at = now + timedelta(seconds=float(days_left * 86400))
    return Forecast(account_id, window_days, daily, trend, credit, days_left, empty_at)
