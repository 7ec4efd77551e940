"""The outbox bounds: a full outbox sheds the oldest telemetry first, raises
an alarm as it nears full, never drops a ledger entry, and tells the cloud
which sequence numbers it dropped."""

from __future__ import annotations

import json
import sqlite3
from datetime import timedelta
from pathlib import Path

from gateway import ledger, outbox
from gateway.clock import ManualClock
from gateway.ledger import EntryKind, NewEntry
from gateway.money import Money
from gateway.store import transaction
from gateway.sync import bounds, schemas
from simulators.cloud.store import CloudStore


def _fill(conn: sqlite3.Connection, clock: ManualClock, readings: int) -> None:
    with transaction(conn):
        for i in range(readings):
            outbox.enqueue(
                conn,
                "reading",
                {"meter_id": "m-elec", "value": str(i)},
                clock.now(),
                message_id=f"reading:{i}",
            )
            if i % 10 == 0:
                ledger.post(
                    conn,
                    NewEntry(
                        id=f"topup:test:{i}",
                        account_id="flat1",
                        kind=EntryKind.TOPUP,
                        amount=Money(100, "EUR"),
                        source="test",
                        booked=clock.now(),
                    ),
                )
            clock.advance(timedelta(minutes=1))


def _kinds(conn: sqlite3.Connection) -> dict[str, int]:
    rows = conn.execute("SELECT kind, COUNT(*) FROM outbox GROUP BY kind")
    return {k: n for k, n in rows}


def test_near_full_outbox_raises_an_alarm_and_drops_nothing(
    conn: sqlite3.Connection, gateway_db: Path, clock: ManualClock
) -> None:
    _fill(conn, clock, 92)  # 92 readings + 10 entries = 102 of 110
    usage = bounds.enforce(conn, bounds.Bounds(110, 10**9, 0), gateway_db, clock.now())

    assert usage.dropped == 0
    [alarm] = conn.execute("SELECT kind FROM alarms WHERE cleared_at IS NULL")
    assert alarm[0] == "outbox_near_full"


def test_full_outbox_drops_oldest_telemetry_first_and_never_an_entry(
    conn: sqlite3.Connection, gateway_db: Path, clock: ManualClock
) -> None:
    _fill(conn, clock, 300)  # 300 readings + 30 ledger entries
    before = _kinds(conn)
    usage = bounds.enforce(conn, bounds.Bounds(200, 10**9, 0), gateway_db, clock.now())

    after = _kinds(conn)
    assert after["ledger_entry"] == before["ledger_entry"] == 30
    assert usage.dropped == before["reading"] - after["reading"] > 0
    assert usage.rows <= 200
    kept = [
        json.loads(p)["value"]
        for (p,) in conn.execute(
            "SELECT payload FROM outbox WHERE kind = 'reading' ORDER BY seq"
        )
    ]
    assert kept[0] == str(300 - len(kept))  # only the newest readings survive
    assert kept[-1] == "299"
    assert after.get("alarm") == 1  # the near-full alarm, queued for the cloud
    [gap] = conn.execute("SELECT payload FROM outbox WHERE kind = 'outbox_gap'")
    body = schemas.OutboxGapBody.model_validate_json(gap[0])
    assert body.count == usage.dropped


def test_cloud_counts_declared_drops_so_the_sequence_has_no_hole(
    conn: sqlite3.Connection, gateway_db: Path, clock: ManualClock, tmp_path: Path
) -> None:
    _fill(conn, clock, 300)
    bounds.enforce(conn, bounds.Bounds(200, 10**9, 0), gateway_db, clock.now())
    cloud = CloudStore(tmp_path / "cloud.sqlite3", "test-house")
    messages = [
        schemas.UplinkMessage(
            id=r["id"],
            seq=r["seq"],
            kind=r["kind"],
            at=r["created_at"],
            clock_synced=True,
            body=json.loads(r["payload"]),
        )
        for r in conn.execute("SELECT * FROM outbox ORDER BY priority, seq")
    ]
    ack = cloud.store(schemas.UplinkBatch(v=1, site="test-house", messages=messages))

    highest = conn.execute("SELECT MAX(seq) FROM outbox").fetchone()[0]
    assert ack.upto == highest
    assert cloud.holes() == 0
    assert sum(cloud.balances().values()) == 3000


def test_low_disk_sheds_telemetry_and_raises_an_alarm(
    conn: sqlite3.Connection, gateway_db: Path, clock: ManualClock
) -> None:
    _fill(conn, clock, 100)
    huge = 10**12  # more free megabytes than any disk has
    usage = bounds.enforce(
        conn, bounds.Bounds(10**6, 10**9, huge), gateway_db, clock.now()
    )

    assert usage.dropped > 0
    assert _kinds(conn)["ledger_entry"] == 10
    kinds = {r[0] for r in conn.execute("SELECT kind FROM alarms")}
    assert "disk_low" in kinds
