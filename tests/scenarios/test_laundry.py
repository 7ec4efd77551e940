"""Laundry with a controllable clock: booking, hold, cycle and charge; no-show
release with and without a fee; a start without a booking; overlaps refused;
a cycle never cut off; a booking from the cloud."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from gateway import accounts, commands, laundry, laundry_cycles, ledger, store
from gateway.clock import ManualClock
from gateway.config import parse_config
from gateway.ledger import EntryKind, NewEntry
from gateway.money import Money
from gateway.site import SitePlan
from gateway.store import transaction
from gateway.sync import schemas

SITE = """
site: {id: laundry-house, currency: EUR, timezone: Europe/Berlin}
state_dir: state
buses:
  - {id: mbus1, kind: mbus, port: /dev/null}
  - {id: rs485, kind: modbus, port: /dev/null}
meters:
  - {id: m-wash, bus: mbus1, address: 1, medium: electricity, account: house}
  - {id: m-dry, bus: mbus1, address: 2, medium: electricity, account: house}
units:
  - {id: washer1, bus: rs485, address: 21, kind: appliance, meters: [m-wash]}
  - {id: dryer1, bus: rs485, address: 22, kind: appliance, meters: [m-dry]}
accounts:
  - {id: house, name: Laundry room}
  - {id: flat1, name: Flat 1}
  - {id: flat2, name: Flat 2, credit_line: "1.00"}
tariffs:
  - id: standard
    prices:
      electricity: {price: "0.3412", per: kWh}
laundry:
  machines:
    - {unit: washer1, appliance: washing_machine, billing: cycle, price: "2.50",
       no_show_minutes: 15, no_show_fee: "0.50"}
    - {unit: dryer1, appliance: dryer, billing: energy, price: "0.40",
       hold: "3.00", no_show_minutes: 20}
