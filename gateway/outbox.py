"""The durable uplink outbox: messages are written in the same transaction as
what produced them, and leave only when the cloud acknowledges them."""

from __future__ import annotations

import json
import sqlite3
import uuid
from typing import Any

from gateway.clock import Stamp

# Lower drains first. Ledger entries and command results are never dropped;
# telemetry is dropped oldest-first when the outbox is full.
PRIORITY: dict[str, int] = {
    "ledger_entry": 0,
    "command_result": 0,
    # Announces telemetry dropped from a full outbox, so the cloud sees no hole.
    "outbox_gap": 0,
    "alarm": 1,
    "decision": 1,
    "warning": 1,
    "laundry_booking": 1,
    "tenancy": 1,
    "message_receipt": 2,
    "unit_state": 3,
    "reading": 5,
}


def enqueue(
    conn: sqlite3.Connection,
    kind: str,
    body: dict[str, Any],
    stamp: Stamp,
    *,
    message_id: str | None = None,
) -> int | None:
    """Queue one uplink message; return its sequence number (None if already queued).

    Must run inside the caller's transaction. `message_id` makes the message
    idempotent: the same id queued twice is stored once.
    """
    if kind not in PRIORITY:
        raise ValueError(f"unknown outbox message kind {kind!r}")
    message_id = message_id or f"{kind}:{uuid.uuid4().hex}"
    payload = json.dumps(body, sort_keys=True, separators=(",", ":"), default=str)
    cursor = conn.execute(
        """INSERT INTO outbox
               (id, kind, priority, payload, bytes, created_at, clock_synced)
           VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT(id) DO NOTHING""",
        (
            message_id,
            kind,
            PRIORITY[kind],
            payload,
            len(payload.encode()),
            stamp.iso(),
            int(stamp.synced),
        ),
    )
    return cursor.lastrowid if cursor.rowcount else None


def pending(conn: sqlite3.Connection) -> tuple[int, int]:
    """Return (messages, bytes) waiting to go up."""
    row = conn.execute(
        "SELECT COUNT(*), COALESCE(SUM(bytes), 0) FROM outbox"
    ).fetchone()
    return int(row[0]), int(row[1])
