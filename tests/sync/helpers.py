"""Helpers for the sync tests: a real mosquitto on loopback with its own
configuration and data directory (stoppable and restartable on its port),
running a service for a block, and waiting for a condition."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from gateway.sync.service import SyncService
from simulators.cloud.cloud import ReferenceCloud

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
SITE = "test-house"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Broker:
    """One mosquitto process on 127.0.0.1 with persistence in its own directory."""

    def __init__(self, root: Path) -> None:
        self.port = free_port()
        self.dir = root / "mosquitto"
        self.dir.mkdir()
        self.conf = self.dir / "mosquitto.conf"
        lines = [
            f"listener {self.port} 127.0.0.1",
            "allow_anonymous true",
            "persistence true",
            f"persistence_location {self.dir}/",
            f"log_dest file {self.dir}/mosquitto.log",
            "max_queued_messages 100000",
            "max_inflight_messages 100",
        ]
        # Started as root, Debian's mosquitto switches to the "mosquitto" user
        # and could then not write its data directory under tmp_path; a test
        # broker on loopback may as well stay root (the option is ignored
        # when the tests run as an ordinary user).
        if os.geteuid() == 0:
            lines.append("user root")
        self.conf.write_text("\n".join(lines) + "\n")
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [MOSQUITTO, "-c", str(self.conf)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            if self.process.poll() is not None:
                break
            time.sleep(0.02)
        log = (self.dir / "mosquitto.log").read_text(errors="replace")
        raise RuntimeError(f"mosquitto did not start on {self.port}:\n{log}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)
        self.process = None


@asynccontextmanager
async def running(service: SyncService | ReferenceCloud) -> AsyncIterator[None]:
    """Run a service as a task for the block, and cancel it cleanly after."""
    task = asyncio.create_task(service.run())
    try:
        if isinstance(service, SyncService):
            await asyncio.wait_for(service.connected.wait(), 10)
        yield
        assert not task.done(), "the service stopped by itself"
    finally:
        task.cancel()
        done, _ = await asyncio.wait([task], timeout=10)
        if not done:
            for t in asyncio.all_tasks():
                t.print_stack()
            raise AssertionError(
                f"{type(service).__name__} did not stop when cancelled"
            )


async def eventually(check: object, within: float = 10.0) -> None:
    """Wait until `check()` is true, polling; fail with the last value."""
    assert callable(check)
    deadline = time.monotonic() + within
    while True:
        value = check()
        if value:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met in {within}s: {value!r}")
        await asyncio.sleep(0.05)
