"""The demo building's radio side: wireless warm-water meters heard through
a simulated iM871A stick, and LoRa valves that reach the daemon's simulated
radio through a named in-process ether."""

from __future__ import annotations

import asyncio
import sqlite3
from decimal import Decimal
from typing import TYPE_CHECKING

import typer

from drivers.lora.simulated import named_ether
from simulators.lora_unit import LoraDispensingUnit
from simulators.wmbus_meter import (
    MODE5_TEMPLATE,
    MODE5_TEMPLATE_KEY,
    PLAIN_TEMPLATE,
    Im871aStick,
    SimulatedMeter,
)

if TYPE_CHECKING:
    from simulators.demo import Flat

RADIO_FLATS = (1, 6)  # flats with a wireless meter and a LoRa valve
ETHER = "demo"
# Demo keys only: a real site writes each device's own key into its config.
WMBUS_KEY = "4E6F7420612072656164206B65792121"
LORA_KEY = "44656D6F204C6F5261206B6579212121"
WARM_LITRES_PER_S = Decimal("2")  # while a LoRa valve is open; demo time is fast


class RadioSide:
    """The building's radio side: wireless meters behind a simulated iM871A
    stick, and LoRa valves that the daemon reaches through the named ether."""

    def __init__(self, flats: list[Flat]) -> None:
        self.flats = [f for f in flats if f.number in RADIO_FLATS]
        key = bytes.fromhex(WMBUS_KEY)
        # Flat 1's meter sends in clear, flat 6's in AES mode 5.
        self.meters = {
            self.flats[0].number: SimulatedMeter(PLAIN_TEMPLATE, step=Decimal(0)),
            self.flats[1].number: SimulatedMeter(
                MODE5_TEMPLATE, MODE5_TEMPLATE_KEY, key, Decimal(0)
            ),
        }
        self.stick = Im871aStick(list(self.meters.values()), interval_s=1.0, seed=4)
        self.valves: dict[int, LoraDispensingUnit] = {}

    def start_valves(self) -> list[asyncio.Task[None]]:
        """Start the LoRa valves on the running loop, where the daemon's radio is."""
        air = named_ether(ETHER)
        flow = WARM_LITRES_PER_S * 3600 / 1000
        for f in self.flats:
            self.valves[f.number] = LoraDispensingUnit(
                air.radio(f"valve-{f.number}"),
                f.lora_valve,
                bytes.fromhex(LORA_KEY),
                flow_per_hour=flow,
                status_interval_s=15.0,
                tick_s=0.5,
            )
        return [asyncio.create_task(v.run()) for v in self.valves.values()]

    def follow_valves(self) -> None:
        """Let warm water run through each wireless meter while its valve is open."""
        for number, meter in self.meters.items():
            valve = self.valves.get(number)
            running = valve is not None and valve.supply_on
            meter.step = WARM_LITRES_PER_S / 1000 if running else Decimal(0)


def radio_yaml(radio: RadioSide) -> tuple[list[str], list[str], list[str]]:
    """Return the radio side's bus, meter and unit lines for the site YAML."""
    buses = [
        f"  - {{id: air, kind: wmbus, receiver: im871a, port: {radio.stick.port},"
        " mode: T1, receiver_timeout_s: 30, meter_interval_s: 1}",
        f"  - {{id: lora, kind: lora, radio: simulated, ether: {ETHER},"
        " spreading_factor: 7, poll_interval_s: 2, display_refresh_s: 60}",
    ]
    meters = []
    for f, meter in zip(radio.flats, radio.meters.values(), strict=True):
        key = f", key: '{WMBUS_KEY}'" if meter.mode == 5 else ""
        meters.append(
            f"  - {{id: {f.account}-warm-water, bus: air, secondary_id:"
            f" '{meter.meter_id}', medium: warm_water, account: {f.account},"
            f" max_rate_per_hour: 100{key}}}"
        )
    units = [
        f"  - {{id: {f.account}-lora-valve, bus: lora, address: {f.lora_valve},"
        f" kind: valve, meters: [{f.account}-warm-water], key: '{LORA_KEY}'}}"
        for f in radio.flats
    ]
    return buses, meters, units


def radio_summary(conn: object, radio: RadioSide, elapsed: float) -> None:
    assert isinstance(conn, sqlite3.Connection)
    parts = []
    for f in radio.flats:
        valve = radio.valves[f.number]
        row = conn.execute(
            "SELECT count(*), max(value) FROM readings WHERE meter_id = ?",
            (f"{f.account}-warm-water",),
        ).fetchone()
        allowance = "-" if valve.allowance is None else f"{valve.allowance} m3"
        parts.append(
            f"{f.account} wM-Bus {row[0]} readings {row[1] or '-'} m3, LoRa valve "
            f"{'on' if valve.supply_on else 'off'} allowance {allowance} "
            f"display {valve.display()}"
        )
    # The duty cycle binds each transmitter: show the gateway's own airtime.
    sent = named_ether(ETHER).sent
    air = sum(t for _, name, _, t in sent if name.startswith("gateway:"))
    typer.echo(
        f"[demo] t={elapsed:.0f}s  radio: "
        + " | ".join(parts)
        + f" | gateway LoRa airtime {air:.2f} s of 36 s an hour"
    )
