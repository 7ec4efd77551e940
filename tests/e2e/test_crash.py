"""kill -9 of the daemon during a stream of readings, then a restart: nothing
billed twice, nothing lost."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from decimal import Decimal
from pathlib import Path

from gateway.money import Money
from tests.e2e.building import ELEC_PRICE, building


def _start(config: Path, log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gateway",
            "run",
            "--config",
            str(config),
            "--json-logs",
            "--log-level",
            "DEBUG",
        ],
        stdout=subprocess.DEVNULL,
        stderr=log.open("ab"),
    )


def _billed(db: Path, meter: str) -> str | None:
    conn = sqlite3.connect(db, timeout=10)
    try:
        row = conn.execute(
            "SELECT last_value FROM meter_state WHERE meter_id = ?", (meter,)
        ).fetchone()
        return None if row is None else str(row[0])
    finally:
        conn.close()


def test_kill_9_mid_stream_bills_every_kwh_exactly_once(tmp_path: Path) -> None:
    with building(tmp_path, poll_s=0.05) as b:
        db = tmp_path / "state" / "gateway.sqlite3"
        log = tmp_path / "daemon.log"
        start = {1: b.meters.value(1), 2: b.meters.value(2)}
        stop_stream = threading.Event()

        def stream() -> None:
            # Each meter moves by 7 Wh every 10 ms, faster than it is polled.
            while not stop_stream.wait(0.01):
                for address in (1, 2):
                    b.meters.set_value(address, b.meters.value(address) + 7)

        streamer = threading.Thread(target=stream, daemon=True)
        streamer.start()
        kills = 0
        for run_for in (1.5, 0.9, 1.3):
            daemon = _start(b.config_path, log)
            time.sleep(run_for)
            os.kill(daemon.pid, signal.SIGKILL)
            daemon.wait()
            kills += 1
        stop_stream.set()
        streamer.join()
        final = {1: b.meters.value(1), 2: b.meters.value(2)}

        # Restart and let it catch up with the meters' final values.
        daemon = _start(b.config_path, log)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            kwh = {a: str(final[a] / 1000) for a in (1, 2)}
            if (
                _billed(db, "flat1-elec") is not None
                and Decimal(_billed(db, "flat1-elec") or 0) == Decimal(kwh[1])
                and Decimal(_billed(db, "flat2-elec") or 0) == Decimal(kwh[2])
            ):
                break
            time.sleep(0.1)
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(timeout=10) == 0, log.read_text()[-2000:]

    assert kills == 3
    conn = sqlite3.connect(db)
    for address, meter in ((1, "flat1-elec"), (2, "flat2-elec")):
        # Billing starts at the first reading the gateway ever took.
        first = Decimal(
            conn.execute(
                "SELECT value FROM readings WHERE meter_id = ? ORDER BY id LIMIT 1",
                (meter,),
            ).fetchone()[0]
        )
        assert first > start[address]
        moved_kwh = (final[address] - first) / 1000
        assert moved_kwh > 1  # the stream really ran
        readings = conn.execute(
            "SELECT COUNT(*) FROM readings WHERE meter_id = ? AND verdict = 'advance'",
            (meter,),
        ).fetchone()[0]
        assert readings > 30  # across four daemon lives
        debited = -conn.execute(
            "SELECT SUM(amount_minor) FROM ledger_entries WHERE meter_id = ?", (meter,)
        ).fetchone()[0]
        assert debited == Money.round_major(ELEC_PRICE * moved_kwh, "EUR").minor
        quantity = sum(
            (
                Decimal(q)
                for (q,) in conn.execute(
                    "SELECT delta FROM readings WHERE meter_id = ?", (meter,)
                )
            ),
            Decimal(0),
        )
        assert quantity == moved_kwh  # every kWh counted once, none lost
    balance = conn.execute("SELECT SUM(balance_minor) FROM balances").fetchone()[0]
    entries = conn.execute("SELECT SUM(amount_minor) FROM ledger_entries").fetchone()[0]
    assert balance == entries
    conn.close()
