"""The tariff book: versions, time-of-use bands across daylight-saving
changes, inclining blocks, cycle and per-minute prices, cloud versions, and
the configuration errors an installer sees."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway import commands, store
from gateway.clock import Stamp
from gateway.config import ConfigError, parse_config
from gateway.model import Medium
from gateway.store import transaction
from gateway.sync import schemas
from gateway.tariffs import TariffBook, TariffError

BERLIN = ZoneInfo("Europe/Berlin")
E, W, T = Medium.ELECTRICITY, Medium.WATER, Medium.OPERATING_TIME

HEAD = """
site: {id: t, currency: EUR, timezone: Europe/Berlin}
buses: [{id: b, kind: mbus, port: /dev/null}]
accounts: [{id: a, name: A}]
tariffs:
"""

# Night 0.10 every day 00:00-06:00, peak 0.40 07:00-22:00 Mon-Fri, else 0.20.
TOU = """
  - id: tou
    prices:
      electricity:
        price: "0.20"
        per: kWh
        bands:
          - {name: night, start: "00:00", end: "06:00", price: "0.10"}
          - name: peak
            days: [mon, tue, wed, thu, fri]
            start: "07:00"
            end: "22:00"
            price: "0.40"
"""

VERSIONED = """
  - id: v
    prices:
      electricity: {price: "0.30", per: kWh, standing_charge_per_day: "0.20"}
      water: {price: "4.00", per: m3}
    cycles: {washing_machine: "2.00", dryer: "1.50"}
    versions:
      - effective_at: 2026-04-01
        prices:
          electricity: {price: "0.36", per: kWh, standing_charge_per_day: "0.25"}
        cycles: {washing_machine: "2.40"}
      - effective_at: "2026-07-01 12:00"
        prices:
          water:
            price: "5.00"
            per: m3
            blocks: [{up_to: 5, price: "3.00"}, {up_to: 10, price: "4.00"}]
          operating_time: {price: "3.00", per: h}
"""


def _book(tariffs: str) -> TariffBook:
    return TariffBook(parse_config(HEAD + tariffs, Path("site.yaml")))


def _local(year: int, month: int, day: int, hour: int = 0) -> datetime:
    return datetime(year, month, day, hour, tzinfo=BERLIN).astimezone(UTC)


def _errors(tariffs: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_config(HEAD + tariffs, Path("site.yaml"))
    return caught.value.lines


SIMPLE = """
  - id: s
    prices:
      electricity: {price: "0.30", per: kWh, standing_charge_per_day: "0.20"}
      water: {price: "4.00", per: l}
"""


def test_simple_form_is_one_flat_version_from_the_beginning() -> None:
    book = _book(SIMPLE)
    long_ago = datetime(1990, 1, 1, tzinfo=UTC)
    hour = timedelta(hours=1)
    assert book.cost("a", E, Decimal(10), long_ago, long_ago + hour) == Decimal(3)
    assert book.standing_charge("a", E, long_ago.date()) == Decimal("0.20")
    # 8.00 buys 2 litres: 0.002 m3, the canonical unit.
    assert book.headroom_quantity("a", W, Decimal(8)) == Decimal("0.002")


# Constant 1 kWh an hour over local days: (from, to, expected cost).
DST_DAYS = [
    ("plain weekday", (2026, 3, 24), (2026, 3, 25), "7.20"),
    ("plain Saturday", (2026, 3, 28), (2026, 3, 29), "4.20"),
    # 23 hours: the night band 00:00-06:00 lasts 5 real hours.
    ("spring-forward Sunday", (2026, 3, 29), (2026, 3, 30), "4.10"),
    # 25 hours: the night band lasts 7 real hours.
    ("fall-back Sunday", (2026, 10, 25), (2026, 10, 26), "4.30"),
    ("Monday after spring", (2026, 3, 30), (2026, 3, 31), "7.20"),
    ("week over the spring change", (2026, 3, 23), (2026, 3, 30), "44.30"),
    ("week over the autumn change", (2026, 10, 19), (2026, 10, 26), "44.50"),
]


@pytest.mark.parametrize(("name", "day_from", "day_to", "expected"), DST_DAYS)
def test_time_of_use_bills_local_days_across_daylight_saving(
    name: str,
    day_from: tuple[int, int, int],
    day_to: tuple[int, int, int],
    expected: str,
) -> None:
    book = _book(TOU)
    start, end = _local(*day_from), _local(*day_to)
    hours = Decimal((end - start) // timedelta(hours=1))
    assert book.cost("a", E, hours, start, end) == Decimal(expected), name


def test_autumn_repeated_hour_is_billed_twice_by_wall_clock() -> None:
    # Band edges at 02:30 fall inside the repeated hour 02:00-03:00 of
    # 25 October 2026, so the band is entered and left twice.
    book = _book(
        """
  - id: odd
    prices:
      electricity:
        price: "1"
        per: kWh
        bands: [{name: early, start: "00:00", end: "02:30", price: "0"}]
