"""The wireless M-Bus listener: one receiver's telegrams turned into readings
for the configured meters, with duplicates dropped, refusals alarmed, silent
meters and a silent receiver alarmed, and the receiver reopened."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import sqlite3
from collections.abc import Callable, Sequence

import structlog

from drivers.wmbus import SilenceWatch, StreamGuard, WmbusPipeline
from drivers.wmbus.crc import strip_link_crcs
from drivers.wmbus.errors import WmbusFrameError, WmbusSecurityError
from drivers.wmbus.guard import STATE_VERSION
from drivers.wmbus.link import meter_id
from drivers.wmbus.receivers import (
    AmberReceiver,
    Im871aReceiver,
    LineReceiver,
    RawTelegram,
    Receiver,
)
from drivers.wmbus.receivers.amber import AmberMode
from drivers.wmbus.receivers.im871a import LinkMode
from gateway import alarms
from gateway.clock import Clock
from gateway.config.model import Meter
from gateway.config.radio import WmbusBus, key_bytes
from gateway.health import DeviceHealth
from gateway.model import FrameError, LinkError, Reading
from gateway.store import transaction

log = structlog.get_logger(__name__)

# How often silent meters are looked for; a meter interval is minutes.
WATCH_EVERY_S = 5.0
# Reopening a receiver that failed waits this long at first, then doubles.
REOPEN_MIN_S = 0.5
REOPEN_MAX_S = 30.0

# iM871A has C1 in two frame formats; C1A receives what C1 meters send.
_IM871A_MODES = {"T1": LinkMode.T1, "C1": LinkMode.C1A, "S1": LinkMode.S1}


def build_receiver(bus: WmbusBus, clock: Clock) -> Receiver:
    """Return the receiver a bus configures, not yet opened."""
    timeout = bus.receiver_timeout_s
    if bus.receiver == "im871a":
        assert bus.port is not None  # the config model requires it
        return Im871aReceiver(
            bus.port,
            _IM871A_MODES[bus.mode],
            baudrate=bus.baudrate or 57600,
            silence_timeout_s=timeout,
            clock=clock,
        )
    if bus.receiver == "amb8465":
        assert bus.port is not None
        return AmberReceiver(
            bus.port,
            AmberMode[bus.mode],
            baudrate=bus.baudrate or 9600,
            silence_timeout_s=timeout,
            clock=clock,
        )
    return LineReceiver(
        path=bus.path,
        command=bus.command,
        tcp=bus.tcp_address,
        silence_timeout_s=timeout,
        clock=clock,
    )


def radio_id(meter: Meter) -> str:
    """Return the id a wireless meter sends, as the driver prints it."""
    assert meter.secondary_id is not None  # the loader requires it on wmbus
    return meter.secondary_id[:8].lower()


def _candidate_ids(frame: bytes) -> set[str]:
    """Return the meter ids a frame may belong to, without decrypting it.

    The link layer's id, and a long transport header's id right after it.
    LIMITATION: a long header behind an extended link layer is not looked
    at here; such a meter is matched by its link-layer id only.
    """
    try:
        data, _format = strip_link_crcs(bytes(frame))
    except FrameError:
        return set()
    ids = {meter_id(data[4:8])} if len(data) >= 10 else set()
    if len(data) >= 15 and data[10] == 0x72:
        ids.add(meter_id(data[11:15]))
    return ids


class WmbusListener:
    """Listens on one wireless M-Bus receiver and queues readings for billing."""

    def __init__(
        self,
        bus: WmbusBus,
        meters: Sequence[Meter],
        conn: sqlite3.Connection,
        readings: asyncio.Queue[Reading],
        health: DeviceHealth,
        clock: Clock,
        *,
        receiver_factory: Callable[[], Receiver] | None = None,
    ) -> None:
        self.bus = bus
        self._meters = {radio_id(m): m for m in meters}
        self._conn = conn
        self._readings = readings
        self._health = health
        self._clock = clock
        self._factory = receiver_factory or (lambda: build_receiver(bus, clock))
        keys = {rid: key_bytes(m.key) for rid, m in self._meters.items() if m.key}
        guard = StreamGuard(bus.duplicate_window_s, bus.replay_reset_after_s)
        self.pipeline = WmbusPipeline(keys, guard)
        self.watch = SilenceWatch(
            bus.receiver_timeout_s, bus.missed_intervals, clock.monotonic
        )
        for rid in self._meters:
            self.watch.expect(rid, bus.meter_interval_s)
        self._refusals: set[tuple[str, str]] = set()
        self.duplicates = 0
        self.foreign = 0

    # Running -----------------------------------------------------------------

    async def run(self) -> None:
        """Listen until cancelled; the receiver is reopened whenever it fails."""
        self._load_guard()
        async with asyncio.TaskGroup() as group:
            group.create_task(self._watch_loop())
            group.create_task(self._receive_loop())

    async def _receive_loop(self) -> None:
        backoff = REOPEN_MIN_S
        while True:
            receiver = self._factory()
            delivered = False
            try:
                await receiver.open()
                async for raw in receiver.telegrams():
                    if not delivered:
                        # Healthy once it delivers, not merely once it opens.
                        delivered = True
                        backoff = REOPEN_MIN_S
                        self._health.succeeded(self.bus.id, "receiver", raw.stamp)
                    self.handle(raw)
            except LinkError as err:
                # The receiver logged its own failure once; the device health
                # keeps the state for `status` and alarms after a few tries.
                self._health.failed(
                    self.bus.id, "receiver", str(err), self._clock.now()
                )
            finally:
                await receiver.close()
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, REOPEN_MAX_S)

    async def _watch_loop(self) -> None:
        every = min(WATCH_EVERY_S, self.bus.receiver_timeout_s / 2)
        while True:
            await asyncio.sleep(every)
            self.check_silence()

    # One telegram ------------------------------------------------------------

    def handle(self, raw: RawTelegram) -> Reading | None:
        """Turn one heard telegram into a queued reading, or drop or refuse it."""
        self.watch.heard_receiver()
        candidates = _candidate_ids(raw.frame) & self._meters.keys()
        if not candidates:
            # A neighbour's meter, or noise: not ours to judge.
            self.foreign += 1
            return None
        try:
            telegram = self.pipeline.process(raw.frame, raw.stamp, raw.rssi)
        except WmbusSecurityError as err:
            self._refuse(sorted(candidates)[0], str(err.reason), str(err), alarm=True)
            return None
        except WmbusFrameError as err:
            # Radio noise garbles frames every day: count it, alarm only on
            # what makes a meter unreadable.
            unreadable = err.reason == "unsupported"
            self._refuse(sorted(candidates)[0], str(err.reason), str(err), unreadable)
            return None
        if telegram is None:
            self.duplicates += 1
            return None
        meter = self._meters.get(telegram.id.lower())
        if meter is None:
            self.foreign += 1
            return None
        self._save_guard(telegram.id)
        self.watch.heard(telegram.id.lower())
        reading = WmbusPipeline.reading(telegram)
        if reading is None:
            self._health.failed(
                meter.id, "meter", "telegram has no billing register", raw.stamp
            )
            return None
        reading = dataclasses.replace(reading, meter_id=meter.id, raw=raw.frame)
        self._health.succeeded(meter.id, "meter", raw.stamp)
        try:
            self._readings.put_nowait(reading)
        except asyncio.QueueFull:
            log.warning("wmbus_reading_dropped", meter=meter.id, reason="queue_full")
            return None
        return reading

    def _refuse(self, rid: str, reason: str, detail: str, alarm: bool) -> None:
        meter = self._meters[rid]
        first = (meter.id, reason) not in self._refusals
        self._refusals.add((meter.id, reason))
        if first:
            log.warning(
                "wmbus_telegram_refused", meter=meter.id, reason=reason, detail=detail
            )
        else:
            log.debug("wmbus_telegram_refused_again", meter=meter.id, reason=reason)
        if alarm:
            with transaction(self._conn):
                alarms.raise_alarm(
                    self._conn,
                    f"wmbus_{reason}",
                    meter.id,
                    f"wireless meter {meter.id} sent a telegram refused as"
                    f" {reason}: {detail}",
                    self._clock.now(),
                    {"bus": self.bus.id, "radio_id": rid},
                )

    # Silence -----------------------------------------------------------------

    def check_silence(self) -> None:
        """Raise or clear the silence alarms of meters and the receiver."""
        change = self.watch.poll()
        if not (change.newly_silent or change.recovered) and (
            change.receiver_silent is None
        ):
            return
        stamp = self._clock.now()
        with transaction(self._conn):
            for silent in change.newly_silent:
                meter = self._meters[silent.meter_id]
                alarms.raise_alarm(
                    self._conn,
                    "meter_silent",
                    meter.id,
                    f"wireless meter {meter.id} missed {silent.missed_intervals}"
                    f" intervals of {self.bus.meter_interval_s:g} s",
                    stamp,
                )
            for rid in change.recovered:
                alarms.clear_alarm(
                    self._conn, "meter_silent", self._meters[rid].id, stamp
                )
            if change.receiver_silent:
                alarms.raise_alarm(
                    self._conn,
                    "receiver_silent",
                    self.bus.id,
                    f"wireless M-Bus receiver {self.bus.id} heard nothing for"
                    f" {self.bus.receiver_timeout_s:g} s; it is being reopened",
                    stamp,
                )
            elif change.receiver_silent is False:
                alarms.clear_alarm(self._conn, "receiver_silent", self.bus.id, stamp)

    # The stream guard's memory ---------------------------------------------

    def _load_guard(self) -> None:
        rows = self._conn.execute(
            "SELECT meter_id, state FROM wmbus_stream WHERE bus_id = ? AND version = ?",
            (self.bus.id, STATE_VERSION),
        ).fetchall()
        meters = {row[0]: json.loads(row[1]) for row in rows}
        self.pipeline.guard.load_dict({"version": STATE_VERSION, "meters": meters})

    def _save_guard(self, telegram_id: str) -> None:
        state = self.pipeline.guard.to_dict()["meters"].get(telegram_id)
        if state is None:
            return
        with transaction(self._conn):
            self._conn.execute(
                """INSERT INTO wmbus_stream (bus_id, meter_id, version, state, saved_at)
                   VALUES (?, ?, ?, ?, ?)
                   ON CONFLICT(bus_id, meter_id) DO UPDATE SET
                       version = excluded.version, state = excluded.state,
                       saved_at = excluded.saved_at""",
                (
                    self.bus.id,
                    telegram_id,
                    STATE_VERSION,
                    json.dumps(state),
                    self._clock.now().iso(),
                ),
            )
