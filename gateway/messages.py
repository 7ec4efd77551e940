"""Display messages: texts the administrator or the cloud sends to one unit,
one account's units or every unit; which one a unit should show now; and
the read receipts units send back, stored and synced to the cloud.

A message is addressed to a unit, to an account (all units that serve it)
or to all units (both left empty). A unit shows its oldest message that is
still valid and that it has not yet acknowledged; once the resident has
read it (the unit's read receipt), the next one comes.

Message ids. Ids 1 to 255 are reserved for the built-in texts of the
Modbus unit's display (docs/modbus.md); stored messages are numbered from
256 on (migration 0005), so both fit the unit's one message register.
"""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime

import structlog

from gateway import outbox
from gateway.clock import Stamp
from gateway.site import SitePlan
from gateway.store import transaction

log = structlog.get_logger(__name__)

MAX_TEXT = 160
# LIMITATION: the Modbus display-message register is 16 bits wide; a site
# that has sent more than 65,000 messages needs the register widened.
MAX_MODBUS_ID = 0xFFFF


class MessageError(ValueError):
    """A message that cannot be sent or a receipt that cannot be stored."""


@dataclass(frozen=True, slots=True)
class Receipt:
    """A unit's resident read the message at `read_at`."""

    unit_id: str
    read_at: str
    clock_synced: bool


@dataclass(frozen=True, slots=True)
class Message:
    """One display message, whom it was for, and who read it."""

    id: int
    text: str
    account_id: str | None
    unit_id: str | None
    until: str | None
    created_at: str
    source: str
    receipts: tuple[Receipt, ...]

    @property
    def audience(self) -> str:
        if self.unit_id is not None:
            return f"unit {self.unit_id}"
        if self.account_id is not None:
            return f"account {self.account_id}"
        return "all units"


@contextmanager
def _own_or_callers(conn: sqlite3.Connection) -> Iterator[None]:
    if conn.in_transaction:
        yield
    else:
        with transaction(conn):
            yield


def sync_units(conn: sqlite3.Connection, site: SitePlan) -> None:
    """Store which account each configured unit serves (in the caller's transaction)."""
    conn.execute("DELETE FROM unit_accounts")
    conn.executemany(
        "INSERT INTO unit_accounts (unit_id, account_id, kind) VALUES (?, ?, ?)",
        [(u.id, u.account_id, u.kind) for u in site.units.values()],
    )


def sent_with_ref(conn: sqlite3.Connection, ref: str) -> int | None:
    """Return the id of the message the administrator sent with this reference."""
    row = conn.execute(
        "SELECT id FROM display_messages WHERE command_id = ?", (f"cli:{ref}",)
    ).fetchone()
    return None if row is None else int(row["id"])


def send(
    conn: sqlite3.Connection,
    text: str,
    stamp: Stamp,
    *,
    unit_id: str | None = None,
    account_id: str | None = None,
    until: datetime | None = None,
    ref: str | None = None,
) -> int:
    """Store a message from the administrator; return its id.

    Name a unit, or an account, or neither (all units). `ref` makes the
    send idempotent: the same ref again returns the first message's id.
    """
    text = text.strip()
    if not text:
        raise MessageError("the message text is empty")
    if len(text) > MAX_TEXT:
        raise MessageError(
            f"the message has {len(text)} characters; displays show at most "
            f"{MAX_TEXT}: shorten it"
        )
    if unit_id is not None and account_id is not None:
        raise MessageError("name a unit or an account, not both")
    if until is not None and until.tzinfo is None:
        raise MessageError("give --until with a time zone (e.g. +01:00 or Z)")
    if until is not None and until <= stamp.at:
        raise MessageError(
            f"--until {until.isoformat()} is already past: the message would never show"
        )
    command_id = f"cli:{ref}" if ref else f"cli:{uuid.uuid4().hex}"
    with _own_or_callers(conn):
        first = sent_with_ref(conn, ref) if ref else None
        if first is not None:
            return first
        if account_id is not None and (
            conn.execute(
                "SELECT 1 FROM accounts WHERE id = ?", (account_id,)
            ).fetchone()
            is None
        ):
            raise MessageError(f"no account {account_id!r}")
        cursor = conn.execute(
            """INSERT INTO display_messages (account_id, unit_id, text, until,
                   command_id, created_at) VALUES (?, ?, ?, ?, ?, ?)""",
            (
                account_id,
                unit_id,
                text,
                None
                if until is None
                else until.astimezone(UTC).isoformat(timespec="milliseconds"),
                command_id,
                stamp.iso(),
            ),
        )
    message_id = int(cursor.lastrowid or 0)
    log.info(
        "display_message_sent", message=message_id, unit=unit_id, account=account_id
    )
    return message_id


