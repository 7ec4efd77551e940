"""The daemon: wires configuration, store, drivers and decisions into
supervised asyncio tasks, and speaks to systemd."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
from collections.abc import Awaitable, Callable
from contextlib import suppress

import structlog

from gateway import accounts, ledger
from gateway.actuators import Actuator, UnitLink
from gateway.billing import process_reading
from gateway.clock import Clock, SystemClock
from gateway.config.cloud import Cloud
from gateway.config.model import Config, MbusBus, ModbusBus
from gateway.config.radio import LoraBus, WmbusBus
from gateway.health import DeviceHealth
from gateway.housekeeping import CHORES, Chore
from gateway.model import Reading
from gateway.polling import MbusPoller
from gateway.site import SitePlan
from gateway.store import DB_NAME, open_state, transaction
from gateway.supervisor import Supervisor

log = structlog.get_logger(__name__)

# How often the daemon looks for money booked by someone else (the CLI, the
# cloud); a top-up takes effect within this time.
LEDGER_WATCH_S = 0.5


class Daemon:
    """One gateway: its database, its tasks, and the events between them."""

    def __init__(self, config: Config, clock: Clock | None = None) -> None:
        self.config = config
        self.clock = clock or SystemClock()
        self.site = SitePlan(config)
        self.conn: sqlite3.Connection = open_state(config.state_dir)
        self.health = DeviceHealth(self.conn)
        self.supervisor = Supervisor()
        self.readings: asyncio.Queue[Reading] = asyncio.Queue(maxsize=10_000)
        self._wake: dict[str, asyncio.Event] = {}
        self._last_seq = -1
        self._ready: Callable[[], None] | None = None

    # Wiring ----------------------------------------------------------------

    def start(self) -> None:
        """Prepare the database and start every task."""
        stamp = self.clock.now()
        with transaction(self.conn):
            accounts.sync_from_config(self.conn, self.site, stamp)
            for account in self.config.accounts:
                accounts.evaluate(self.conn, account.id, stamp)
        log.info(
            "gateway_starting",
            site=self.config.site.id,
            meters=len(self.config.meters),
            units=len(self.config.units),
            state_dir=str(self.config.state_dir),
            clock_synced=stamp.synced,
        )

        sup = self.supervisor
        sup.start("billing", self._billing, critical=True)
        sup.start("ledger_watch", self._watch_ledger, critical=True)
        for chore in CHORES:
            sup.start(chore.name, self._chore_job(chore))
        for bus in self.config.buses:
            if isinstance(bus, MbusBus):
                sup.start(f"mbus:{bus.id}", self._mbus_job(bus))
            elif isinstance(bus, ModbusBus):
                sup.start(f"units:{bus.id}", self._modbus_job(bus))
            elif isinstance(bus, WmbusBus):
                sup.start(f"wmbus:{bus.id}", self._wmbus_job(bus))
            elif isinstance(bus, LoraBus):
                sup.start(f"units:{bus.id}", self._lora_job(bus))
        if self.config.cloud is not None:
            sup.start("sync", self._sync_job(self.config.cloud))

    def _mbus_job(self, bus: MbusBus) -> Callable[[], Awaitable[None]]:
        meters = [m for m in self.config.meters if m.bus == bus.id]

        async def job() -> None:
            from drivers.mbus.master import MbusMaster

            master = MbusMaster(
                bus.port,
                baudrate=bus.baudrate,
                parity=bus.parity,
                timeout_s=bus.timeout_s,
                retries=bus.retries,
                echo=bus.echo,
            )
            poller = MbusPoller(
                bus, meters, master, self.readings, self.health, self.clock
            )
            await poller.run()

        return job

    def _modbus_job(self, bus: ModbusBus) -> Callable[[], Awaitable[None]]:
        def link() -> UnitLink:
            from drivers.modbus.unit_bus import ModbusUnitBus

            return ModbusUnitBus(
                bus.port,
                baudrate=bus.baudrate,
                parity=bus.parity,
                timeout_s=bus.timeout_s,
                retries=bus.retries,
                watchdog_s=bus.watchdog_s,
            )

        return self._actuator_job(bus.id, link, bus.poll_interval_s)

    def _actuator_job(
        self, bus_id: str, make_link: Callable[[], UnitLink], interval_s: float
    ) -> Callable[[], Awaitable[None]]:
        """Return a job that keeps the units of one bus in line through a fresh link."""
        units = [u for u in self.site.units.values() if u.bus_id == bus_id]
        wake = self._wake.setdefault(bus_id, asyncio.Event())

        async def job() -> None:
            actuator = Actuator(
                bus_id,
                make_link(),
                units,
                self.conn,
                self.site,
                self.health,
                self.clock,
                wake,
                interval_s,
            )
            await actuator.run()

        return job

    def _sync_job(self, cloud: Cloud) -> Callable[[], Awaitable[None]]:
        async def job() -> None:
            from gateway.sync.service import SyncService

            service = SyncService(
                cloud,
                self.config.site.id,
                self.config.state_dir / DB_NAME,
                self.clock,
                on_ledger_change=self.wake_actuators,
            )
            await service.run()

        return job

    def _wmbus_job(self, bus: WmbusBus) -> Callable[[], Awaitable[None]]:
        meters = [m for m in self.config.meters if m.bus == bus.id]

        async def job() -> None:
            from gateway.wireless import WmbusListener

            listener = WmbusListener(
                bus, meters, self.conn, self.readings, self.health, self.clock
            )
            await listener.run()

        return job

    def _lora_job(self, bus: LoraBus) -> Callable[[], Awaitable[None]]:
        configured = [u for u in self.config.units if u.bus == bus.id]

        def link() -> UnitLink:
            # The radio (pyLoRa for sx127x) is imported only when opened.
            from gateway.lora_units import LoraUnits

            return LoraUnits(bus, configured, self.conn, self.health, self.clock)

        return self._actuator_job(bus.id, link, bus.poll_interval_s)

    def wake_actuators(self) -> None:
        """Ask every unit bus to re-send commands now instead of at its next poll."""
        for event in self._wake.values():
            event.set()

    # Jobs --------------------------------------------------------------------

    async def _billing(self) -> None:
        """The single writer of consumption: one reading, one transaction."""
        while True:
            reading = await self.readings.get()
            try:
                outcome = process_reading(self.conn, self.site, reading)
            except (LookupError, ValueError) as err:
                log.error("reading_refused", meter=reading.meter_id, error=str(err))
                continue
            self.supervisor.mark_ok("billing")
            if outcome.decision is not None:
                self.wake_actuators()

    async def _watch_ledger(self) -> None:
        """Notice money booked by another writer and re-decide the accounts."""
        while True:
            seq = ledger.last_seq(self.conn)
            if seq != self._last_seq:
                # Money moved: re-decide, and refresh every unit's allowance and
                # display even when no decision changed (the CLI may already
                # have recorded the decision itself).
                self._last_seq = seq
                self.reevaluate()
                self.wake_actuators()
            self.supervisor.mark_ok("ledger_watch")
            await asyncio.sleep(LEDGER_WATCH_S)

    def reevaluate(self) -> None:
        """Re-decide every account; wake the actuators if any decision changed."""
        stamp = self.clock.now()
        changed = False
        with transaction(self.conn):
            for account in self.config.accounts:
                changed |= accounts.evaluate(self.conn, account.id, stamp) is not None
        if changed:
            self.wake_actuators()

    def _chore_job(self, chore: Chore) -> Callable[[], Awaitable[None]]:
        async def job() -> None:
            while True:
                if chore.run(self.conn, self.site, self.clock.now()):
                    log.info("chore_changed_accounts", chore=chore.name)
                    self.reevaluate()
                    self.wake_actuators()
                self.supervisor.mark_ok(chore.name)
                await asyncio.sleep(chore.every_s)

        return job

    # Life cycle ------------------------------------------------------------

    async def run_until_stopped(self, stop: asyncio.Event | None = None) -> None:
        """Run until SIGTERM/SIGINT (or `stop`), then close everything cleanly."""
        stop = stop or asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, stop.set)
        self.start()
        notifier = asyncio.create_task(self._systemd(stop))
        try:
            await stop.wait()
        finally:
            log.info("gateway_stopping")
            notifier.cancel()
            await self.supervisor.stop()
            self.conn.close()
            log.info("gateway_stopped")

    async def _systemd(self, stop: asyncio.Event) -> None:
        """Tell systemd we are ready, and ping its watchdog only while healthy."""
        import sdnotify

        notify = sdnotify.SystemdNotifier()
        notify.notify("READY=1")
        usec = int(os.environ.get("WATCHDOG_USEC", "0"))
        interval = usec / 2e6 if usec else 10.0
        while not stop.is_set():
            if self.supervisor.healthy():
                notify.notify("WATCHDOG=1")
                notify.notify(f"STATUS=serving {len(self.config.meters)} meters")
            else:
                failing = [h.name for h in self.supervisor.health.values() if h.failing]
                notify.notify(f"STATUS=unhealthy: {', '.join(failing)}")
            await asyncio.sleep(interval)


def run(config: Config) -> None:
    """Run the daemon in the foreground until it is told to stop."""
    asyncio.run(Daemon(config).run_until_stopped())
