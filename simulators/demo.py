"""`prepaidgw demo`: a simulated building of six flats, run by the real daemon.

Meters and dispensing units are simulators on pseudo-terminals; consumption
stops when a flat's contactor opens, exactly as a real supply would. Time runs
fast: flats use electricity at many kilowatts, so that a minute shows
readings, debits, a low-balance warning, a cut-off, a top-up and a reconnect.

Flats 1 and 6 also have a wireless warm-water meter (one in clear, one in
AES mode 5) heard through a simulated iM871A stick, and a LoRa valve on a
simulated radio that shares its in-process ether with the daemon's radio.
"""

from __future__ import annotations

import asyncio
import shutil
import threading
import time
from contextlib import ExitStack
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Annotated

import typer

from simulators.demo_radio import (
    RADIO_FLATS,
    RadioSide,
    radio_summary,
    radio_yaml,
)
from simulators.dispensing_unit import DispensingUnitSimulator
from simulators.mbus_meter import MbusMeterSimulator, SimMeter, corpus_frame

FLATS = 6
LOW_FLAT = 6  # the flat that runs out during the demo
TOPUP_AT_S = 35.0


@dataclass(frozen=True)
class Flat:
    """One simulated flat: its meters' and units' addresses, and how fast it uses."""

    number: int
    opening_credit: str
    watts: int  # electricity draw while the contactor is closed
    litres_per_s: Decimal

    @property
    def account(self) -> str:
        return f"flat{self.number}"

    @property
    def elec_meter(self) -> int:
        return self.number

    @property
    def water_meter(self) -> int:
        return 10 + self.number

    @property
    def contactor(self) -> int:
        return 20 + self.number

    @property
    def valve(self) -> int:
        return 30 + self.number

    @property
    def lora_valve(self) -> int:
        return 100 + self.number


def _flats() -> list[Flat]:
    flats = [Flat(n, "60.00", 6_000 + 500 * n, Decimal("0.5")) for n in range(1, FLATS)]
    # Close to running out: 4.00 EUR at about 0.17 EUR a second.
    flats.append(Flat(LOW_FLAT, "4.00", 1_800_000, Decimal("0.2")))
    return flats


def register(app: typer.Typer) -> None:
    """Add the demo command to the prepaidgw app."""
    app.command("demo")(demo)


def demo(
    duration: Annotated[
        float, typer.Option(help="Seconds to run; 0 runs until Ctrl-C.")
    ] = 60.0,
    state_dir: Annotated[
        Path, typer.Option(help="Where the demo keeps its database and config.")
    ] = Path("demo-state"),
    broker: Annotated[
        str | None,
        typer.Option(
            help="HOST:PORT of an MQTT broker (plain TCP, a development site: "
            "unsigned commands accepted). Without it the outbox just fills."
        ),
    ] = None,
) -> None:
    """Run a simulated building (no hardware, no broker) with the real daemon."""
    from gateway import log

    log.configure(json=False, level="INFO")
    # Every run starts afresh: the simulated meters and radios start from
    # their first values and counters, which an old database would take for
    # a swapped meter and replayed telegrams.
    if state_dir.exists():
        shutil.rmtree(state_dir)
    state_dir.mkdir(parents=True, exist_ok=True)
    flats = _flats()

    with ExitStack() as stack:
        meters = stack.enter_context(MbusMeterSimulator(_sim_meters(flats)))
        units = stack.enter_context(
            DispensingUnitSimulator(
                [f.contactor for f in flats] + [f.valve for f in flats]
            )
        )
        radio = RadioSide(flats)
        radio.stick.start()
        stack.callback(radio.stick.stop)
        config_path = state_dir / "site.yaml"
        config_text = _config_yaml(flats, meters.port, units.port, radio)
        config_path.write_text(config_text + _cloud_yaml(broker))
        _intro(config_path, meters.port, units.port, duration)
        building = _Building(flats, meters, units, radio)
        building.start()
        stack.callback(building.stop)
        asyncio.run(_run(config_path, flats, duration, radio))


def _sim_meters(flats: list[Flat]) -> list[SimMeter]:
    sims = []
    for f in flats:
        sims.append(
            SimMeter(
                f.elec_meter, corpus_frame("electricity"), Decimal(1_000_000 * f.number)
            )
        )
        behaviour = {3: "garbage_sometimes", 5: "dead"}.get(f.number, "ok")
        sims.append(
            SimMeter(
                f.water_meter,
                corpus_frame("water"),
                Decimal(40 + f.number),
                behaviour=behaviour,  # type: ignore[arg-type]
                garbage_probability=0.25,
            )
        )
    return sims