"""

EUR = "EUR"


def eur(text: str) -> Money:
    return Money.parse(text, EUR)


def local(text: str) -> datetime:
    """A Berlin wall time on 14 March 2026 (UTC+1)."""
    return datetime.fromisoformat(f"2026-03-14T{text}:00+01:00")


@dataclass
class Room:
    conn: sqlite3.Connection
    site: SitePlan
    clock: ManualClock

    def at(self, hhmm: str) -> None:
        self.clock.set(local(hhmm))

    def credit(self, account: str, amount: str, ref: str) -> None:
        with transaction(self.conn):
            ledger.post(
                self.conn,
                NewEntry(
                    f"test:{ref}",
                    account,
                    EntryKind.TOPUP if amount[0] != "-" else EntryKind.ADJUSTMENT,
                    eur(amount),
                    "cli",
                    self.clock.now(),
                ),
            )
            accounts.evaluate(self.conn, account, self.clock.now())

    def book(self, unit: str, account: str, start: str, end: str) -> laundry.Booking:
        with transaction(self.conn):
            return laundry.book(
                self.conn,
                f"test:{unit}:{account}:{start}",
                unit,
                account,
                local(start),
                local(end),
                self.clock.now(),
                source="cli",
            )

    def enabled(self, unit: str) -> bool:
        return laundry.appliance_enabled(self.conn, unit, self.clock.now())[0]

    def money(self, account: str = "flat1") -> tuple[Money, Money, Money]:
        """Return balance, held and available."""
        return (
            ledger.balance(self.conn, account),
            laundry.held(self.conn, account),
            laundry.available(self.conn, account),
        )


@pytest.fixture
def room(tmp_path: Path) -> Room:
    config = parse_config(SITE, tmp_path / "site.yaml")
    conn = store.connect(tmp_path / "gateway.sqlite3")
    clock = ManualClock(local("09:00"))
    site = SitePlan(config)
    with transaction(conn):
        accounts.sync_from_config(conn, site, clock.now())
    laundry.chore(conn, site, clock.now())
    r = Room(conn, site, clock)
    r.credit("flat1", "20.00", "t1")
    return r


@pytest.mark.parametrize(
    ("unit", "measured", "charge", "balance_after"),
    [
        # Per cycle: the configured 2.50, whatever the cycle used.
        ("washer1", {}, "2.50", "17.50"),
        # By energy: 2.345 kWh x 0.40 = 0.938 -> 0.94, rounded once.
        ("dryer1", {"energy_kwh": Decimal("2.345")}, "0.94", "19.06"),
    ],
)
def test_booking_hold_cycle_and_charge(
    room: Room, unit: str, measured: dict[str, Decimal], charge: str, balance_after: str
) -> None:
    hold = "2.50" if unit == "washer1" else "3.00"
    booking = room.book(unit, "flat1", "18:00", "19:30")
    assert booking.hold == eur(hold) and booking.state == "booked"
    # The hold reduces what is available, not the balance.
    assert room.money() == (eur("20.00"), eur(hold), eur("20.00") - eur(hold))

    # Before the slot the machine is disabled and cannot start.
    room.at("17:55")
    assert not room.enabled(unit)
    with pytest.raises(laundry.NoBooking, match="no booking covers this time"):
        laundry_cycles.cycle_started(room.conn, unit, room.clock.now())

    room.at("18:05")
    assert room.enabled(unit)
    laundry_cycles.cycle_started(room.conn, unit, room.clock.now())
    assert laundry.cycle_running(room.conn, unit)

    # Credit runs out mid-cycle and the slot ends: the cycle is never cut.
    room.credit("flat1", "-25.00", "t2")
    room.at("19:40")
    ok, why = laundry.appliance_enabled(room.conn, unit, room.clock.now())
    assert ok and "never cut off" in why
    room.credit("flat1", "25.00", "t3")

    room.at("19:45")
    posted = laundry_cycles.cycle_ended(room.conn, unit, room.clock.now(), **measured)
    assert posted is not None and posted.entry.amount == -eur(charge)
    assert posted.entry.medium == "laundry"
    assert room.money() == (eur(balance_after), eur("0.00"), eur(balance_after))
    assert not room.enabled(unit)
    assert laundry.get(room.conn, booking.id).state == "done"
    assert ledger.recomputed_balance(room.conn, "flat1") == eur(balance_after)


@pytest.mark.parametrize(
    ("unit", "deadline", "fee"),
    [
        ("washer1", "18:15", "0.50"),  # 15 minutes, a 0.50 fee
        ("dryer1", "18:20", "0.00"),  # 20 minutes, released free
    ],
)
def test_no_show_releases_the_hold(
    room: Room, unit: str, deadline: str, fee: str
) -> None:
    room.book(unit, "flat1", "18:00", "19:00")
    held = room.money()[1]
    minute_before = (local(deadline) - timedelta(minutes=1)).strftime("%H:%M")
    room.at(minute_before)
    assert laundry_cycles.release_no_shows(room.conn, room.clock.now()) == 0
    assert room.money()[1] == held

    room.at(deadline)
    assert laundry_cycles.release_no_shows(room.conn, room.clock.now()) == 1
    assert laundry_cycles.release_no_shows(room.conn, room.clock.now()) == 0
    balance = eur("20.00") - eur(fee)
    assert room.money() == (balance, eur("0.00"), balance)
    # A released booking no longer enables the machine inside its slot.
    assert not room.enabled(unit)


@pytest.mark.parametrize(
    ("account", "unit", "start", "end", "reason"),
    [
        ("flat2", "washer1", "18:30", "19:00", "already booked from"),
        ("flat1", "washer1", "19:29", "20:00", "already booked from"),
        ("flat2", "dryer1", "18:00", "19:00", "top up first"),
        ("flat1", "washer1", "20:00", "19:00", "must end after it starts"),
        ("flat1", "washer1", "20:00", "23:00", "at most 240 minutes"),
        ("flat1", "washer1", "08:00", "08:30", "already past"),
        ("flat1", "m-wash", "20:00", "21:00", "not a laundry machine"),
    ],
)
def test_refused_bookings_say_why(
    room: Room, account: str, unit: str, start: str, end: str, reason: str
) -> None:
    room.at("09:00")
    room.book("washer1", "flat1", "18:00", "19:30")
    if unit == "washer1" and end == "23:00":
        room.conn.execute("UPDATE laundry_machines SET max_slot_minutes = 240")
        end = "23:59"
        start = "19:30"
    if reason == "already past":
        room.at("12:00")
    with pytest.raises(laundry.BookingRefused, match=reason):
        room.book(unit, account, start, end)
    # Adjacent slots do not overlap.
    assert room.book("washer1", "flat1", "19:30", "20:00").state == "booked"


def test_credit_line_and_holds_limit_further_bookings(room: Room) -> None:
    # flat2 has no money but a 1.00 credit line: it cannot cover a 2.50 hold.
    with pytest.raises(laundry.BookingRefused, match=r"has 1\.00 EUR available"):
        room.book("washer1", "flat2", "10:00", "11:00")
    room.credit("flat2", "4.00", "t4")
    room.book("washer1", "flat2", "10:00", "11:00")  # 5.00 -> 2.50 left
    room.book("washer1", "flat2", "11:00", "12:00")  # 2.50 -> 0.00 left
    with pytest.raises(laundry.BookingRefused, match="top up first"):
        room.book("dryer1", "flat2", "10:00", "11:00")
    # Cancelling releases the hold at once.
    first = laundry.bookings(room.conn, account_id="flat2")[0]
    laundry.cancel(room.conn, first.id, room.clock.now(), reason="test")
    assert laundry.available(room.conn, "flat2") == eur("1.50")
    assert ledger.balance(room.conn, "flat2") == eur("4.00")


def test_a_booking_from_the_cloud_and_its_cancellation(room: Room) -> None:
    def command(cid: str, **args: object) -> commands.CommandResult:
        now = room.clock.now().at
        cmd = schemas.Command(
            command_id=cid,
            site="laundry-house",
            kind="laundry_booking",
            issued_at=now,
            expires_at=now + timedelta(minutes=5),
            args=args,
        )
        return commands.apply(
            room.conn, cmd, cid, room.clock.now(), max_validity=timedelta(hours=1)
        )

    booked = command(
        "cmd-0001",
        unit_id="washer1",
        account_id="flat1",
        slot_start="2026-03-14T18:00:00+01:00",
        slot_end="2026-03-14T19:00:00+01:00",
    )
    assert booked.status == "applied" and booked.result["hold_minor"] == 250
    clash = command(
        "cmd-0002",
        unit_id="washer1",
        account_id="flat1",
        slot_start="2026-03-14T18:30:00+01:00",
        slot_end="2026-03-14T19:30:00+01:00",
    )
    assert clash.status == "rejected" and "already booked" in (clash.reason or "")
    cancelled = command(
        "cmd-0003", action="cancel", booking_id=booked.result["booking_id"]
    )
    assert cancelled.status == "applied" and cancelled.result["state"] == "cancelled"
    assert laundry.held(room.conn, "flat1") == eur("0.00")
    sent = room.conn.execute(
        "SELECT COUNT(*) FROM outbox WHERE kind = 'laundry_booking'"
    ).fetchone()[0]
    assert sent == 2, "booked and cancelled went to the cloud"


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gateway", *args],
        capture_output=True,
        text=True,
        check=False,
    )


def test_laundry_and_move_out_commands(tmp_path: Path) -> None:
    (tmp_path / "site.yaml").write_text(SITE)
    conf = ("--config", str(tmp_path / "site.yaml"))
    topup = cli("topup", "flat1", "10.00", "--ref", "R1", *conf)
    assert topup.returncode == 0, topup.stderr
    slot = ("2099-03-14T18:00", "2099-03-14T19:00")
    booked = cli("laundry", "book", "washer1", *slot, "--account", "flat1", *conf)
    assert booked.returncode == 0, booked.stderr
    assert "booked: booking 1, washer1 for flat1" in booked.stdout
    assert "holding 2.50 EUR" in booked.stdout
    again = cli("laundry", "book", "washer1", *slot, "--account", "flat1", *conf)
    assert again.stdout.startswith("duplicate: already booked: booking 1")
    clash = cli("laundry", "book", "washer1", *slot, "--account", "flat2", *conf)
    assert (
        clash.returncode == 2 and "refused: washer1 is already booked" in clash.stderr
    )

    listed = cli("laundry", "list", "--format", "json", *conf)
    [row] = json.loads(listed.stdout)["bookings"]
    assert (row["booking"], row["state"], row["hold"]["minor"]) == (1, "booked", 250)
    later = ("2099-03-15T18:00", "2099-03-15T19:00")
    cli("laundry", "book", "washer1", *later, "--account", "flat1", *conf)
    shown = cli("accounts", "show", "flat1", *conf)
    assert "held         5.00 EUR for laundry bookings; available 5.00 EUR" in (
        shown.stdout
    )
    cancelled = cli("laundry", "cancel", "2", *conf)
    assert cancelled.stdout.startswith("cancelled booking 2; released 2.50 EUR")
    twice_cancelled = cli("laundry", "cancel", "2", *conf)
    assert twice_cancelled.stdout.startswith("booking 2 was already cancelled")

    moved = cli("accounts", "move-out", "flat1", *conf)
    assert moved.returncode == 0, moved.stderr
    assert "balance 10.00 EUR" in moved.stdout
    assert "1 laundry booking(s) cancelled" in moved.stdout
    assert json.loads(cli("laundry", "list", "--format", "json", *conf).stdout) == {
        "bookings": []
    }
    twice = cli("accounts", "move-out", "flat1", *conf)
    assert twice.returncode == 2 and "already closed" in twice.stderr


@pytest.mark.parametrize(
    ("cycles", "charge"),
    [
        ('{washing_machine: "2.40"}', "2.40"),  # the tariff prices the cycle
        ('{dryer: "1.80"}', "2.50"),  # not this appliance: the laundry price
    ],
)
def test_the_tariffs_cycle_price_wins(tmp_path: Path, cycles: str, charge: str) -> None:
    text = SITE.replace(
        '      electricity: {price: "0.3412", per: kWh}\n',
        f'      electricity: {{price: "0.3412", per: kWh}}\n    cycles: {cycles}\n',
    )
    config = parse_config(text, tmp_path / "site.yaml")
    conn = store.connect(tmp_path / "gateway.sqlite3")
    clock = ManualClock(local("09:00"))
    site = SitePlan(config)
    with transaction(conn):
        accounts.sync_from_config(conn, site, clock.now())
    laundry.chore(conn, site, clock.now())
    room = Room(conn, site, clock)
    room.credit("flat1", "20.00", "t1")
    room.book("washer1", "flat1", "18:00", "19:00")
    room.at("18:01")
    laundry_cycles.cycle_started(conn, "washer1", clock.now())
    room.at("19:10")
    posted = laundry_cycles.cycle_ended(
        conn, "washer1", clock.now(), pricing=site.tariffs
    )
    assert posted is not None and posted.entry.amount == -eur(charge)
