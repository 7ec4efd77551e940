"""Readings processed end to end (decoded reading -> committed debit and
decision, synchronous=FULL) per second, beside SQLite's raw single-row commit
rate on the same disk in the same run.

    .venv/bin/python bench/bench_billing.py [--readings 3000] [--dir PATH]
"""

from __future__ import annotations

import argparse
import sqlite3
import tempfile
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from gateway import accounts, ledger, store
from gateway.billing import process_reading
from gateway.clock import Stamp
from gateway.config import parse_config
from gateway.ledger import EntryKind, NewEntry
from gateway.model import Reading
from gateway.money import Money
from gateway.site import SitePlan
from gateway.store import transaction

SITE = """
site: {id: bench, currency: EUR}
buses: [{id: b, kind: mbus, port: /dev/null}]
meters:
%s
accounts:
%s
tariffs:
  - id: t
    prices: {electricity: {price: "0.3412", per: kWh}}
"""


def raw_commits(path: Path, n: int) -> float:
    """Single-row INSERT + COMMIT per row, WAL, synchronous=FULL."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = FULL")
    conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
    began = time.perf_counter()
    for i in range(n):
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("INSERT INTO t (v) VALUES (?)", (str(i),))
        conn.execute("COMMIT")
    took = time.perf_counter() - began
    conn.close()
    return n / took


def pipeline(path: Path, n: int, meters: int = 50) -> float:
    """process_reading for n readings spread over `meters` meters."""
    meter_yaml = "\n".join(
        f"  - {{id: m{i}, bus: b, address: {i}, medium: electricity, account: a{i}}}"
        for i in range(meters)
    )
    account_yaml = "\n".join(
        f"  - {{id: a{i}, name: A{i}, credit_line: '5'}}" for i in range(meters)
    )
    config = parse_config(SITE % (meter_yaml, account_yaml), path / "site.yaml")
    site = SitePlan(config)
    conn = store.connect(path / "gateway.sqlite3")
    at = datetime(2026, 1, 1, tzinfo=UTC)
    with transaction(conn):
        accounts.sync_from_config(conn, site, Stamp(at, True))
        for i in range(meters):
            ledger.post(
                conn,
                NewEntry(
                    f"t{i}",
                    f"a{i}",
                    EntryKind.TOPUP,
                    Money(10**9, "EUR"),
                    "bench",
                    Stamp(at, True),
                ),
            )
    values = [Decimal(1000)] * meters
    began = time.perf_counter()
    for k in range(n):
        i = k % meters
        values[i] += Decimal("0.137")
        at += timedelta(seconds=1)
        process_reading(
            conn, site, Reading(f"m{i}", values[i], "kWh", Stamp(at, True), "bench")
        )
    took = time.perf_counter() - began
    conn.close()
    return n / took


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--readings", type=int, default=3000)
    parser.add_argument(
        "--dir",
        type=Path,
        default=None,
        help="directory on the disk to measure (default: a temp dir)",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        base = Path(tmp)
        (base / "raw").mkdir()
        (base / "pipe").mkdir()
        import structlog

        structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(30))
        raw = raw_commits(base / "raw" / "raw.sqlite3", args.readings)
        ours = pipeline(base / "pipe", args.readings)
    print(f"raw single-row commits (WAL, synchronous=FULL): {raw:10.0f} /s")
    print(f"readings billed end to end (same settings):     {ours:10.0f} /s")
    print(f"ratio ours/raw: {ours / raw:.2f}")


if __name__ == "__main__":
    main()
