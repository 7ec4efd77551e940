"""A real mosquitto on loopback for the sync tests, started with its own
configuration and data directory, and able to stop and restart on its port."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import sqlite3
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from gateway import accounts
from gateway.clock import SystemClock
from gateway.config import Config
from gateway.config.cloud import Cloud
from gateway.site import SitePlan
from gateway.store import transaction
from gateway.sync.service import SyncService
from gateway.sync.signing import public_key_b64
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


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    if not Path(MOSQUITTO).exists():
        pytest.skip("mosquitto is not installed (apt-get install mosquitto)")
    b = Broker(tmp_path)
    b.start()
    yield b
    b.stop()


@pytest.fixture
def cloud_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


@pytest.fixture
def cloud_config(broker: Broker, cloud_key: Ed25519PrivateKey) -> Cloud:
    return Cloud(
        host="127.0.0.1",
        port=broker.port,
        tls=False,
        public_key=public_key_b64(cloud_key),
        client_id=f"gw-{broker.port}",
        resend_after_s=5,
    )


@pytest.fixture
def gateway_db(tmp_path: Path, conn: sqlite3.Connection, config: Config) -> Path:
    """The gateway database of the test site, with its accounts created."""
    with transaction(conn):
        accounts.sync_from_config(conn, SitePlan(config), SystemClock(True).now())
    return tmp_path / "gateway.sqlite3"


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
