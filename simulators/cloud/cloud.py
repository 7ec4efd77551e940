"""The reference cloud's MQTT side: subscribe to a site's uplink, store it,
acknowledge it, and sign and publish commands."""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiomqtt
import structlog
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from pydantic import ValidationError

from gateway.sync import schemas
from gateway.sync.contract import Topics, dumps
from gateway.sync.signing import sign
from simulators.cloud.store import CloudStore

log = structlog.get_logger(__name__)


def make_command(
    site: str,
    kind: str,
    args: dict[str, Any],
    key: Ed25519PrivateKey | None,
    *,
    command_id: str | None = None,
    issued_at: datetime | None = None,
    valid_for: timedelta = timedelta(hours=1),
) -> bytes:
    """Return a command envelope, signed with `key` (or unsigned if None)."""
    issued = issued_at or datetime.now(UTC)
    command = {
        "command_id": command_id or f"cmd-{uuid.uuid4().hex}",
        "site": site,
        "kind": kind,
        "issued_at": issued.isoformat(),
        "expires_at": (issued + valid_for).isoformat(),
        "args": args,
    }
    text = json.dumps(command, separators=(",", ":"))
    signature = None if key is None else sign(key, text.encode())
    return dumps({"v": 1, "command": text, "signature": signature})


class ReferenceCloud:
    """Store and acknowledge one site's uplink until cancelled."""

    def __init__(
        self,
        host: str,
        port: int,
        site: str,
        db_path: Path,
        *,
        topic_root: str = "prepaid/v1",
        client_id: str | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.topics = Topics(topic_root, site)
        self.store = CloudStore(db_path, site)
        self.client_id = client_id or f"refcloud-{site}"
        self.status: str | None = None
        self.batches = 0
        self.rejected = 0
        self.stored = asyncio.Event()

    async def run(self) -> None:
        """Serve forever, reconnecting after a broker outage."""
        while True:
            try:
                await self._serve()
            except aiomqtt.MqttError as err:
                log.info("refcloud_disconnected", error=str(err))
            await asyncio.sleep(0.5)

    async def _serve(self) -> None:
        properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        properties.SessionExpiryInterval = 3600
        async with aiomqtt.Client(
            self.host,
            self.port,
            identifier=self.client_id,
            protocol=aiomqtt.ProtocolVersion.V5,
            clean_start=False,
            properties=properties,
            timeout=10,
        ) as client:
            await client.subscribe(
                [(self.topics.uplink_all, 1), (self.topics.status, 1)]
            )
            log.info("refcloud_connected", site=self.topics.site)
            # Re-announce what is stored, so a gateway that missed the last
            # ack (it is retained, but may have been cleared) can move on.
            await self._ack(client)
            async for message in client.messages:
                if message.topic.matches(self.topics.status):
                    self._on_status(message.payload)
                    continue
                if not isinstance(message.payload, bytes | bytearray):
                    continue
                try:
                    batch = schemas.UplinkBatch.model_validate_json(message.payload)
                except ValidationError as err:
                    self.rejected += 1
                    log.warning(
                        "refcloud_batch_refused",
                        topic=str(message.topic),
                        error=str(err.errors()[0]["msg"]),
                    )
                    continue
                self.store.store(batch)
                self.batches += 1
                await self._ack(client)
                self.stored.set()

    def _on_status(self, payload: object) -> None:
        if isinstance(payload, bytes | bytearray) and payload:
            with contextlib.suppress(ValidationError):
                self.status = schemas.Status.model_validate_json(payload).state

    async def _ack(self, client: aiomqtt.Client) -> None:
        ack = self.store.ack()
        await client.publish(
            self.topics.ack, dumps(ack.model_dump()), qos=1, retain=True
        )


async def publish_command(
    host: str,
    port: int,
    topics: Topics,
    envelope: bytes,
    *,
    client_id: str | None = None,
) -> None:
    """Publish one command envelope at QoS 1 and disconnect."""
    async with aiomqtt.Client(
        host,
        port,
        identifier=client_id,
        protocol=aiomqtt.ProtocolVersion.V5,
        timeout=10,
    ) as client:
        await client.publish(topics.commands, envelope, qos=1)
