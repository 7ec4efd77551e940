"""Tariffs over months with a controllable clock, billed through the real
billing step into a real SQLite ledger: a time-of-use tariff across both
daylight-saving changes, tariff changes (configured and from the cloud)
inside reading intervals, inclining blocks across month boundaries and a
restart, a price per minute of operating time, and versioned standing
charges. Every case asserts the balance to the cent."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from gateway import accounts, commands, ledger, standing, store
from gateway.billing import process_reading
from gateway.clock import ManualClock
from gateway.config import parse_config
from gateway.ledger import EntryKind, NewEntry
from gateway.model import Reading
from gateway.money import Money
from gateway.site import SitePlan
from gateway.store import transaction
from gateway.sync import schemas

BERLIN = ZoneInfo("Europe/Berlin")
START_CREDIT = Money.parse("2000.00", "EUR")

SITE = """
site: {id: tariff-house, currency: EUR, timezone: Europe/Berlin}
state_dir: state
buses:
  - {id: mbus1, kind: mbus, port: /dev/null}
meters:
  - {id: m-tou, bus: mbus1, address: 1, medium: electricity, account: flat1}
  - {id: m-change, bus: mbus1, address: 2, medium: electricity, account: flat2}
  - {id: m-blocks, bus: mbus1, address: 3, medium: electricity, account: flat3}
  - {id: m-sauna, bus: mbus1, address: 4, medium: operating_time, account: flat4}
accounts:
  - {id: flat1, name: Flat 1, tariff: tou}
  - {id: flat2, name: Flat 2, tariff: changing}
  - {id: flat3, name: Flat 3, tariff: blocks}
  - {id: flat4, name: Flat 4, tariff: equipment}
tariffs:
  - id: tou
    prices:
      electricity:
        price: "0.20"             # whenever no band applies
        per: kWh
        bands:
          - {name: night, start: "00:00", end: "06:00", price: "0.10"}
          - name: peak
            days: [mon, tue, wed, thu, fri]
            start: "07:00"
            end: "22:00"
            price: "0.40"
  - id: changing
    prices:
      electricity: {price: "0.30", per: kWh, standing_charge_per_day: "0.20"}
    versions:
      - effective_at: 2026-04-01     # local midnight: 2026-03-31T22:00Z
        prices:
          electricity: {price: "0.36", per: kWh, standing_charge_per_day: "0.25"}
  - id: blocks
    prices:
      electricity:
        price: "0.35"             # above the last block
        per: kWh
        blocks: [{up_to: 100, price: "0.25"}]
  - id: equipment
    prices:
      operating_time: {price: "0.05", per: min}
