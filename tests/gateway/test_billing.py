"""The billing step: exact debits, integrity verdicts, decisions, one transaction."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway import accounts, ledger, store
from gateway.billing import process_reading
from gateway.clock import ManualClock
from gateway.config import Config
from gateway.ledger import EntryKind, NewEntry
from gateway.model import Reading
from gateway.money import Money
from gateway.policy import SupplyState
from gateway.readings import Verdict
from gateway.site import SitePlan
from gateway.store import transaction

PRICE = Decimal("0.3412")  # EUR per kWh in tests/conftest.py


def _site(conn: sqlite3.Connection, config: Config, clock: ManualClock) -> SitePlan:
    plan = SitePlan(config)
    with transaction(conn):
        accounts.sync_from_config(conn, plan, clock.now())
    return plan


def _read(
    conn: sqlite3.Connection,
    site: SitePlan,
    clock: ManualClock,
    value: str | Decimal,
    meter: str = "m-elec",
    unit: str = "kWh",
):  # type: ignore[no-untyped-def]
    clock.advance(timedelta(hours=1))
    return process_reading(
        conn, site, Reading(meter, Decimal(value), unit, clock.now(), "test")
    )


def _debited(conn: sqlite3.Connection) -> int:
    row = conn.execute(
        "SELECT COALESCE(SUM(amount_minor), 0) FROM ledger_entries "
        "WHERE kind = 'consumption'"
    ).fetchone()
    return -int(row[0])


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    steps=st.lists(
        st.decimals(min_value=0, max_value=Decimal("0.5"), places=3), max_size=40
    ),
    start=st.decimals(min_value=0, max_value=Decimal(90000), places=3),
)
def test_debits_sum_to_price_times_movement_rounded_once(
    tmp_path_factory: pytest.TempPathFactory,
    config: Config,
    steps: list[Decimal],
    start: Decimal,
) -> None:
    conn = store.connect(tmp_path_factory.mktemp("db") / "g.sqlite3")
    clock = ManualClock(datetime(2026, 1, 1, tzinfo=UTC))
    site = _site(conn, config, clock)
    value = start
    _read(conn, site, clock, value)
    for step in steps:
        value += step
        _read(conn, site, clock, value)

    expected = Money.round_major(PRICE * (value - start), "EUR")
    assert _debited(conn) == expected.minor
    assert ledger.balance(conn, "flat1") == ledger.recomputed_balance(conn, "flat1")
    conn.close()


def test_thousand_small_readings_carry_sub_cent_remainders(
    conn: sqlite3.Connection, config: Config, clock: ManualClock
) -> None:
    site = _site(conn, config, clock)
    value = Decimal("100")
    _read(conn, site, clock, value)
    for _ in range(1000):
        value += Decimal("0.001")  # 0.03412 cents each: nothing, if rounded each time
        _read(conn, site, clock, value)
    assert _debited(conn) == 34  # 1 kWh x 0.3412 EUR = 34.12 cents, rounded once
    # Every entry states the quantity since the previous one, so the entries
    # add up to what the meter measured, up to the last entry.
    quantities = [
        Decimal(q)
        for (q,) in conn.execute(
            "SELECT quantity FROM ledger_entries WHERE kind = 'consumption'"
        )
    ]
    booked = conn.execute(
        "SELECT quantity_booked, quantity_total FROM meter_state"
    ).fetchone()
    assert sum(quantities, Decimal(0)) == Decimal(booked["quantity_booked"])
    assert Decimal(booked["quantity_total"]) == Decimal(1)
    assert Decimal(1) - Decimal(booked["quantity_booked"]) < Decimal("0.03")


def test_repeated_value_debits_nothing(
    conn: sqlite3.Connection, config: Config, clock: ManualClock
) -> None:
    site = _site(conn, config, clock)
    _read(conn, site, clock, "10")
    _read(conn, site, clock, "11")
    outcome = _read(conn, site, clock, "11")
    assert outcome.verdict == Verdict.REPEAT
    assert outcome.debit is None
    assert _debited(conn) == 34


def test_backwards_value_debits_nothing_and_raises_an_alarm(
    conn: sqlite3.Connection, config: Config, clock: ManualClock
) -> None:
    site = _site(conn, config, clock)
    _read(conn, site, clock, "500")
    outcome = _read(conn, site, clock, "400")
    assert outcome.verdict == Verdict.BACKWARDS
    assert _debited(conn) == 0
    alarm = conn.execute("SELECT * FROM alarms WHERE subject = 'm-elec'").fetchone()
    assert alarm["kind"] == "backwards"
    # The old baseline holds: a return to normal bills only the real step.
    _read(conn, site, clock, "501")
    assert _debited(conn) == 34
    assert (
        conn.execute(
            "SELECT cleared_at FROM alarms WHERE id = ?", (alarm["id"],)
        ).fetchone()["cleared_at"]
        is not None
    )


def test_rollover_debits_the_wrapped_delta(
    conn: sqlite3.Connection, config: Config, clock: ManualClock
) -> None:
    site = _site(conn, config, clock)  # 8-digit register: wraps at 100000000
    _read(conn, site, clock, "99999999.5")
    outcome = _read(conn, site, clock, "0.5")
    assert outcome.verdict == Verdict.ROLLOVER
    assert outcome.consumption == Decimal(1)
    assert _debited(conn) == 34


def test_implausible_jump_is_quarantined_then_rebaselined_unbilled(
    conn: sqlite3.Connection, config: Config, clock: ManualClock
) -> None:
    site = _site(conn, config, clock)
    _read(conn, site, clock, "100")
    verdicts = [_read(conn, site, clock, v).verdict for v in ("5100", "5100", "5100")]
    assert verdicts == [Verdict.QUARANTINED, Verdict.QUARANTINED, Verdict.REBASELINED]
    assert _debited(conn) == 0
    assert _read(conn, site, clock, "5101").consumption == Decimal(1)
    assert _debited(conn) == 34
    kinds = {r["kind"] for r in conn.execute("SELECT kind FROM alarms")}
    assert "quarantined" in kinds


def test_units_are_converted_before_billing(
    conn: sqlite3.Connection, config: Config, clock: ManualClock
) -> None:
    site = _site(conn, config, clock)
    _read(conn, site, clock, "1000", unit="Wh")
    _read(conn, site, clock, "3000", unit="Wh")
    assert _debited(conn) == 68  # 2 kWh


def test_cut_off_at_credit_line_and_reconnect_on_topup(
    conn: sqlite3.Connection, config: Config, clock: ManualClock
) -> None:
    site = _site(conn, config, clock)  # credit line 5.00, low warning 10.00
    with transaction(conn):
        ledger.post(
            conn,
            NewEntry(
                "topup:t1",
                "flat1",
                EntryKind.TOPUP,
                Money(1200, "EUR"),
                "test",
                clock.now(),
            ),
        )
        accounts.evaluate(conn, "flat1", clock.now())
    _read(conn, site, clock, "0")
    low = _read(conn, site, clock, "10")  # -3.41 -> 8.59: low
    assert low.decision is not None and low.decision.state == SupplyState.LOW
    again = _read(conn, site, clock, "11")
    assert again.decision is None  # warned once per crossing
    cut = _read(conn, site, clock, "60")  # far below -5.00
    assert cut.decision is not None and cut.decision.state == SupplyState.CUT_OFF

    with transaction(conn):
        ledger.post(
            conn,
            NewEntry(
                "topup:t2",
                "flat1",
                EntryKind.TOPUP,
                Money(5000, "EUR"),
                "test",
                clock.now(),
            ),
        )
        back = accounts.evaluate(conn, "flat1", clock.now())
    assert back is not None and back.supply_on
    states = [
        r["state"] for r in conn.execute("SELECT state FROM decisions ORDER BY id")
    ]
    assert states == ["ok", "low", "cut_off", "ok"][-len(states) :]


def test_a_failed_transaction_leaves_no_trace(
    tmp_path: Path, config: Config, clock: ManualClock
) -> None:
    conn = store.connect(tmp_path / "g.sqlite3")
    site = _site(conn, config, clock)
    _read(conn, site, clock, "1")
    conn.execute("DROP TABLE decisions")  # the last step of the transaction fails
    with pytest.raises(sqlite3.OperationalError):
        _read(conn, site, clock, "50")
    assert _debited(conn) == 0
    assert conn.execute("SELECT COUNT(*) FROM readings").fetchone()[0] == 1
    assert (
        conn.execute("SELECT last_value FROM meter_state").fetchone()["last_value"]
        == "1"
    )


def test_standing_charges_stop_on_the_day_an_account_closes(
    conn: sqlite3.Connection, config: Config, clock: ManualClock
) -> None:
    from gateway import standing

    site = _site(conn, config, clock)  # created 2026-03-01 08:00 UTC
    clock.advance(timedelta(days=2))
    with transaction(conn):
        conn.execute(
            "UPDATE accounts SET closed_at = ? WHERE id = 'flat1'", (clock.now().iso(),)
        )
    clock.advance(timedelta(days=10))
    assert standing.accrue(conn, site, clock.now()) == 3  # 1, 2 and 3 March
    assert standing.accrue(conn, site, clock.now()) == 0
    assert ledger.balance(conn, "flat1") == Money(-75, "EUR")
