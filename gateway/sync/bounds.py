"""Outbox bounds: a limit in rows and bytes, a guard on free disk, and the
drop policy that keeps money and sheds telemetry when the outbox is full.

Drop policy: the least important kind goes first (readings, then unit
states, then decisions and alarms), oldest first within a kind. Ledger
entries, command results and gap notices are never dropped. Every drop is
announced to the cloud by an "outbox_gap" message listing the dropped
sequence numbers, so the cloud can tell a dropped message from a lost one.
An "outbox_near_full" alarm is raised at 90 % and cleared below 80 %.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import uuid
from dataclasses import dataclass
from pathlib import Path

import structlog

from gateway import alarms, outbox
from gateway.clock import Stamp
from gateway.store import transaction

log = structlog.get_logger(__name__)

NEVER_DROPPED = frozenset({"ledger_entry", "command_result", "outbox_gap"})
GAP_KIND = "outbox_gap"
NEAR_FULL = 0.9
CLEAR_BELOW = 0.8
# Dropping goes a little below the limit so it does not run on every check.
DROP_TO = 0.95


@dataclass(frozen=True, slots=True)
class Bounds:
    """How big the outbox may grow, and how much disk must stay free."""

    max_rows: int
    max_bytes: int
    min_free_disk_mb: int


@dataclass(frozen=True, slots=True)
class Usage:
    """The outbox after one check."""

    rows: int
    bytes: int
    fill: float
    free_disk_mb: int
    dropped: int


def enforce(
    conn: sqlite3.Connection, bounds: Bounds, db_path: Path, now: Stamp
) -> Usage:
    """Check the outbox against its bounds; drop telemetry and raise alarms."""
    rows, size = outbox.pending(conn)
    free_mb = shutil.disk_usage(db_path.parent).free // 2**20
    max_rows, max_bytes = bounds.max_rows, bounds.max_bytes
    disk_low = free_mb < bounds.min_free_disk_mb
    if disk_low:
        # Freed pages are reused by new rows, so shrinking the outbox stops
        # the file from growing further even though it does not shrink it.
        max_rows = min(max_rows, max(1, rows * 9 // 10))
        max_bytes = min(max_bytes, max(1, size * 9 // 10))
    fill = max(rows / max_rows, size / max_bytes)

    dropped = 0
    with transaction(conn):
        if disk_low:
            alarms.raise_alarm(
                conn,
                "disk_low",
                "state_disk",
                f"only {free_mb} MB free on the state disk; shedding "
                f"telemetry from the outbox",
                now,
                {"free_mb": free_mb, "min_free_mb": bounds.min_free_disk_mb},
            )
        else:
            alarms.clear_alarm(conn, "disk_low", "state_disk", now)
        if fill >= NEAR_FULL:
            alarms.raise_alarm(
                conn,
                "outbox_near_full",
                "outbox",
                f"outbox holds {rows} messages, {size} bytes; the "
                f"oldest telemetry is dropped when it is full",
                now,
                {
                    "rows": rows,
                    "bytes": size,
                    "max_rows": max_rows,
                    "max_bytes": max_bytes,
                },
            )
        elif fill < CLEAR_BELOW:
            alarms.clear_alarm(conn, "outbox_near_full", "outbox", now)
        if rows > max_rows or size > max_bytes:
            dropped = _drop(
                conn,
                rows - int(max_rows * DROP_TO),
                size - int(max_bytes * DROP_TO),
                now,
            )
    if dropped:
        rows, size = outbox.pending(conn)
    return Usage(rows, size, fill, free_mb, dropped)


def _drop(conn: sqlite3.Connection, rows_over: int, bytes_over: int, now: Stamp) -> int:
    droppable = sorted(
        {p for k, p in outbox.PRIORITY.items() if k not in NEVER_DROPPED}, reverse=True
    )
    victims: list[int] = []
    freed_rows = freed_bytes = 0
    for priority in droppable:
        cursor = conn.execute(
            "SELECT seq, kind, bytes FROM outbox WHERE priority = ? ORDER BY seq",
            (priority,),
        )
        for seq, kind, size in cursor:
            if freed_rows >= rows_over and freed_bytes >= bytes_over:
                break
            if kind in NEVER_DROPPED:
                continue
            victims.append(seq)
            freed_rows += 1
            freed_bytes += size
        if freed_rows >= rows_over and freed_bytes >= bytes_over:
            break
    if not victims:
        log.warning(
            "outbox_full_nothing_to_drop", rows_over=rows_over, bytes_over=bytes_over
        )
        return 0

    conn.execute(
        "DELETE FROM outbox WHERE seq IN (SELECT value FROM json_each(?))",
        (json.dumps(victims),),
    )
    ranges = _ranges(sorted(victims))
    _enqueue_gap(
        conn,
        {
            "ranges": ranges,
            "count": len(victims),
            "reason": "outbox full: oldest telemetry dropped",
        },
        now,
    )
    log.warning(
        "outbox_telemetry_dropped",
        count=len(victims),
        bytes=freed_bytes,
        first_seq=ranges[0][0],
        last_seq=ranges[-1][1],
    )
    return len(victims)


def _ranges(seqs: list[int]) -> list[list[int]]:
    ranges: list[list[int]] = []
    for seq in seqs:
        if ranges and ranges[-1][1] == seq - 1:
            ranges[-1][1] = seq
        else:
            ranges.append([seq, seq])
    return ranges


def _enqueue_gap(conn: sqlite3.Connection, body: dict[str, object], now: Stamp) -> None:
    outbox.enqueue(conn, GAP_KIND, body, now, message_id=f"gap:{uuid.uuid4().hex}")
