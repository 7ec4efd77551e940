"""Credit rules over months with a controllable clock: friendly hours on a
weekend and a public holiday, emergency credit repaid first, the maximum
balance, and warnings that fire once per crossing; balances to the cent."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from gateway import accounts, emergency, housekeeping, ledger, store
from gateway.billing import process_reading
from gateway.clock import ManualClock
from gateway.config import parse_config
from gateway.ledger import EntryKind, NewEntry, Posted
from gateway.model import Reading
from gateway.money import Money
from gateway.policy import SupplyState
from gateway.site import SitePlan
from gateway.store import transaction

SITE = """
site: {{id: credit-house, currency: EUR, timezone: Europe/Berlin}}
state_dir: state
buses:
  - {{id: mbus1, kind: mbus, port: /dev/null}}
meters:
  - {{id: m-elec, bus: mbus1, address: 1, medium: electricity, account: flat6}}
accounts:
  - id: flat6
    name: Flat 6
    credit_line: "1.00"
    low_balance: "3.00"
    credit: {credit}
tariffs:
  - id: standard
    prices:
      electricity: {{price: "0.25", per: kWh}}
credit:
  friendly_hours:
    windows:
      - {{days: [sat, sun]}}
      - {{days: [sun, mon, tue, wed, thu], start: "20:00", end: "07:00"}}
    public_holidays: {{country: DE, subdivision: BY}}
