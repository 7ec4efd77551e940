"""Device health: a failing meter or unit is logged once when it starts
failing and once when it recovers, and its state is kept for `status`."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

import structlog

from gateway import alarms
from gateway.clock import Stamp
from gateway.store import transaction

log = structlog.get_logger(__name__)

# Consecutive failures after which a device raises an alarm for the cloud.
ALARM_AFTER = 3


@dataclass
class _Device:
    ok: bool = True
    failures: int = 0


class DeviceHealth:
    """Tracks every device the gateway talks to; writes only on changes."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn
        self._devices: dict[str, _Device] = {}

    def succeeded(self, device_id: str, kind: str, stamp: Stamp) -> None:
        device = self._devices.setdefault(device_id, _Device(ok=False, failures=-1))
        if device.ok:
            return
        recovered = device.failures > 0
        device.ok, device.failures = True, 0
        with transaction(self._conn):
            self._write(device_id, kind, device, stamp, None)
            alarms.clear_alarm(self._conn, "device_failed", device_id, stamp)
        if recovered:
            log.info("device_recovered", device=device_id, kind=kind)

    def failed(self, device_id: str, kind: str, error: str, stamp: Stamp) -> None:
        device = self._devices.setdefault(device_id, _Device())
        device.failures = max(device.failures, 0) + 1
        first = device.ok or device.failures == 1
        device.ok = False
        with transaction(self._conn):
            self._write(device_id, kind, device, stamp, error)
            if device.failures == ALARM_AFTER:
                alarms.raise_alarm(
                    self._conn,
                    "device_failed",
                    device_id,
                    f"{kind} {device_id} failed {device.failures} times: {error}",
                    stamp,
                )
        if first:
            log.warning("device_failed", device=device_id, kind=kind, error=error)
        else:
            log.debug(
                "device_still_failing", device=device_id, failures=device.failures
            )

    def _write(
        self,
        device_id: str,
        kind: str,
        device: _Device,
        stamp: Stamp,
        error: str | None,
    ) -> None:
        self._conn.execute(
            """INSERT INTO device_health (device_id, kind, ok, failures, last_ok_at,
                                          last_error, updated_at)
               VALUES (?, ?, ?, ?, ?, ?, ?)
               ON CONFLICT(device_id) DO UPDATE SET ok = excluded.ok,
                   failures = excluded.failures,
                   last_ok_at = COALESCE(excluded.last_ok_at, device_health.last_ok_at),
                   last_error = COALESCE(excluded.last_error, device_health.last_error),
                   updated_at = excluded.updated_at""",
            (
                device_id,
                kind,
                int(device.ok),
                device.failures,
                stamp.iso() if device.ok else None,
                error,
                stamp.iso(),
            ),
        )
