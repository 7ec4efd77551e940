"""Budgets: a grant booked at the start of every month or year (billed with the
rent), the unused part rolled over up to a cap or forfeited, a pro-rated first
period for a resident who moves in mid-period, and per-medium sub-budgets.

How budget money is counted. The resident has one wallet (the account's
balance) spanning all media. A period's budget is the grant plus what rolled
over into it, and it is spent before any money the resident paid in: at the
period's end the unused budget is the balance at that moment, but no more
than the period's budget and no less than zero. So a top-up is never
forfeited, and debt is never "rolled over". Of the unused budget, up to the
rollover cap stays (it becomes part of the next period's budget); the rest
is forfeited by an entry of its own.

Every entry has an id derived from the account and the period, so running
the catch-up twice, or late after the gateway was down over a boundary,
books each grant and each forfeit exactly once.

Periods follow the site's local calendar: a month starts at local midnight
on the 1st, a year on 1 January.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import structlog

from gateway import accounts, ledger
from gateway.clock import Stamp
from gateway.ledger import EntryKind, NewEntry
from gateway.money import Money
from gateway.site import SitePlan
from gateway.store import transaction

log = structlog.get_logger(__name__)

SOURCE = "budget"


@dataclass(frozen=True, slots=True)
class Period:
    """One budget period in local days: [start, end)."""

    start: date
    end: date

    @property
    def days(self) -> int:
        return (self.end - self.start).days

    def following(self, kind: str) -> Period:
        """Return the period that starts where this one ends."""
        return period_of(self.end, kind)


@dataclass(frozen=True, slots=True)
class SubBudget:
    """A per-medium cap for the current period and what was spent against it."""

    medium: str
    cap: Money
    spent: Money

    @property
    def exhausted(self) -> bool:
        return self.spent >= self.cap


def period_of(day: date, kind: str) -> Period:
    """Return the month or year period that contains a local day."""
    if kind == "year":
        return Period(date(day.year, 1, 1), date(day.year + 1, 1, 1))
    start = day.replace(day=1)
    return Period(start, (start + timedelta(days=32)).replace(day=1))


def local_midnight_utc(day: date, zone: ZoneInfo) -> datetime:
    """Return the UTC instant at which a local day begins."""
    return datetime.combine(day, time(), zone).astimezone(UTC)


def _iso(moment: datetime) -> str:
    # The ledger stores booked_at as Stamp.iso() of a UTC time; the same
    # format makes text comparison equal time comparison.
    return moment.astimezone(UTC).isoformat(timespec="milliseconds")


def prorated(amount: Money, period: Period, first_day: date) -> Money:
    """Return the share of a grant for the days from `first_day` to the period's end.

    The share is amount x remaining days / days in the period, computed
    exactly and rounded once to the minor unit (half to even). A first day
    on or before the period's start gets the whole grant.
    """
    if first_day <= period.start:
        return amount
    remaining = max((period.end - first_day).days, 0)
    exact = amount.major * Decimal(remaining) / Decimal(period.days)
    return Money.round_major(exact, amount.currency)


def sync_rules(conn: sqlite3.Connection, site: SitePlan, stamp: Stamp) -> None:
    """Store each account's budget rule from the configuration (in the caller's
    transaction); rules removed from the configuration are deleted."""
    zone = site.config.site.timezone
    configured = []
    for b in site.config.budgets:
        configured.append(b.account)
        conn.execute(
            """INSERT INTO budget_rules (account_id, period, amount_minor, unused,
                   rollover_cap_minor, moved_in, timezone, media_caps, updated_at)
               VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
               ON CONFLICT(account_id) DO UPDATE SET period = excluded.period,
                   amount_minor = excluded.amount_minor, unused = excluded.unused,
                   rollover_cap_minor = excluded.rollover_cap_minor,
                   moved_in = excluded.moved_in, timezone = excluded.timezone,
                   media_caps = excluded.media_caps,
                   updated_at = excluded.updated_at""",
            (
                b.account,
                b.period,
                site.config.money(b.amount).minor,
                b.unused,
                None
                if b.rollover_cap is None
                else site.config.money(b.rollover_cap).minor,
                None if b.moved_in is None else b.moved_in.isoformat(),
                zone,
                json.dumps(
                    {k: site.config.money(v).minor for k, v in b.media_caps.items()},
                    sort_keys=True,
                ),
                stamp.iso(),
            ),
        )
    marks = ",".join("?" * len(configured))
    conn.execute(
        f"DELETE FROM budget_rules WHERE account_id NOT IN ({marks})", configured
    )


def grant_due(conn: sqlite3.Connection, site: SitePlan, stamp: Stamp) -> int:
    """Close ended periods and book every grant due up to now; return entries booked.

    Each account runs in its own transaction. Safe to run any number of
    times: entry ids are derived from the account and the period.
    """
    with transaction(conn):
        sync_rules(conn, site, stamp)
    booked = 0
    for rule in conn.execute("SELECT * FROM budget_rules").fetchall():
        with transaction(conn):
            booked += _catch_up(conn, rule, stamp)
            accounts.evaluate(conn, rule["account_id"], stamp)
    return booked


def _catch_up(conn: sqlite3.Connection, rule: sqlite3.Row, stamp: Stamp) -> int:
    account_id = rule["account_id"]
    row = conn.execute(
        "SELECT currency, created_at, closed_at FROM accounts WHERE id = ?",
        (account_id,),
    ).fetchone()
    if row is None or row["closed_at"] is not None or rule["amount_minor"] == 0:
        return 0
    zone = ZoneInfo(rule["timezone"])
    kind = rule["period"]
    today = stamp.at.astimezone(zone).date()
    amount = Money(rule["amount_minor"], row["currency"])

    last = conn.execute(
        "SELECT * FROM budget_periods WHERE account_id = ? "
        "ORDER BY period_start DESC LIMIT 1",
        (account_id,),
    ).fetchone()
    if rule["moved_in"] is not None:
        first_day = date.fromisoformat(rule["moved_in"])
    else:
        first_day = datetime.fromisoformat(row["created_at"]).astimezone(zone).date()
    previous: sqlite3.Row | None = last
    period = (
        period_of(first_day, kind)
        if last is None
        else period_of(date.fromisoformat(last["period_end"]), kind)
    )

    booked = 0
    while period.start <= today:
        carried = 0
        if previous is not None:
            booked += _close(conn, previous, zone, stamp)
            closed = conn.execute(
                "SELECT rolled_over_minor FROM budget_periods "
                "WHERE account_id = ? AND period_start = ?",
                (account_id, previous["period_start"]),
            ).fetchone()
            carried = int(closed["rolled_over_minor"] or 0)
        grant = prorated(amount, period, first_day)
        entry_id = f"budget:{account_id}:{period.start.isoformat()}"
        posted = ledger.post(
            conn,
            NewEntry(
                id=entry_id,
                account_id=account_id,
                kind=EntryKind.TOPUP,
                amount=grant,
                source=SOURCE,
                booked=stamp,
                ref=entry_id,
                detail={
                    "period_start": period.start.isoformat(),
                    "period_end": period.end.isoformat(),
                    "prorated": grant != amount,
                    "carried_in_minor": carried,
                },
            ),
        )
        booked += not posted.duplicate
        conn.execute(
            """INSERT INTO budget_periods (account_id, period_start, period_end,
                   granted_minor, carried_in_minor, granted_entry)
               VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING""",
            (
                account_id,
                period.start.isoformat(),
                period.end.isoformat(),
                grant.minor,
                carried,
                entry_id,
            ),
        )
        log.info(
            "budget_granted",
            account=account_id,
            period_start=period.start.isoformat(),
            amount=str(grant),
            carried_in=carried,
            late=stamp.at > local_midnight_utc(period.start, zone) + timedelta(hours=1),
        )
        previous = conn.execute(
            "SELECT * FROM budget_periods WHERE account_id = ? AND period_start = ?",
            (account_id, period.start.isoformat()),
        ).fetchone()
        period = period.following(kind)
    return booked


def _close(
    conn: sqlite3.Connection, period: sqlite3.Row, zone: ZoneInfo, stamp: Stamp
) -> int:
    """Roll over or forfeit what is left of an ended period's budget, once."""
    if period["closed_at"] is not None:
        return 0
    account_id = period["account_id"]
    rule = conn.execute(
        "SELECT unused, rollover_cap_minor FROM budget_rules WHERE account_id = ?",
        (account_id,),
    ).fetchone()
    currency = ledger.account_currency(conn, account_id)
    end = local_midnight_utc(date.fromisoformat(period["period_end"]), zone)
    # The balance at the period's end: what was booked before it, plus the
    # grants and forfeits of periods up to this one even when the gateway
    # booked them late, after an outage over the boundary.
    at_end = conn.execute(
        "SELECT COALESCE(SUM(amount_minor), 0) FROM ledger_entries "
        "WHERE account_id = ? AND (booked_at < ? OR (source = ? AND "
        "json_extract(detail, '$.period_start') <= ?))",
        (account_id, _iso(end), SOURCE, period["period_start"]),
    ).fetchone()[0]
    available = period["granted_minor"] + period["carried_in_minor"]
    unused = min(max(int(at_end), 0), available)
    if rule["unused"] == "forfeit":
        rolled = 0
    elif rule["rollover_cap_minor"] is None:
        rolled = unused
    else:
        rolled = min(unused, rule["rollover_cap_minor"])
    forfeited = unused - rolled
    booked = 0
    if forfeited:
        entry_id = f"budget-forfeit:{account_id}:{period['period_start']}"
        posted = ledger.post(
            conn,
            NewEntry(
                id=entry_id,
                account_id=account_id,
                kind=EntryKind.ADJUSTMENT,
                amount=Money(-forfeited, currency),
                source=SOURCE,
                booked=stamp,
                ref=entry_id,
                detail={
                    "reason": "unused budget forfeited at the period's end",
                    "period_start": period["period_start"],
                    "unused_minor": unused,
                    "rolled_over_minor": rolled,
                },
            ),
        )
        booked += not posted.duplicate
    conn.execute(
        """UPDATE budget_periods SET rolled_over_minor = ?, forfeited_minor = ?,
               closed_at = ? WHERE account_id = ? AND period_start = ?""",
        (rolled, forfeited, stamp.iso(), account_id, period["period_start"]),
    )
    log.info(
        "budget_period_closed",
        account=account_id,
        period_start=period["period_start"],
        unused_minor=unused,
        rolled_over_minor=rolled,
        forfeited_minor=forfeited,
    )
    return booked


