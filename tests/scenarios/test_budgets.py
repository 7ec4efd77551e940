"""Budgets over months with a controllable clock: a monthly grant with a rollover
cap across a gateway outage over the month boundary (granted once), forfeits,
pro-rating, sub-budgets per medium, and a tenancy change."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from gateway import accounts, budgets, housekeeping, ledger, store, tenancy
from gateway.billing import process_reading
from gateway.clock import ManualClock
from gateway.config import parse_config
from gateway.ledger import EntryKind, NewEntry
from gateway.model import Reading
from gateway.money import Money
from gateway.site import SitePlan
from gateway.store import transaction

SITE = """
site: {{id: budget-house, currency: EUR, timezone: Europe/Berlin}}
state_dir: state
buses:
  - {{id: mbus1, kind: mbus, port: /dev/null}}
meters:
  - {{id: m-elec, bus: mbus1, address: 1, medium: electricity, account: flat1}}
  - {{id: m-water, bus: mbus1, address: 2, medium: water, account: flat1}}
accounts:
  - {{id: flat1, name: Flat 1}}
  - {{id: flat2, name: Flat 2}}
tariffs:
  - id: standard
    prices:
      electricity: {{price: "0.3412", per: kWh}}
      water: {{price: "4.20", per: m3}}
budgets:
  - account: flat1
    period: month
    amount: "50.00"
    unused: {unused}
    {cap}
    media_caps: {{electricity: "5.00"}}
