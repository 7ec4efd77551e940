"""LoRa frame counters in SQLite: the last counter accepted from each unit and
the last one sent to it, so replays stay refused and counters never repeat
after a restart."""

from __future__ import annotations

import sqlite3

from drivers.lora.frame import MAX_COUNTER, Direction

# LIMITATION: the table is created here rather than by a file in
# gateway/migrations, whose numbering another part of the project owns. The
# statement is idempotent and matches what such a migration should hold.
SCHEMA = """
CREATE TABLE IF NOT EXISTS lora_counters(
    address   INTEGER NOT NULL,
    direction INTEGER NOT NULL CHECK (direction IN (0, 1)),
    counter   INTEGER NOT NULL CHECK (counter BETWEEN 0 AND 4294967295),
    PRIMARY KEY (address, direction)
) WITHOUT ROWID
"""


class CounterExhausted(Exception):
    """A unit's 32-bit frame counter reached its end: the unit needs a new key."""


class CounterStore:
    """Frame counters per unit address and direction, durable in SQLite.

    Direction is the frame's direction (UP: unit to gateway, DOWN: gateway
    to unit), so the gateway and a unit use the same rows for the same
    frames. Every change commits before the method returns.
    """

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn
        self._write(SCHEMA, ())

    def _write(
        self, sql: str, params: tuple[int, ...]
    ) -> tuple[int, list[sqlite3.Row]]:
        """Run one write statement and make it durable.

        A connection in autocommit mode (as gateway.store opens them) commits
        each statement by itself; wrapping it in `with conn` would instead
        commit whatever transaction another coroutine holds open.
        """
        if self._conn.isolation_level is None:
            cur = self._conn.execute(sql, params)
            return cur.rowcount, cur.fetchall()
        with self._conn:
            cur = self._conn.execute(sql, params)
            # Rows of a RETURNING clause must be read before the commit.
            return cur.rowcount, cur.fetchall()

    def last(self, address: int, direction: Direction) -> int:
        """Return the last counter used or accepted; 0 when there was none."""
        row = self._conn.execute(
            "SELECT counter FROM lora_counters WHERE address = ? AND direction = ?",
            (address, int(direction)),
        ).fetchone()
        return int(row[0]) if row else 0

    def accept(self, address: int, direction: Direction, counter: int) -> bool:
        """Record a received counter if above the last; return whether it was."""
        changed, _ = self._write(
            "INSERT INTO lora_counters(address, direction, counter) VALUES (?, ?, ?) "
            "ON CONFLICT(address, direction) DO UPDATE SET counter = excluded.counter "
            "WHERE excluded.counter > lora_counters.counter",
            (address, int(direction), counter),
        )
        return changed == 1

    def next(self, address: int, direction: Direction) -> int:
        """Allocate and persist the next counter to send with, before it is sent."""
        _, rows = self._write(
            "INSERT INTO lora_counters(address, direction, counter) VALUES (?, ?, 1) "
            "ON CONFLICT(address, direction) DO UPDATE SET counter = counter + 1 "
            "WHERE lora_counters.counter < ? RETURNING counter",
            (address, int(direction), MAX_COUNTER),
        )
        if not rows:
            raise CounterExhausted(
                f"unit 0x{address:08x} used all 2^32 frame counters: give it a new key "
                f"and reset its row in lora_counters"
            )
        return int(rows[0][0])