def sub_budgets(
    conn: sqlite3.Connection, account_id: str, stamp: Stamp
) -> list[SubBudget]:
    """Return each capped medium's cap and spending in the period around `stamp`."""
    rule = conn.execute(
        "SELECT period, timezone, media_caps FROM budget_rules WHERE account_id = ?",
        (account_id,),
    ).fetchone()
    if rule is None:
        return []
    caps: dict[str, int] = json.loads(rule["media_caps"])
    if not caps:
        return []
    zone = ZoneInfo(rule["timezone"])
    period = period_of(stamp.at.astimezone(zone).date(), rule["period"])
    start = _iso(local_midnight_utc(period.start, zone))
    end = _iso(local_midnight_utc(period.end, zone))
    currency = ledger.account_currency(conn, account_id)
    out = []
    for medium, cap in sorted(caps.items()):
        # Debits for the medium (consumption, standing charges, laundry
        # cycles) count; reversals of them count back.
        spent = conn.execute(
            """SELECT COALESCE(-SUM(amount_minor), 0) FROM ledger_entries
               WHERE account_id = ? AND medium = ? AND booked_at >= ?
                 AND booked_at < ?
                 AND kind IN ('consumption', 'standing_charge', 'reversal')""",
            (account_id, medium, start, end),
        ).fetchone()[0]
        out.append(SubBudget(medium, Money(cap, currency), Money(int(spent), currency)))
    return out


def medium_exhausted(
    conn: sqlite3.Connection, account_id: str, medium: str, stamp: Stamp
) -> bool:
    """Return True when a medium's sub-budget for the current period is spent.

    The actuators cut off that medium's units while the account's other
    media go on. A medium without a cap is never exhausted.
    """
    return any(
        s.medium == medium and s.exhausted for s in sub_budgets(conn, account_id, stamp)
    )


def chore(conn: sqlite3.Connection, site: SitePlan, stamp: Stamp) -> bool:
    """Housekeeping job: grant and close budget periods that are due."""
    return grant_due(conn, site, stamp) > 0