"""


class House:
    """A site, its database and its clock; readings go through real billing."""

    def __init__(self, state: Path, start: datetime) -> None:
        self.state = state
        self.config = parse_config(SITE, state / "site.yaml")
        self.clock = ManualClock(start)
        self.open()
        with transaction(self.conn):
            accounts.sync_from_config(self.conn, self.site, self.clock.now())
            for account in self.config.accounts:
                ledger.post(
                    self.conn,
                    NewEntry(
                        f"topup:{account.id}:start",
                        account.id,
                        EntryKind.TOPUP,
                        START_CREDIT,
                        "test",
                        self.clock.now(),
                    ),
                )

    def open(self) -> None:
        """Open the database and build the site plan, as the daemon does at start."""
        self.conn = store.connect(self.state / "gateway.sqlite3")
        self.site = SitePlan(self.config)

    def restart(self) -> None:
        """Close everything and start again from what is on disk."""
        self.conn.close()
        self.open()

    def read(self, meter: str, at: datetime, value: Decimal, unit: str = "kWh") -> None:
        self.clock.set(at)
        process_reading(
            self.conn, self.site, Reading(meter, value, unit, self.clock.now(), "test")
        )

    def spent(self, account: str) -> Money:
        return START_CREDIT - ledger.balance(self.conn, account)

    def tariff_set(self, at: datetime, effective: str, price: str) -> None:
        self.clock.set(at)
        now = self.clock.now()
        command = schemas.Command(
            command_id=f"tariff-{effective}",
            site="tariff-house",
            kind="tariff_set",
            issued_at=now.at,
            expires_at=now.at + timedelta(hours=1),
            args={
                "tariff_id": "changing",
                "effective_at": effective,
                "prices": {"electricity": {"price": price, "per": "kWh"}},
            },
        )
        fingerprint = commands.digest(command.model_dump_json())
        result = commands.apply(
            self.conn, command, fingerprint, now, max_validity=timedelta(days=1)
        )
        assert result.status == "applied", result.reason


@pytest.fixture
def house_at(tmp_path: Path) -> Iterator[Callable[[datetime], House]]:
    made: list[House] = []

    def make(start: datetime) -> House:
        house = House(tmp_path, start)
        made.append(house)
        return house

    yield make
    for house in made:
        house.conn.close()


def _local(year: int, month: int, day: int, hour: int = 0) -> datetime:
    return datetime(year, month, day, hour, tzinfo=BERLIN).astimezone(UTC)


def _hourly_oracle(start: datetime, end: datetime) -> Decimal:
    """Price 1 kWh for every real hour by its local wall-clock time.

    Band edges in this tariff are whole local hours and Berlin's offsets are
    whole hours, so each UTC hour lies in one band: no splitting needed.
    """
    total = Decimal(0)
    at = start
    while at < end:
        local = at.astimezone(BERLIN)
        if local.hour < 6:
            total += Decimal("0.10")
        elif local.weekday() < 5 and 7 <= local.hour < 22:
            total += Decimal("0.40")
        else:
            total += Decimal("0.20")
        at += timedelta(hours=1)
    return total


# Issue test 1: two daylight-saving changes under a time-of-use tariff.
# A constant 1 kWh an hour, read every `step` hours from local start to end.
DST_CASES = [
    # Five weekdays at 7.20, Saturday 4.20, and the 23-hour Sunday at 4.10
    # (its night band 00:00-06:00 lasts only five real hours).
    ("spring week, hourly readings", (2026, 3, 23), (2026, 3, 30), 1, "44.30"),
    ("spring week, readings every 5 h", (2026, 3, 23), (2026, 3, 30), 5, "44.30"),
    # The 25-hour Sunday costs 4.30: seven real hours of night band.
    ("autumn week, readings every 7 h", (2026, 10, 19), (2026, 10, 26), 7, "44.50"),
    # 35 whole weeks at 44.40; the short and the long Sunday cancel out.
    ("March to November, every 11 h", (2026, 3, 1), (2026, 11, 1), 11, "1554.00"),
]


@pytest.mark.parametrize(("name", "first", "last", "step", "expected"), DST_CASES)
def test_time_of_use_across_daylight_saving_changes(
    house_at: Callable[[datetime], House],
    name: str,
    first: tuple[int, int, int],
    last: tuple[int, int, int],
    step: int,
    expected: str,
) -> None:
    start, end = _local(*first), _local(*last)
    house = house_at(start)
    at = start
    while True:
        hours = Decimal((at - start) // timedelta(hours=1))
        house.read("m-tou", at, hours)
        if at == end:
            break
        at = min(at + timedelta(hours=step), end)
    assert _hourly_oracle(start, end) == Decimal(expected), name
    assert house.spent("flat1") == Money.parse(expected, "EUR"), name


# Issue test 3: a tariff change in the middle of an interval. The config
# changes 0.30 -> 0.36 at local midnight of 1 April (22:00 UTC); the cloud
# schedules 0.50 from 15 April 12:00 UTC (sent on 10 April).
CLOUD = (datetime(2026, 4, 10, tzinfo=UTC), "2026-04-15T12:00:00Z", "0.50")
CHANGE_CASES = [
    (
        "day straddling the configured change",
        [("2026-03-31T10:00", "100"), ("2026-04-01T10:00", "124")],
        "7.92",  # 12 kWh at 0.30 + 12 kWh at 0.36
    ),
    (
        "45 minutes around the change",
        [("2026-03-31T21:30", "0"), ("2026-03-31T22:15", "3")],
        "0.96",  # 2 kWh at 0.30 + 1 kWh at 0.36
    ),
    (
        "day straddling the cloud's change",
        [("2026-04-15T00:00", "0"), ("2026-04-16T00:00", "48")],
        "20.64",  # 24 kWh at 0.36 + 24 kWh at 0.50
    ),
    (
        "outage over both changes",
        [("2026-03-31T12:00", "0"), ("2026-04-16T12:00", "384")],
        "141.00",  # 10 h at 0.30, 350 h at 0.36, 24 h at 0.50
    ),
    (
        "readings every 10 hours for a month",
        [
            (
                (datetime(2026, 3, 20, tzinfo=UTC) + timedelta(hours=10 * n))
                .isoformat()
                .removesuffix("+00:00"),
                str(10 * n),
            )
            for n in range(73)
        ],
        # 286 h at 0.30 (to 31 March 22:00), 350 h at 0.36, 84 h at 0.50.
        "253.80",
    ),
]


@pytest.mark.parametrize(("name", "readings", "expected"), CHANGE_CASES)
def test_tariff_change_inside_a_reading_interval(
    house_at: Callable[[datetime], House],
    name: str,
    readings: list[tuple[str, str]],
    expected: str,
) -> None:
    house = house_at(datetime(2026, 3, 1, tzinfo=UTC))
    cloud_sent = False
    for at_text, value in readings:
        at = datetime.fromisoformat(at_text).replace(tzinfo=UTC)
        if not cloud_sent and at > CLOUD[0]:
            house.tariff_set(*CLOUD)
            cloud_sent = True
        house.read("m-change", at, Decimal(value))
    assert house.spent("flat2") == Money.parse(expected, "EUR"), name


# Inclining blocks: the first 100 kWh of each local month at 0.25, the rest
# at 0.35; 0.5 kWh an hour from 10 January to 15 March, read at 12:00 UTC.
# January 257.5 kWh -> 80.125; February 336 kWh -> 107.60; March (to the
# 15th, 12:00 UTC) 174.5 kWh -> 51.075. Month starts are local midnight.
BLOCK_CASES = [
    ("daily readings", 24, None),
    ("daily readings, restart mid-February", 24, datetime(2026, 2, 14, tzinfo=UTC)),
    ("readings every 7 h, restart at a boundary", 7, datetime(2026, 2, 1, tzinfo=UTC)),
]


@pytest.mark.parametrize(("name", "step", "restart_at"), BLOCK_CASES)
def test_inclining_blocks_across_month_boundaries(
    house_at: Callable[[datetime], House],
    name: str,
    step: int,
    restart_at: datetime | None,
) -> None:
    start = datetime(2026, 1, 10, 12, tzinfo=UTC)
    end = datetime(2026, 3, 15, 12, tzinfo=UTC)
    house = house_at(start)
    at = start
    while True:
        if restart_at is not None and at >= restart_at:
            house.restart()
            restart_at = None
        house.read("m-blocks", at, Decimal((at - start) // timedelta(hours=1)) / 2)
        if at == end:
            break
        at = min(at + timedelta(hours=step), end)
    assert house.spent("flat3") == Money.parse("238.80", "EUR"), name
    usage = dict(
        house.conn.execute(
            "SELECT month, quantity FROM tariff_usage WHERE account_id = 'flat3'"
        ).fetchall()
    )
    assert {m: Decimal(q) for m, q in usage.items()} == {
        "2026-01": Decimal("257.5"),
        "2026-02": Decimal(336),
        "2026-03": Decimal("174.5"),
    }


def test_operating_time_is_billed_per_minute(
    house_at: Callable[[datetime], House],
) -> None:
    # An operating-hours counter read daily: 45 minutes a day for 30 days.
    start = datetime(2026, 6, 1, 18, tzinfo=UTC)
    house = house_at(start)
    for day in range(31):
        hours = Decimal("1000") + Decimal("0.75") * day
        house.read("m-sauna", start + timedelta(days=day), hours, unit="h")
    assert house.spent("flat4") == Money.parse("67.50", "EUR")  # 1350 min x 0.05


def test_standing_charges_follow_the_version_of_each_day(
    house_at: Callable[[datetime], House],
) -> None:
    # The meter exists from 29 March; the change is at local midnight 1 April.
    house = house_at(_local(2026, 3, 29, 0))
    house.read("m-change", house.clock.now().at, Decimal(0))
    for day in range(6):
        house.clock.set(_local(2026, 3, 29, 1) + timedelta(days=day))
        standing.accrue(house.conn, house.site, house.clock.now())
    # 29, 30, 31 March at 0.20; 1, 2, 3 April at 0.25.
    assert house.spent("flat2") == Money.parse("1.35", "EUR")


def test_every_debit_carries_its_breakdown(
    house_at: Callable[[datetime], House],
) -> None:
    house = house_at(datetime(2026, 3, 31, 21, 30, tzinfo=UTC))
    house.read("m-change", datetime(2026, 3, 31, 21, 30, tzinfo=UTC), Decimal(0))
    house.read("m-change", datetime(2026, 3, 31, 22, 15, tzinfo=UTC), Decimal(3))
    entry = house.conn.execute(
        "SELECT detail FROM ledger_entries WHERE kind = 'consumption'"
    ).fetchone()
    lines = json.loads(entry["detail"])["tariff"]
    assert [(x["price"], x["quantity"], x["cost"]) for x in lines] == [
        ("0.30", "2", "0.60"),
        ("0.36", "1", "0.36"),
    ]