class _Building:
    """Advances each meter while its flat's supply is on, like residents would."""

    def __init__(
        self,
        flats: list[Flat],
        meters: MbusMeterSimulator,
        units: DispensingUnitSimulator,
        radio: RadioSide,
    ) -> None:
        self._flats = flats
        self._meters = meters
        self._units = units
        self._radio = radio
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="building", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        tick = 0.25
        last = time.monotonic()
        # Exact use so far, in Wh and m3; the registers show it cut to their step.
        used = {f.number: [Decimal(0), Decimal(0)] for f in self._flats}
        start = {
            f.number: (
                self._meters.value(f.elec_meter),
                self._meters.value(f.water_meter),
            )
            for f in self._flats
        }
        while not self._stop.wait(tick):
            now = time.monotonic()
            dt = Decimal(str(round(now - last, 3)))
            last = now
            for f in self._flats:
                elec, water = used[f.number]
                if self._units.relay_on(f.contactor):
                    used[f.number][0] = elec + f.watts * dt / 3600
                    self._meters.set_value(
                        f.elec_meter,
                        start[f.number][0]
                        + used[f.number][0].quantize(Decimal(1), "ROUND_FLOOR"),
                    )
                if self._units.relay_on(f.valve):
                    used[f.number][1] = water + f.litres_per_s * dt / 1000
                    self._meters.set_value(
                        f.water_meter,
                        start[f.number][1]
                        + used[f.number][1].quantize(Decimal("0.001"), "ROUND_FLOOR"),
                    )
            self._radio.follow_valves()


def _cloud_yaml(broker: str | None) -> str:
    """Return the config's cloud section for --broker HOST:PORT, or nothing."""
    if broker is None:
        return ""
    host, _, port = broker.rpartition(":")
    if not host or not port.isdigit():
        raise typer.BadParameter(
            f"expected HOST:PORT, got {broker!r}", param_hint="--broker"
        )
    return (
        f"cloud: {{host: {host}, port: {port}, tls: false, development_site: true}}\n"
    )


def _config_yaml(
    flats: list[Flat], mbus_port: str, rs485_port: str, radio: RadioSide
) -> str:
    radio_buses, radio_meters, radio_units = radio_yaml(radio)
    lines = [
        "# Written by `prepaidgw demo`: a simulated building on pseudo-terminals.",
        "site: {id: demo-house, name: Demo House, timezone: Europe/Berlin, "
        "currency: EUR}",
        "state_dir: .",
        "buses:",
        # Pseudo-terminals refuse parity, so the demo runs without it.
        f"  - {{id: mbus1, kind: mbus, port: {mbus_port}, parity: N, "
        "timeout_s: 0.3, poll_interval_s: 2}",
        f"  - {{id: rs485, kind: modbus, port: {rs485_port}, parity: N, "
        "timeout_s: 0.3, poll_interval_s: 1}",
        *radio_buses,
        "meters:",
    ]
    for f in flats:
        # Demo time runs fast: allow draws no real flat has.
        lines.append(
            f"  - {{id: {f.account}-electricity, bus: mbus1, address: "
            f"{f.elec_meter}, medium: electricity, account: {f.account}, "
            "max_rate_per_hour: 10000}"
        )
        lines.append(
            f"  - {{id: {f.account}-water, bus: mbus1, address: "
            f"{f.water_meter}, medium: water, account: {f.account}, "
            "max_rate_per_hour: 100}"
        )
    lines += radio_meters
    lines.append("units:")
    for f in flats:
        lines.append(
            f"  - {{id: {f.account}-contactor, bus: rs485, address: "
            f"{f.contactor}, kind: contactor, meters: [{f.account}-electricity]}}"
        )
        lines.append(
            f"  - {{id: {f.account}-valve, bus: rs485, address: "
            f"{f.valve}, kind: valve, meters: [{f.account}-water]}}"
        )
    lines += radio_units
    lines.append("accounts:")
    for f in flats:
        low = (
            '{credit_line: "1.00", low_balance: "2.50"}'
            if f.number == LOW_FLAT
            else '{credit_line: "5.00", low_balance: "10.00"}'
        )
        lines.append(f"  - {{id: {f.account}, name: Flat {f.number}, {low[1:-1]}}}")
    lines += [
        "tariffs:",
        "  - id: standard",
        "    prices:",
        '      electricity: {price: "0.3412", per: kWh,',
        '                    standing_charge_per_day: "0.25"}',
        '      water: {price: "4.85", per: m3}',
        '      warm_water: {price: "9.20", per: m3}',
    ]
    return "\n".join(lines) + "\n"


