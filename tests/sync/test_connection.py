"""The connection survives a broker restart by itself and says "online"
again on every connect; reconnect delays double, jitter and stay capped."""

from __future__ import annotations

from pathlib import Path

import aiomqtt
import pytest

from gateway.clock import SystemClock
from gateway.config.cloud import Cloud
from gateway.sync.connection import Backoff
from gateway.sync.contract import Topics, dumps
from gateway.sync.service import SyncService
from simulators.cloud.cloud import ReferenceCloud
from tests.sync.helpers import SITE, Broker, eventually, running


def test_backoff_doubles_with_jitter_up_to_its_cap() -> None:
    backoff = Backoff(first_s=1.0, cap_s=8.0)
    delays = [backoff.next() for _ in range(8)]

    for delay, ceiling in zip(delays, [1, 2, 4, 8, 8, 8, 8, 8], strict=True):
        assert ceiling / 2 <= delay <= ceiling
    assert len({round(d, 6) for d in delays[3:]}) > 1  # jittered, not in step
    backoff.reset()
    assert backoff.next() <= 1.0


@pytest.mark.broker
async def test_service_reconnects_after_broker_restart_and_says_online_again(
    broker: Broker, cloud_config: Cloud, gateway_db: Path, tmp_path: Path
) -> None:
    ref = ReferenceCloud("127.0.0.1", broker.port, SITE, tmp_path / "cloud.sqlite3")
    service = SyncService(
        cloud_config,
        SITE,
        gateway_db,
        SystemClock(True),
        lambda: None,
        first_backoff_s=0.1,
        max_backoff_s=0.5,
    )
    topics = Topics("prepaid/v1", SITE)
    async with running(ref), running(service):
        await eventually(lambda: ref.status == "online")
        # What a fired last will leaves behind: a retained "offline".
        async with aiomqtt.Client("127.0.0.1", broker.port) as other:
            await other.publish(
                topics.status, dumps({"state": "offline"}), qos=1, retain=True
            )
        await eventually(lambda: ref.status == "offline")

        broker.stop()
        await eventually(lambda: not service.connected.is_set())
        broker.start()

        await eventually(lambda: service.connected.is_set())
        await eventually(lambda: ref.status == "online")