def pending_for_unit(
    conn: sqlite3.Connection, unit_id: str, stamp: Stamp
) -> int | None:
    """Return the id of the message the unit should display now, or None.

    That is the oldest message for this unit, its account or all units,
    not expired, and not yet read on this unit.
    """
    row = conn.execute(
        """SELECT m.id FROM display_messages m
           WHERE (m.unit_id = :unit
                  OR m.account_id = (SELECT account_id FROM unit_accounts
                                     WHERE unit_id = :unit)
                  OR (m.unit_id IS NULL AND m.account_id IS NULL))
             AND (m.until IS NULL OR m.until > :now)
             AND NOT EXISTS (SELECT 1 FROM display_message_receipts r
                             WHERE r.message_id = m.id AND r.unit_id = :unit)
           ORDER BY m.id LIMIT 1""",
        {"unit": unit_id, "now": stamp.iso()},
    ).fetchone()
    return None if row is None else int(row["id"])


def text_of(conn: sqlite3.Connection, message_id: int) -> str | None:
    """Return a stored message's text (for links such as LoRa that carry text)."""
    row = conn.execute(
        "SELECT text FROM display_messages WHERE id = ?", (message_id,)
    ).fetchone()
    return None if row is None else str(row["text"])


def record_receipt(
    conn: sqlite3.Connection,
    unit_id: str,
    message_id: int,
    read_at: datetime,
    stamp: Stamp,
) -> bool:
    """Store that a unit's resident read a message, and queue it for the cloud.

    Returns False for a receipt already stored (units repeat them), or for
    id 0 and the built-in ids below 256, which are not stored messages.
    Joins the caller's transaction, or runs as its own.
    """
    if message_id < 256:
        return False
    with _own_or_callers(conn):
        if text_of(conn, message_id) is None:
            raise MessageError(
                f"unit {unit_id} acknowledged message {message_id}, which the "
                f"gateway never sent"
            )
        read_text = read_at.astimezone(UTC).isoformat(timespec="milliseconds")
        cursor = conn.execute(
            """INSERT INTO display_message_receipts (message_id, unit_id, read_at,
                   recorded_at, clock_synced) VALUES (?, ?, ?, ?, ?)
               ON CONFLICT DO NOTHING""",
            (message_id, unit_id, read_text, stamp.iso(), int(stamp.synced)),
        )
        if cursor.rowcount == 0:
            return False
        outbox.enqueue(
            conn,
            "message_receipt",
            {
                "message_id": message_id,
                "unit_id": unit_id,
                "read_at": read_text,
                "clock_synced": stamp.synced,
            },
            stamp,
            message_id=f"receipt:{message_id}:{unit_id}",
        )
    log.info("display_message_read", message=message_id, unit=unit_id, at=read_text)
    return True


def listing(conn: sqlite3.Connection, *, limit: int = 50) -> list[Message]:
    """Return the newest messages first, each with its read receipts."""
    rows = conn.execute(
        "SELECT * FROM display_messages ORDER BY id DESC LIMIT ?", (limit,)
    ).fetchall()
    out = []
    for r in rows:
        receipts = tuple(
            Receipt(x["unit_id"], x["read_at"], bool(x["clock_synced"]))
            for x in conn.execute(
                "SELECT * FROM display_message_receipts WHERE message_id = ? "
                "ORDER BY read_at",
                (r["id"],),
            )
        )
        source = "cloud" if not str(r["command_id"]).startswith("cli:") else "admin"
        out.append(
            Message(
                r["id"],
                r["text"],
                r["account_id"],
                r["unit_id"],
                r["until"],
                r["created_at"],
                source,
                receipts,
            )
        )
    return out


def chore(conn: sqlite3.Connection, site: SitePlan, stamp: Stamp) -> bool:
    """Housekeeping job: keep the unit-to-account map in step with the config."""
    del stamp
    with transaction(conn):
        sync_units(conn, site)
    return False