def _intro(config_path: Path, mbus_port: str, rs485_port: str, duration: float) -> None:
    typer.secho("prepaidgw demo: six flats, electricity and water", bold=True)
    typer.echo(
        f"  M-Bus meters on {mbus_port} (flat 5's water meter is dead, "
        "flat 3's answers garbage now and then)"
    )
    typer.echo(f"  RS485 dispensing units on {rs485_port}")
    typer.echo(
        f"  flats {RADIO_FLATS[0]} and {RADIO_FLATS[1]}: wireless warm-water meters"
        " (clear and AES mode 5) via a simulated iM871A, LoRa valves on a"
        " simulated radio"
    )
    typer.echo(
        f"  flat {LOW_FLAT} starts with 4.00 EUR and runs out; an administrator "
        f"tops it up after {TOPUP_AT_S:.0f} s"
    )
    typer.echo("  from another terminal, try:")
    typer.echo(f"    .venv/bin/prepaidgw status --config {config_path}")
    typer.echo(
        f"    .venv/bin/prepaidgw topup flat{LOW_FLAT} 10.00 --ref my-receipt-1 "
        f"--config {config_path}"
    )
    typer.echo("  " + (f"runs for {duration:.0f} s" if duration else "Ctrl-C stops"))
    typer.echo("")


async def _run(
    config_path: Path, flats: list[Flat], duration: float, radio: RadioSide
) -> None:
    from gateway import ledger
    from gateway.clock import SystemClock
    from gateway.config import load_config
    from gateway.daemon import Daemon
    from gateway.ledger import EntryKind, NewEntry
    from gateway.money import Money
    from gateway.store import transaction

    config = load_config(config_path)
    clock = SystemClock()
    daemon = Daemon(config, clock)
    from gateway import accounts
    from gateway.site import SitePlan

    with transaction(daemon.conn):
        accounts.sync_from_config(daemon.conn, SitePlan(config), clock.now())
        for f in flats:
            ledger.post(
                daemon.conn,
                NewEntry(
                    id=f"topup:demo:opening-{f.account}",
                    account_id=f.account,
                    kind=EntryKind.TOPUP,
                    amount=Money.parse(f.opening_credit, "EUR"),
                    source="demo",
                    booked=clock.now(),
                    ref="opening credit",
                ),
            )

    stop = asyncio.Event()

    async def script() -> None:
        began = time.monotonic()
        topped = False
        while duration == 0 or time.monotonic() - began < duration:
            await asyncio.sleep(1)
            elapsed = time.monotonic() - began
            if not topped and elapsed >= TOPUP_AT_S:
                topped = True
                typer.secho(
                    f"[demo] t={elapsed:.0f}s administrator tops up flat"
                    f"{LOW_FLAT} with 20.00 EUR",
                    fg=typer.colors.CYAN,
                )
                with transaction(daemon.conn):
                    ledger.post(
                        daemon.conn,
                        NewEntry(
                            id="topup:admin:demo-receipt-1",
                            account_id=f"flat{LOW_FLAT}",
                            kind=EntryKind.TOPUP,
                            amount=Money.parse("20.00", "EUR"),
                            source="cli",
                            booked=clock.now(),
                            ref="demo-receipt-1",
                        ),
                    )
            if int(elapsed) % 10 == 0:
                _summary(daemon.conn, flats, elapsed)
                radio_summary(daemon.conn, radio, elapsed)
        stop.set()

    valves = radio.start_valves()
    runner = asyncio.create_task(script())
    try:
        await daemon.run_until_stopped(stop)
    finally:
        runner.cancel()
        for valve in valves:
            valve.cancel()
        await asyncio.gather(*valves, return_exceptions=True)
    typer.secho(
        "demo finished; the database is in "
        f"{config.state_dir} (.venv/bin/prepaidgw status --config {config_path})",
        bold=True,
    )


def _summary(conn: object, flats: list[Flat], elapsed: float) -> None:
    import sqlite3

    assert isinstance(conn, sqlite3.Connection)
    from gateway import accounts, ledger

    parts = []
    for f in flats:
        state = accounts.state_of(conn, f.account).value
        colour = {"cut_off": typer.colors.RED, "low": typer.colors.YELLOW}.get(
            state, typer.colors.GREEN
        )
        parts.append(
            typer.style(
                f"{f.account} {ledger.balance(conn, f.account)} {state}", fg=colour
            )
        )
    typer.echo(f"[demo] t={elapsed:.0f}s  " + " | ".join(parts))