"""

EUR = "EUR"


def eur(text: str) -> Money:
    return Money.parse(text, EUR)


def berlin(text: str) -> datetime:
    from zoneinfo import ZoneInfo

    return datetime.fromisoformat(text).replace(tzinfo=ZoneInfo("Europe/Berlin"))


@dataclass
class House:
    conn: sqlite3.Connection
    site: SitePlan
    clock: ManualClock
    kwh: Decimal = Decimal(0)

    def consume(self, kwh: str) -> None:
        """Advance the meter and bill the reading, as the poller would."""
        self.kwh += Decimal(kwh)
        process_reading(
            self.conn,
            self.site,
            Reading("m-elec", self.kwh, "kWh", self.clock.now(), "test"),
        )

    def chore(self) -> bool:
        """Run the credit-rules chore as the daemon does every minute."""
        chores = {c.name: c for c in housekeeping.CHORES}
        return chores["credit_rules"].run(self.conn, self.site, self.clock.now())

    def topup(self, amount: str, ref: str) -> Posted:
        """Top up the way the CLI does: post, credit rules, decision."""
        stamp = self.clock.now()
        with transaction(self.conn):
            posted = ledger.post(
                self.conn,
                NewEntry(
                    f"topup:admin:{ref}",
                    "flat6",
                    EntryKind.TOPUP,
                    eur(amount),
                    "cli",
                    stamp,
                    ref=ref,
                ),
            )
            accounts.accept_topup(self.conn, posted, stamp)
            accounts.evaluate(self.conn, "flat6", stamp)
        return posted

    @property
    def balance(self) -> Money:
        return ledger.balance(self.conn, "flat6")

    @property
    def state(self) -> SupplyState:
        return accounts.state_of(self.conn, "flat6")


def house(tmp_path: Path, start: datetime, credit: str = "{}") -> House:
    config = parse_config(SITE.format(credit=credit), tmp_path / "site.yaml")
    conn = store.connect(tmp_path / "gateway.sqlite3")
    clock = ManualClock(start)
    site = SitePlan(config)
    with transaction(conn):
        accounts.sync_from_config(conn, site, clock.now())
    h = House(conn, site, clock)
    h.consume("0")
    return h


# -- (2) friendly hours: a weekend and a public holiday -----------------------

# Each row: the local hour the credit runs out (balance reaches minus the
# credit line), and the local time the cut-off must happen: the end of the
# friendly window around it, or at once outside one.
FRIENDLY = [
    # Saturday noon: the weekend window ends Monday 07:00 (the weeknight
    # window from Sunday night runs on until then).
    ("weekend", "2026-01-03 12:00", "2026-01-05 07:00"),
    # Tuesday 6 January is Epiphany in Bavaria: the holiday lasts the local
    # day, the weeknight window then runs to Wednesday 07:00.
    ("epiphany", "2026-01-06 10:00", "2026-01-07 07:00"),
    # Friday 1 May (Labour Day) into a weekend: friendly until Monday 07:00.
    ("labour day", "2026-05-01 09:00", "2026-05-04 07:00"),
    # A plain Wednesday afternoon in March: no window, cut off at once.
    ("weekday", "2026-03-11 14:00", "2026-03-11 14:00"),
    # Weeknight window across the autumn daylight-saving change (25 Oct is
    # a Sunday; the window from Saturday runs to Monday 07:00 CET).
    ("dst night", "2026-10-24 23:00", "2026-10-26 07:00"),
]


@pytest.mark.parametrize(("name", "runs_out", "cut_at"), FRIENDLY)
def test_friendly_hours_postpone_cut_off_and_bill_the_debt(
    tmp_path: Path, name: str, runs_out: str, cut_at: str
) -> None:
    # 10.00 topped up, 1.00 credit line: 44 hourly readings of 1 kWh
    # (0.25 EUR) reach -1.00 at `runs_out`.
    end = berlin(runs_out)
    h = house(tmp_path, end - timedelta(hours=44))
    h.topup("10.00", "R1")
    hours_used = 0
    while True:
        h.clock.advance(timedelta(hours=1))
        if h.state != SupplyState.CUT_OFF:
            h.consume("1")
            hours_used += 1
        h.chore()
        if h.state == SupplyState.CUT_OFF:
            break
        assert h.clock.now().at <= berlin(cut_at), f"{name}: no cut-off by {cut_at}"
        if hours_used >= 44:
            assert h.state == SupplyState.PENDING_CUT_OFF, name

    decided = h.conn.execute(
        "SELECT decided_at FROM decisions WHERE account_id = 'flat6' "
        "AND state = 'cut_off'"
    ).fetchone()["decided_at"]
    assert datetime.fromisoformat(decided) == berlin(cut_at), name
    # Everything used in friendly hours was billed: the debt beyond the
    # credit line is 0.25 EUR for every hour after the credit ran out.
    extra_hours = hours_used - 44
    assert h.balance == eur("-1.00") - Money(25 * extra_hours, EUR), name
    assert ledger.recomputed_balance(h.conn, "flat6") == h.balance
    # Real hours, not wall-clock ones: a daylight-saving night has 25.
    expected = int((berlin(cut_at).astimezone(UTC) - end).total_seconds() // 3600)
    assert extra_hours == expected, name


def test_unsynced_clock_postpones_cut_off_until_synced_or_the_safety_floor(
    tmp_path: Path,
) -> None:
    h = house(tmp_path, berlin("2026-02-11 09:00"), "{}")
    h.topup("2.00", "R1")
    h.clock.is_synced = False
    for _ in range(12):  # 3.00 EUR used: balance -1.00, at the credit line
        h.clock.advance(timedelta(minutes=10))
        h.consume("1")
    assert h.state == SupplyState.PENDING_CUT_OFF
    assert h.balance == eur("-1.00")
    marked = h.conn.execute(
        "SELECT clock_synced FROM decisions ORDER BY id DESC LIMIT 1"
    ).fetchone()[0]
    assert marked == 0
    # A Wednesday morning outside any window: the cut-off comes with the sync.
    h.clock.is_synced = True
    h.clock.advance(timedelta(minutes=1))
    assert h.chore() is True
    assert h.state == SupplyState.CUT_OFF

    # The hard floor (20.00 beyond the credit line by default) cuts off even
    # while the clock cannot be trusted.
    g = house(tmp_path / "g", berlin("2026-02-11 09:00"), "{}")
    g.clock.is_synced = False
    g.clock.advance(timedelta(hours=2))
    g.consume("79")  # 19.75 EUR: balance -19.75, above -21.00
    assert g.state == SupplyState.PENDING_CUT_OFF
    g.clock.advance(timedelta(hours=1))
    g.consume("5")  # -21.00: at the floor
    assert g.state == SupplyState.CUT_OFF
    assert g.balance == eur("-21.00")


# -- (5) emergency credit ------------------------------------------------------

EMERGENCY = [
    # (how it is lent, config)
    ("request", '{emergency: {amount: "5.00"}}'),
    ("automatic", '{emergency: {amount: "5.00", automatic: true}}'),
]


@pytest.mark.parametrize(("how", "credit"), EMERGENCY)
def test_emergency_credit_is_lent_once_and_repaid_first(
    tmp_path: Path, how: str, credit: str
) -> None:
    # A Wednesday in April at 09:00, outside friendly hours.
    h = house(tmp_path, berlin("2026-04-08 09:00"), credit)
    h.topup("3.00", "R1")
    rules = accounts.rules_of(h.conn, "flat6")
    for _ in range(16):  # 4.00 EUR: balance -1.00, the credit has run out
        h.clock.advance(timedelta(minutes=10))
        h.consume("1")

    if how == "request":
        assert h.state == SupplyState.CUT_OFF
        with transaction(h.conn):
            emergency.lend(h.conn, "flat6", rules, h.clock.now())
            accounts.evaluate(h.conn, "flat6", h.clock.now())
    assert h.state != SupplyState.CUT_OFF
    assert h.balance == eur("4.00")
    loan = emergency.open_loan(h.conn, "flat6")
    assert loan is not None and loan.owed == eur("5.00")

    # It cannot be taken twice before it is repaid.
    with (
        pytest.raises(emergency.EmergencyRefused, match=r"still owes 5\.00 EUR"),
        transaction(h.conn),
    ):
        emergency.lend(h.conn, "flat6", rules, h.clock.now())

    for _ in range(12):  # 3.00 EUR of the loan used: balance 1.00
        h.clock.advance(timedelta(minutes=10))
        h.consume("1")
    assert h.balance == eur("1.00")

    # A top-up of 20.00 repays the 5.00 first, as its own entry.
    h.topup("20.00", "R2")
    assert h.balance == eur("16.00")
    newest = ledger.entries(h.conn, "flat6", limit=2)
    assert newest[0].id == "emergency_repayment:topup:admin:R2"
    assert newest[0].amount == eur("-5.00")
    assert newest[1].id == "topup:admin:R2" and newest[1].amount == eur("20.00")
    assert emergency.open_loan(h.conn, "flat6") is None
    assert ledger.recomputed_balance(h.conn, "flat6") == eur("16.00")


def test_a_small_top_up_repays_part_and_the_rest_comes_from_the_next(
    tmp_path: Path,
) -> None:
    h = house(tmp_path, berlin("2026-06-10 09:00"), '{emergency: {amount: "5.00"}}')
    h.clock.advance(timedelta(minutes=10))
    h.consume("4")  # balance -1.00
    with transaction(h.conn):
        emergency.lend(
            h.conn, "flat6", accounts.rules_of(h.conn, "flat6"), h.clock.now()
        )
    h.topup("2.00", "R1")  # repays 2.00 of 5.00
    assert h.balance == eur("4.00")
    loan = emergency.open_loan(h.conn, "flat6")
    assert loan is not None and loan.owed == eur("3.00")
    h.topup("10.00", "R2")  # repays the last 3.00
    assert h.balance == eur("11.00")
    assert emergency.open_loan(h.conn, "flat6") is None


# -- (6) maximum balance -------------------------------------------------------

MAX_BALANCE = [
    # (top-ups in order, and which of them must be refused)
    (["40.00", "15.00", "10.00"], [False, True, False]),
    (["50.00", "0.01"], [False, True]),
    (["50.01"], [True]),
]


@pytest.mark.parametrize(("amounts", "refused"), MAX_BALANCE)
def test_top_up_above_maximum_balance_is_rejected_whole(
    tmp_path: Path, amounts: list[str], refused: list[bool]
) -> None:
    h = house(tmp_path, berlin("2026-07-01 12:00"), '{max_balance: "50.00"}')
    expected = Money.zero(EUR)
    for i, (amount, refuse) in enumerate(zip(amounts, refused, strict=True)):
        if refuse:
            with pytest.raises(accounts.TopUpRejected, match=r"maximum balance 50\.00"):
                h.topup(amount, f"R{i}")
        else:
            h.topup(amount, f"R{i}")
            expected += eur(amount)
        assert h.balance == expected
    topups = h.conn.execute(
        "SELECT COUNT(*) FROM ledger_entries WHERE kind = 'topup'"
    ).fetchone()[0]
    assert topups == refused.count(False)


# -- (8) warnings --------------------------------------------------------------

WARN = '{warnings: {remaining_below: ["5.00"], hysteresis: "1.00"}}'

# Each step moves the balance (remaining = balance + 1.00 credit line) and
# says how many warnings have fired in all after it.
HOVER = [
    ("use", "2.00", 0),  # remaining 9.00
    ("use", "4.50", 1),  # 4.50: crosses 5.00, fires
    ("top", "1.00", 1),  # 5.50: above the threshold, inside the hysteresis
    ("use", "0.70", 1),  # 4.80: below again, no repeat
    ("top", "1.00", 1),  # 5.80
    ("use", "0.90", 1),  # 4.90
    ("top", "1.11", 1),  # 6.01: recovered past 6.00, re-armed
    ("use", "1.02", 2),  # 4.99: a new crossing fires again
    ("use", "4.00", 2),  # 0.99: still below, nothing more
]


def test_warning_fires_once_per_crossing_with_hysteresis(tmp_path: Path) -> None:
    h = house(tmp_path, berlin("2026-08-03 09:00"), WARN)
    # An account opened empty is warned at once; the first top-up re-arms it.
    h.topup("10.00", "R0")
    base = 1
    for i, (what, amount, fired) in enumerate(HOVER):
        h.clock.advance(timedelta(days=3))
        if what == "use":
            h.consume(str(Decimal(amount) * 4))  # 0.25 EUR a kWh
        else:
            h.topup(amount, f"R{i + 1}")
        count = h.conn.execute(
            "SELECT COUNT(*) FROM outbox WHERE kind = 'warning'"
        ).fetchone()[0]
        assert count == base + fired, f"step {i}: {what} {amount}"
    assert h.balance == eur("-0.01")
    assert [
        r[0]
        for r in h.conn.execute("SELECT command_id FROM display_messages ORDER BY id")
    ] == [f"warning:flat6:remaining:5.00:{n}" for n in (1, 2, 3)]
    queued = h.conn.execute("SELECT COUNT(*) FROM notifications").fetchone()[0]
    assert queued == 3


def test_days_left_warning_uses_recent_daily_use(tmp_path: Path) -> None:
    h = house(
        tmp_path,
        berlin("2026-09-01 00:30"),
        '{warnings: {days_left_below: ["3"], forecast_days: 7}}',
    )
    h.topup("30.00", "R0")
    # 2.00 EUR a day (8 kWh): 31.00 remaining lasts 15.5 days, then less.
    for day in range(1, 15):
        h.clock.advance(timedelta(days=1))
        h.consume("8")
        fired = h.conn.execute(
            "SELECT COUNT(*) FROM warning_state WHERE fired = 1"
        ).fetchone()[0]
        remaining = Decimal(31) - 2 * day
        assert fired == (1 if remaining / 2 <= 3 else 0), f"day {day}"
    rows = h.conn.execute("SELECT payload FROM outbox WHERE kind = 'warning'")
    bodies = [json.loads(r["payload"]) for r in rows]
    assert len(bodies) == 1
    assert Decimal(bodies[0]["days_left"]) <= 3
    assert bodies[0]["warning"] == "days:3"


def test_cloud_top_up_above_maximum_balance_is_rejected_with_the_reason(
    tmp_path: Path,
) -> None:
    from gateway import commands
    from gateway.sync import schemas

    h = house(tmp_path, berlin("2026-07-01 12:00"), '{max_balance: "50.00"}')
    now = h.clock.now().at

    def topup(cid: str, minor: int) -> commands.CommandResult:
        command = schemas.Command(
            command_id=cid,
            site="credit-house",
            kind="topup",
            issued_at=now,
            expires_at=now + timedelta(minutes=5),
            args={"account_id": "flat6", "amount_minor": minor, "currency": EUR},
        )
        return commands.apply(
            h.conn, command, cid, h.clock.now(), max_validity=timedelta(hours=1)
        )

    assert topup("cmd-00000001", 4000).status == "applied"
    refused = topup("cmd-00000002", 1500)
    assert refused.status == "rejected"
    assert refused.reason is not None and "maximum balance 50.00 EUR" in refused.reason
    assert h.balance == eur("40.00")
    assert (
        h.conn.execute(
            "SELECT COUNT(*) FROM ledger_entries WHERE id = 'topup:cloud:cmd-00000002'"
        ).fetchone()[0]
        == 0
    )


def test_unsynced_clock_without_friendly_hours_cuts_off_by_balance(
    tmp_path: Path,
) -> None:
    # No friendly hours: the cut-off does not depend on the time, so an
    # unsynchronised clock changes nothing (the decision is still marked).
    text = SITE.format(credit="{}")
    text = text[: text.index("credit:\n  friendly_hours")]
    config = parse_config(text, tmp_path / "site.yaml")
    conn = store.connect(tmp_path / "g.sqlite3")
    clock = ManualClock(berlin("2026-12-05 12:00"), synced=False)  # a Saturday
    site = SitePlan(config)
    with transaction(conn):
        accounts.sync_from_config(conn, site, clock.now())
    h = House(conn, site, clock)
    h.consume("0")
    clock.advance(timedelta(hours=1))
    h.consume("4")  # -1.00: at the credit line
    assert h.state == SupplyState.CUT_OFF
    row = conn.execute("SELECT clock_synced FROM decisions").fetchone()
    assert row[0] == 0


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gateway", *args],
        capture_output=True,
        text=True,
        check=False,
    )


def test_cli_emergency_and_topup_rules(tmp_path: Path) -> None:
    credit = '{max_balance: "30.00", emergency: {amount: "5.00"}}'
    site_file = tmp_path / "site.yaml"
    site_file.write_text(SITE.format(credit=credit))
    cfg = ("--config", str(site_file))

    early = _cli("emergency", "flat6", *cfg)
    # A new account has 1.00 of credit line left: not yet run out.
    assert early.returncode == 2
    assert "still has 1.00 EUR of credit" in early.stderr

    # Use up the credit line with a direct adjustment, then borrow.
    db = store.connect(tmp_path / "state" / "gateway.sqlite3")
    with transaction(db):
        ledger.post(
            db,
            NewEntry(
                "adjustment:test:1",
                "flat6",
                EntryKind.ADJUSTMENT,
                eur("-1.00"),
                "test",
                ManualClock(berlin("2026-12-01 12:00")).now(),
            ),
        )
    lent = _cli("emergency", "flat6", *cfg)
    assert lent.returncode == 0, lent.stderr
    assert "lent: 5.00 EUR of emergency credit to flat6" in lent.stdout
    assert "Balance now 4.00 EUR" in lent.stdout
    twice = _cli("emergency", "flat6", *cfg)
    assert twice.returncode == 2 and "still owes 5.00 EUR" in twice.stderr

    over = _cli("topup", "flat6", "31.01", "--ref", "R-1", *cfg)
    assert over.returncode == 2
    assert "above the maximum balance 30.00 EUR" in over.stderr
    ok = _cli("topup", "flat6", "31.00", "--ref", "R-2", *cfg)
    assert ok.returncode == 0, ok.stderr
    assert "repaid first: 5.00 EUR of emergency credit" in ok.stdout
    assert "balance now 30.00 EUR" in ok.stdout
    assert ledger.balance(db, "flat6") == eur("30.00")
