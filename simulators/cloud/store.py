"""The reference cloud's own SQLite: every uplink message stored once by its
sequence number, the acknowledgement watermark, and a ledger per account
rebuilt from the gateway's ledger_entry messages."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

from gateway.sync import schemas

SCHEMA = """
CREATE TABLE IF NOT EXISTS uplink (
    site TEXT NOT NULL, seq INTEGER NOT NULL, id TEXT NOT NULL, kind TEXT NOT NULL,
    at TEXT NOT NULL, clock_synced INTEGER NOT NULL, body TEXT NOT NULL,
    deliveries INTEGER NOT NULL DEFAULT 1, PRIMARY KEY (site, seq));
CREATE TABLE IF NOT EXISTS dropped (
    site TEXT NOT NULL, seq INTEGER NOT NULL, PRIMARY KEY (site, seq));
CREATE TABLE IF NOT EXISTS watermark (site TEXT PRIMARY KEY, upto INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS ledger (
    site TEXT NOT NULL, entry_id TEXT NOT NULL, ledger_seq INTEGER NOT NULL,
    account_id TEXT NOT NULL, kind TEXT NOT NULL, amount_minor INTEGER NOT NULL,
    currency TEXT NOT NULL, booked_at TEXT NOT NULL, PRIMARY KEY (site, entry_id));
CREATE TABLE IF NOT EXISTS results (
    site TEXT NOT NULL, message_id TEXT NOT NULL, command_id TEXT, status TEXT NOT NULL,
    reason TEXT, body TEXT NOT NULL, PRIMARY KEY (site, message_id));
"""

# An ack lists at most this many stored seqs above the contiguous watermark.
MAX_ACK_SEQS = 5000


class CloudStore:
    """One site's uplink as the cloud keeps it."""

    def __init__(self, path: Path, site: str) -> None:
        self.site = site
        self.conn = sqlite3.connect(path, isolation_level=None)
        self.conn.execute("PRAGMA journal_mode = WAL")
        self.conn.execute("PRAGMA synchronous = NORMAL")
        self.conn.executescript(SCHEMA)
        row = self.conn.execute(
            "SELECT upto FROM watermark WHERE site = ?", (site,)
        ).fetchone()
        self.upto: int = 0 if row is None else int(row[0])
        self._above: set[int] = {
            int(r[0])
            for r in self.conn.execute(
                "SELECT seq FROM uplink WHERE site = ? AND seq > ? UNION "
                "SELECT seq FROM dropped WHERE site = ? AND seq > ?",
                (site, self.upto, site, self.upto),
            )
        }
        self._advance()

    def store(self, batch: schemas.UplinkBatch) -> schemas.Ack:
        """Store a batch idempotently, in one transaction; return the ack to send."""
        conn = self.conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            for m in batch.messages:
                cursor = conn.execute(
                    "INSERT INTO uplink (site, seq, id, kind, at, clock_synced, body) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (site, seq) DO UPDATE "
                    "SET deliveries = deliveries + 1",
                    (
                        self.site,
                        m.seq,
                        m.id,
                        m.kind,
                        m.at,
                        int(m.clock_synced),
                        json.dumps(m.body, sort_keys=True),
                    ),
                )
                assert cursor.rowcount == 1
                self._absorb(m)
                if m.seq > self.upto:
                    self._above.add(m.seq)
            self._advance()
            conn.execute(
                "INSERT INTO watermark (site, upto) VALUES (?, ?) "
                "ON CONFLICT (site) DO UPDATE SET upto = excluded.upto",
                (self.site, self.upto),
            )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return self.ack()

    def ack(self) -> schemas.Ack:
        """Return what is stored: the contiguous watermark and the seqs above it."""
        return schemas.Ack(v=1, upto=self.upto, seqs=sorted(self._above)[:MAX_ACK_SEQS])

    def _absorb(self, m: schemas.UplinkMessage) -> None:
        body: dict[str, Any] = m.body
        if m.kind == "ledger_entry":
            e = schemas.LedgerEntryBody.model_validate(body)
            self.conn.execute(
                "INSERT INTO ledger (site, entry_id, ledger_seq, account_id, kind, "
                "amount_minor, currency, booked_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT DO NOTHING",
                (
                    self.site,
                    e.entry_id,
                    e.ledger_seq,
                    e.account_id,
                    e.kind,
                    e.amount_minor,
                    e.currency,
                    e.booked_at,
                ),
            )
        elif m.kind == "outbox_gap":
            gap = schemas.OutboxGapBody.model_validate(body)
            for first, last in gap.ranges:
                for seq in range(first, last + 1):
                    self.conn.execute(
                        "INSERT INTO dropped (site, seq) VALUES (?, ?) "
                        "ON CONFLICT DO NOTHING",
                        (self.site, seq),
                    )
                    if seq > self.upto:
                        self._above.add(seq)
        elif m.kind == "command_result":
            r = schemas.CommandResultBody.model_validate(body)
            self.conn.execute(
                "INSERT INTO results (site, message_id, command_id, status, reason, "
                "body) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                (
                    self.site,
                    m.id,
                    r.command_id,
                    r.status,
                    r.reason,
                    json.dumps(body, sort_keys=True),
                ),
            )

    def _advance(self) -> None:
        while self.upto + 1 in self._above:
            self.upto += 1
            self._above.discard(self.upto)

    def holes(self) -> int:
        """Return how many seqs below the highest are neither stored nor dropped."""
        highest = self.conn.execute(
            "SELECT MAX(seq) FROM (SELECT seq FROM uplink WHERE site = ? "
            "UNION ALL SELECT seq FROM dropped WHERE site = ?)",
            (self.site, self.site),
        ).fetchone()[0]
        return 0 if highest is None else int(highest) - self.upto - len(self._above)

    def results_for(self, command_id: str) -> list[dict[str, Any]]:
        """Return every result the gateway sent for a command, in order."""
        rows = self.conn.execute(
            "SELECT r.body FROM results r JOIN uplink u ON u.site = r.site "
            "AND u.id = r.message_id WHERE r.site = ? AND r.command_id = ? "
            "ORDER BY u.seq",
            (self.site, command_id),
        ).fetchall()
        return [json.loads(r[0]) for r in rows]

    def balances(self) -> dict[str, int]:
        """Return the cloud's balance of every account, in minor units."""
        rows = self.conn.execute(
            "SELECT account_id, SUM(amount_minor) FROM ledger WHERE site = ? "
            "GROUP BY account_id",
            (self.site,),
        )
        return {str(a): int(s) for a, s in rows}

    def close(self) -> None:
        self.conn.close()
