"""Reports and history over months: totals equal the ledger's, top-ups split
by channel (cloud, administrator, budget), cut-offs with their durations,
month buckets, the forecast, and `prepaidgw report` / `history` output."""

from __future__ import annotations

import csv
import io
import json
import sqlite3
import subprocess
import sys
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from gateway import accounts, budgets, forecast, ledger, reports, store
from gateway.billing import process_reading
from gateway.clock import ManualClock
from gateway.config import Config, parse_config
from gateway.history import history
from gateway.ledger import EntryKind, NewEntry
from gateway.model import Reading
from gateway.money import Money
from gateway.site import SitePlan
from gateway.store import transaction
from tests.conftest import SITE_YAML

BERLIN = ZoneInfo("Europe/Berlin")
YAML = (
    SITE_YAML
    + """
budgets:
  - {account: flat1, period: month, amount: "20.00", unused: forfeit}
"""
)


def eur(text: str) -> Money:
    return Money.parse(text, "EUR")


def topup(
    conn: sqlite3.Connection, clock: ManualClock, amount: str, source: str, ref: str
) -> None:
    with transaction(conn):
        ledger.post(
            conn,
            NewEntry(
                f"topup:{source}:{ref}",
                "flat1",
                EntryKind.TOPUP,
                eur(amount),
                source,
                clock.now(),
                ref=ref,
            ),
        )
        accounts.evaluate(conn, "flat1", clock.now())


@pytest.fixture
def building(tmp_path: Path) -> tuple[sqlite3.Connection, SitePlan, ManualClock]:
    """Three months of a flat: budgets, top-ups by channel, readings, a cut-off."""
    config: Config = parse_config(YAML, tmp_path / "site.yaml")
    conn = store.connect(config.state_dir / "gateway.sqlite3")
    clock = ManualClock(datetime(2026, 1, 1, 8, 0, tzinfo=UTC))
    site = SitePlan(config)
    with transaction(conn):
        accounts.sync_from_config(conn, site, clock.now())
    value = Decimal(1000)

    def read(kwh: int) -> None:
        nonlocal value
        value += kwh
        process_reading(
            conn, site, Reading("m-elec", value, "kWh", clock.now(), "test")
        )

    read(0)
    for month in (1, 2, 3):
        clock.set(datetime(2026, month, 2, 8, 0, tzinfo=UTC))
        budgets.grant_due(conn, site, clock.now())
        topup(conn, clock, "10.00", "cloud", f"c{month}")
        topup(conn, clock, "5.00", "cli", f"a{month}")
        for day in range(3, 28, 3):
            clock.set(datetime(2026, month, day, 20, 0, tzinfo=UTC))
            read(3 * month)  # more each month: the trend rises
    # Run dry in late March: a cut-off from the 28th, reconnected on the 29th.
    clock.set(datetime(2026, 3, 28, 12, 0, tzinfo=UTC))
    read(150)
    clock.set(datetime(2026, 3, 29, 18, 30, tzinfo=UTC))
    topup(conn, clock, "200.00", "cli", "a-rescue")
    return conn, site, clock


def span(bucket: str = "month") -> reports.Span:
    return reports.Span(
        budgets.local_midnight_utc(date(2026, 1, 1), BERLIN),
        budgets.local_midnight_utc(date(2026, 4, 1), BERLIN),
        bucket,  # type: ignore[arg-type]
        BERLIN,
        "EUR",
    )


def ledger_sum(conn: sqlite3.Connection, where: str) -> Money:
    row = conn.execute(
        f"SELECT COALESCE(SUM(amount_minor), 0) FROM ledger_entries WHERE {where}"
    ).fetchone()
    return Money(int(row[0]), "EUR")


@pytest.mark.parametrize("bucket", ["day", "week", "month"])
def test_report_totals_equal_the_ledger(
    building: tuple[sqlite3.Connection, SitePlan, ManualClock], bucket: str
) -> None:
    conn, _, _ = building
    totals = reports.totals(conn, span(bucket))
    assert totals["topups"] == ledger_sum(conn, "kind = 'topup'")
    assert totals["topups_cloud"] == ledger_sum(conn, "source = 'cloud'")
    assert totals["topups_administrator"] == ledger_sum(
        conn, "kind = 'topup' AND source = 'cli'"
    )
    assert totals["topups_budget"] == ledger_sum(
        conn, "kind = 'topup' AND source = 'budget'"
    )
    assert totals["consumption"] == -ledger_sum(conn, "kind = 'consumption'")
    assert totals["standing_charges"] == -ledger_sum(conn, "kind = 'standing_charge'")
    # The report's periods add up to the same totals in every bucket size.
    sales = reports.topup_sales(conn, span(bucket))
    assert sum((r["amount"] for r in sales), eur("0")) == totals["topups"]


