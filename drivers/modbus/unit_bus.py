"""One RS485 line of prepaidgw dispensing units, spoken to over Modbus RTU with
pymodbus 3.16: commands out, read-back unit states in, one request at a time."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from decimal import Decimal

import structlog
from pymodbus.client import AsyncModbusSerialClient
from pymodbus.constants import ExcCodes
from pymodbus.exceptions import ConnectionException, ModbusException
from pymodbus.pdu import ModbusPDU

from drivers.modbus import registers as regs
from gateway.clock import Clock, SystemClock
from gateway.model import FrameError, LinkError, UnitCommand, UnitState

log = structlog.get_logger(__name__)

_PARITIES = ("N", "E", "O")
# How long past its own bounded retries a request may take before we give up
# on pymodbus: covers a reconnect attempt of the port inside execute().
_GUARD_S = 0.5


class _SilenceNoResponse(logging.Filter):
    """Drop pymodbus's own error line for a unit that did not answer.

    pymodbus 3.16 logs "No response received ..." at ERROR, with the last
    frames appended, on every failed request. This driver logs a silent unit
    once and again when it answers, so the repeated line is noise.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        return "No response received" not in record.getMessage()


_PYMODBUS_LOG = logging.getLogger("pymodbus.logging")
if not any(isinstance(f, _SilenceNoResponse) for f in _PYMODBUS_LOG.filters):
    _PYMODBUS_LOG.addFilter(_SilenceNoResponse())


class ModbusUnitBus:
    """Drive the dispensing units on one RS485 line.

    One instance per serial port. `apply` writes a command and reads the
    unit's state back; `read_state` only reads. A silent unit raises
    LinkError after `timeout_s * (retries + 1)` seconds; a refusal or a
    reply that does not fit the register map raises FrameError.
    """

    def __init__(
        self,
        port: str,
        baudrate: int = 9600,
        parity: str = "E",
        timeout_s: float = 0.3,
        retries: int = 1,
        *,
        watchdog_s: int = 600,
        clock: Clock | None = None,
    ) -> None:
        if parity not in _PARITIES:
            raise ValueError(
                f"Modbus bus {port}: parity {parity!r} must be one of N, E, O"
            )
        if not timeout_s > 0:
            raise ValueError(f"Modbus bus {port}: timeout_s must be above 0")
        if retries < 0:
            raise ValueError(f"Modbus bus {port}: retries must be 0 or more")
        if not 0 <= watchdog_s <= regs.MAX_WATCHDOG_S:
            raise ValueError(
                f"Modbus bus {port}: watchdog_s {watchdog_s} must be 0 (off) "
                f"to {regs.MAX_WATCHDOG_S}"
            )
        self.port = port
        self.timeout_s = timeout_s
        self.retries = retries
        self.watchdog_s = watchdog_s
        self._clock: Clock = clock if clock is not None else SystemClock()
        self._lock = asyncio.Lock()
        self._silent: set[int] = set()
        # Bytes received since the last request went out; lets a timeout
        # tell "nothing came back" from "garbage came back".
        self._received = b""
        self._client = AsyncModbusSerialClient(
            port,
            baudrate=baudrate,
            parity=parity,
            bytesize=8,
            stopbits=1,
            timeout=timeout_s,
            retries=retries,
            # A vanished USB adapter is reopened from 1 s, backing off to 30 s.
            reconnect_delay=1.0,
            reconnect_delay_max=30.0,
            name=f"modbus {port}",
            trace_packet=self._trace_packet,
        )

    async def open(self) -> None:
        """Open the serial port; raise LinkError if it cannot be opened."""
        if not await self._client.connect():
            raise LinkError(
                f"cannot open Modbus serial port {self.port}: check that the "
                "device exists, that no other program holds it, and the bus "
                "'port' in the site configuration"
            )
        log.info("modbus_bus_open", port=self.port)

    async def close(self) -> None:
        """Close the serial port."""
        self._client.close()
        log.info("modbus_bus_closed", port=self.port)

    async def __aenter__(self) -> ModbusUnitBus:
        await self.open()
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.close()

    async def apply(
        self, address: int, unit_id: str, command: UnitCommand
    ) -> UnitState:
        """Write a command to the unit at `address`, then return its read-back state.

        The whole command (supply, allowance, display, watchdog) goes out in
        one write of multiple registers (function 16), so the unit applies it
        at once; the state comes back in one read of input registers
        (function 04). `supply_on` of the result is the unit's feedback.
        """
        _check_address(address, unit_id)
        try:
            words = regs.encode_command(
                supply_on=command.supply_on,
                allowance=command.allowance,
                display_balance_minor=command.display_balance_minor,
                display_decimals=command.display_decimals,
                message_id=command.message_id,
                watchdog_s=self.watchdog_s,
            )
        except regs.RegisterMapError as err:
            raise ValueError(f"unit {unit_id}: {err}") from None

        reply = await self._request(
            address,
            unit_id,
            "write command",
            lambda: self._client.write_registers(
                regs.COMMAND_START, words, device_id=address
            ),
        )
        if getattr(reply, "count", regs.COMMAND_COUNT) != regs.COMMAND_COUNT:
            raise FrameError(
                f"unit {unit_id} at address {address} acknowledged "
                f"{getattr(reply, 'count', '?')} registers of a "
                f"{regs.COMMAND_COUNT}-register command"
            )
        return await self.read_state(address, unit_id)

    async def read_state(self, address: int, unit_id: str) -> UnitState:
        """Read the unit's identity, feedback, status and counters in one request."""
        _check_address(address, unit_id)
        reply = await self._request(
            address,
            unit_id,
            "read state",
            lambda: self._client.read_input_registers(
                regs.STATE_START, count=regs.STATE_COUNT, device_id=address
            ),
        )
        words = list(getattr(reply, "registers", []))
        try:
            state = regs.decode_state(words)
        except regs.RegisterMapError as err:
            raise FrameError(f"unit {unit_id} at address {address}: {err}") from None
        return _unit_state(unit_id, state, self._clock)

    async def configure(
        self,
        address: int,
        unit_id: str,
        *,
        safe_state: regs.SafeState,
        pulse_weight: int | None = None,
    ) -> None:
        """Write the unit's installer settings: watchdog safe state, pulse weight.

        `pulse_weight` is thousandths of the canonical unit per input pulse
        (1 for a 1000 imp/kWh meter or a 1 l/pulse water meter).
        """
        _check_address(address, unit_id)
        words = [int(safe_state)]
        if pulse_weight is not None:
            if not 1 <= pulse_weight <= 0xFFFF:
                raise ValueError(
                    f"unit {unit_id}: pulse_weight {pulse_weight} must be 1 to 65535"
                )
            words.append(pulse_weight)
        await self._request(
            address,
            unit_id,
            "write settings",
            lambda: self._client.write_registers(
                regs.HR_SAFE_STATE, words, device_id=address
            ),
        )

    async def _request(
        self,
        address: int,
        unit_id: str,
        what: str,
        send: Callable[[], Awaitable[ModbusPDU]],
    ) -> ModbusPDU:
        """Run one Modbus transaction alone on the line and map its failures."""
        bound = self.timeout_s * (self.retries + 1)
        async with self._lock:
            self._received = b""
            try:
                reply = await asyncio.wait_for(send(), timeout=bound + _GUARD_S)
            except (TimeoutError, ConnectionException) as err:
                self._note_silent(address, unit_id, what)
                raise LinkError(
                    f"unit {unit_id} at address {address} on {self.port} did not "
                    f"answer '{what}' within {bound:.2f} s "
                    f"({self.retries + 1} tries): check its wiring, power and "
                    "address"
                ) from err
            except ModbusException as err:
                # pymodbus 3.16 raises ModbusIOException when no valid frame
                # came back; bytes that failed the CRC are not a silent unit.
                garbage = self._received
                if garbage:
                    raise FrameError(
                        f"unit {unit_id} at address {address} on {self.port} "
                        f"answered '{what}' with {len(garbage)} bytes that are no "
                        f"valid Modbus RTU frame ({garbage[:32].hex(' ')}): check "
                        "baud rate, parity and termination of the line"
                    ) from err
                self._note_silent(address, unit_id, what)
                raise LinkError(
                    f"unit {unit_id} at address {address} on {self.port} did not "
                    f"answer '{what}' within {bound:.2f} s "
                    f"({self.retries + 1} tries): check its wiring, power and "
                    "address"
                ) from err

        self._note_answered(address, unit_id)
        if reply.isError():
            code = int(getattr(reply, "exception_code", 0))
            raise FrameError(
                f"unit {unit_id} at address {address} refused '{what}' with "
                f"Modbus exception {code} ({_exception_name(code)})"
            )
        return reply

    def _trace_packet(self, sending: bool, data: bytes) -> bytes:
        # pymodbus hands us its whole receive buffer each time bytes arrive.
        if not sending:
            self._received = data
        return data

    def _note_silent(self, address: int, unit_id: str, what: str) -> None:
        if address not in self._silent:
            self._silent.add(address)
            log.warning(
                "modbus_unit_silent",
                port=self.port,
                address=address,
                unit_id=unit_id,
                request=what,
                timeout_s=self.timeout_s,
                retries=self.retries,
            )

    def _note_answered(self, address: int, unit_id: str) -> None:
        if address in self._silent:
            self._silent.discard(address)
            log.info(
                "modbus_unit_answers_again",
                port=self.port,
                address=address,
                unit_id=unit_id,
            )


