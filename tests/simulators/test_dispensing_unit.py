"""The dispensing-unit simulator, seen through a plain pymodbus client, and run
as its own process the way a gateway under test would meet it."""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import AsyncIterator, Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from pymodbus.client import AsyncModbusSerialClient

from drivers.modbus import registers as regs
from drivers.modbus.unit_bus import ModbusUnitBus
from gateway.model import UnitCommand
from simulators.dispensing_unit import DispensingUnitSimulator

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def sim() -> Iterator[DispensingUnitSimulator]:
    with DispensingUnitSimulator([11, 12]) as simulator:
        yield simulator


@pytest.fixture
async def client(
    sim: DispensingUnitSimulator,
) -> AsyncIterator[AsyncModbusSerialClient]:
    modbus = AsyncModbusSerialClient(sim.port, parity="N", timeout=0.2, retries=0)
    assert await modbus.connect()
    yield modbus
    modbus.close()


async def test_identity_and_factory_state(
    client: AsyncModbusSerialClient, sim: DispensingUnitSimulator
) -> None:
    reply = await client.read_input_registers(0, count=regs.STATE_COUNT, device_id=12)
    state = regs.decode_state(reply.registers)
    assert state.device_type == regs.DEVICE_TYPE
    assert state.output_kind == regs.OutputKind.CONTACTOR
    assert state.supply_feedback is False
    assert state.status == regs.Status.ALLOWANCE_EXHAUSTED
    assert sim.display_balance(12) == (None, 2)


async def test_single_register_write_and_holding_read_back(
    client: AsyncModbusSerialClient, sim: DispensingUnitSimulator
) -> None:
    words = regs.u32_to_words(750)
    assert not (await client.write_registers(1, words, device_id=11)).isError()
    assert not (await client.write_register(0, 1, device_id=11)).isError()
    assert sim.relay_on(11)

    sim.consume(11, Decimal("0.25"))
    reply = await client.read_holding_registers(
        0, count=regs.HOLDING_COUNT, device_id=11
    )
    assert reply.registers[0] == 1
    assert regs.words_to_u32(*reply.registers[1:3]) == 500
    assert reply.registers[regs.HR_PULSE_WEIGHT] == 1


async def test_refused_writes_change_nothing(
    client: AsyncModbusSerialClient, sim: DispensingUnitSimulator
) -> None:
    reply = await client.write_register(regs.HR_SUPPLY_COMMAND, 2, device_id=11)
    assert reply.isError() and reply.exception_code == 3
    reply = await client.write_register(regs.HR_SAFE_STATE, 9, device_id=11)
    assert reply.isError() and reply.exception_code == 3
    reply = await client.write_register(regs.HOLDING_COUNT, 1, device_id=11)
    assert reply.isError() and reply.exception_code == 2
    assert not sim.relay_on(11)


async def test_coils_are_not_part_of_the_map(client: AsyncModbusSerialClient) -> None:
    reply = await client.read_coils(0, count=1, device_id=11)
    assert reply.isError() and reply.exception_code == 1


async def test_unknown_address_stays_silent(client: AsyncModbusSerialClient) -> None:
    from pymodbus.exceptions import ModbusIOException

    with pytest.raises(ModbusIOException):
        await client.read_input_registers(0, count=1, device_id=99)
    reply = await client.read_input_registers(0, count=1, device_id=11)
    assert reply.registers == [regs.DEVICE_TYPE]


def test_consumption_counts_only_while_supplying_and_wraps(
    sim: DispensingUnitSimulator,
) -> None:
    assert sim.consume(11, Decimal(1)) == 0
    assert sim.consumption(11) == 0

    sim.set_manual_override(11, True)
    sim.set_consumption(11, Decimal("4294967.290"))
    # The local switch holds supply on past a zero allowance; all of it counts.
    assert sim.consume(11, Decimal("0.010")) == Decimal("0.010")
    assert sim.consumption(11) == Decimal("0.004")
    assert sim.allowance(11) == 0


def test_unknown_address_in_accessor_says_which_exist(
    sim: DispensingUnitSimulator,
) -> None:
    with pytest.raises(KeyError, match=r"\[11, 12\]"):
        sim.relay_on(40)


def test_stop_ends_the_thread() -> None:
    simulator = DispensingUnitSimulator([5]).start()
    thread = simulator._thread
    assert thread is not None and thread.is_alive()
    simulator.stop()
    assert not thread.is_alive()


async def test_command_line_serves_another_process() -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "simulators.dispensing_unit",
        "--units",
        "21,22",
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        assert process.stdout is not None
        line = await asyncio.wait_for(process.stdout.readline(), timeout=10)
        port = line.decode().strip()
        assert port.startswith("/dev/")
        bus = ModbusUnitBus(port, parity="N", timeout_s=0.3)
        await bus.open()
        try:
            state = await bus.apply(
                22, "u22", UnitCommand("u22", True, allowance=Decimal("3"))
            )
            assert state.supply_on is True and state.allowance == Decimal(3)
            assert (await bus.read_state(21, "u21")).supply_on is False
        finally:
            await bus.close()
    finally:
        process.send_signal(signal.SIGINT)
        assert await asyncio.wait_for(process.wait(), timeout=10) == 0
