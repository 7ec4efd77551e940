"""A gateway process for the outage tests: the real billing step on a stream
of readings plus the real SyncService, in one process that a test can stop,
restart, or kill -9.

    python -m tests.sync.gateway_proc --state DIR --port N --public-key B64
        [--readings N] [--interval S] [--backlog-first] [--window N] [--batch N]

Reading i puts 0.5 kWh on meter m-elec one simulated minute after reading
i-1. The progress lives in the database, so a restarted process carries on
where the killed one stopped and never books a reading twice.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sqlite3
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from gateway import accounts, billing, ledger, log, store
from gateway.clock import ManualClock, SystemClock
from gateway.config import parse_config
from gateway.config.cloud import Cloud
from gateway.ledger import EntryKind, NewEntry
from gateway.model import Reading
from gateway.money import Money
from gateway.site import SitePlan
from gateway.store import transaction
from gateway.sync.service import SyncService
from tests.conftest import SITE_YAML

START = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
STEP = Decimal("0.5")


def _setup(conn: sqlite3.Connection, plan: SitePlan) -> None:
    stamp = ManualClock(START).now()
    with transaction(conn):
        accounts.sync_from_config(conn, plan, stamp)
        ledger.post(
            conn,
            NewEntry(
                id="topup:test:opening",
                account_id="flat1",
                kind=EntryKind.TOPUP,
                amount=Money(2000, "EUR"),
                source="test",
                booked=stamp,
            ),
        )


def _done(conn: sqlite3.Connection) -> int:
    row = conn.execute("SELECT COUNT(*) FROM readings WHERE meter_id = 'm-elec'")
    return int(row.fetchone()[0])


def _reading(i: int) -> Reading:
    clock = ManualClock(START + timedelta(minutes=i))
    return Reading("m-elec", STEP * i, "kWh", clock.now(), "test")


async def _consume(
    conn: sqlite3.Connection, plan: SitePlan, total: int, interval: float
) -> None:
    for i in range(_done(conn), total):
        billing.process_reading(conn, plan, _reading(i))
        if interval:
            await asyncio.sleep(interval)


async def _main(ns: argparse.Namespace) -> None:
    config = parse_config(SITE_YAML, ns.state / "site.yaml")
    plan = SitePlan(config)
    db = ns.state / store.DB_NAME
    conn = store.connect(db)
    _setup(conn, plan)
    cloud = Cloud(
        host="127.0.0.1",
        port=ns.port,
        tls=False,
        public_key=ns.public_key,
        client_id="gw-proc",
        in_flight_window=ns.window,
        batch_max=ns.batch,
        resend_after_s=5,
    )
    service = SyncService(
        cloud,
        config.site.id,
        db,
        SystemClock(True),
        lambda: None,
        first_backoff_s=0.2,
        max_backoff_s=2.0,
    )
    if ns.backlog_first:
        await _consume(conn, plan, ns.readings, 0)
    sync = asyncio.create_task(service.run())
    await _consume(conn, plan, ns.readings, ns.interval)
    print(f"readings done {_done(conn)}", flush=True)
    await sync


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--state", type=Path, required=True)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--public-key", required=True)
    p.add_argument("--readings", type=int, default=200)
    p.add_argument("--interval", type=float, default=0.1)
    p.add_argument("--backlog-first", action="store_true")
    p.add_argument("--window", type=int, default=1000)
    p.add_argument("--batch", type=int, default=100)
    ns = p.parse_args()
    log.configure(json=True, level="INFO", cache=False)

    async def run() -> None:
        task = asyncio.current_task()
        assert task is not None
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
        await _main(ns)

    with contextlib.suppress(asyncio.CancelledError):
        asyncio.run(run())


if __name__ == "__main__":
    main()
