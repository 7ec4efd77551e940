"""LoRa dispensing units for the actuator: the radio a lora bus configures, a
LoraUnitLink over it that spends airtime only on changes that matter, and the
units' own reports (states, read receipts) written to the database."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal

import structlog

from drivers.lora.airtime import DutyCycle, LoraParams
from drivers.lora.counters import CounterStore
from drivers.lora.gateway_link import LoraUnitLink, ReadReceipt
from drivers.lora.payloads import MAX_TEXT_BYTES
from drivers.lora.radio import Radio
from gateway import messages
from gateway.clock import Clock
from gateway.config.model import Unit
from gateway.config.radio import LoraBus, key_bytes
from gateway.health import DeviceHealth
from gateway.model import UnitCommand, UnitState
from gateway.store import transaction

log = structlog.get_logger(__name__)


def build_radio(bus: LoraBus) -> Radio:
    """Return the radio a lora bus configures; pyLoRa is imported only for sx127x."""
    params = LoraParams(
        spreading_factor=bus.spreading_factor,
        bandwidth_hz=bus.bandwidth_hz,
        coding_rate=bus.coding_rate,
    )
    if bus.radio == "simulated":
        from drivers.lora.simulated import named_ether

        return named_ether(bus.ether).radio(
            f"gateway:{bus.id}", params, listen_hz=bus.channel_hz
        )
    if bus.radio == "rui3":
        from drivers.lora.uart_modem import Rui3Modem

        assert bus.port is not None  # the config model requires it
        return Rui3Modem(
            bus.port,
            params,
            baudrate=bus.baudrate,
            listen_hz=bus.channel_hz,
            tx_power_dbm=bus.tx_power_dbm,
        )
    from drivers.lora.sx127x import Sx127xRadio

    return Sx127xRadio(params, listen_hz=bus.channel_hz, tx_power_dbm=bus.tx_power_dbm)


@dataclass(slots=True)
class _Sent:
    command: UnitCommand
    at: float  # monotonic


class LoraUnits:
    """The units of one lora bus, as an actuator's UnitLink.

    Every `apply` states the whole wanted state, and the actuator calls it
    each cycle and after every ledger change. Over the air that would be a
    frame for every cent, so a command goes out at once only when the
    supply state, the kind of allowance (limited or not) or the display
    message changes, when the unit reports a supply state other than the
    one wanted, or when the allowance exceeds what the unit last reported
    by more than `allowance_change_percent` of the allowance last sent (a
    top-up); anything else waits until `display_refresh_s` has passed.
    Holding back is safe: a unit counts its allowance down by itself.
    """

    def __init__(
        self,
        bus: LoraBus,
        units: Sequence[Unit],
        conn: sqlite3.Connection,
        health: DeviceHealth,
        clock: Clock,
        *,
        radio_factory: Callable[[], Radio] | None = None,
    ) -> None:
        self.bus = bus
        self._conn = conn
        self._health = health
        self._clock = clock
        self._factory = radio_factory or (lambda: build_radio(bus))
        self._keys = {u.address: key_bytes(u.key) for u in units if u.key}
        self._unit_ids = {u.address: u.id for u in units}
        self._radio: Radio | None = None
        self._link: LoraUnitLink | None = None
        self._uplinks: asyncio.Task[None] | None = None
        self._sent: dict[int, _Sent] = {}
        self._states: dict[int, UnitState] = {}
        self.held = 0  # commands not sent because nothing that matters changed

    async def open(self) -> None:
        """Open the radio, start the link and the reader of the units' reports."""
        radio = self._factory()
        opener = getattr(radio, "open", None)
        if opener is not None:
            await opener()
        self._radio = radio
        self._link = LoraUnitLink(
            radio,
            self._keys,
            CounterStore(self._conn),
            DutyCycle(self._clock.monotonic),
            self._clock,
            unit_ids=self._unit_ids,
            channel_hz=self.bus.channel_hz,
            retries=self.bus.retries,
            max_airtime_wait_s=self.bus.max_wait_s,
        )
        self._uplinks = asyncio.create_task(self._read_uplinks(self._link))

    async def close(self) -> None:
        """Stop the reader and the link, and release the radio."""
        if self._uplinks is not None:
            self._uplinks.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._uplinks
        if self._link is not None:
            await self._link.aclose()
        if self._radio is not None:
            await self._radio.close()
        self._uplinks, self._link, self._radio = None, None, None

    # Commands ----------------------------------------------------------------

    async def apply(
        self, address: int, unit_id: str, command: UnitCommand
    ) -> UnitState:
        """Send the command if it matters now; return the unit's latest state."""
        if self._link is None:
            raise RuntimeError("LoraUnits.apply before open()")
        known = self._states.get(address)
        if known is not None and not self._urgent(address, command, known):
            self.held += 1
            return known
        text = display_text(self._conn, command.message_id)
        state = await self._link.apply(address, unit_id, command, message_text=text)
        self._sent[address] = _Sent(command, self._clock.monotonic())
        self._states[address] = state
        return state

    def _urgent(self, address: int, wish: UnitCommand, known: UnitState) -> bool:
        last = self._sent.get(address)
        if last is None:
            return True
        sent = last.command
        if (
            wish.supply_on != sent.supply_on
            or wish.supply_on != known.supply_on
            or (wish.allowance is None) != (sent.allowance is None)
            or wish.message_id != sent.message_id
        ):
            return True
        if self._allowance_moved(wish.allowance, known.allowance, sent.allowance):
            return True
        unchanged = (wish.allowance, wish.display_balance_minor) == (
            sent.allowance,
            sent.display_balance_minor,
        )
        waited = self._clock.monotonic() - last.at
        return not unchanged and waited >= self.bus.display_refresh_s

    def _allowance_moved(
        self, wish: Decimal | None, reported: Decimal | None, sent: Decimal | None
    ) -> bool:
        if wish is None or sent is None:
            return False
        if reported is None:
            return True
        # Only a grown allowance is urgent (a top-up, a lower price): a unit
        # holding more than it should is stopped by the cut-off decision,
        # which is sent at once, within the account's credit line. The slack
        # is relative to the allowance last sent, not to what is left, or
        # near the end every small difference would be a large fraction.
        slack = sent * self.bus.allowance_change_percent / 100
        return wish - reported > slack

    # Reports from the units -----------------------------------------------------

    async def _read_uplinks(self, link: LoraUnitLink) -> None:
        async for item in link.uplinks():
            try:
                if isinstance(item, ReadReceipt):
                    self._record_receipt(item)
                else:
                    self._record_state(item)
            except (sqlite3.Error, messages.MessageError) as err:
                # A full disk, or a receipt for a message this gateway never
                # sent, must not end the reader of every unit's reports.
                log.error("lora_report_not_stored", unit=item.unit_id, error=str(err))

    def _record_state(self, state: UnitState) -> None:
        address = state.extra.get("address")
        if isinstance(address, int):
            self._states[address] = state
        self._health.succeeded(state.unit_id, "unit", state.stamp)
        with transaction(self._conn):
            self._conn.execute(
                """INSERT INTO unit_state (unit_id, reported_on, tamper,
                                           manual_override, updated_at)
                   VALUES (?, ?, ?, ?, ?)
                   ON CONFLICT(unit_id) DO UPDATE SET
                       reported_on = excluded.reported_on, tamper = excluded.tamper,
                       manual_override = excluded.manual_override,
                       updated_at = excluded.updated_at""",
                (
                    state.unit_id,
                    int(state.supply_on),
                    int(state.tamper),
                    int(state.manual_override),
                    state.stamp.iso(),
                ),
            )

    def _record_receipt(self, receipt: ReadReceipt) -> None:
        stored = messages.record_receipt(
            self._conn,
            receipt.unit_id,
            receipt.message_id,
            receipt.read_at,
            receipt.stamp,
        )
        if stored:
            log.info(
                "display_message_read",
                unit=receipt.unit_id,
                message_id=receipt.message_id,
            )


def display_text(conn: sqlite3.Connection, message_id: int | None) -> str | None:
    """Return a stored message's text cut to what one LoRa frame carries."""
    if message_id is None:
        return None
    text = messages.text_of(conn, message_id)
    if text is None:
        return None
    # LIMITATION: a LoRa COMMAND carries at most 48 bytes of text; a longer
    # message is cut (at a character boundary) rather than refused, so the
    # unit still shows its start and can acknowledge it.
    return text.encode()[:MAX_TEXT_BYTES].decode(errors="ignore")