def test_top_up_sales_per_month_and_channel(
    building: tuple[sqlite3.Connection, SitePlan, ManualClock],
) -> None:
    conn, _, _ = building
    rows = [
        (r["period"], r["channel"], r["count"], r["amount"])
        for r in reports.topup_sales(conn, span())
    ]
    assert rows == [
        ("2026-01-01", "administrator", 1, eur("5.00")),
        ("2026-01-01", "budget", 1, eur("20.00")),
        ("2026-01-01", "cloud", 1, eur("10.00")),
        ("2026-02-01", "administrator", 1, eur("5.00")),
        ("2026-02-01", "budget", 1, eur("20.00")),
        ("2026-02-01", "cloud", 1, eur("10.00")),
        ("2026-03-01", "administrator", 2, eur("205.00")),
        ("2026-03-01", "budget", 1, eur("20.00")),
        ("2026-03-01", "cloud", 1, eur("10.00")),
    ]


def test_cut_offs_and_their_durations(
    building: tuple[sqlite3.Connection, SitePlan, ManualClock],
) -> None:
    conn, _, clock = building
    [cut] = reports.cut_offs(conn, span(), clock.now().at)
    assert cut.account_id == "flat1"
    assert cut.start == datetime(2026, 3, 28, 12, 0, tzinfo=UTC)
    assert cut.end == datetime(2026, 3, 29, 18, 30, tzinfo=UTC)
    assert cut.seconds == int(timedelta(hours=30, minutes=30).total_seconds())


def test_history_per_month_and_the_forecast(
    building: tuple[sqlite3.Connection, SitePlan, ManualClock],
) -> None:
    conn, _, clock = building
    months = history(
        conn,
        "flat1",
        zone=BERLIN,
        since=span().since,
        bucket="month",
        currency="EUR",
    )
    # 9 readings a month of 3, 6 and 9 kWh; March adds the 150 kWh spree.
    assert [(p.start.month, p.quantity) for p in months] == [
        (1, Decimal(27)),
        (2, Decimal(54)),
        (3, Decimal(231)),
    ]
    assert sum((p.cost for p in months), eur("0")) == -ledger_sum(
        conn, "kind = 'consumption'"
    )
    clock.set(datetime(2026, 3, 30, 0, 0, tzinfo=UTC))
    outlook = forecast.forecast(conn, "flat1", clock.now(), window_days=7)
    assert outlook.days_left is not None and outlook.days_left > 0
    assert outlook.trend is not None and outlook.trend > 1, "spending rose"
    # days_left x daily cost spends the credit (to Decimal's precision).
    spent = outlook.days_left * outlook.daily_cost
    assert abs(spent - outlook.credit.major) < Decimal("1e-20")


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gateway", *args],
        capture_output=True,
        text=True,
        check=False,
    )


def test_report_and_history_commands_in_three_formats(
    building: tuple[sqlite3.Connection, SitePlan, ManualClock], tmp_path: Path
) -> None:
    conn, _, _ = building
    conn.close()
    conf = ("--config", str(tmp_path / "site.yaml"))
    (tmp_path / "site.yaml").write_text(YAML)
    when = ("--since", "2026-01-01", "--until", "2026-03-31")

    as_json = cli("report", *when, "--format", "json", *conf)
    assert as_json.returncode == 0, as_json.stderr
    data = json.loads(as_json.stdout)
    totals = {t["total"]: t["amount"]["minor"] for t in data["totals"]}
    assert totals["topups"] == 3 * 3500 + 20000
    assert [c["account"] for c in data["cut_offs"]] == ["flat1"]

    as_csv = cli("report", *when, "--format", "csv", *conf)
    assert as_csv.returncode == 0, as_csv.stderr
    assert "# topups\nperiod,channel,count,amount\n" in as_csv.stdout
    assert "2026-03-01,administrator,2,205.00 EUR" in as_csv.stdout

    table = cli("report", *when, *conf)
    assert table.returncode == 0 and "administrator" in table.stdout

    months = cli("history", "flat1", "--months", "12", "--format", "csv", *conf)
    assert months.returncode == 0, months.stderr
    rows = list(csv.reader(io.StringIO(months.stdout.split("\n\n")[0])))
    assert rows[1] == ["from", "medium", "quantity", "unit", "cost", "standing"]
    assert [r[0] for r in rows[2:]] == ["2026-01-01", "2026-02-01", "2026-03-01"]

    bad = cli("report", "--format", "xml", *conf)
    assert bad.returncode == 2 and "use table, csv or json" in bad.stderr
