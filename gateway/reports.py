"""Operator reports over a span of time, building-wide: top-up sales per period
and channel, consumption per period and medium, active accounts, and
cut-offs with their durations. Every figure is summed from the ledger and
the decisions table, so a report's totals equal the ledger's."""

from __future__ import annotations

import sqlite3
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from gateway.history import Bucket, history, period_start
from gateway.money import Money

# Where a top-up came from, by the entry's source.
CHANNELS = {"cloud": "cloud", "cli": "administrator", "budget": "budget"}


@dataclass(frozen=True, slots=True)
class Span:
    """The report's span [since, until) and how it is cut into periods."""

    since: datetime
    until: datetime
    bucket: Bucket
    zone: ZoneInfo
    currency: str


@dataclass(frozen=True, slots=True)
class CutOff:
    """One cut-off of an account: from the decision to cut, to the reconnect."""

    account_id: str
    start: datetime
    end: datetime | None
    seconds: int

    @property
    def ongoing(self) -> bool:
        return self.end is None


def _text(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds")


def _period(booked_at: str, span: Span) -> str:
    day = datetime.fromisoformat(booked_at).astimezone(span.zone).date()
    return period_start(day, span.bucket).isoformat()


def topup_sales(conn: sqlite3.Connection, span: Span) -> list[dict[str, object]]:
    """Return top-ups per period and channel: count and amount."""
    rows = conn.execute(
        """SELECT source, amount_minor, booked_at FROM ledger_entries
           WHERE kind = 'topup' AND booked_at >= ? AND booked_at < ?""",
        (_text(span.since), _text(span.until)),
    ).fetchall()
    count: dict[tuple[str, str], int] = defaultdict(int)
    amount: dict[tuple[str, str], int] = defaultdict(int)
    for r in rows:
        key = (_period(r["booked_at"], span), CHANNELS.get(r["source"], r["source"]))
        count[key] += 1
        amount[key] += r["amount_minor"]
    return [
        {
            "period": k[0],
            "channel": k[1],
            "count": count[k],
            "amount": Money(amount[k], span.currency),
        }
        for k in sorted(count)
    ]


def consumption(conn: sqlite3.Connection, span: Span) -> list[dict[str, object]]:
    """Return consumption and standing charges per period and medium, building-wide."""
    return [
        {
            "period": p.start.isoformat(),
            "medium": p.medium,
            "quantity": p.quantity,
            "unit": p.unit,
            "cost": p.cost,
            "standing": p.standing,
        }
        for p in history(
            conn,
            None,
            zone=span.zone,
            since=span.since,
            until=span.until,
            bucket=span.bucket,
            currency=span.currency,
        )
    ]


def active_accounts(conn: sqlite3.Connection, span: Span) -> list[dict[str, object]]:
    """Return per period how many accounts had ledger entries, and which."""
    rows = conn.execute(
        """SELECT DISTINCT account_id, booked_at FROM ledger_entries
           WHERE booked_at >= ? AND booked_at < ?""",
        (_text(span.since), _text(span.until)),
    ).fetchall()
    seen: dict[str, set[str]] = defaultdict(set)
    for r in rows:
        seen[_period(r["booked_at"], span)].add(r["account_id"])
    return [
        {"period": p, "active": len(ids), "accounts": " ".join(sorted(ids))}
        for p, ids in sorted(seen.items())
    ]


def cut_offs(conn: sqlite3.Connection, span: Span, now: datetime) -> list[CutOff]:
    """Return every cut-off overlapping the span, with its duration inside it.

    A cut-off starts at a decision whose state is cut_off and ends at the
    account's next decision to another state; one still in force is
    counted up to `now` (or the span's end, whichever is first).
    """
    out = []
    rows = conn.execute(
        "SELECT account_id, state, decided_at FROM decisions ORDER BY account_id, id"
    ).fetchall()
    open_since: dict[str, datetime] = {}
    closed: list[tuple[str, datetime, datetime | None]] = []
    for r in rows:
        at = datetime.fromisoformat(r["decided_at"])
        account = r["account_id"]
        if r["state"] == "cut_off":
            open_since.setdefault(account, at)
        elif account in open_since:
            closed.append((account, open_since.pop(account), at))
    closed.extend((a, start, None) for a, start in open_since.items())
    for account, start, end in sorted(closed, key=lambda c: (c[1], c[0])):
        stop = min(end or now, span.until)
        begin = max(start, span.since)
        if stop <= begin:
            continue
        out.append(CutOff(account, start, end, int((stop - begin).total_seconds())))
    return out


def totals(conn: sqlite3.Connection, span: Span) -> dict[str, Money]:
    """Return the report's totals: top-ups per channel and overall, and costs."""
    sales = topup_sales(conn, span)
    out: dict[str, Money] = {"topups": Money(0, span.currency)}
    for row in sales:
        key = f"topups_{row['channel']}"
        amount = row["amount"]
        assert isinstance(amount, Money)
        out[key] = out.get(key, Money(0, span.currency)) + amount
        out["topups"] += amount
    cost = standing = Money(0, span.currency)
    for row in consumption(conn, span):
        assert isinstance(row["cost"], Money) and isinstance(row["standing"], Money)
        cost += row["cost"]
        standing += row["standing"]
    out["consumption"] = cost
    out["standing_charges"] = standing
    return out
