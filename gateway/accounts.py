"""Accounts in the database: created from the configuration, their supply
state re-decided whenever their balance moves, and top-ups admitted under
the credit rules (maximum balance, emergency credit repaid first)."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from decimal import Decimal

import structlog

from gateway import emergency, friendly, laundry, ledger, outbox, warnings
from gateway.clock import Stamp
from gateway.config.credit import contacts_of
from gateway.ledger import Entry, LedgerError, Posted
from gateway.money import Money
from gateway.policy import Decision, Rules, SupplyState, decide, topup_refusal
from gateway.site import SitePlan
from gateway.store import transaction

log = structlog.get_logger(__name__)


def sync_from_config(conn: sqlite3.Connection, site: SitePlan, stamp: Stamp) -> None:
    """Create configured accounts that are new; update known ones whose YAML changed.

    An account's rules may since have been changed by the cloud; those changes
    stand until the installer edits that account's section in the YAML.
    Accounts missing from the config are kept: their money and history stay
    in the ledger. The site's friendly hours are stored too. Runs inside the
    caller's transaction.
    """
    settings = site.config.credit
    friendly.store_settings(
        conn,
        site.config.site.timezone,
        settings.friendly_hours,
        site.config.money(settings.unsynced_debt_floor),
        stamp,
        site.config.money(settings.reconnect_margin),
    )
    for a in site.config.accounts:
        rules = site.rules[a.id]
        credit = a.credit or settings.defaults
        emergency_rule = credit.emergency
        digest = hashlib.sha256(
            (a.model_dump_json() + settings.defaults.model_dump_json()).encode()
        ).hexdigest()[:16]
        contacts = contacts_of(a.contact)
        conn.execute(
            """INSERT INTO accounts (id, name, currency, tariff_id, credit_line_minor,
                                     low_balance_minor, contact, config_digest,
                                     created_at, max_balance_minor, emergency_minor,
                                     emergency_automatic, emergency_available_minor,
                                     lifeline_litres, warning_rules)
               VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
               ON CONFLICT(id) DO UPDATE SET name = excluded.name,
                   tariff_id = excluded.tariff_id,
                   credit_line_minor = excluded.credit_line_minor,
                   low_balance_minor = excluded.low_balance_minor,
                   contact = excluded.contact,
                   config_digest = excluded.config_digest,
                   max_balance_minor = excluded.max_balance_minor,
                   emergency_minor = excluded.emergency_minor,
                   emergency_automatic = excluded.emergency_automatic,
                   emergency_available_minor = excluded.emergency_available_minor,
                   lifeline_litres = excluded.lifeline_litres,
                   warning_rules = excluded.warning_rules
               WHERE accounts.config_digest IS NOT excluded.config_digest""",
            (
                a.id,
                a.name,
                site.currency,
                site.tariffs.tariff_of(a.id).id,
                rules.credit_line.minor,
                rules.low_balance.minor,
                json.dumps(contacts) if contacts else None,
                digest,
                stamp.iso(),
                _minor(site, credit.max_balance),
                _minor(site, emergency_rule.amount if emergency_rule else None),
                int(bool(emergency_rule and emergency_rule.automatic)),
                _minor(site, emergency_rule.available_below if emergency_rule else None)
                or 0,
                None
                if credit.lifeline_litres_per_day is None
                else str(credit.lifeline_litres_per_day),
                None if credit.warnings is None else credit.warnings.model_dump_json(),
            ),
        )
        conn.execute(
            "INSERT INTO balances (account_id) VALUES (?) ON CONFLICT DO NOTHING",
            (a.id,),
        )


def _minor(site: SitePlan, amount: Decimal | None) -> int | None:
    return None if amount is None else site.config.money(amount).minor


def state_of(conn: sqlite3.Connection, account_id: str) -> SupplyState:
    row = conn.execute(
        "SELECT state FROM balances WHERE account_id = ?", (account_id,)
    ).fetchone()
    return SupplyState.OK if row is None else SupplyState(row["state"])


def rules_of(conn: sqlite3.Connection, account_id: str) -> Rules:
    """Return an account's current rules as the database holds them."""
    row = conn.execute("SELECT * FROM accounts WHERE id = ?", (account_id,)).fetchone()
    if row is None:
        raise LookupError(f"no account {account_id!r}")
    currency = row["currency"]

    def money(minor: int | None) -> Money | None:
        return None if minor is None else Money(minor, currency)

    floor = friendly.unsynced_floor_minor(conn)
    return Rules(
        Money(row["credit_line_minor"], currency),
        Money(row["low_balance_minor"], currency),
        max_balance=money(row["max_balance_minor"]),
        emergency=money(row["emergency_minor"]),
        emergency_automatic=bool(row["emergency_automatic"]),
        emergency_available=money(row["emergency_available_minor"]),
        lifeline_litres=None
        if row["lifeline_litres"] is None
        else Decimal(row["lifeline_litres"]),
        unsynced_floor=money(floor),
        reconnect_margin=Money(friendly.reconnect_margin_minor(conn), currency),
    )


