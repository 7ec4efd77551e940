"""The daemon end to end, over pseudo-terminals with the real simulators:
cut-off and reconnect, a failing meter among good ones, a dead meter's cost."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from decimal import Decimal
from pathlib import Path

from gateway import ledger
from gateway.config import load_config
from gateway.daemon import Daemon
from gateway.money import Money
from gateway.store import connect
from simulators.mbus_meter import SimMeter, corpus_frame
from tests.e2e.building import building, topup, until


async def test_cut_off_opens_the_relay_within_a_poll_and_topup_closes_it(
    tmp_path: Path,
) -> None:
    with building(tmp_path, unit_poll_s=0.5) as b:
        config = load_config(b.config_path)
        db = config.state_dir / "gateway.sqlite3"
        daemon = Daemon(config)
        stop = asyncio.Event()
        run = asyncio.create_task(daemon.run_until_stopped(stop))
        await until(lambda: bool(daemon.supervisor.health), 2)  # accounts exist
        topup(db, "flat1", "3.00", "opening-1")
        topup(db, "flat2", "50.00", "opening-2")
        await until(lambda: b.units.relay_on(11) and b.units.relay_on(12), 5)

        # 12 kWh at 0.3412 = 4.09 EUR: below -1.00 from 3.00.
        b.meters.set_value(1, Decimal(1_012_000))
        reader = sqlite3.connect(db)
        await until(
            lambda: (
                reader.execute(
                    "SELECT state FROM balances WHERE account_id = 'flat1'"
                ).fetchone()[0]
                == "cut_off"
            ),
            5,
        )
        took = await until(lambda: not b.units.relay_on(11), 2)
        assert took <= 0.5 + 0.6  # one unit poll cycle, plus a slow bus round trip
        assert b.units.relay_on(12)  # the neighbour keeps supply

        topup(db, "flat1", "20.00", "receipt-7")
        took = await until(lambda: b.units.relay_on(11), 3)
        assert took <= 0.5 + 0.5 + 0.6  # ledger watch + one unit poll cycle
        stop.set()
        await run
        reader.close()

        conn = connect(db)
        assert ledger.balance(conn, "flat1") == Money(300 + 2000 - 409, "EUR")
        states = [
            r["state"]
            for r in conn.execute(
                "SELECT state FROM decisions WHERE account_id = 'flat1' ORDER BY id"
            )
        ]
        assert states[-2:] == ["cut_off", "ok"]
        conn.close()


async def test_garbage_meter_is_marked_failed_and_the_others_keep_being_read(
    tmp_path: Path,
) -> None:
    noisy = SimMeter(
        3,
        corpus_frame("electricity"),
        Decimal(5_000),
        behaviour="garbage_sometimes",
        garbage_probability=1.0,
    )
    extra = (
        "  - {id: flat2-extra, bus: mbus1, address: 3, medium: electricity,"
        " account: flat2}"
    )
    with building(tmp_path, extra=[noisy], extra_yaml=extra) as b:
        config = load_config(b.config_path)
        daemon = Daemon(config)
        stop = asyncio.Event()
        run = asyncio.create_task(daemon.run_until_stopped(stop))
        db = config.state_dir / "gateway.sqlite3"
        reader = sqlite3.connect(db)
        reader.row_factory = sqlite3.Row

        def count(meter: str) -> int:
            return int(
                reader.execute(
                    "SELECT COUNT(*) FROM readings WHERE meter_id = ?", (meter,)
                ).fetchone()[0]
            )

        await until(lambda: count("flat1-elec") >= 5 and count("flat2-elec") >= 5, 10)
        stop.set()
        await run

        assert count("flat2-extra") == 0
        row = reader.execute(
            "SELECT ok, failures, last_error FROM device_health "
            "WHERE device_id = 'flat2-extra'"
        ).fetchone()
        assert row["ok"] == 0 and row["failures"] >= 3
        assert "bad frame" in row["last_error"]
        alarm = reader.execute(
            "SELECT message FROM alarms WHERE subject = 'flat2-extra' "
            "AND kind = 'device_failed'"
        ).fetchone()
        assert alarm is not None
        reader.close()


async def test_a_dead_meter_costs_at_most_one_timeout_per_cycle(tmp_path: Path) -> None:
    dead = SimMeter(3, corpus_frame("electricity"), Decimal(5_000), behaviour="dead")
    extra = (
        "  - {id: flat2-dead, bus: mbus1, address: 3, medium: electricity,"
        " account: flat2}"
    )
    with building(tmp_path, extra=[dead], extra_yaml=extra) as b:
        config = load_config(b.config_path)
        daemon = Daemon(config)
        from drivers.mbus.master import MbusMaster
        from gateway.polling import MbusPoller

        bus = config.buses[0]
        master = MbusMaster(
            bus.port,
            baudrate=bus.baudrate,
            parity=bus.parity,
            timeout_s=bus.timeout_s,
            retries=bus.retries,
        )
        poller = MbusPoller(
            bus,
            config.meters,
            master,
            daemon.readings,  # type: ignore[arg-type]
            daemon.health,
            daemon.clock,
        )
        await master.open()
        try:
            await poller.cycle()  # the first cycle wakes every meter
            cycles = []
            for _ in range(3):
                began = time.monotonic()
                await poller.cycle()
                cycles.append(time.monotonic() - began)
        finally:
            await master.close()
        alive = []
        for _ in range(3):
            began = time.monotonic()
            await master.open()
            await master.read(1)
            await master.read(2)
            await master.close()
            alive.append(time.monotonic() - began)
        # Each cycle: two live meters plus one timeout (0.2 s), never two.
        assert max(cycles) < min(alive) + 2 * 0.2
        assert min(cycles) >= 0.2
        assert daemon.readings.qsize() == 8  # 4 cycles x 2 live meters
        daemon.conn.close()
