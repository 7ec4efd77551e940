"""Downlink commands from the cloud applied to the database: each once by its
command id, in one transaction with its result message for the outbox.

Authentication happens before this module (gateway.sync.intake); here a
command is trusted and only checked for expiry, replay and sense.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import structlog
from pydantic import ValidationError

from gateway import accounts, ledger, outbox
from gateway.clock import Stamp
from gateway.ledger import EntryKind, LedgerError, NewEntry
from gateway.money import Money, MoneyError, minor_digits
from gateway.store import transaction
from gateway.sync import schemas

log = structlog.get_logger(__name__)

# An expired command is refused whatever its id, so a command's row is only
# needed until it expires; a day of margin covers clock corrections.
_KEEP_AFTER_EXPIRY = timedelta(days=1)


class CommandRejected(Exception):
    """A trusted command that cannot be applied; the message is the reason."""


@dataclass(frozen=True, slots=True)
class CommandResult:
    """What became of one command."""

    command_id: str | None
    kind: str | None
    status: str
    reason: str | None = None
    result: dict[str, Any] = field(default_factory=dict)
    first_status: str | None = None
    changed: bool = False

    def to_body(self) -> dict[str, Any]:
        """Return the result as the uplink payload (kind "command_result")."""
        return {
            "command_id": self.command_id,
            "kind": self.kind,
            "status": self.status,
            "reason": self.reason,
            "result": self.result,
            "first_status": self.first_status,
        }


def digest(signed_text: str) -> str:
    """Return the fingerprint that tells a redelivery from a reused command id."""
    return hashlib.sha256(signed_text.encode()).hexdigest()


def apply(
    conn: sqlite3.Connection,
    command: schemas.Command,
    fingerprint: str,
    now: Stamp,
    *,
    max_validity: timedelta,
) -> CommandResult:
    """Apply a trusted command once; a known id gets its first result as duplicate."""
    with transaction(conn):
        first = conn.execute(
            "SELECT * FROM commands WHERE command_id = ?", (command.command_id,)
        ).fetchone()
        if first is not None:
            outcome = _repeat(command, fingerprint, first)
        else:
            outcome = _first_time(conn, command, now, max_validity)
            conn.execute(
                """INSERT INTO commands (command_id, kind, digest, status, reason,
                       result, issued_at, expires_at, received_at)
                   VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)""",
                (
                    command.command_id,
                    command.kind,
                    fingerprint,
                    outcome.status,
                    outcome.reason,
                    json.dumps(outcome.result, sort_keys=True),
                    command.issued_at.isoformat(),
                    command.expires_at.isoformat(),
                    now.iso(),
                ),
            )
        _queue(conn, outcome, now)
    log.info(
        "command_" + outcome.status,
        command_id=command.command_id,
        kind=command.kind,
        reason=outcome.reason,
    )
    return outcome


def refuse(
    conn: sqlite3.Connection,
    command_id: str | None,
    kind: str | None,
    reason: str,
    now: Stamp,
) -> CommandResult:
    """Queue the result of a command refused before it could be trusted.

    Nothing is remembered under its id: an unauthenticated message must not
    be able to claim a command id before the real command arrives.
    """
    outcome = CommandResult(command_id, kind, "rejected", reason)
    with transaction(conn):
        _queue(conn, outcome, now)
    log.warning("command_refused", command_id=command_id, kind=kind, reason=reason)
    return outcome


def prune(conn: sqlite3.Connection, now: Stamp) -> int:
    """Forget commands long expired (a replay of one is refused as expired anyway)."""
    cutoff = (now.at - _KEEP_AFTER_EXPIRY).isoformat()
    with transaction(conn):
        cursor = conn.execute("DELETE FROM commands WHERE expires_at < ?", (cutoff,))
    return cursor.rowcount


def _queue(conn: sqlite3.Connection, outcome: CommandResult, now: Stamp) -> None:
    outbox.enqueue(
        conn,
        "command_result",
        outcome.to_body(),
        now,
        message_id=f"result:{outcome.command_id}:{uuid.uuid4().hex[:12]}",
    )


def _repeat(
    command: schemas.Command, fingerprint: str, first: sqlite3.Row
) -> CommandResult:
    if first["digest"] != fingerprint:
        return CommandResult(
            command.command_id,
            command.kind,
            "rejected",
            "command id was already used for a different command (replay); "
            "send a new command id",
        )
    return CommandResult(
        command.command_id,
        first["kind"],
        "duplicate",
        first["reason"],
        json.loads(first["result"]),
        first_status=first["status"],
    )


def _first_time(
    conn: sqlite3.Connection,
    command: schemas.Command,
    now: Stamp,
    max_validity: timedelta,
) -> CommandResult:
    cid, kind = command.command_id, command.kind
    # LIMITATION: expiry is judged by the gateway's clock even when it is not
    # synchronised; a clock far in the past accepts a stale command, one far
    # ahead refuses fresh ones as expired (the result tells the cloud which).
    if command.expires_at <= now.at:
        return CommandResult(
            cid, kind, "expired", f"expired at {command.expires_at.isoformat()}"
        )
    if command.expires_at - command.issued_at > max_validity:
        return CommandResult(
            cid,
            kind,
            "rejected",
            f"valid for longer than the {max_validity} the gateway allows",
        )
    try:
        args = schemas.ARGS[kind].model_validate(command.args)
    except ValidationError as err:
        return CommandResult(cid, kind, "rejected", _first_error(err))

    # A savepoint lets a command that fails half-way leave nothing behind
    # while its "rejected" row and result still commit.
    conn.execute("SAVEPOINT command")
    try:
        result, changed = _HANDLERS[kind](conn, cid, args, now)
    except CommandRejected as err:
        conn.execute("ROLLBACK TO command")
        conn.execute("RELEASE command")
        return CommandResult(cid, kind, "rejected", str(err))
    conn.execute("RELEASE command")
    return CommandResult(cid, kind, "applied", None, result, changed=changed)


def _first_error(err: ValidationError) -> str:
    e = err.errors()[0]
    where = ".".join(str(p) for p in e["loc"]) or "args"
    return f"args.{where}: {e['msg']}"


Handler = Callable[[sqlite3.Connection, str, Any, Stamp], tuple[dict[str, Any], bool]]


def _book(conn: sqlite3.Connection, new: NewEntry, now: Stamp) -> dict[str, Any]:
    try:
        posted = ledger.post(conn, new)
    except LedgerError as err:
        raise CommandRejected(str(err)) from None
    if posted.duplicate:
        raise CommandRejected(f"entry {new.id} was already booked")
    accounts.evaluate(conn, new.account_id, now)
    return {
        "entry_id": posted.entry.id,
        "ledger_seq": posted.entry.seq,
        "amount_minor": posted.entry.amount.minor,
        "balance_minor": posted.balance.minor,
        "currency": posted.balance.currency,
    }


def _money(amount_minor: int, currency: str) -> Money:
    try:
        return Money(amount_minor, currency)
    except MoneyError as err:
        raise CommandRejected(str(err)) from None


def _topup(
    conn: sqlite3.Connection, cid: str, args: schemas.TopUp, now: Stamp
) -> tuple[dict[str, Any], bool]:
    entry = NewEntry(
        id=f"topup:cloud:{cid}",
        account_id=args.account_id,
        kind=EntryKind.TOPUP,
        amount=_money(args.amount_minor, args.currency),
        source="cloud",
        booked=now,
        ref=args.ref or cid,
    )
    # The credit rules judge the top-up before any decision: the emergency
    # credit is repaid first, and a top-up above the maximum balance is
    # rejected whole (the savepoint drops its entry).
    try:
        posted = ledger.post(conn, entry)
        if posted.duplicate:
            raise CommandRejected(f"entry {entry.id} was already booked")
        repayment = accounts.accept_topup(conn, posted, now)
    except LedgerError as err:
        raise CommandRejected(str(err)) from None
    accounts.evaluate(conn, entry.account_id, now)
    balance = ledger.balance(conn, entry.account_id)
    return {
        "entry_id": posted.entry.id,
        "ledger_seq": posted.entry.seq,
        "amount_minor": posted.entry.amount.minor,
        "balance_minor": balance.minor,
        "currency": balance.currency,
        "emergency_repaid_minor": 0 if repayment is None else -repayment.amount.minor,
    }, True


def _adjustment(
    conn: sqlite3.Connection, cid: str, args: schemas.Adjustment, now: Stamp
) -> tuple[dict[str, Any], bool]:
    if args.amount_minor == 0:
        raise CommandRejected("an adjustment of zero changes nothing")
    entry = NewEntry(
        id=f"adjustment:cloud:{cid}",
        account_id=args.account_id,
        kind=EntryKind.ADJUSTMENT,
        amount=_money(args.amount_minor, args.currency),
        source="cloud",
        booked=now,
        ref=cid,
        detail={"reason": args.reason},
    )
    return _book(conn, entry, now), True


def _reversal(
    conn: sqlite3.Connection, cid: str, args: schemas.Reversal, now: Stamp
) -> tuple[dict[str, Any], bool]:
    original = ledger.get_entry(conn, args.entry_id)
    if original is None:
        raise CommandRejected(f"no ledger entry {args.entry_id!r} to reverse")
    if original.account_id != args.account_id:
        raise CommandRejected(
            f"entry {args.entry_id} belongs to account {original.account_id}, "
            f"not {args.account_id}"
        )
    if original.kind == EntryKind.REVERSAL:
        raise CommandRejected("a reversal cannot be reversed; book an adjustment")
    entry = NewEntry(
        id=f"reversal:{original.id}",
        account_id=original.account_id,
        kind=EntryKind.REVERSAL,
        amount=-original.amount,
        source="cloud",
        booked=now,
        ref=original.id,
        detail={"reason": args.reason, "command_id": cid},
    )
    return _book(conn, entry, now), True


def _account_upsert(
    conn: sqlite3.Connection, cid: str, args: schemas.AccountUpsert, now: Stamp
) -> tuple[dict[str, Any], bool]:
    row = conn.execute(
        "SELECT * FROM accounts WHERE id = ?", (args.account_id,)
    ).fetchone()
    if row is None:
        if args.currency is None or args.name is None:
            raise CommandRejected(
                f"account {args.account_id} does not exist; creating it needs name "
                f"and currency"
            )
        try:
            minor_digits(args.currency)
        except MoneyError as err:
            raise CommandRejected(str(err)) from None
        conn.execute(
            """INSERT INTO accounts (id, name, currency, credit_line_minor,
                   low_balance_minor, contact, created_at)
               VALUES (?, ?, ?, ?, ?, ?, ?)""",
            (
                args.account_id,
                args.name,
                args.currency,
                args.credit_line_minor or 0,
                args.low_balance_minor or 0,
                args.contact,
                now.iso(),
            ),
        )
        conn.execute(
            "INSERT INTO balances (account_id) VALUES (?) ON CONFLICT DO NOTHING",
            (args.account_id,),
        )
        created = True
    else:
        if args.currency is not None and args.currency != row["currency"]:
            raise CommandRejected(
                f"account {args.account_id} is kept in {row['currency']}; its "
                f"currency cannot change"
            )
        conn.execute(
            """UPDATE accounts SET name = COALESCE(?, name),
                   credit_line_minor = COALESCE(?, credit_line_minor),
                   low_balance_minor = COALESCE(?, low_balance_minor),
                   contact = COALESCE(?, contact) WHERE id = ?""",
            (
                args.name,
                args.credit_line_minor,
                args.low_balance_minor,
                args.contact,
                args.account_id,
            ),
        )
        created = False
    decision = accounts.evaluate(conn, args.account_id, now)
    return {
        "account_id": args.account_id,
        "created": created,
        "state": None if decision is None else decision.state.value,
    }, True


def _tariff_set(
    conn: sqlite3.Connection, cid: str, args: schemas.TariffSet, now: Stamp
) -> tuple[dict[str, Any], bool]:
    # The tariff engine (gateway.tariffs) merges these rows with the YAML's
    # versions; a trigger of migration 0003 tells it when to reread them.
    prices = {m: p.model_dump(mode="json") for m, p in args.prices.items()}
    conn.execute(
        """INSERT INTO tariff_schedule (tariff_id, effective_at, prices, command_id,
               created_at) VALUES (?, ?, ?, ?, ?)
           ON CONFLICT(tariff_id, effective_at) DO UPDATE SET prices = excluded.prices,
               command_id = excluded.command_id, created_at = excluded.created_at""",
        (
            args.tariff_id,
            _utc(args.effective_at),
            json.dumps(prices, sort_keys=True),
            cid,
            now.iso(),
        ),
    )
    return {"tariff_id": args.tariff_id, "effective_at": _utc(args.effective_at)}, False


def _unit_override(
    conn: sqlite3.Connection, cid: str, args: schemas.UnitOverride, now: Stamp
) -> tuple[dict[str, Any], bool]:
    if args.mode == "auto":
        conn.execute("DELETE FROM unit_overrides WHERE unit_id = ?", (args.unit_id,))
    else:
        conn.execute(
            """INSERT INTO unit_overrides (unit_id, mode, until, reason, command_id,
                   set_at) VALUES (?, ?, ?, ?, ?, ?)
               ON CONFLICT(unit_id) DO UPDATE SET mode = excluded.mode,
                   until = excluded.until, reason = excluded.reason,
                   command_id = excluded.command_id, set_at = excluded.set_at""",
            (
                args.unit_id,
                args.mode,
                None if args.until is None else _utc(args.until),
                args.reason,
                cid,
                now.iso(),
            ),
        )
    return {"unit_id": args.unit_id, "mode": args.mode}, True


def _display_message(
    conn: sqlite3.Connection, cid: str, args: schemas.DisplayMessage, now: Stamp
) -> tuple[dict[str, Any], bool]:
    if (args.account_id is None) == (args.unit_id is None):
        raise CommandRejected("name exactly one of account_id, unit_id")
    cursor = conn.execute(
        """INSERT INTO display_messages (account_id, unit_id, text, until, command_id,
               created_at) VALUES (?, ?, ?, ?, ?, ?)""",
        (
            args.account_id,
            args.unit_id,
            args.text,
            None if args.until is None else _utc(args.until),
            cid,
            now.iso(),
        ),
    )
    return {"message_id": cursor.lastrowid}, False


def _laundry_booking(
    conn: sqlite3.Connection, cid: str, args: schemas.LaundryBooking, now: Stamp
) -> tuple[dict[str, Any], bool]:
    from gateway import laundry

    try:
        if args.action == "cancel":
            if args.booking_id is None:
                raise CommandRejected("cancel needs booking_id")
            booking = laundry.cancel(conn, args.booking_id, now, reason="cloud")
        else:
            if None in (args.unit_id, args.account_id, args.slot_start, args.slot_end):
                raise CommandRejected(
                    "book needs unit_id, account_id, slot_start and slot_end"
                )
            assert args.unit_id and args.account_id and args.slot_start
            assert args.slot_end
            booking = laundry.book(
                conn,
                f"cloud:{cid}",
                args.unit_id,
                args.account_id,
                args.slot_start,
                args.slot_end,
                now,
                source="cloud",
            )
    except laundry.LaundryError as err:
        raise CommandRejected(str(err)) from None
    return booking.to_message(), True


def _utc(moment: datetime) -> str:
    from datetime import UTC

    return moment.astimezone(UTC).isoformat(timespec="milliseconds")


_HANDLERS: dict[str, Handler] = {
    "topup": _topup,
    "adjustment": _adjustment,
    "reversal": _reversal,
    "account_upsert": _account_upsert,
    "tariff_set": _tariff_set,
    "unit_override": _unit_override,
    "display_message": _display_message,
    "laundry_booking": _laundry_booking,
}