"""

EUR = "EUR"


def eur(text: str) -> Money:
    return Money.parse(text, EUR)


@dataclass
class House:
    conn: sqlite3.Connection
    site: SitePlan
    clock: ManualClock

    def at(self, moment: str) -> None:
        self.clock.set(datetime.fromisoformat(moment))

    def chore(self) -> None:
        """Run the budget chore as the daemon does (at start and periodically)."""
        chores = {c.name: c for c in housekeeping.CHORES}
        chores["budgets"].run(self.conn, self.site, self.clock.now())

    def read(self, moment: str, kwh: str, meter: str = "m-elec") -> None:
        self.at(moment)
        unit = "kWh" if meter == "m-elec" else "m3"
        process_reading(
            self.conn,
            self.site,
            Reading(meter, Decimal(kwh), unit, self.clock.now(), "test"),
        )

    def topup(self, amount: str, ref: str) -> None:
        with transaction(self.conn):
            ledger.post(
                self.conn,
                NewEntry(
                    f"topup:admin:{ref}",
                    "flat1",
                    EntryKind.TOPUP,
                    eur(amount),
                    "cli",
                    self.clock.now(),
                    ref=ref,
                ),
            )

    def balance(self, account: str = "flat1") -> Money:
        return ledger.balance(self.conn, account)


def house(tmp_path: Path, unused: str, cap: str | None) -> House:
    text = SITE.format(
        unused=unused, cap="" if cap is None else f'rollover_cap: "{cap}"'
    )
    config = parse_config(text, tmp_path / "site.yaml")
    conn = store.connect(tmp_path / "gateway.sqlite3")
    clock = ManualClock(datetime(2026, 1, 10, 9, 0, tzinfo=UTC))
    site = SitePlan(config)
    with transaction(conn):
        accounts.sync_from_config(conn, site, clock.now())
    return House(conn, site, clock)


# Jan: moved in on 10 Jan, so 22 of 31 days: 50.00 x 22 / 31 = 35.4838... ->
# 35.48. 10 kWh at 0.3412 = 3.412 -> 3.41 spent. Balance at the end of
# January: 35.48 - 3.41 (+ a top-up where given).
@pytest.mark.parametrize(
    ("unused", "cap", "topup", "end_jan", "forfeit_jan", "after_feb", "after_mar"),
    [
        # Up to 20.00 of the 32.07 left rolls over; 12.07 is forfeited.
        # Feb's budget is 50 + 20 = 70, all unused: 20 rolls again, 50 go.
        ("rollover", "20.00", None, "32.07", "12.07", "70.00", "70.00"),
        # Everything unused is forfeited at each end.
        ("forfeit", None, None, "32.07", "32.07", "50.00", "50.00"),
        # No cap: all of it rolls over, nothing is ever forfeited.
        ("rollover", None, None, "32.07", None, "82.07", "132.07"),
        # A 30.00 top-up is the resident's money and is never forfeited:
        # unused budget is at most the budget (35.48), of which 20 roll over.
        ("rollover", "20.00", "30.00", "62.07", "15.48", "96.59", "96.59"),
    ],
)
def test_monthly_budget_across_an_outage_over_the_month_boundary(
    tmp_path: Path,
    unused: str,
    cap: str | None,
    topup: str | None,
    end_jan: str,
    forfeit_jan: str | None,
    after_feb: str,
    after_mar: str,
) -> None:
    h = house(tmp_path, unused, cap)
    h.chore()
    assert h.balance() == eur("35.48")
    h.chore()  # again the same day: nothing more
    assert h.balance() == eur("35.48")

    h.read("2026-01-15T09:00:00+00:00", "1000")
    h.read("2026-01-20T09:00:00+00:00", "1010")
    if topup:
        h.topup(topup, "R-1")
    h.at("2026-01-30T12:00:00+00:00")
    h.chore()
    assert h.balance() == eur(end_jan)

    # The gateway is down from 30 January to 3 February. A reading taken
    # after the restart, before the chore, is February's and does not
    # change January's unused budget.
    h.read("2026-02-03T07:59:00+00:00", "1010")
    h.at("2026-02-03T08:00:00+00:00")
    h.chore()
    h.chore()
    h.at("2026-02-03T08:10:00+00:00")
    h.chore()
    assert h.balance() == eur(after_feb)

    grants = h.conn.execute(
        "SELECT id, amount_minor FROM ledger_entries WHERE source = 'budget' "
        "AND kind = 'topup' ORDER BY seq"
    ).fetchall()
    assert [tuple(g) for g in grants] == [
        ("budget:flat1:2026-01-01", 3548),
        ("budget:flat1:2026-02-01", 5000),
    ]
    forfeits = h.conn.execute(
        "SELECT amount_minor FROM ledger_entries WHERE kind = 'adjustment' "
        "AND source = 'budget'"
    ).fetchall()
    expected = [] if forfeit_jan is None else [-eur(forfeit_jan).minor]
    assert [f[0] for f in forfeits] == expected

    # Nobody runs the chore in February; on 2 March it closes February
    # and grants March, once.
    h.at("2026-03-02T10:00:00+00:00")
    h.chore()
    h.chore()
    assert h.balance() == eur(after_mar)
    assert ledger.recomputed_balance(h.conn, "flat1") == h.balance()
    assert h.balance("flat2") == eur("0.00"), "flat2 has no budget"


def test_the_month_starts_at_local_midnight(tmp_path: Path) -> None:
    h = house(tmp_path, "forfeit", None)
    h.chore()
    # 31 January 23:30 UTC is already 1 February 00:30 in Berlin.
    h.at("2026-01-31T22:59:00+00:00")
    h.chore()
    assert budgets.period_of(date(2026, 1, 31), "month").end == date(2026, 2, 1)
    assert h.balance() == eur("35.48"), "still January in Berlin"
    h.at("2026-01-31T23:00:00+00:00")
    h.chore()
    assert h.balance() == eur("50.00"), "January forfeited, February granted"


@pytest.mark.parametrize(
    ("amount", "period", "moved_in", "kind", "expected"),
    [
        ("50.00", date(2026, 1, 1), date(2026, 1, 10), "month", "35.48"),
        ("50.00", date(2026, 2, 1), date(2026, 2, 15), "month", "25.00"),
        ("50.00", date(2026, 2, 1), date(2026, 1, 20), "month", "50.00"),
        ("0.10", date(2026, 1, 1), date(2026, 1, 31), "month", "0.00"),
        # 1 July to 31 December is 184 of 365 days: 302.4657... -> 302.47.
        ("600.00", date(2026, 1, 1), date(2026, 7, 1), "year", "302.47"),
    ],
)
def test_pro_rating_is_exact_and_rounded_once(
    amount: str, period: date, moved_in: date, kind: str, expected: str
) -> None:
    span = budgets.period_of(period, kind)
    assert budgets.prorated(eur(amount), span, moved_in) == eur(expected)


def test_a_medium_sub_budget_cuts_that_medium_only(tmp_path: Path) -> None:
    h = house(tmp_path, "rollover", None)
    h.chore()
    h.read("2026-01-11T09:00:00+00:00", "1000")
    h.read("2026-01-11T09:00:00+00:00", "0", meter="m-water")
    h.read("2026-01-12T09:00:00+00:00", "1010")  # 3.41 of the 5.00 cap
    stamp = h.clock.now()
    assert not budgets.medium_exhausted(h.conn, "flat1", "electricity", stamp)
    h.read("2026-01-13T09:00:00+00:00", "1015")  # 1.71 more: 5.12 >= 5.00
    stamp = h.clock.now()
    assert budgets.medium_exhausted(h.conn, "flat1", "electricity", stamp)
    assert not budgets.medium_exhausted(h.conn, "flat1", "water", stamp)
    [sub] = budgets.sub_budgets(h.conn, "flat1", stamp)
    assert (sub.spent, sub.cap) == (eur("5.12"), eur("5.00"))
    # A new month, a new sub-budget.
    h.at("2026-02-01T09:00:00+00:00")
    assert not budgets.medium_exhausted(h.conn, "flat1", "electricity", h.clock.now())


def test_move_out_keeps_the_debt_and_the_next_resident_starts_at_the_meter(
    tmp_path: Path,
) -> None:
    h = house(tmp_path, "rollover", None)
    h.read("2026-01-11T09:00:00+00:00", "1000")
    h.read("2026-01-12T09:00:00+00:00", "1100")  # 34.12 of debt
    h.at("2026-01-12T10:00:00+00:00")
    snap = tenancy.move_out(h.conn, "flat1", h.clock.now())
    assert snap.balance == eur("-34.12")
    assert {(r["meter_id"], r["value"]) for r in snap.readings} == {("m-elec", "1100")}
    with pytest.raises(tenancy.TenancyError, match="already closed"):
        tenancy.move_out(h.conn, "flat1", h.clock.now())

    # Vacant: readings advance the meter but bill nobody, and no budget.
    h.read("2026-01-13T09:00:00+00:00", "1105")
    h.at("2026-02-02T09:00:00+00:00")
    h.chore()
    assert h.balance() == eur("-34.12"), "the debt stays with the resident"

    # The installer assigns the meter to the new resident's account.
    text = SITE.format(unused="rollover", cap="").replace(
        "m-elec, bus: mbus1, address: 1, medium: electricity, account: flat1",
        "m-elec, bus: mbus1, address: 1, medium: electricity, account: flat2",
    )
    h.site = SitePlan(parse_config(text, tmp_path / "site.yaml"))
    h.read("2026-02-03T09:00:00+00:00", "1110")  # 5 kWh since the last reading
    assert h.balance("flat2") == eur("-1.71")
    assert h.balance() == eur("-34.12")


@pytest.mark.parametrize(
    ("budget", "expected"),
    [
        ("{account: flat9, amount: '5.00'}", "budgets[0].account = 'flat9': no such"),
        ("{account: flat1, amount: '5.001'}", "budgets[0].amount"),
        (
            "{account: flat1, media_caps: {gas_station: '1.00'}}",
            "budgets[0].media_caps.gas_station = 'gas_station': unknown medium",
        ),
        ("{account: flat1, unused: keep}", "budgets[0].unused"),
    ],
)
def test_a_bad_budget_names_the_key(tmp_path: Path, budget: str, expected: str) -> None:
    from gateway.config import ConfigError

    text = SITE.format(unused="forfeit", cap="").split("budgets:")[0]
    text += f"budgets:\n  - {budget}\n"
    with pytest.raises(ConfigError) as err:
        parse_config(text, tmp_path / "site.yaml")
    assert expected in str(err.value)
    assert "site.yaml:" in str(err.value)


def test_a_first_grant_booked_late_still_rolls_over_as_if_on_time(
    tmp_path: Path,
) -> None:
    # The gateway first runs its budget chore in February: January's
    # pro-rated grant (35.48) and February's are both booked late. January's
    # unused budget is judged as at its end: 20.00 rolls over, 15.48 goes.
    h = house(tmp_path, "rollover", "20.00")
    h.at("2026-02-03T09:00:00+00:00")
    h.chore()
    assert h.balance() == eur("35.48") - eur("15.48") + eur("50.00")
    forfeit = ledger.get_entry(h.conn, "budget-forfeit:flat1:2026-01-01")
    assert forfeit is not None and forfeit.amount == -eur("15.48")
