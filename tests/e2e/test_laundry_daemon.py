"""A laundry machine run by the daemon: disabled without a booking, enabled in
its slot, its cycle detected from the unit's own counter and billed once."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from gateway import laundry, ledger
from gateway.clock import SystemClock
from gateway.config import load_config
from gateway.daemon import Daemon
from gateway.ledger import EntryKind, NewEntry
from gateway.money import Money
from gateway.store import connect, transaction
from simulators.dispensing_unit import DispensingUnitSimulator
from tests.e2e.building import until

SITE = """
site: {{id: laundry-e2e, currency: EUR, timezone: Europe/Berlin}}
state_dir: {state}
buses:
  - {{id: rs485, kind: modbus, port: {port}, parity: N, timeout_s: 0.2,
      poll_interval_s: 0.2}}
  - {{id: mbus1, kind: mbus, port: /dev/null}}
meters:
  - {{id: m-wash, bus: mbus1, address: 1, medium: electricity, account: house}}
units:
  - {{id: washer1, bus: rs485, address: 21, kind: appliance, meters: [m-wash]}}
accounts:
  - {{id: house, name: Laundry room}}
  - {{id: flat1, name: Flat 1}}
tariffs:
  - id: standard
    prices:
      electricity: {{price: "0.3412", per: kWh}}
laundry:
  machines:
    - {{unit: washer1, appliance: washing_machine, billing: energy, price: "0.40",
       hold: "3.00", idle_end_s: 0.6}}
"""


async def test_machine_runs_only_in_its_slot_and_its_cycle_is_billed_once(
    tmp_path: Path,
) -> None:
    # The daemon's M-Bus job fails on /dev/null and is retried: the laundry
    # does not depend on it.
    with DispensingUnitSimulator([21]) as units:
        path = tmp_path / "site.yaml"
        path.write_text(SITE.format(state=tmp_path / "state", port=units.port))
        config = load_config(path)
        daemon = Daemon(config)
        stop = asyncio.Event()
        run = asyncio.create_task(daemon.run_until_stopped(stop))
        await until(lambda: bool(daemon.supervisor.health), 2)

        db = config.state_dir / "gateway.sqlite3"
        conn = connect(db)
        clock = SystemClock()
        with transaction(conn):
            ledger.post(
                conn,
                NewEntry(
                    "topup:admin:w1",
                    "flat1",
                    EntryKind.TOPUP,
                    Money(1000, "EUR"),
                    "cli",
                    clock.now(),
                ),
            )
        await asyncio.sleep(0.6)
        assert not units.relay_on(21)  # no booking: the machine cannot start
        assert units.consume(21, Decimal("0.1")) == 0

        now = datetime.now(UTC)
        with transaction(conn):
            laundry.book(
                conn,
                "b-1",
                "washer1",
                "flat1",
                now - timedelta(minutes=1),
                now + timedelta(hours=1),
                clock.now(),
                source="cli",
            )
        daemon.wake_actuators()
        await until(lambda: units.relay_on(21), 3)
        assert laundry.available(conn, "flat1") == Money(700, "EUR")  # 3.00 held

        # The machine draws 1.25 kWh, then stands still: one cycle.
        for _ in range(5):
            units.consume(21, Decimal("0.25"))
            await asyncio.sleep(0.1)
        await until(lambda: laundry.cycle_running(conn, "washer1"), 3)
        await until(lambda: not laundry.cycle_running(conn, "washer1"), 5)
        stop.set()
        await run

        rows = conn.execute(
            "SELECT amount_minor, quantity FROM ledger_entries "
            "WHERE id LIKE 'laundry:%'"
        ).fetchall()
        assert [(r["amount_minor"], Decimal(r["quantity"])) for r in rows] == [
            (-50, Decimal("1.25"))  # 1.25 kWh x 0.40 EUR
        ]
        assert ledger.balance(conn, "flat1") == Money(950, "EUR")
        assert laundry.available(conn, "flat1") == Money(950, "EUR")  # hold released
        conn.close()
