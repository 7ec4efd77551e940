"""Pretend RS485 line of prepaidgw dispensing units: pymodbus's real serial
server behind a pseudo-terminal, running the register map of docs/modbus.md.

pymodbus opens serial ports by path, and so does the gateway, so the line is
two pseudo-terminals joined back to back (as socat would): the server opens
one, the gateway opens the other (`.port`). Both stay raw, without parity.

    python -m simulators.dispensing_unit --units 11,12,13
"""

# LIMITATION: a pseudo-terminal moves bytes at once, so the simulator never
# shows the 40 to 80 ms a transaction takes at 9600 baud, nor the silence of
# 3.5 characters between frames, nor parity. Timing has to be measured on a
# real RS485 line.

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import threading
import time
import tty
from collections.abc import Callable, Iterable
from decimal import Decimal
from types import TracebackType

from pymodbus.constants import ExcCodes
from pymodbus.server import ModbusSerialServer
from pymodbus.simulator import DataType, SimData, SimDevice

from drivers.modbus import registers as regs

FIRMWARE = 0x0100  # 1.0
# Read holding, read input, write one holding, write several holding.
_REGISTER_FUNCTIONS = (3, 4, 6, 16)


class UnitModel:
    """One unit's memory and behaviour, as its firmware would implement it."""

    def __init__(self, address: int, kind: regs.OutputKind, now: float) -> None:
        self.address = address
        self.kind = kind
        self.map_version = regs.REGISTER_MAP_VERSION
        # Factory defaults: off, nothing allowed, display blank, no watchdog.
        self.supply_command = False
        self.allowance_raw = 0
        self.display_balance_raw = regs.BALANCE_BLANK
        self.display_decimals = 2
        self.message_id = 0
        self.message_read = 0
        self.watchdog_s = 0
        self.safe_state = regs.SafeState.OFF
        self.pulse_weight = 1
        self.consumption_raw = 0
        self.last_write = now
        self.watchdog_expired = False
        # Physical inputs and faults the tests play with.
        self.tamper = False
        self.manual_override: bool | None = None
        self.relay_stuck: bool | None = None
        self.dead = False
        self.garbled = False
        self.exception_reply: int | None = None

    def _tick(self, now: float) -> None:
        """Expire the watchdog if the gateway has been silent too long."""
        if self.watchdog_s and now - self.last_write >= self.watchdog_s:
            self.watchdog_expired = True

    def intended(self, now: float) -> bool:
        """Return what the unit drives its relay to, from command and state."""
        self._tick(now)
        if self.manual_override is not None:
            return self.manual_override
        if self.watchdog_expired and self.safe_state == regs.SafeState.OFF:
            return False
        if self.watchdog_expired and self.safe_state == regs.SafeState.ON:
            return True
        return self.supply_command and self.allowance_raw != 0

    def feedback(self, now: float) -> bool:
        """Return what the relay's auxiliary contact reports."""
        intended = self.intended(now)
        return intended if self.relay_stuck is None else self.relay_stuck

    def status(self, now: float) -> regs.Status:
        """Return the status bits of input register 5."""
        status = regs.Status(0)
        if self.tamper:
            status |= regs.Status.TAMPER
        if self.manual_override is not None:
            status |= regs.Status.MANUAL_OVERRIDE
        if self.allowance_raw == 0:
            status |= regs.Status.ALLOWANCE_EXHAUSTED
        if self.watchdog_expired:
            status |= regs.Status.WATCHDOG_EXPIRED
        if self.feedback(now) != self.intended(now):
            status |= regs.Status.RELAY_FAULT
        return status

    def consume(self, raw: int, now: float) -> Decimal:
        """Count pulses worth `raw` thousandths; return what was dispensed."""
        if not self.feedback(now):
            return Decimal(0)
        if self.allowance_raw != regs.UNLIMITED:
            counted = min(raw, self.allowance_raw)
            self.allowance_raw -= counted
            # The unit opens the relay the moment the allowance reaches zero,
            # unless the local switch or the watchdog's safe state holds it.
            if not self.feedback(now):
                raw = counted
        self.consumption_raw = (self.consumption_raw + raw) & regs.U32_MAX
        return regs.raw_to_quantity(raw)

    def write(self, start: int, values: list[int], now: float) -> ExcCodes | None:
        """Apply a write of holding registers at once, or refuse it whole."""
        words = self.holding_words()
        words[start : start + len(values)] = values
        try:
            command = regs.decode_command(words[: regs.COMMAND_COUNT])
            safe_state = regs.SafeState(words[regs.HR_SAFE_STATE])
        except ValueError:
            return ExcCodes.ILLEGAL_VALUE
        if command.display_decimals > regs.MAX_DISPLAY_DECIMALS:
            return ExcCodes.ILLEGAL_VALUE
        if words[regs.HR_PULSE_WEIGHT] == 0:
            return ExcCodes.ILLEGAL_VALUE
        self.supply_command = command.supply_on
        self.allowance_raw = command.allowance_raw
        self.display_balance_raw = command.display_balance_raw
        self.display_decimals = command.display_decimals
        self.message_id = command.message_id
        self.watchdog_s = command.watchdog_s
        self.safe_state = safe_state
        self.pulse_weight = words[regs.HR_PULSE_WEIGHT]
        # Any accepted write is the gateway's sign of life.
        self.last_write = now
        self.watchdog_expired = False
        return None

    def holding_words(self) -> list[int]:
        """Return the holding registers as the unit stores them."""
        return [
            1 if self.supply_command else 0,
            *regs.u32_to_words(self.allowance_raw),
            *regs.i32_to_words(self.display_balance_raw),
            self.display_decimals,
            self.message_id,
            self.watchdog_s,
            int(self.safe_state),
            self.pulse_weight,
        ]

    def input_words(self, now: float) -> list[int]:
        """Return the input registers (the state block) as the unit reports them."""
        self._tick(now)
        left = 0
        if self.watchdog_s and not self.watchdog_expired:
            left = max(0, int(self.watchdog_s - (now - self.last_write)))
        return regs.encode_state(
            regs.StateBlock(
                device_type=regs.DEVICE_TYPE,
                output_kind=int(self.kind),
                firmware=FIRMWARE,
                map_version=self.map_version,
                supply_feedback=self.feedback(now),
                status=self.status(now),
                allowance_raw=self.allowance_raw,
                consumption_raw=self.consumption_raw,
                watchdog_left_s=left,
                message_read=self.message_read,
            )
        )