def _check_address(address: int, unit_id: str) -> None:
    if not 1 <= address <= 247:
        raise ValueError(f"unit {unit_id}: Modbus address {address} must be 1 to 247")


def _exception_name(code: int) -> str:
    try:
        return ExcCodes(code).name.lower().replace("_", " ")
    except ValueError:
        return "unknown exception code"


def _unit_state(unit_id: str, state: regs.StateBlock, clock: Clock) -> UnitState:
    """Turn a decoded state block into the gateway's UnitState."""
    try:
        kind = regs.OutputKind(state.output_kind).name.lower()
    except ValueError:
        kind = f"unknown ({state.output_kind})"
    consumption: Decimal = regs.raw_to_quantity(state.consumption_raw)
    return UnitState(
        unit_id=unit_id,
        supply_on=state.supply_feedback,
        stamp=clock.now(),
        tamper=regs.Status.TAMPER in state.status,
        manual_override=regs.Status.MANUAL_OVERRIDE in state.status,
        allowance=regs.raw_to_allowance(state.allowance_raw),
        extra={
            "consumption": consumption,
            "allowance_exhausted": regs.Status.ALLOWANCE_EXHAUSTED in state.status,
            "watchdog_expired": regs.Status.WATCHDOG_EXPIRED in state.status,
            "relay_fault": regs.Status.RELAY_FAULT in state.status,
            "watchdog_left_s": state.watchdog_left_s,
            "output_kind": kind,
            "firmware": state.firmware_text,
            # The read receipt: the last display message the resident
            # confirmed (0: none yet); gateway.messages stores it.
            "message_read": state.message_read,
        },
    )
