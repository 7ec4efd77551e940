"""Emergency credit: a fixed amount lent once an account's credit runs out,
booked as a ledger entry, and repaid first from the next top-ups (each
repayment its own entry). One loan at a time: a second is refused until the
first is repaid.

Every function runs inside the caller's transaction.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

import structlog

from gateway import ledger
from gateway.clock import Stamp
from gateway.ledger import Entry, EntryKind, LedgerError, NewEntry
from gateway.money import Money
from gateway.policy import Rules

log = structlog.get_logger(__name__)

SOURCE = "emergency"


class EmergencyRefused(LedgerError):
    """Emergency credit cannot be lent now; the message says why."""


@dataclass(frozen=True, slots=True)
class Loan:
    """One emergency credit loan and how much of it is still owed."""

    id: str
    account_id: str
    amount: Money
    repaid: Money

    @property
    def owed(self) -> Money:
        return self.amount - self.repaid


def open_loan(conn: sqlite3.Connection, account_id: str) -> Loan | None:
    """Return the account's loan not yet fully repaid, if any."""
    row = conn.execute(
        "SELECT l.*, a.currency FROM emergency_loans l JOIN accounts a "
        "ON a.id = l.account_id WHERE l.account_id = ? AND l.repaid_at IS NULL",
        (account_id,),
    ).fetchone()
    if row is None:
        return None
    return Loan(
        row["id"],
        account_id,
        Money(row["amount_minor"], row["currency"]),
        Money(row["repaid_minor"], row["currency"]),
    )


def refusal(
    conn: sqlite3.Connection, account_id: str, rules: Rules, *, automatic: bool
) -> str | None:
    """Say why emergency credit cannot be lent now, or return None."""
    if rules.emergency is None:
        return f"account {account_id} has no emergency credit configured"
    if automatic and not rules.emergency_automatic:
        return f"account {account_id} lends emergency credit on request only"
    loan = open_loan(conn, account_id)
    if loan is not None:
        return (
            f"account {account_id} still owes {loan.owed} of emergency credit "
            f"{loan.id}; it can be taken again once a top-up has repaid it"
        )
    remaining = rules.remaining(ledger.balance(conn, account_id))
    limit = Money.zero(remaining.currency)
    if not automatic and rules.emergency_available is not None:
        limit = rules.emergency_available
    if remaining > limit:
        return (
            f"account {account_id} still has {remaining} of credit; emergency "
            f"credit is lent once that is at or below {limit}"
        )
    return None


def lend(
    conn: sqlite3.Connection,
    account_id: str,
    rules: Rules,
    stamp: Stamp,
    *,
    automatic: bool = False,
) -> Entry:
    """Book the account's emergency credit as a loan; raise EmergencyRefused if not."""
    reason = refusal(conn, account_id, rules, automatic=automatic)
    if reason is not None:
        raise EmergencyRefused(reason)
    assert rules.emergency is not None
    taken = conn.execute(
        "SELECT COUNT(*) FROM emergency_loans WHERE account_id = ?", (account_id,)
    ).fetchone()[0]
    # The loan's id counts the account's loans: a retried request after a
    # crash books the same id, and the ledger applies it once.
    loan_id = f"emergency_credit:{account_id}:{taken + 1}"
    how = "automatic" if automatic else "request"
    posted = ledger.post(
        conn,
        NewEntry(
            id=loan_id,
            account_id=account_id,
            kind=EntryKind.EMERGENCY_CREDIT,
            amount=rules.emergency,
            source=SOURCE,
            booked=stamp,
            ref=loan_id,
            detail={"rule": "emergency_credit", "how": how},
        ),
    )
    conn.execute(
        """INSERT INTO emergency_loans (id, account_id, amount_minor, how, taken_at)
           VALUES (?, ?, ?, ?, ?) ON CONFLICT(id) DO NOTHING""",
        (loan_id, account_id, rules.emergency.minor, how, stamp.iso()),
    )
    log.info(
        "emergency_credit_lent",
        account=account_id,
        amount=str(rules.emergency),
        how=how,
        balance=str(posted.balance),
    )
    return posted.entry


def repay(conn: sqlite3.Connection, topup: Entry, stamp: Stamp) -> Entry | None:
    """Repay the open loan first from a top-up, as its own entry; return that entry."""
    loan = open_loan(conn, topup.account_id)
    if loan is None or topup.amount.minor <= 0:
        return None
    amount = min(loan.owed, topup.amount)
    posted = ledger.post(
        conn,
        NewEntry(
            id=f"emergency_repayment:{topup.id}",
            account_id=topup.account_id,
            kind=EntryKind.EMERGENCY_REPAYMENT,
            amount=-amount,
            source=SOURCE,
            booked=stamp,
            ref=loan.id,
            detail={"rule": "emergency_repayment", "loan": loan.id, "topup": topup.id},
        ),
    )
    repaid = loan.repaid + amount
    conn.execute(
        "UPDATE emergency_loans SET repaid_minor = ?, repaid_at = ? WHERE id = ?",
        (repaid.minor, stamp.iso() if repaid == loan.amount else None, loan.id),
    )
    log.info(
        "emergency_credit_repaid",
        account=topup.account_id,
        loan=loan.id,
        repaid=str(amount),
        still_owed=str(loan.amount - repaid),
    )
    return posted.entry
