"""Alarms: raised once while a condition lasts, cleared when it ends, each
change recorded and queued for the cloud."""

from __future__ import annotations

import json
import sqlite3
from typing import Any

import structlog

from gateway import outbox
from gateway.clock import Stamp

log = structlog.get_logger(__name__)


def raise_alarm(
    conn: sqlite3.Connection,
    kind: str,
    subject: str,
    message: str,
    stamp: Stamp,
    detail: dict[str, Any] | None = None,
) -> bool:
    """Open an alarm unless the same one is already open; return True if new."""
    open_row = conn.execute(
        "SELECT id FROM alarms WHERE subject = ? AND kind = ? AND cleared_at IS NULL",
        (subject, kind),
    ).fetchone()
    if open_row is not None:
        return False
    cursor = conn.execute(
        "INSERT INTO alarms (kind, subject, message, raised_at, detail) "
        "VALUES (?, ?, ?, ?, ?)",
        (kind, subject, message, stamp.iso(), json.dumps(detail or {}, default=str)),
    )
    body = {
        "alarm_id": cursor.lastrowid,
        "kind": kind,
        "subject": subject,
        "message": message,
        "state": "raised",
        "detail": detail or {},
    }
    outbox.enqueue(
        conn, "alarm", body, stamp, message_id=f"alarm:{cursor.lastrowid}:raised"
    )
    log.warning("alarm_raised", kind=kind, subject=subject, message=message)
    return True


def clear_alarm(
    conn: sqlite3.Connection, kind: str, subject: str, stamp: Stamp
) -> bool:
    """Close the open alarm of this kind for this subject; True if one was open."""
    row = conn.execute(
        "SELECT id FROM alarms WHERE subject = ? AND kind = ? AND cleared_at IS NULL",
        (subject, kind),
    ).fetchone()
    if row is None:
        return False
    conn.execute(
        "UPDATE alarms SET cleared_at = ? WHERE id = ?", (stamp.iso(), row["id"])
    )
    body = {"alarm_id": row["id"], "kind": kind, "subject": subject, "state": "cleared"}
    outbox.enqueue(conn, "alarm", body, stamp, message_id=f"alarm:{row['id']}:cleared")
    log.info("alarm_cleared", kind=kind, subject=subject)
    return True
