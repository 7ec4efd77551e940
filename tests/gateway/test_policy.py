"""Policy decisions, friendly-hour calendars, credit configuration and the
water lifeline, each against real values (and a real SQLite file where the
rule reads the database)."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from gateway import accounts, store
from gateway.actuators import desired_command
from gateway.billing import process_reading
from gateway.clock import ManualClock
from gateway.config import ConfigError, parse_config
from gateway.config.credit import FriendlyHours
from gateway.friendly import FriendlyCalendar
from gateway.model import Reading
from gateway.money import Money
from gateway.policy import Moment, Rules, SupplyState, decide, topup_refusal
from gateway.site import SitePlan
from gateway.store import transaction
from tests.conftest import SITE_YAML

BERLIN = ZoneInfo("Europe/Berlin")


def eur(text: str) -> Money:
    return Money.parse(text, "EUR")


RULES = Rules(eur("5.00"), eur("10.00"), unsynced_floor=eur("20.00"))

# balance, previous state, the moment, expected state
DECISIONS = [
    ("12.00", "ok", Moment(), "ok"),
    ("10.00", "ok", Moment(), "low"),
    ("-4.99", "low", Moment(), "low"),
    ("-5.00", "low", Moment(), "cut_off"),
    ("-5.00", "low", Moment(friendly="weekly window sat"), "pending_cut_off"),
    ("-9.00", "pending_cut_off", Moment(friendly="x"), "pending_cut_off"),
    ("-9.00", "pending_cut_off", Moment(), "cut_off"),
    # Already cut off: friendly hours do not reconnect.
    ("-9.00", "cut_off", Moment(friendly="x"), "cut_off"),
    ("-5.00", "low", Moment(clock_trusted=False), "pending_cut_off"),
    ("-24.99", "low", Moment(clock_trusted=False), "pending_cut_off"),
    ("-25.00", "low", Moment(clock_trusted=False), "cut_off"),
    ("-25.00", "pending_cut_off", Moment(clock_trusted=False), "cut_off"),
    # A top-up that lifts a pending account above the line: low, supply on.
    ("1.00", "pending_cut_off", Moment(), "low"),
    ("1.00", "cut_off", Moment(), "low"),
]


@pytest.mark.parametrize(("balance", "previous", "moment", "expected"), DECISIONS)
def test_decide(balance: str, previous: str, moment: Moment, expected: str) -> None:
    decision = decide(eur(balance), RULES, SupplyState(previous), moment)
    assert decision.state == SupplyState(expected)
    assert decision.supply_on == (expected != "cut_off")
    assert balance.lstrip("-") in decision.reason


def test_topup_refusal_names_the_room_left() -> None:
    rules = Rules(eur("0"), eur("0"), max_balance=eur("50.00"))
    assert topup_refusal(eur("50.00"), rules, eur("10.00")) is None
    reason = topup_refusal(eur("55.00"), rules, eur("15.00"))
    assert reason is not None
    assert "maximum balance 50.00 EUR" in reason and "at most 10.00 EUR" in reason


NIGHTS = FriendlyHours.model_validate(
    {
        "windows": [
            {"days": ["fri"], "start": "18:00", "end": "08:00"},
            {"days": ["sun"]},
        ],
        "public_holidays": {"country": "DE", "subdivision": "BY"},
    }
)

# local time, inside friendly hours?
CALENDAR = [
    ("2026-03-13 17:59", False),  # Friday before the window
    ("2026-03-13 18:00", True),
    ("2026-03-14 07:59", True),  # Saturday morning, the window opened Friday
    ("2026-03-14 08:00", False),
    ("2026-03-15 00:00", True),  # Sunday, all day
    ("2026-03-15 23:59", True),
    ("2026-03-16 00:00", False),
    ("2026-01-06 12:00", True),  # Epiphany, a Bavarian holiday
    ("2026-06-04 09:00", True),  # Corpus Christi, in Bavaria
    ("2026-10-31 09:00", False),  # Reformation Day: not in Bavaria
    ("2026-03-29 02:30", True),  # Sunday of the spring change, all day
]


@pytest.mark.parametrize(("local", "friendly"), CALENDAR)
def test_friendly_calendar(local: str, friendly: bool) -> None:
    calendar = FriendlyCalendar(BERLIN, NIGHTS)
    at = datetime.fromisoformat(local).replace(tzinfo=BERLIN).astimezone(UTC)
    assert (calendar.reason_at(at) is not None) == friendly


def test_friendly_window_end_is_found_to_the_minute() -> None:
    calendar = FriendlyCalendar(BERLIN, NIGHTS)
    start = datetime(2026, 3, 13, 22, 7, tzinfo=BERLIN)
    end = calendar.next_end(start)
    assert end is not None
    assert end.astimezone(BERLIN) == datetime(2026, 3, 14, 8, 0, tzinfo=BERLIN)


BAD_CREDIT = [
    (
        "credit: {friendly_hours: {public_holidays: {country: DE, subdivision: XX}}}",
        "DE has no subdivision 'XX'",
    ),
    (
        "credit: {friendly_hours: {windows: [{days: [sat], start: '25:00'}]}}",
        "is not a local time",
    ),
    (
        "credit: {defaults: {max_balance: '10.001'}}",
        "credit.defaults.max_balance = Decimal('10.001'): EUR has 2 decimal places",
    ),
]


@pytest.mark.parametrize(("extra", "message"), BAD_CREDIT)
def test_bad_credit_config_names_the_key(
    tmp_path: Path, extra: str, message: str
) -> None:
    with pytest.raises(ConfigError) as err:
        parse_config(SITE_YAML + extra + "\n", tmp_path / "site.yaml")
    assert message in str(err.value)


def test_bad_contact_is_reported_without_its_secret(tmp_path: Path) -> None:
    text = SITE_YAML.replace(
        'low_balance: "10.00"}',
        'low_balance: "10.00", contact: ["nosuch://user:Hunter2pw@host/x", '
        '"flat1@example.org"]}',
    )
    with pytest.raises(ConfigError) as err:
        parse_config(text, tmp_path / "site.yaml")
    problems = str(err.value)
    assert "accounts[0].contact[0]: contact is not an apprise URL" in problems
    assert "accounts[0].contact[1]: contact is an e-mail address" in problems
    assert "Hunter2pw" not in problems


LIFELINE_SITE = """
site: {id: water-house, currency: EUR, timezone: Europe/Berlin}
state_dir: state
buses:
  - {id: mbus1, kind: mbus, port: /dev/null}
  - {id: rs485, kind: modbus, port: /dev/null}
