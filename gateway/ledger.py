"""The per-resident ledger: idempotent entries and the balance they add up to.

Every function that writes expects to run inside `store.transaction()`, so an
entry, its balance and its outbox message commit together or not at all.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum
from typing import Any

from gateway import outbox
from gateway.clock import Stamp
from gateway.money import Money


class EntryKind(StrEnum):
    """Why money moved."""

    TOPUP = "topup"
    CONSUMPTION = "consumption"
    STANDING_CHARGE = "standing_charge"
    ADJUSTMENT = "adjustment"
    REVERSAL = "reversal"
    EMERGENCY_CREDIT = "emergency_credit"
    EMERGENCY_REPAYMENT = "emergency_repayment"


class LedgerError(Exception):
    """A ledger request that cannot be applied; the message says why."""


class IdempotencyConflict(LedgerError):
    """An entry id was reused for a different request."""


@dataclass(frozen=True, slots=True)
class NewEntry:
    """A request to book money; `id` makes it idempotent."""

    id: str
    account_id: str
    kind: EntryKind
    amount: Money
    source: str
    booked: Stamp
    ref: str | None = None
    meter_id: str | None = None
    medium: str | None = None
    quantity: Decimal | None = None
    unit: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Entry:
    """A booked entry as the ledger holds it."""

    seq: int
    id: str
    account_id: str
    kind: EntryKind
    amount: Money
    source: str
    ref: str | None
    booked_at: str
    clock_synced: bool
    meter_id: str | None
    medium: str | None
    quantity: Decimal | None
    unit: str | None
    detail: dict[str, Any]

    def to_message(self) -> dict[str, Any]:
        """Return the entry as an uplink payload (amounts as minor-unit integers)."""
        return {
            "entry_id": self.id,
            "ledger_seq": self.seq,
            "account_id": self.account_id,
            "kind": self.kind.value,
            "amount_minor": self.amount.minor,
            "currency": self.amount.currency,
            "source": self.source,
            "ref": self.ref,
            "meter_id": self.meter_id,
            "medium": self.medium,
            "quantity": None if self.quantity is None else str(self.quantity),
            "unit": self.unit,
            "booked_at": self.booked_at,
            "clock_synced": self.clock_synced,
            "detail": self.detail,
        }


@dataclass(frozen=True, slots=True)
class Posted:
    """What posting did: the entry (the first one, for a duplicate) and the balance."""

    entry: Entry
    duplicate: bool
    balance: Money


def _entry(row: sqlite3.Row) -> Entry:
    return Entry(
        seq=row["seq"],
        id=row["id"],
        account_id=row["account_id"],
        kind=EntryKind(row["kind"]),
        amount=Money(row["amount_minor"], row["currency"]),
        source=row["source"],
        ref=row["ref"],
        booked_at=row["booked_at"],
        clock_synced=bool(row["clock_synced"]),
        meter_id=row["meter_id"],
        medium=row["medium"],
        quantity=None if row["quantity"] is None else Decimal(row["quantity"]),
        unit=row["unit"],
        detail=json.loads(row["detail"]),
    )


def get_entry(conn: sqlite3.Connection, entry_id: str) -> Entry | None:
    row = conn.execute(
        "SELECT * FROM ledger_entries WHERE id = ?", (entry_id,)
    ).fetchone()
    return None if row is None else _entry(row)


def account_currency(conn: sqlite3.Connection, account_id: str) -> str:
    row = conn.execute(
        "SELECT currency FROM accounts WHERE id = ?", (account_id,)
    ).fetchone()
    if row is None:
        raise LedgerError(f"no account {account_id!r}")
    return str(row["currency"])


def post(conn: sqlite3.Connection, new: NewEntry) -> Posted:
    """Book an entry once; the same id again returns the first booking, as duplicate."""
    if not conn.in_transaction:
        raise LedgerError("ledger.post must run inside store.transaction()")
    currency = account_currency(conn, new.account_id)
    if new.amount.currency != currency:
        raise LedgerError(
            f"account {new.account_id} is kept in {currency}, not {new.amount.currency}"
        )

    cursor = conn.execute(
        """INSERT INTO ledger_entries
               (id, account_id, kind, amount_minor, currency, source, ref, meter_id,
                medium, quantity, unit, booked_at, clock_synced, detail)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
           ON CONFLICT(id) DO NOTHING""",
        (
            new.id,
            new.account_id,
            new.kind.value,
            new.amount.minor,
            new.amount.currency,
            new.source,
            new.ref,
            new.meter_id,
            new.medium,
            None if new.quantity is None else str(new.quantity),
            new.unit,
            new.booked.iso(),
            int(new.booked.synced),
            json.dumps(new.detail, sort_keys=True, default=str),
        ),
    )
    if cursor.rowcount == 0:
        first = get_entry(conn, new.id)
        assert first is not None
        if (first.account_id, first.kind, first.amount) != (
            new.account_id,
            new.kind,
            new.amount,
        ):
            raise IdempotencyConflict(
                f"entry id {new.id!r} was already used for {first.kind.value} of "
                f"{first.amount} on account {first.account_id}; use a new reference"
            )
        return Posted(first, True, balance(conn, new.account_id))

    seq = cursor.lastrowid
    assert seq is not None
    conn.execute(
        """INSERT INTO balances (account_id, balance_minor, last_seq) VALUES (?, ?, ?)
           ON CONFLICT(account_id) DO UPDATE SET
               balance_minor = balance_minor + excluded.balance_minor,
               last_seq = excluded.last_seq""",
        (new.account_id, new.amount.minor, seq),
    )
    entry = get_entry(conn, new.id)
    assert entry is not None
    outbox.enqueue(
        conn,
        "ledger_entry",
        entry.to_message(),
        new.booked,
        message_id=f"entry:{entry.id}",
    )
    return Posted(entry, False, balance(conn, new.account_id))


def balance(conn: sqlite3.Connection, account_id: str) -> Money:
    """Return the cached balance (kept equal to the sum of entries by `post`)."""
    currency = account_currency(conn, account_id)
    row = conn.execute(
        "SELECT balance_minor FROM balances WHERE account_id = ?", (account_id,)
    ).fetchone()
    return Money(0 if row is None else row["balance_minor"], currency)


def recomputed_balance(conn: sqlite3.Connection, account_id: str) -> Money:
    """Return the balance summed from the entries themselves, ignoring the cache."""
    currency = account_currency(conn, account_id)
    row = conn.execute(
        "SELECT COALESCE(SUM(amount_minor), 0) AS s FROM ledger_entries "
        "WHERE account_id = ?",
        (account_id,),
    ).fetchone()
    return Money(int(row["s"]), currency)


def entries(
    conn: sqlite3.Connection, account_id: str, *, limit: int = 50
) -> list[Entry]:
    """Return an account's newest entries first."""
    rows = conn.execute(
        "SELECT * FROM ledger_entries WHERE account_id = ? ORDER BY seq DESC LIMIT ?",
        (account_id, limit),
    ).fetchall()
    return [_entry(r) for r in rows]


def last_seq(conn: sqlite3.Connection) -> int:
    """Return the highest entry sequence; a change means someone booked money."""
    row = conn.execute("SELECT COALESCE(MAX(seq), 0) FROM ledger_entries").fetchone()
    return int(row[0])
