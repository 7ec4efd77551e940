"""The outbox drainer: sends queued messages in priority then sequence order,
batched by kind, with a bounded window in flight, and deletes them only when
the cloud's application-level acknowledgement says they are stored."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import structlog

from gateway.store import transaction
from gateway.sync import schemas
from gateway.sync.contract import CONTRACT_VERSION, MAX_UPLINK_BYTES, Topics

log = structlog.get_logger(__name__)

# How often the outbox is looked at when nothing woke the drainer: the daemon
# writes messages from its own connection and does not signal this task.
POLL_S = 0.2

Publish = Callable[[str, bytes], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Row:
    seq: int
    id: str
    kind: str
    payload: str
    bytes: int
    created_at: str
    clock_synced: bool


class Drainer:
    """Drain one site's outbox over one connection."""

    def __init__(
        self,
        conn: sqlite3.Connection,
        topics: Topics,
        *,
        window: int,
        batch_max: int,
        resend_after_s: float,
        monotonic: Callable[[], float],
    ) -> None:
        self._conn = conn
        self._topics = topics
        self._window = window
        self._batch_max = batch_max
        self._resend_after = resend_after_s
        self._monotonic = monotonic
        self._in_flight: dict[int, float] = {}
        self._wake = asyncio.Event()
        self.sent = 0
        self.acknowledged = 0

    @property
    def in_flight(self) -> int:
        return len(self._in_flight)

    def wake(self) -> None:
        """Look at the outbox now instead of at the next poll."""
        self._wake.set()

    def on_ack(self, ack: schemas.Ack) -> int:
        """Delete what the cloud says it has stored; return how many rows went."""
        row = self._conn.execute(
            "SELECT seq FROM sqlite_sequence WHERE name = 'outbox'"
        ).fetchone()
        highest = 0 if row is None else int(row[0])
        if ack.upto > highest:
            # LIMITATION: this catches a cloud that remembers more than this
            # database ever sent (a restored or replaced database), but not a
            # restored database whose sequence is still below the cloud's.
            log.warning(
                "ack_beyond_sequence",
                upto=ack.upto,
                highest=highest,
            )
            return 0
        with transaction(self._conn):
            deleted = self._conn.execute(
                "DELETE FROM outbox WHERE seq <= ?", (ack.upto,)
            ).rowcount
            if ack.seqs:
                deleted += self._conn.execute(
                    "DELETE FROM outbox WHERE seq IN (SELECT value FROM json_each(?))",
                    (json.dumps(ack.seqs),),
                ).rowcount
        for seq in [s for s in self._in_flight if s <= ack.upto]:
            del self._in_flight[seq]
        for seq in ack.seqs:
            self._in_flight.pop(seq, None)
        self.acknowledged += deleted
        self._wake.set()
        return deleted

    async def run(self, publish: Publish) -> None:
        """Send forever; `publish` raises when the connection is gone."""
        while True:
            self._wake.clear()
            self._forget_stale()
            free = self._window - len(self._in_flight)
            rows = self._next_rows(free) if free > 0 else []
            if rows:
                await self._send(rows, publish)
                continue
            # asyncio.timeout, not wait_for: on Python 3.11 wait_for can swallow
            # a cancellation that arrives just as the event fires (CPython
            # gh-86296), and the drainer would then never stop.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(POLL_S):
                    await self._wake.wait()

    def _forget_stale(self) -> None:
        """Let messages the cloud never acknowledged be sent again."""
        deadline = self._monotonic() - self._resend_after
        stale = [s for s, t in self._in_flight.items() if t < deadline]
        for seq in stale:
            del self._in_flight[seq]
        if stale:
            log.info("outbox_resending_unacknowledged", count=len(stale))

    def _next_rows(self, limit: int) -> list[Row]:
        cursor = self._conn.execute(
            """SELECT seq, id, kind, payload, bytes, created_at, clock_synced
               FROM outbox
               WHERE seq NOT IN (SELECT value FROM json_each(?))
               ORDER BY priority, seq LIMIT ?""",
            (json.dumps(list(self._in_flight)), limit),
        )
        return [Row(r[0], r[1], r[2], r[3], r[4], r[5], bool(r[6])) for r in cursor]

    async def _send(self, rows: list[Row], publish: Publish) -> None:
        now = self._monotonic()
        for row in rows:
            self._in_flight[row.seq] = now
        # Publishing the batches concurrently keeps several PUBACKs in flight
        # instead of waiting one round trip per batch.
        await asyncio.gather(
            *(
                publish(self._topics.uplink(kind), payload)
                for kind, payload in self._batches(rows)
            )
        )
        self.sent += len(rows)

    def _batches(self, rows: list[Row]) -> Iterator[tuple[str, bytes]]:
        """Group consecutive rows of one kind into publishes within the size limit."""
        kind = ""
        parts: list[str] = []
        size = 0
        for row in rows:
            text = _message_text(row)
            if parts and (
                row.kind != kind
                or len(parts) >= self._batch_max
                or size + len(text) > MAX_UPLINK_BYTES
            ):
                yield kind, _batch_text(self._topics.site, parts)
                parts, size = [], 0
            kind = row.kind
            parts.append(text)
            size += len(text) + 1
        if parts:
            yield kind, _batch_text(self._topics.site, parts)


def _message_text(row: Row) -> str:
    # The payload is already JSON text in the outbox; it is spliced in rather
    # than parsed and encoded again, which would double the drainer's cost.
    head: dict[str, Any] = {
        "id": row.id,
        "seq": row.seq,
        "kind": row.kind,
        "at": row.created_at,
        "clock_synced": row.clock_synced,
    }
    return json.dumps(head, separators=(",", ":"))[:-1] + ',"body":' + row.payload + "}"


def _batch_text(site: str, parts: list[str]) -> bytes:
    head = json.dumps({"v": CONTRACT_VERSION, "site": site}, separators=(",", ":"))
    return (head[:-1] + ',"messages":[' + ",".join(parts) + "]}").encode()
