"""Benchmark: drain a backlog of 100,000 uplink messages to mosquitto with the
reference cloud acknowledging, beside a bare aiomqtt QoS 1 publish loop of
the same payloads to the same broker, and the drainer's peak memory.

    python bench/bench_outbox.py [--messages 100000]

Each side runs in a child process of its own so its peak RSS is its own.
The bare loop publishes one message at a time and waits for each PUBACK;
nobody subscribes to its topic. The drain counts only when the cloud (a
third process) has stored every message and acknowledged it, and the
outbox is empty.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SITE = "bench-house"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start_broker(workdir: Path, port: int) -> subprocess.Popen[bytes]:
    conf = workdir / "mosquitto.conf"
    lines = [
        f"listener {port} 127.0.0.1",
        "allow_anonymous true",
        "max_queued_messages 1000000",
        "max_inflight_messages 100",
    ]
    if os.geteuid() == 0:
        lines.append("user root")  # stay root: the data dir is ours
    conf.write_text("\n".join(lines) + "\n")
    binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    proc = subprocess.Popen(
        [binary, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    for _ in range(500):
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return proc
        time.sleep(0.01)
    raise RuntimeError("mosquitto did not start")


def _fill(db: Path, n: int) -> None:
    from gateway import outbox, store
    from gateway.clock import Stamp

    conn = store.connect(db)
    stamp = Stamp(datetime(2026, 3, 1, tzinfo=UTC), True)
    with store.transaction(conn):
        for i in range(n):
            outbox.enqueue(
                conn,
                "reading",
                {
                    "meter_id": f"m-{i % 40:03d}",
                    "value": f"{12345 + i * 0.01:.2f}",
                    "unit": "kWh",
                    "verdict": "ok",
                    "consumption": "0.01",
                    "taken_at": stamp.iso(),
                    "clock_synced": True,
                },
                stamp,
                message_id=f"reading:{i}",
            )
    conn.close()


def _payloads(db: Path) -> list[bytes]:
    from gateway.sync.drainer import Row, _message_text

    conn = sqlite3.connect(db)
    rows = conn.execute(
        "SELECT seq, id, kind, payload, bytes, created_at, "
        "clock_synced FROM outbox ORDER BY seq"
    )
    out = [
        _message_text(Row(r[0], r[1], r[2], r[3], r[4], r[5], bool(r[6]))).encode()
        for r in rows
    ]
    conn.close()
    return out


async def _bare(db: Path, port: int) -> dict[str, float]:
    import aiomqtt

    payloads = _payloads(db)
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    async with aiomqtt.Client("127.0.0.1", port, identifier="bench-bare") as client:
        started = time.perf_counter()
        for p in payloads:
            await client.publish("bench/bare", p, qos=1)
        elapsed = time.perf_counter() - started
    return {
        "seconds": elapsed,
        "messages": len(payloads),
        "rss_before_kb": rss0,
        "peak_rss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
    }


async def _drain(db: Path, port: int, window: int, batch: int) -> dict[str, float]:
    from gateway import outbox, store
    from gateway.clock import SystemClock
    from gateway.config.cloud import Cloud
    from gateway.sync.service import SyncService

    conn = store.connect(db)
    total, _ = outbox.pending(conn)
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    cloud = Cloud(
        host="127.0.0.1",
        port=port,
        tls=False,
        development_site=True,
        client_id="bench-gw",
        in_flight_window=window,
        batch_max=batch,
    )
    service = SyncService(cloud, SITE, db, SystemClock(True), lambda: None)
    started = time.perf_counter()
    task = asyncio.create_task(service.run())
    # Polling the outbox is the measurement itself; no event exists to await.
    while outbox.pending(conn)[0] > 0:  # noqa: ASYNC110
        await asyncio.sleep(0.02)
    elapsed = time.perf_counter() - started
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    conn.close()
    return {
        "seconds": elapsed,
        "messages": total,
        "rss_before_kb": rss0,
        "peak_rss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
    }


def _child(args: list[str]) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, __file__, *args],
        check=True,
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    result: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--messages", type=int, default=100_000)
    p.add_argument("--window", type=int, default=1000)
    p.add_argument("--batch", type=int, default=100)
    p.add_argument("--child", choices=["bare", "drain"])
    p.add_argument("--db", type=Path)
    p.add_argument("--port", type=int)
    ns = p.parse_args()

    if ns.child:
        import logging

        import structlog

        structlog.configure(
            wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING)
        )
        coro = (
            _bare(ns.db, ns.port)
            if ns.child == "bare"
            else _drain(ns.db, ns.port, ns.window, ns.batch)
        )
        print(json.dumps(asyncio.run(coro)))
        return 0

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        port = _free_port()
        broker = _start_broker(work, port)
        cloud = None
        try:
            db = work / "gateway.sqlite3"
            t = time.perf_counter()
            _fill(db, ns.messages)
            print(
                f"backlog of {ns.messages} messages written in "
                f"{time.perf_counter() - t:.1f}s"
            )
            bare = _child(["--child", "bare", "--db", str(db), "--port", str(port)])
            cloud = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "simulators.cloud",
                    "--port",
                    str(port),
                    "--site",
                    SITE,
                    "--db",
                    str(work / "cloud.sqlite3"),
                    "serve",
                ],
                cwd=ROOT,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            time.sleep(1.0)
            ours = _child(
                [
                    "--child",
                    "drain",
                    "--db",
                    str(db),
                    "--port",
                    str(port),
                    "--window",
                    str(ns.window),
                    "--batch",
                    str(ns.batch),
                ]
            )
            stored = (
                sqlite3.connect(work / "cloud.sqlite3")
                .execute("SELECT COUNT(*) FROM uplink")
                .fetchone()[0]
            )
        finally:
            if cloud is not None:
                cloud.terminate()
                cloud.wait()
            broker.terminate()
            broker.wait()

    ours_rate = ours["messages"] / ours["seconds"]
    bare_rate = bare["messages"] / bare["seconds"]
    print(
        f"outbox drain, cloud-acknowledged (window {ns.window}, batch {ns.batch}): "
        f"{ours_rate:,.0f} msg/s ({ours['seconds']:.1f}s); cloud stored {stored}"
    )
    print(
        f"bare aiomqtt QoS 1 publish loop, same payloads:      "
        f"{bare_rate:,.0f} msg/s ({bare['seconds']:.1f}s)"
    )
    print(f"ratio drain / bare: {ours_rate / bare_rate:.2f}")
    print(
        f"drainer peak RSS {ours['peak_rss_kb'] / 1024:.0f} MiB "
        f"(before draining {ours['rss_before_kb'] / 1024:.0f} MiB); "
        f"bare loop peak RSS {bare['peak_rss_kb'] / 1024:.0f} MiB (holds all payloads)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