"""
    )
    start = datetime(2026, 10, 24, 22, 0, tzinfo=UTC)  # 00:00 CEST
    end = datetime(2026, 10, 25, 3, 0, tzinfo=UTC)  # 04:00 CET
    charge = book.quote("a", E, Decimal(300), start, end)  # one kWh a minute
    # Paid: 02:30-03:00 CEST and 02:30-04:00 CET, 30 + 90 minutes.
    assert charge.cost == Decimal(120)
    assert [line.label for line in charge.lines] == ["early", "default"] * 2


def test_a_version_change_splits_the_interval_exactly() -> None:
    book = _book(VERSIONED)
    start = datetime(2026, 3, 31, 16, 0, tzinfo=UTC)
    end = datetime(2026, 4, 1, 0, 0, tzinfo=UTC)  # change at 22:00 UTC
    charge = book.quote("a", E, Decimal(10), start, end)
    assert charge.cost == Decimal("7.5") * Decimal("0.30") + Decimal("2.5") * Decimal(
        "0.36"
    )
    assert [(line.version, line.quantity) for line in charge.lines] == [
        ("config:initial", Decimal("7.5")),
        ("config:2026-03-31T22:00:00+00:00", Decimal("2.5")),
    ]


def test_standing_charge_and_cycle_price_follow_versions() -> None:
    book = _book(VERSIONED)
    assert book.standing_charge("a", E, datetime(2026, 3, 31).date()) == Decimal("0.20")
    assert book.standing_charge("a", E, datetime(2026, 4, 1).date()) == Decimal("0.25")
    assert book.standing_charge("a", W, datetime(2026, 4, 1).date()) == 0
    march, april = _local(2026, 3, 15), _local(2026, 4, 15)
    assert book.cycle_price("a", "washing_machine", at=march) == Decimal("2.00")
    assert book.cycle_price("a", "washing_machine", at=april) == Decimal("2.40")
    assert book.cycle_price("a", "dryer", at=april) == Decimal("1.50")
    assert book.cycle_price("a", "washing_machine") == Decimal("2.40")
    with pytest.raises(TariffError, match="dryer, washing_machine"):
        book.cycle_price("a", "mangle")


def test_operating_time_is_billed_per_minute_or_hour() -> None:
    minute = _book(
        """
  - id: m
    prices:
      operating_time: {price: "0.05", per: min}