class TopUpRejected(LedgerError):
    """A top-up refused whole by the credit rules; the message says why."""


def accept_topup(
    conn: sqlite3.Connection, posted: Posted, stamp: Stamp
) -> Entry | None:
    """Apply the credit rules to a top-up just posted, in the caller's transaction.

    The open emergency-credit loan is repaid first, as its own entry (which
    is returned). A top-up that would lift the balance above the maximum
    balance raises TopUpRejected: the caller rolls back, and nothing of it
    stays. A duplicate top-up was judged the first time and is left alone.
    """
    if posted.duplicate:
        return None
    account_id = posted.entry.account_id
    repayment = emergency.repay(conn, posted.entry, stamp)
    balance = ledger.balance(conn, account_id)
    reason = topup_refusal(balance, rules_of(conn, account_id), posted.entry.amount)
    if reason is not None:
        log.warning("topup_refused", account=account_id, reason=reason)
        raise TopUpRejected(reason)
    return repayment


def evaluate(
    conn: sqlite3.Connection, account_id: str, stamp: Stamp
) -> Decision | None:
    """Re-decide an account's supply; persist and return the decision if it changed.

    Runs inside the caller's transaction, so the decision commits with the
    entry that caused it.
    """
    rules = rules_of(conn, account_id)
    # Decide on what is available: money held for a laundry booking is
    # already promised and cannot also keep the lights on.
    balance = laundry.available(conn, account_id)
    if (
        rules.emergency_automatic
        and emergency.refusal(conn, account_id, rules, automatic=True) is None
    ):
        emergency.lend(conn, account_id, rules, stamp, automatic=True)
        balance = laundry.available(conn, account_id)
    warnings.check(conn, account_id, balance, rules, stamp)
    decision = decide(
        balance, rules, state_of(conn, account_id), friendly.moment(conn, stamp)
    )
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
        SupplyState.PENDING_CUT_OFF: "cut_off_postponed",
        SupplyState.LOW: "low_balance_warning"
        if decision.previous in (SupplyState.OK, SupplyState.PENDING_CUT_OFF)
        else "supply_reconnected",
        SupplyState.OK: "supply_reconnected"
        if decision.previous == SupplyState.CUT_OFF
        else "balance_ok",
    }[decision.state]
    log.info(event, account=account_id, balance=str(balance), reason=decision.reason)
    return decision


def chore(conn: sqlite3.Connection, site: SitePlan, stamp: Stamp) -> bool:
    """Re-decide every account, so a cut-off postponed by friendly hours or an
    unsynchronised clock happens once the window ends or the clock syncs."""
    changed = False
    with transaction(conn):
        for row in conn.execute(
            "SELECT id FROM accounts WHERE closed_at IS NULL ORDER BY id"
        ).fetchall():
            changed |= evaluate(conn, row["id"], stamp) is not None
    return changed
