"""One call from raw telegram bytes to a verified, de-duplicated Telegram:
decode and decrypt with the meter's key, then the stream guard."""

from __future__ import annotations

import dataclasses

import structlog

from gateway.clock import Stamp
from gateway.model import Reading

from .errors import DuplicateTelegram
from .guard import StreamGuard
from .security import MeterKey
from .telegram import Telegram, decode_frame

log = structlog.get_logger(__name__)


class WmbusPipeline:
    """Turn frames into telegrams for the daemon, with keys by meter id."""

    def __init__(self, keys: dict[str, bytes], guard: StreamGuard) -> None:
        # Ids are compared as printed; non-BCD ids print as lowercase hex.
        self._keys = {meter.lower(): MeterKey(raw) for meter, raw in keys.items()}
        self.guard = guard

    def __repr__(self) -> str:
        return f"WmbusPipeline(meters={sorted(self._keys)})"

    def process(
        self, frame: bytes, stamp: Stamp, rssi: int | None = None
    ) -> Telegram | None:
        """Decode one frame; None for a duplicate, exceptions for bad frames.

        Raises the FrameError and SecurityError subclasses of
        drivers.wmbus.errors, each with a `reason`.
        """
        telegram = decode_frame(frame, self._keys)
        try:
            self.guard.admit(
                telegram.id,
                bytes(frame),
                telegram.access_number,
                telegram.message_counter,
            )
        except DuplicateTelegram:
            log.debug(
                "wmbus_duplicate",
                meter=telegram.id,
                access_number=telegram.access_number,
            )
            return None
        return dataclasses.replace(telegram, stamp=stamp, rssi=rssi)

    @staticmethod
    def reading(telegram: Telegram, source: str = "wmbus") -> Reading | None:
        """Turn a telegram's billing register into a Reading, if it has one."""
        if telegram.billing is None or telegram.stamp is None:
            return None
        return Reading(
            meter_id=telegram.id,
            value=telegram.billing.value,
            unit=telegram.billing.unit,
            stamp=telegram.stamp,
            source=source,
        )