class DispensingUnitSimulator:
    """Serve dispensing units at the given addresses on a pseudo-terminal."""

    def __init__(
        self,
        addresses: Iterable[int],
        *,
        output_kind: regs.OutputKind = regs.OutputKind.CONTACTOR,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._lock = threading.Lock()
        self._monotonic = monotonic
        self._units: dict[int, UnitModel] = {}
        for address in addresses:
            if not 1 <= address <= 247:
                raise ValueError(f"unit address {address} must be 1 to 247")
            self._units[address] = UnitModel(address, output_kind, monotonic())
        if not self._units:
            raise ValueError("give at least one unit address")
        self._fds: list[int] = []
        self._server_path = ""
        self.port = ""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._stopped: asyncio.Event | None = None
        self._error: BaseException | None = None

    # Lifecycle.

    def start(self) -> DispensingUnitSimulator:
        """Open the pseudo-terminals and serve in a daemon thread; return self."""
        if self._thread is not None:
            raise RuntimeError("simulator already started")
        server_side = _raw_pty()
        gateway_side = _raw_pty()
        self._fds = [*server_side[:2], *gateway_side[:2]]
        self._server_path = server_side[2]
        self.port = gateway_side[2]
        self._thread = threading.Thread(
            target=self._run,
            args=(server_side[0], gateway_side[0]),
            name="dispensing-unit-simulator",
            daemon=True,
        )
        self._thread.start()
        if not self._ready.wait(timeout=10):
            raise RuntimeError("dispensing unit simulator did not start in 10 s")
        if self._error is not None:
            raise RuntimeError(f"dispensing unit simulator failed: {self._error}")
        return self

    def stop(self) -> None:
        """Stop serving and close the pseudo-terminals."""
        loop, stopped = self._loop, self._stopped
        if loop is not None and stopped is not None and loop.is_running():
            loop.call_soon_threadsafe(stopped.set)
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
        for fd in self._fds:
            with contextlib.suppress(OSError):
                os.close(fd)
        self._fds = []

    def __enter__(self) -> DispensingUnitSimulator:
        return self.start()

    def __exit__(
        self,
        _type: type[BaseException] | None,
        _value: BaseException | None,
        _tb: TracebackType | None,
    ) -> None:
        self.stop()

    # Test accessors. Quantities are in the meter's canonical unit.

    def relay_on(self, address: int) -> bool:
        """Return whether the unit's relay (or valve) is closed, i.e. supplying."""
        with self._lock:
            return self._unit(address).feedback(self._monotonic())

    def allowance(self, address: int) -> Decimal | None:
        """Return the unit's remaining allowance; None for unlimited."""
        with self._lock:
            return regs.raw_to_allowance(self._unit(address).allowance_raw)

    def display_balance(self, address: int) -> tuple[int | None, int]:
        """Return the displayed balance (minor units or None if blank) and decimals."""
        with self._lock:
            unit = self._unit(address)
            raw = unit.display_balance_raw
            shown = None if raw == regs.BALANCE_BLANK else raw
            return shown, unit.display_decimals

    def display_message(self, address: int) -> int:
        """Return the message id the display shows."""
        with self._lock:
            return self._unit(address).message_id

    def read_message(self, address: int) -> int:
        """Press the unit's confirm key: the shown message becomes its read receipt.

        Returns the id confirmed (0 when the display shows no message).
        """
        with self._lock:
            unit = self._unit(address)
            if unit.message_id:
                unit.message_read = unit.message_id
            return unit.message_read

    def consumption(self, address: int) -> Decimal:
        """Return the unit's own consumption counter."""
        with self._lock:
            return regs.raw_to_quantity(self._unit(address).consumption_raw)

    def set_consumption(self, address: int, value: Decimal) -> None:
        """Set the unit's consumption counter, as after a meter swap."""
        with self._lock:
            self._unit(address).consumption_raw = regs.quantity_to_raw(value)

    def consume(self, address: int, amount: Decimal) -> Decimal:
        """Feed pulses worth `amount`; return how much was dispensed.

        Nothing flows while the relay is open. A limited allowance is counted
        down and the relay opens by itself when it reaches zero.
        """
        with self._lock:
            return self._unit(address).consume(
                regs.quantity_to_raw(amount), self._monotonic()
            )

    def set_dead(self, address: int, dead: bool) -> None:
        """Make the unit stop (or resume) answering; a dead unit ignores writes."""
        with self._lock:
            self._unit(address).dead = dead

    def set_tamper(self, address: int, tamper: bool) -> None:
        """Set or clear the unit's tamper input (cover opened, magnet)."""
        with self._lock:
            self._unit(address).tamper = tamper

    def set_manual_override(self, address: int, on: bool | None) -> None:
        """Force the relay on or off by the local switch; None hands back control."""
        with self._lock:
            self._unit(address).manual_override = on

    def set_relay_stuck(self, address: int, closed: bool | None) -> None:
        """Weld (True) or jam open (False) the relay; None repairs it."""
        with self._lock:
            self._unit(address).relay_stuck = closed

    def set_exception_reply(self, address: int, code: int | None) -> None:
        """Answer every request with this Modbus exception code; None to stop."""
        with self._lock:
            self._unit(address).exception_reply = code

    def set_garbled(self, address: int, garbled: bool) -> None:
        """Corrupt the CRC of every reply, as a noisy line would."""
        with self._lock:
            self._unit(address).garbled = garbled

    def set_map_version(self, address: int, version: int) -> None:
        """Report another register-map version, as a newer firmware would."""
        with self._lock:
            self._unit(address).map_version = version

    def _unit(self, address: int) -> UnitModel:
        try:
            return self._units[address]
        except KeyError:
            raise KeyError(
                f"the simulator serves addresses {sorted(self._units)}, not {address}"
            ) from None

    # The thread that serves.

    def _run(self, server_master: int, gateway_master: int) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._serve(server_master, gateway_master))
        except BaseException as err:  # Reported to start(), never swallowed.
            self._error = err
            self._ready.set()
        finally:
            loop.close()

    async def _serve(self, server_master: int, gateway_master: int) -> None:
        loop = asyncio.get_running_loop()
        self._stopped = asyncio.Event()
        loop.add_reader(server_master, _copy, server_master, gateway_master)
        loop.add_reader(gateway_master, _copy, gateway_master, server_master)
        devices = [self._device(address) for address in self._units]
        server = ModbusSerialServer(
            devices,
            port=self._server_path,
            baudrate=9600,
            parity="N",
            trace_packet=self._trace_packet,
        )
        await server.serve_forever(background=True)
        self._ready.set()
        try:
            await self._stopped.wait()
        finally:
            # pymodbus 3.16 leaves shutdown() without type hints.
            await server.shutdown()  # type: ignore[no-untyped-call]
            loop.remove_reader(server_master)
            loop.remove_reader(gateway_master)

    def _device(self, address: int) -> SimDevice:
        async def action(
            function_code: int,
            start_address: int,
            address_: int,
            count: int,
            registers: list[int],
            values: list[int] | list[bool] | None,
        ) -> ExcCodes | None:
            return self._on_access(address, function_code, registers, address_, values)

        no_bits = [SimData(0, count=1, values=False, datatype=DataType.BITS)]
        holding = [
            SimData(0, count=regs.HOLDING_COUNT, values=0, datatype=DataType.REGISTERS)
        ]
        inputs = [
            SimData(0, count=regs.STATE_COUNT, values=0, datatype=DataType.REGISTERS)
        ]
        return SimDevice(
            id=address, simdata=(no_bits, no_bits, holding, inputs), action=action
        )

    def _on_access(
        self,
        address: int,
        function_code: int,
        registers: list[int],
        start: int,
        values: list[int] | list[bool] | None,
    ) -> ExcCodes | None:
        """Keep pymodbus's register block in step with the unit model."""
        with self._lock:
            unit = self._units[address]
            now = self._monotonic()
            if unit.dead:
                return None
            if unit.exception_reply is not None:
                return ExcCodes(unit.exception_reply)
            if function_code not in _REGISTER_FUNCTIONS:
                # The map has no coils or discrete inputs (docs/modbus.md).
                return ExcCodes.ILLEGAL_FUNCTION
            if values is not None:
                return unit.write(start, [int(v) for v in values], now)
            words = (
                unit.input_words(now) if function_code == 4 else unit.holding_words()
            )
            registers[: len(words)] = words
            return None

    def _trace_packet(self, sending: bool, packet: bytes) -> bytes:
        """Silence dead units and corrupt the replies of garbled ones."""
        if not sending or not packet:
            return packet
        unit = self._units.get(packet[0])
        if unit is None:
            # No unit has this address: on a real line nobody would answer.
            return b""
        with self._lock:
            if unit.dead:
                return b""
            if unit.garbled:
                return packet[:-1] + bytes([packet[-1] ^ 0xFF])
        return packet


