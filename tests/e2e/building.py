"""A small simulated building for end-to-end tests: real simulators on
pseudo-terminals and a site configuration pointing at them."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

from gateway import ledger
from gateway.clock import SystemClock
from gateway.ledger import EntryKind, NewEntry
from gateway.money import Money
from gateway.store import connect, transaction
from simulators.dispensing_unit import DispensingUnitSimulator
from simulators.mbus_meter import MbusMeterSimulator, SimMeter, corpus_frame

ELEC_PRICE = Decimal("0.3412")


@dataclass
class Building:
    meters: MbusMeterSimulator
    units: DispensingUnitSimulator
    config_path: Path


def site_yaml(
    state_dir: Path,
    mbus_port: str,
    rs485_port: str,
    *,
    poll_s: float = 0.3,
    unit_poll_s: float = 0.3,
    extra_meters: str = "",
) -> str:
    return f"""
site: {{id: e2e-house, currency: EUR, timezone: Europe/Berlin}}
state_dir: {state_dir}
buses:
  - {{id: mbus1, kind: mbus, port: {mbus_port}, parity: N, timeout_s: 0.2,
      poll_interval_s: {poll_s}}}
  - {{id: rs485, kind: modbus, port: {rs485_port}, parity: N, timeout_s: 0.2,
      poll_interval_s: {unit_poll_s}}}
meters:
  - {{id: flat1-elec, bus: mbus1, address: 1, medium: electricity, account: flat1,
      max_rate_per_hour: 100000000}}
  - {{id: flat2-elec, bus: mbus1, address: 2, medium: electricity, account: flat2,
      max_rate_per_hour: 100000000}}
{extra_meters}
units:
  - {{id: flat1-contactor, bus: rs485, address: 11, kind: contactor,
      meters: [flat1-elec]}}
  - {{id: flat2-contactor, bus: rs485, address: 12, kind: contactor,
      meters: [flat2-elec]}}
accounts:
  - {{id: flat1, name: Flat 1, credit_line: "1.00", low_balance: "2.00"}}
  - {{id: flat2, name: Flat 2, credit_line: "1.00", low_balance: "2.00"}}
tariffs:
  - id: standard
    prices:
      electricity: {{price: "{ELEC_PRICE}", per: kWh}}
"""


@contextmanager
def building(
    tmp_path: Path,
    extra: list[SimMeter] | None = None,
    extra_yaml: str = "",
    **kw: float,
) -> Iterator[Building]:
    """Start meters at M-Bus addresses 1 and 2 and units at 11 and 12."""
    sims = [
        SimMeter(1, corpus_frame("electricity"), Decimal(1_000_000)),
        SimMeter(2, corpus_frame("electricity"), Decimal(2_000_000)),
        *(extra or []),
    ]
    with ExitStack() as stack:
        meters = stack.enter_context(MbusMeterSimulator(sims))
        units = stack.enter_context(DispensingUnitSimulator([11, 12]))
        path = tmp_path / "site.yaml"
        path.write_text(
            site_yaml(
                tmp_path / "state",
                meters.port,
                units.port,
                extra_meters=extra_yaml,
                **kw,
            )
        )
        yield Building(meters, units, path)


async def until(check: Callable[[], bool], within: float, step: float = 0.02) -> float:
    """Wait until check() is true; return how long it took."""
    began = time.monotonic()
    while not check():
        if time.monotonic() - began > within:
            raise AssertionError(f"not true within {within} s")
        await asyncio.sleep(step)
    return time.monotonic() - began


def topup(db: Path, account: str, amount: str, ref: str) -> None:
    """Book a top-up the way the CLI does: another connection, another writer."""
    conn = connect(db)
    with transaction(conn):
        ledger.post(
            conn,
            NewEntry(
                f"topup:admin:{ref}",
                account,
                EntryKind.TOPUP,
                Money.parse(amount, "EUR"),
                "cli",
                SystemClock().now(),
                ref=ref,
            ),
        )
    conn.close()