"""
    )
    start = datetime(2026, 5, 1, tzinfo=UTC)
    assert minute.cost("a", T, Decimal(90), start, start) == Decimal("4.50")
    hourly = _book(VERSIONED)
    july = _local(2026, 7, 2)
    assert hourly.cost("a", T, Decimal(90), july, july) == Decimal("4.50")
    with pytest.raises(TariffError, match="operating_time"):
        hourly.cost("a", T, Decimal(90), start, start)


def test_headroom_uses_the_highest_applicable_price() -> None:
    book = _book(TOU)
    # 0.40 is the peak price: 10.00 buys 25 kWh at most, whatever the hour.
    assert book.headroom_quantity("a", E, Decimal(10)) == Decimal(25)
    versioned = _book(VERSIONED)
    june = _local(2026, 6, 1)
    # Water's July version has a 5.00 top price: it is already scheduled.
    assert versioned.headroom_quantity("a", W, Decimal(10), at=june) == Decimal(2)
    assert versioned.headroom_quantity("a", E, Decimal(-3), at=june) == 0


def test_blocks_need_the_usage_store(conn: sqlite3.Connection) -> None:
    book = _book(VERSIONED)
    day = _local(2026, 7, 10)
    with pytest.raises(TariffError, match="connection"):
        book.cost("a", W, Decimal(1), day, day + timedelta(hours=1))
    # 4 m3 at 3.00, then 4 m3 more: 1 at 3.00 and 3 at 4.00.
    with transaction(conn):
        first = book.charge(conn, "a", W, Decimal(4), day, day + timedelta(hours=1))
        second = book.charge(conn, "a", W, Decimal(4), day, day + timedelta(hours=1))
    assert (first.cost, second.cost) == (Decimal(12), Decimal(15))
    assert [line.label for line in second.lines] == ["block 1", "block 2"]


def test_blocks_restart_each_month_and_spread_across_the_boundary(
    conn: sqlite3.Connection,
) -> None:
    book = _book(VERSIONED)
    # 24 hours from local noon on 31 July: 12 m3 in July, 12 m3 in August.
    start = _local(2026, 7, 31, 12)
    with transaction(conn):
        charge = book.charge(conn, "a", W, Decimal(24), start, start + timedelta(1))
    per_month = 5 * Decimal(3) + 5 * Decimal(4) + 2 * Decimal(5)
    assert charge.cost == 2 * per_month
    assert dict(charge.months) == {"2026-07": Decimal(12), "2026-08": Decimal(12)}


def test_a_rolled_back_charge_leaves_no_usage(conn: sqlite3.Connection) -> None:
    book = _book(VERSIONED)
    day = _local(2026, 7, 10)
    with pytest.raises(RuntimeError), transaction(conn):
        book.charge(conn, "a", W, Decimal(4), day, day + timedelta(hours=1))
        raise RuntimeError("power cut before commit")
    assert book.quote("a", W, Decimal(4), day, day, conn=conn).cost == Decimal(12)
    with pytest.raises(TariffError, match=r"inside store\.transaction"):
        book.charge(conn, "a", W, Decimal(4), day, day)


def _tariff_set(conn: sqlite3.Connection, cid: str, effective: str, price: str) -> None:
    now = Stamp(datetime(2026, 4, 1, tzinfo=UTC), True)
    command = schemas.Command(
        command_id=cid,
        site="t",
        kind="tariff_set",
        issued_at=now.at,
        expires_at=now.at + timedelta(hours=1),
        args={
            "tariff_id": "v",
            "effective_at": effective,
            "prices": {"electricity": {"price": price, "per": "kWh"}},
        },
    )
    result = commands.apply(
        conn, command, commands.digest(cid), now, max_validity=timedelta(days=1)
    )
    assert result.status == "applied"


def test_cloud_versions_join_the_timeline(conn: sqlite3.Connection) -> None:
    book = _book(VERSIONED)
    start = datetime(2026, 4, 15, 0, tzinfo=UTC)
    end = start + timedelta(days=1)
    assert book.cost("a", E, Decimal(48), start, end, conn=conn) == Decimal("17.28")

    _tariff_set(conn, "cmd-0001", "2026-04-15T12:00:00Z", "0.50")
    assert book.cost("a", E, Decimal(48), start, end, conn=conn) == Decimal("20.64")
    # Unchanged table: nothing is reread.
    assert book._cloud.refresh(conn) is False
    # The cloud's version replaces electricity only; water and cycles stay.
    assert book.price("a", W, end, conn=conn).price == Decimal("4.00")
    assert book.cycle_price("a", "washing_machine", at=end) == Decimal("2.40")

    # The same effective time again replaces that version's prices.
    _tariff_set(conn, "cmd-0002", "2026-04-15T14:00:00+02:00", "0.60")
    assert book.cost("a", E, Decimal(48), start, end, conn=conn) == Decimal("23.04")


def test_a_bad_cloud_price_is_ignored_not_fatal(conn: sqlite3.Connection) -> None:
    with transaction(conn):
        conn.execute(
            "INSERT INTO tariff_schedule VALUES ('v', '2026-04-02T00:00:00+00:00', "
            """'{"electricity": {"price": "1", "per": "m3"}}', 'c', 'now')"""
        )
    book = _book(VERSIONED)
    day = datetime(2026, 4, 3, tzinfo=UTC)
    assert book.cost("a", E, Decimal(1), day, day, conn=conn) == Decimal("0.36")


@settings(max_examples=150, deadline=None)
@given(
    tariff=st.sampled_from([VERSIONED, TOU]),
    start=st.integers(min_value=0, max_value=300 * 86_400),
    length=st.integers(min_value=1, max_value=40 * 86_400),
    cut=st.floats(min_value=0, max_value=1),
    rate=st.decimals(min_value=0, max_value=Decimal("0.01"), places=6),
)
def test_cost_is_additive_over_any_split(
    tariff: str, start: int, length: int, cut: float, rate: Decimal
) -> None:
    book = _book(tariff)
    a = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(seconds=start)
    c = a + timedelta(seconds=length)
    b = a + timedelta(seconds=int(length * cut))
    # A constant rate (kWh a second): the quantity in any part is exact.
    whole = book.cost("a", E, rate * length, a, c)
    left = book.cost("a", E, rate * int((b - a).total_seconds()), a, b)
    right = book.cost("a", E, rate * int((c - b).total_seconds()), b, c)
    assert whole == left + right


@settings(max_examples=40, deadline=None)
@given(
    start=st.integers(min_value=0, max_value=90 * 86_400),
    length=st.integers(min_value=1, max_value=40 * 86_400),
    cut=st.floats(min_value=0, max_value=1),
    rate=st.decimals(min_value=0, max_value=Decimal("0.0001"), places=8),
    before=st.decimals(min_value=0, max_value=Decimal(12), places=3),
)
def test_blocks_are_additive_over_any_split(
    tmp_path_factory: pytest.TempPathFactory,
    start: int,
    length: int,
    cut: float,
    rate: Decimal,
    before: Decimal,
) -> None:
    book = _book(VERSIONED)
    conn = store.connect(tmp_path_factory.mktemp("db") / "g.sqlite3")
    a = datetime(2026, 7, 1, 12, tzinfo=UTC) + timedelta(seconds=start)
    c = a + timedelta(seconds=length)
    b = a + timedelta(seconds=int(length * cut))
    left_q = rate * int((b - a).total_seconds())
    with transaction(conn):
        book.charge(conn, "a", W, before, a, a)  # usage earlier in the month
        whole = book.quote("a", W, rate * length, a, c, conn=conn).cost
        left = book.charge(conn, "a", W, left_q, a, b).cost
        right = book.charge(conn, "a", W, rate * length - left_q, b, c).cost
    conn.close()
    assert whole == left + right


INVALID = [
    (
        "overlapping bands",
        TOU.replace('start: "07:00"', 'start: "05:00"'),
        "site.yaml:14: tariffs[0].prices.electricity.bands[1]: overlaps bands[0] "
        "(night) on mon between 05:00 and 06:00",
    ),
    (
        "band ending before it starts",
        TOU.replace('end: "06:00"', 'end: "00:00"'),
        "site.yaml:13: tariffs[0].prices.electricity.bands[0].end = '00:00': "
        "must be later than `start`",
    ),
    (
        "unquoted time",
        TOU.replace('end: "22:00"', "end: 22:00"),
        "site.yaml:17: tariffs[0].prices.electricity.bands[1].end = 1320: YAML "
        'read this time as the number 1320: put the time in quotes, e.g. "22:00"',
    ),
    (
        "blocks not increasing",
        VERSIONED.replace("up_to: 10,", "up_to: 4,"),
        "site.yaml:22: tariffs[0].versions[1].prices.water.blocks[1].up_to = '4': "
        "blocks must increase",
    ),
    (
        "unknown unit in a version",
        VERSIONED.replace("per: h}", "per: fortnight}"),
        "site.yaml:23: tariffs[0].versions[1].prices.operating_time.per = "
        "'fortnight': operating_time is measured in s, min, h",
    ),
    (
        "version time with an offset",
        VERSIONED.replace(
            "effective_at: 2026-04-01", "effective_at: 2026-04-01T00:00+02:00"
        ),
        "site.yaml:13: tariffs[0].versions[0].effective_at = '2026-04-01T00:00+02:00': "
        "write the local date-time without an offset",
    ),
    (
        "versions out of order",
        VERSIONED.replace('"2026-07-01 12:00"', "2026-03-01"),
        "site.yaml:17: tariffs[0].versions[1].effective_at = '2026-03-01 00:00:00': "
        "must be later than versions[0].effective_at",
    ),
]


@pytest.mark.parametrize(("name", "tariffs", "expected"), INVALID)
def test_bad_tariffs_name_file_line_and_key(
    name: str, tariffs: str, expected: str
) -> None:
    lines = _errors(tariffs)
    assert any(line.startswith(expected) for line in lines), (name, lines)
