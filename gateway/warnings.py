"""Warnings to residents: thresholds on the remaining credit and on the
forecast days until it is used up, each firing once per downward crossing.

A fired warning re-arms only once the account has recovered past the
threshold plus a hysteresis margin, so a balance hovering around a threshold
warns once. A firing goes to the unit's display (a display message), to the
cloud (an outbox event) and to the resident's own channels (a queued
notification that gateway.notify sends), each by its own idempotent id.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from decimal import Decimal

import structlog

from gateway import ledger, outbox
from gateway.clock import Stamp
from gateway.config.credit import Warnings
from gateway.forecast import daily_cost
from gateway.money import Money
from gateway.policy import Rules

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class Level:
    """One threshold as measured now: where the account stands against it."""

    key: str
    below: bool
    recovered: bool
    text: str


@dataclass(frozen=True, slots=True)
class Fired:
    """A warning that fired: its id (shared by every channel) and its text."""

    id: str
    account_id: str
    key: str
    text: str


def daily_use(
    conn: sqlite3.Connection, account_id: str, stamp: Stamp, days: int
) -> Money | None:
    """Return the average cost a day over the last `days` (or the account's life)."""
    per_day = daily_cost(conn, account_id, stamp, days)
    if per_day is None:
        return None
    return Money.round_major(per_day, ledger.account_currency(conn, account_id))


def days_left(remaining: Money, per_day: Money | None) -> Decimal | None:
    """Return the forecast days until `remaining` is used up; None if it never is."""
    if per_day is None or per_day.minor <= 0:
        return None
    if remaining.minor <= 0:
        return Decimal(0)
    return (Decimal(remaining.minor) / Decimal(per_day.minor)).quantize(Decimal("0.1"))


def levels(
    rules: Warnings,
    remaining: Money,
    forecast: Decimal | None,
) -> list[Level]:
    """Measure the account against each configured threshold."""
    out = []
    currency = remaining.currency
    for threshold in rules.remaining_below:
        level = Money.parse(threshold, currency)
        rearm = Money.parse(threshold + rules.hysteresis, currency)
        out.append(
            Level(
                f"remaining:{threshold}",
                remaining <= level,
                remaining > rearm,
                f"{remaining} of credit left (warning at {level})",
            )
        )
    for threshold in rules.days_left_below:
        below = forecast is not None and forecast <= threshold
        recovered = forecast is None or forecast > threshold + rules.hysteresis_days
        out.append(
            Level(
                f"days:{threshold}",
                below,
                recovered,
                f"about {forecast} days of credit left at recent use "
                f"(warning at {threshold} days)",
            )
        )
    return out


def check(
    conn: sqlite3.Connection,
    account_id: str,
    balance: Money,
    rules: Rules,
    stamp: Stamp,
) -> list[Fired]:
    """Fire the warnings the account has just crossed; re-arm the recovered ones.

    Runs inside the caller's transaction.
    """
    row = conn.execute(
        "SELECT name, warning_rules FROM accounts WHERE id = ?", (account_id,)
    ).fetchone()
    if row is None or row["warning_rules"] is None:
        return []
    config = Warnings.model_validate_json(row["warning_rules"])
    remaining = rules.remaining(balance)
    forecast = None
    if config.days_left_below:
        per_day = daily_use(conn, account_id, stamp, config.forecast_days)
        forecast = days_left(remaining, per_day)

    state = {
        r["warning"]: r
        for r in conn.execute(
            "SELECT warning, fired, times FROM warning_state WHERE account_id = ?",
            (account_id,),
        )
    }
    fired = []
    for level in levels(config, remaining, forecast):
        known = state.get(level.key)
        was_fired = bool(known and known["fired"])
        times = 0 if known is None else int(known["times"])
        if not was_fired and level.below:
            warning = Fired(
                f"warning:{account_id}:{level.key}:{times + 1}",
                account_id,
                level.key,
                f"{row['name']}: {level.text}",
            )
            _set(conn, account_id, level.key, True, times + 1, stamp)
            _deliver(conn, warning, config, remaining, forecast, stamp)
            fired.append(warning)
        elif was_fired and level.recovered:
            _set(conn, account_id, level.key, False, times, stamp)
            # The display stops showing the warning once it no longer holds.
            conn.execute(
                "UPDATE display_messages SET until = ? WHERE command_id = ?",
                (stamp.iso(), f"warning:{account_id}:{level.key}:{times}"),
            )
            log.info("warning_rearmed", account=account_id, warning=level.key)
    return fired


def _set(
    conn: sqlite3.Connection,
    account_id: str,
    key: str,
    fired: bool,
    times: int,
    stamp: Stamp,
) -> None:
    conn.execute(
        """INSERT INTO warning_state (account_id, warning, fired, times, changed_at)
           VALUES (?, ?, ?, ?, ?)
           ON CONFLICT(account_id, warning) DO UPDATE SET fired = excluded.fired,
               times = excluded.times, changed_at = excluded.changed_at""",
        (account_id, key, int(fired), times, stamp.iso()),
    )


def _deliver(
    conn: sqlite3.Connection,
    warning: Fired,
    config: Warnings,
    remaining: Money,
    forecast: Decimal | None,
    stamp: Stamp,
) -> None:
    """Put one firing on every configured channel, each once by the warning's id."""
    if "display" in config.channels:
        conn.execute(
            """INSERT INTO display_messages (account_id, unit_id, text, until,
                   command_id, created_at) VALUES (?, NULL, ?, NULL, ?, ?)
               ON CONFLICT(command_id) DO NOTHING""",
            (warning.account_id, warning.text, warning.id, stamp.iso()),
        )
    if "cloud" in config.channels:
        outbox.enqueue(
            conn,
            "warning",
            {
                "warning_id": warning.id,
                "account_id": warning.account_id,
                "warning": warning.key,
                "text": warning.text,
                "remaining_minor": remaining.minor,
                "currency": remaining.currency,
                "days_left": None if forecast is None else str(forecast),
                "fired_at": stamp.iso(),
                "clock_synced": stamp.synced,
            },
            stamp,
            message_id=warning.id,
        )
    if "contact" in config.channels:
        conn.execute(
            """INSERT INTO notifications (id, account_id, title, body, created_at)
               VALUES (?, ?, ?, ?, ?) ON CONFLICT(id) DO NOTHING""",
            (
                warning.id,
                warning.account_id,
                "Prepaid credit warning",
                warning.text,
                stamp.iso(),
            ),
        )
    log.info(
        "warning_fired",
        account=warning.account_id,
        warning=warning.key,
        remaining=str(remaining),
        days_left=None if forecast is None else str(forecast),
    )
