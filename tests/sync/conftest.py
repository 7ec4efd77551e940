"""Fixtures for the sync tests: a real mosquitto on loopback, the cloud's
key, the gateway's cloud config and database."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from gateway import accounts
from gateway.clock import SystemClock
from gateway.config import Config
from gateway.config.cloud import Cloud
from gateway.site import SitePlan
from gateway.store import transaction
from gateway.sync.signing import public_key_b64
from tests.sync.helpers import MOSQUITTO, Broker


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
