"""Modbus RTU over RS485 to prepaidgw's own dispensing units: the register map
(registers) and the asyncio bus client (unit_bus)."""

from drivers.modbus.unit_bus import ModbusUnitBus

__all__ = ["ModbusUnitBus"]
