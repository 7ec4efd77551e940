"""The ledger: idempotent entries, exact balances, a balance cache that agrees."""

from __future__ import annotations

import sqlite3

import pytest

from gateway import accounts, ledger, outbox
from gateway.clock import ManualClock
from gateway.config import Config
from gateway.ledger import EntryKind, IdempotencyConflict, NewEntry
from gateway.money import Money
from gateway.site import SitePlan
from gateway.store import transaction


def _topup(ref: str, amount: str, clock: ManualClock) -> NewEntry:
    return NewEntry(
        id=f"topup:admin:{ref}",
        account_id="flat1",
        kind=EntryKind.TOPUP,
        amount=Money.parse(amount, "EUR"),
        source="cli",
        booked=clock.now(),
        ref=ref,
    )


@pytest.fixture
def site(conn: sqlite3.Connection, config: Config, clock: ManualClock) -> SitePlan:
    plan = SitePlan(config)
    with transaction(conn):
        accounts.sync_from_config(conn, plan, clock.now())
    return plan


def test_topup_twice_with_one_reference_is_applied_once(
    conn: sqlite3.Connection, site: SitePlan, clock: ManualClock
) -> None:
    with transaction(conn):
        first = ledger.post(conn, _topup("R1", "20.00", clock))
    with transaction(conn):
        second = ledger.post(conn, _topup("R1", "20.00", clock))

    assert not first.duplicate
    assert second.duplicate
    assert second.entry.seq == first.entry.seq
    assert ledger.balance(conn, "flat1") == Money(2000, "EUR")
    assert ledger.recomputed_balance(conn, "flat1") == Money(2000, "EUR")


def test_reused_reference_with_other_amount_is_refused(
    conn: sqlite3.Connection, site: SitePlan, clock: ManualClock
) -> None:
    with transaction(conn):
        ledger.post(conn, _topup("R1", "20.00", clock))
    with pytest.raises(IdempotencyConflict, match="already used"), transaction(conn):
        ledger.post(conn, _topup("R1", "25.00", clock))
    assert ledger.balance(conn, "flat1") == Money(2000, "EUR")


def test_entry_and_its_outbox_message_commit_together(
    conn: sqlite3.Connection, site: SitePlan, clock: ManualClock
) -> None:
    before = outbox.pending(conn)[0]
    with pytest.raises(RuntimeError), transaction(conn):
        ledger.post(conn, _topup("R2", "5.00", clock))
        raise RuntimeError("power cut")
    assert ledger.get_entry(conn, "topup:admin:R2") is None
    assert outbox.pending(conn)[0] == before

    with transaction(conn):
        ledger.post(conn, _topup("R2", "5.00", clock))
    assert outbox.pending(conn)[0] == before + 1


def test_posting_outside_a_transaction_is_refused(
    conn: sqlite3.Connection, site: SitePlan, clock: ManualClock
) -> None:
    with pytest.raises(ledger.LedgerError, match="inside"):
        ledger.post(conn, _topup("R3", "5.00", clock))
