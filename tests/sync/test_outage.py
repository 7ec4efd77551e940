"""After a broker outage, and after kill -9 in the middle of a drain, the
reference cloud's ledger equals the gateway's to the cent, with no
duplicates and no gaps in either sequence."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from gateway.sync.signing import public_key_b64
from simulators.cloud.cloud import ReferenceCloud
from simulators.cloud.reconcile import Report, reconcile
from tests.sync.helpers import SITE, Broker, eventually, running

pytestmark = [pytest.mark.broker, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]


def _start(
    state: Path, broker: Broker, key: Ed25519PrivateKey, *args: str
) -> subprocess.Popen[bytes]:
    state.mkdir(exist_ok=True)
    logfile = (state / "gateway.log").open("ab")
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.sync.gateway_proc",
            "--state",
            str(state),
            "--port",
            str(broker.port),
            "--public-key",
            public_key_b64(key),
            *args,
        ],
        cwd=ROOT,
        stdout=logfile,
        stderr=logfile,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )


def _count(db: Path, sql: str) -> int:
    if not db.exists():
        return -1
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    try:
        return int(conn.execute(sql).fetchone()[0])
    except sqlite3.OperationalError:
        return -1
    finally:
        conn.close()


def _settled(cloud_db: Path, gateway_db: Path, readings: int) -> Report | None:
    if _count(gateway_db, "SELECT COUNT(*) FROM readings") < readings:
        return None
    if _count(gateway_db, "SELECT COUNT(*) FROM outbox") != 0:
        return None
    report = reconcile(cloud_db, gateway_db, SITE)
    return report if report.agrees else None


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


async def test_ledgers_agree_after_a_30_second_broker_outage_with_a_cut_off(
    broker: Broker, cloud_key: Ed25519PrivateKey, tmp_path: Path
) -> None:
    cloud_db, state = tmp_path / "cloud.sqlite3", tmp_path / "gw"
    gateway_db = state / "gateway.sqlite3"
    ref = ReferenceCloud("127.0.0.1", broker.port, SITE, cloud_db)
    readings = 250  # 0.1 s apart: the cut-off comes about 15 s in
    async with running(ref):
        proc = _start(
            state, broker, cloud_key, "--readings", str(readings), "--interval", "0.1"
        )
        try:
            await eventually(lambda: ref.store.upto > 20)
            broker.stop()
            sent_before = ref.store.upto
            await asyncio.sleep(30)
            assert (
                _count(
                    gateway_db, "SELECT COUNT(*) FROM decisions WHERE state = 'cut_off'"
                )
                == 1
            )
            broker.start()

            report: list[Report] = []

            def settled() -> bool:
                r = _settled(cloud_db, gateway_db, readings)
                if r is not None:
                    report.append(r)
                return r is not None

            await eventually(settled, within=30)
        finally:
            _stop(proc)

    final = report[0]
    print("\n".join(final.lines()))
    assert final.agrees
    assert final.entries > 100 and final.outbox_pending == 0
    assert ref.store.upto > sent_before
    cut_offs = ref.store.conn.execute(
        "SELECT COUNT(*) FROM uplink WHERE kind = 'decision' "
        "AND json_extract(body, '$.state') = 'cut_off'"
    ).fetchone()[0]
    assert cut_offs == 1
    balances = ref.store.balances()
    assert balances["flat1"] < -500  # consumption went on as debt past the line


async def test_ledgers_agree_after_kill_9_in_the_middle_of_a_drain(
    broker: Broker, cloud_key: Ed25519PrivateKey, tmp_path: Path
) -> None:
    cloud_db, state = tmp_path / "cloud.sqlite3", tmp_path / "gw"
    gateway_db = state / "gateway.sqlite3"
    ref = ReferenceCloud("127.0.0.1", broker.port, SITE, cloud_db)
    readings = 800
    small = (
        "--readings",
        str(readings),
        "--backlog-first",
        "--window",
        "40",
        "--batch",
        "4",
    )
    async with running(ref):
        proc = _start(state, broker, cloud_key, *small)
        try:
            await eventually(lambda: ref.store.upto > 300, within=60)
            proc.send_signal(signal.SIGKILL)
            proc.wait()
        finally:
            _stop(proc)
        stored_at_kill = ref.store.upto
        left = _count(gateway_db, "SELECT COUNT(*) FROM outbox")
        assert left > 100, "the drain had finished before the kill"

        proc = _start(state, broker, cloud_key, *small)
        try:
            started = time.monotonic()
            report: list[Report] = []

            def settled() -> bool:
                r = _settled(cloud_db, gateway_db, readings)
                if r is not None:
                    report.append(r)
                return r is not None

            await eventually(settled, within=60)
        finally:
            _stop(proc)

    final = report[0]
    print(
        "\n".join(final.lines()),
        f"\nstored at kill: {stored_at_kill}",
        f"\nleft in outbox at kill: {left}",
        f"\nrestart drained in {time.monotonic() - started:.1f}s",
    )
    assert final.agrees
    assert final.entries >= readings