meters:
  - {id: m-water, bus: mbus1, address: 2, medium: water, account: flat1}
units:
  - {id: u-water, bus: rs485, address: 12, kind: valve, meters: [m-water]}
accounts:
  - id: flat1
    name: Flat 1
    credit: {lifeline_litres_per_day: "50"}
tariffs:
  - id: standard
    prices:
      water: {price: "4.00", per: m3}
"""


def test_water_lifeline_keeps_the_valve_open_for_the_daily_litres(
    tmp_path: Path,
) -> None:
    config = parse_config(LIFELINE_SITE, tmp_path / "site.yaml")
    site = SitePlan(config)
    conn: sqlite3.Connection = store.connect(tmp_path / "g.sqlite3")
    clock = ManualClock(datetime(2026, 5, 6, 8, 0, tzinfo=BERLIN))
    with transaction(conn):
        accounts.sync_from_config(conn, site, clock.now())
    unit = site.units["u-water"]

    def read(m3: str) -> None:
        clock.advance(timedelta(hours=1))
        process_reading(
            conn, site, Reading("m-water", Decimal(m3), "m3", clock.now(), "t")
        )

    read("100.000")  # no credit at all: cut off at the first reading
    assert accounts.state_of(conn, "flat1") == SupplyState.CUT_OFF
    command = desired_command(conn, site, unit, clock.now())
    assert command.supply_on is True
    assert command.allowance == Decimal("0.050")

    read("100.010")  # 10 litres of lifeline drawn, billed as debt
    command = desired_command(conn, site, unit, clock.now())
    assert command.allowance == Decimal("0.040")
    read("100.030")
    command = desired_command(conn, site, unit, clock.now())
    assert command.allowance == Decimal("0.020")
    read("100.080")  # the whole lifeline and more: the valve closes
    command = desired_command(conn, site, unit, clock.now())
    assert command.supply_on is False and command.allowance == Decimal("0.000")
    balance = conn.execute("SELECT balance_minor FROM balances").fetchone()[0]
    assert balance == -32  # 80 litres at 4.00 EUR a m3

    # The next local day brings a new lifeline.
    clock.set(datetime(2026, 5, 7, 0, 5, tzinfo=BERLIN))
    command = desired_command(conn, site, unit, clock.now())
    assert command.supply_on is True and command.allowance == Decimal("0.050")


@pytest.mark.parametrize(
    ("balance", "state"),
    [
        ("-1.00", "cut_off"),
        ("-0.50", "cut_off"),
        ("-0.01", "cut_off"),
        ("0.00", "low"),
        ("5.00", "ok"),
    ],
)
def test_a_cut_off_supply_comes_back_only_past_the_reconnect_margin(
    balance: str, state: str
) -> None:
    from gateway.money import Money
    from gateway.policy import Rules, SupplyState, decide

    rules = Rules(
        Money(100, "EUR"), Money(200, "EUR"), reconnect_margin=Money(100, "EUR")
    )  # cut off at -1.00, back from 0.00
    decision = decide(Money.parse(balance, "EUR"), rules, SupplyState.CUT_OFF)
    assert decision.state.value == state
    if state == "cut_off" and balance != "-1.00":
        assert "top up at least" in decision.reason
    # Without a cut-off to come back from, the margin changes nothing.
    assert decide(Money.parse("-0.50", "EUR"), rules, SupplyState.OK).state == (
        SupplyState.LOW
    )
