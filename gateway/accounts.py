"""Accounts in the database: created from the configuration, and their supply
state re-decided whenever their balance moves."""

from __future__ import annotations

import hashlib
import sqlite3

import structlog

from gateway import ledger, outbox
from gateway.clock import Stamp
from gateway.money import Money
from gateway.policy import Decision, Rules, SupplyState, decide
from gateway.site import SitePlan

log = structlog.get_logger(__name__)


def sync_from_config(conn: sqlite3.Connection, site: SitePlan, stamp: Stamp) -> None:
    """Create configured accounts that are new; update known ones whose YAML changed.

    An account's rules may since have been changed by the cloud; those changes
    stand until the installer edits that account's section in the YAML.
    Accounts missing from the config are kept: their money and history stay
    in the ledger. Runs inside the caller's transaction.
    """
    for a in site.config.accounts:
        rules = site.rules[a.id]
        digest = hashlib.sha256(a.model_dump_json().encode()).hexdigest()[:16]
        conn.execute(
            """INSERT INTO accounts (id, name, currency, tariff_id, credit_line_minor,
                                     low_balance_minor, contact, config_digest,
                                     created_at)
               VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
               ON CONFLICT(id) DO UPDATE SET name = excluded.name,
                   tariff_id = excluded.tariff_id,
                   credit_line_minor = excluded.credit_line_minor,
                   low_balance_minor = excluded.low_balance_minor,
                   contact = excluded.contact,
                   config_digest = excluded.config_digest
               WHERE accounts.config_digest IS NOT excluded.config_digest""",
            (
                a.id,
                a.name,
                site.currency,
                site.tariffs.tariff_of(a.id).id,
                rules.credit_line.minor,
                rules.low_balance.minor,
                a.contact,
                digest,
                stamp.iso(),
            ),
        )
        conn.execute(
            "INSERT INTO balances (account_id) VALUES (?) ON CONFLICT DO NOTHING",
            (a.id,),
        )


def state_of(conn: sqlite3.Connection, account_id: str) -> SupplyState:
    row = conn.execute(
        "SELECT state FROM balances WHERE account_id = ?", (account_id,)
    ).fetchone()
    return SupplyState.OK if row is None else SupplyState(row["state"])


def rules_of(conn: sqlite3.Connection, account_id: str) -> Rules:
    """Return an account's current rules as the database holds them."""
    row = conn.execute(
        "SELECT currency, credit_line_minor, low_balance_minor FROM accounts "
        "WHERE id = ?",
        (account_id,),
    ).fetchone()
    if row is None:
        raise LookupError(f"no account {account_id!r}")
    return Rules(
        Money(row["credit_line_minor"], row["currency"]),
        Money(row["low_balance_minor"], row["currency"]),
    )


def evaluate(
    conn: sqlite3.Connection, account_id: str, stamp: Stamp
) -> Decision | None:
    """Re-decide an account's supply; persist and return the decision if it changed.

    Runs inside the caller's transaction, so the decision commits with the
    entry that caused it.
    """
    balance = ledger.balance(conn, account_id)
    decision = decide(balance, rules_of(conn, account_id), state_of(conn, account_id))
    if not decision.changed:
        return None
    conn.execute(
        "UPDATE balances SET state = ?, state_since = ? WHERE account_id = ?",
        (decision.state.value, stamp.iso(), account_id),
    )
    cursor = conn.execute(
        """INSERT INTO decisions (account_id, state, previous, reason, balance_minor,
                                  decided_at, clock_synced)
           VALUES (?, ?, ?, ?, ?, ?, ?)""",
        (
            account_id,
            decision.state.value,
            decision.previous.value,
            decision.reason,
            balance.minor,
            stamp.iso(),
            int(stamp.synced),
        ),
    )
    outbox.enqueue(
        conn,
        "decision",
        {
            "decision_id": cursor.lastrowid,
            "account_id": account_id,
            "state": decision.state.value,
            "previous": decision.previous.value,
            "reason": decision.reason,
            "balance_minor": balance.minor,
            "currency": balance.currency,
            "decided_at": stamp.iso(),
            "clock_synced": stamp.synced,
        },
        stamp,
        message_id=f"decision:{cursor.lastrowid}",
    )
    event = {
        SupplyState.CUT_OFF: "supply_cut_off",
        SupplyState.LOW: "low_balance_warning"
        if decision.previous == SupplyState.OK
        else "supply_reconnected",
        SupplyState.OK: "supply_reconnected"
        if decision.previous == SupplyState.CUT_OFF
        else "balance_ok",
    }[decision.state]
    log.info(event, account=account_id, balance=str(balance), reason=decision.reason)
    return decision
