"""The sync service the daemon supervises: it keeps one MQTT connection up,
drains the outbox, applies commands, and enforces the outbox bounds."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import Callable
from pathlib import Path

import aiomqtt
import structlog
from pydantic import ValidationError

from gateway import commands, store
from gateway.clock import Clock
from gateway.config.cloud import Cloud
from gateway.sync import bounds, schemas
from gateway.sync.connection import Backoff, make_client
from gateway.sync.contract import MAX_DOWNLINK_BYTES, Topics, dumps
from gateway.sync.drainer import Drainer
from gateway.sync.intake import Intake

log = structlog.get_logger(__name__)

GUARD_INTERVAL_S = 5.0
PRUNE_INTERVAL_S = 3600.0


class SyncService:
    """Keep one site in sync with the cloud; `run()` until cancelled."""

    def __init__(
        self,
        cloud: Cloud,
        site_id: str,
        db_path: Path,
        clock: Clock,
        on_ledger_change: Callable[[], None],
        *,
        first_backoff_s: float = 1.0,
        max_backoff_s: float = 60.0,
    ) -> None:
        self._cloud = cloud
        self._site = site_id
        self._db_path = db_path
        self._clock = clock
        self._on_ledger_change = on_ledger_change
        self._topics = Topics(cloud.topic_root, site_id)
        self._bounds = bounds.Bounds(
            cloud.max_rows, cloud.max_bytes, cloud.min_free_disk_mb
        )
        self._backoff = Backoff(first_backoff_s, max_backoff_s)
        self._drainer: Drainer | None = None
        self.connected = asyncio.Event()

    async def run(self) -> None:
        """Connect, drain and listen; reconnect after every loss, forever."""
        conn = store.connect(self._db_path)
        guard = asyncio.create_task(self._guard(conn), name="sync-guard")
        failing = False
        try:
            while True:
                try:
                    async with make_client(
                        self._cloud, self._site, self._topics
                    ) as client:
                        self._backoff.reset()
                        log.info(
                            "cloud_connected",
                            host=self._cloud.host,
                            port=self._cloud.port,
                            recovered=failing,
                        )
                        failing = False
                        await self._session(conn, client)
                except aiomqtt.MqttError as err:
                    # Log the first failure; repeats stay at debug until it recovers.
                    (log.debug if failing else log.warning)(
                        "cloud_connection_lost",
                        host=self._cloud.host,
                        port=self._cloud.port,
                        error=str(err),
                    )
                    failing = True
                finally:
                    self.connected.clear()
                    self._drainer = None
                await asyncio.sleep(self._backoff.next())
        finally:
            guard.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await guard
            conn.close()

    async def _session(self, conn: sqlite3.Connection, client: aiomqtt.Client) -> None:
        """Serve one connection until it drops or the service is cancelled."""
        await client.subscribe([(self._topics.commands, 1), (self._topics.ack, 1)])
        await self._publish_status(client, "online")
        drainer = Drainer(
            conn,
            self._topics,
            window=self._cloud.in_flight_window,
            batch_max=self._cloud.batch_max,
            resend_after_s=self._cloud.resend_after_s,
            monotonic=self._clock.monotonic,
        )
        self._drainer = drainer
        self.connected.set()

        async def publish(topic: str, payload: bytes) -> None:
            await client.publish(topic, payload, qos=1)

        intake = Intake(conn, self._cloud, self._site, self._clock)
        tasks = [
            asyncio.create_task(drainer.run(publish), name="sync-drain"),
            asyncio.create_task(
                self._receive(client, intake, drainer), name="sync-receive"
            ),
        ]
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
            for task in done:
                task.result()
        except asyncio.CancelledError:
            # A clean DISCONNECT does not fire the last will: say it ourselves.
            with contextlib.suppress(Exception):
                async with asyncio.timeout(2):
                    await self._publish_status(client, "offline")
            raise
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _publish_status(self, client: aiomqtt.Client, state: str) -> None:
        now = self._clock.now()
        payload = {"state": state, "at": now.iso(), "clock_synced": now.synced}
        await client.publish(self._topics.status, dumps(payload), qos=1, retain=True)

    async def _receive(
        self, client: aiomqtt.Client, intake: Intake, drainer: Drainer
    ) -> None:
        async for message in client.messages:
            payload = message.payload
            if not isinstance(payload, bytes | bytearray):
                continue
            try:
                if message.topic.matches(self._topics.ack):
                    self._handle_ack(bytes(payload), drainer)
                elif message.topic.matches(self._topics.commands):
                    result = intake.handle(bytes(payload))
                    if result is not None and result.changed:
                        self._notify_ledger_change()
                    drainer.wake()
            except (sqlite3.Error, store.StoreError) as err:
                # LIMITATION: paho acknowledges an incoming QoS 1 message as
                # soon as it is read, so a command that could not be stored
                # (or that arrived in the instant before a crash) is lost
                # here; the cloud must resend a command it has no result for.
                log.error(
                    "downlink_not_stored", topic=str(message.topic), error=str(err)
                )

    def _notify_ledger_change(self) -> None:
        # The command is already committed; a failing callback must not cost
        # the connection, only a slower re-decision by the daemon.
        try:
            self._on_ledger_change()
        except Exception as err:
            log.error("ledger_change_callback_failed", error=repr(err))

    def _handle_ack(self, payload: bytes, drainer: Drainer) -> None:
        if not payload:
            return  # an empty retained message clears the topic; nothing to do
        if len(payload) > MAX_DOWNLINK_BYTES:
            log.warning("ack_refused", reason="oversized", bytes=len(payload))
            return
        try:
            ack = schemas.Ack.model_validate_json(payload)
        except ValidationError as err:
            log.warning("ack_refused", reason=str(err.errors()[0]["msg"]))
            return
        deleted = drainer.on_ack(ack)
        log.debug("outbox_acknowledged", upto=ack.upto, deleted=deleted)

    async def _guard(self, conn: sqlite3.Connection) -> None:
        """Enforce the outbox bounds and forget expired commands, connected or not."""
        # LIMITATION: the bounds are checked every few seconds, not on every
        # enqueue (the daemon's writers queue messages without asking this
        # service), so the outbox can run over its bound for one interval.
        since_prune = PRUNE_INTERVAL_S
        while True:
            try:
                usage = bounds.enforce(
                    conn, self._bounds, self._db_path, self._clock.now()
                )
                if usage.dropped and self._drainer is not None:
                    self._drainer.wake()
                if since_prune >= PRUNE_INTERVAL_S:
                    commands.prune(conn, self._clock.now())
                    since_prune = 0.0
            except (sqlite3.Error, OSError) as err:
                log.error("outbox_guard_failed", error=str(err))
            await asyncio.sleep(GUARD_INTERVAL_S)
            since_prune += GUARD_INTERVAL_S