def _raw_pty() -> tuple[int, int, str]:
    """Open a pseudo-terminal in raw mode; return master, slave and slave path."""
    master, slave = os.openpty()
    tty.setraw(slave)
    os.set_blocking(master, False)
    # Keeping the slave open here means the master never reads EIO while
    # no program has the port open, so the bridge does not spin.
    return master, slave, os.ttyname(slave)


def _copy(source: int, target: int) -> None:
    """Move whatever arrived on one master to the other, like a cable."""
    try:
        data = os.read(source, 4096)
    except (BlockingIOError, OSError):
        return
    with contextlib.suppress(OSError):
        os.write(target, data)


def main(argv: list[str] | None = None) -> None:
    """Serve units from the command line until Ctrl-C."""
    parser = argparse.ArgumentParser(
        prog="python -m simulators.dispensing_unit",
        description="Serve simulated prepaidgw dispensing units on a pty.",
    )
    parser.add_argument(
        "--units",
        default="11",
        help="comma-separated Modbus addresses, e.g. 11,12,13",
    )
    args = parser.parse_args(argv)
    try:
        addresses = [int(part) for part in args.units.split(",") if part.strip()]
    except ValueError:
        parser.error(f"--units {args.units!r}: give addresses like 11,12,13")
    with DispensingUnitSimulator(addresses) as sim:
        print(sim.port, flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            while True:
                time.sleep(3600)


if __name__ == "__main__":
    main()
