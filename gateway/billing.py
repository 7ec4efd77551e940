"""The billing step: one reading in, one transaction out — the raw reading, its
integrity verdict, the debit, the meter's new state and the account's decision.

Sub-cent remainders carry over: each meter accrues the exact cost of all its
consumption, and the ledger holds that accrual rounded once; each debit is
the difference between the rounded accrual now and what was already debited.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

import structlog

from gateway import accounts, alarms, ledger, outbox
from gateway.ledger import EntryKind, NewEntry
from gateway.model import Reading
from gateway.money import Money
from gateway.policy import Decision
from gateway.readings import Previous, Verdict, assess
from gateway.site import MeterPlan, SitePlan
from gateway.store import transaction
from gateway.units import factor_to_canonical

log = structlog.get_logger(__name__)

_DISTRUST = (Verdict.BACKWARDS, Verdict.QUARANTINED)


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one reading did."""

    meter_id: str
    account_id: str
    verdict: Verdict
    consumption: Decimal
    debit: Money | None
    balance: Money
    decision: Decision | None


class UnknownMeter(LookupError):
    """A reading for a meter the configuration does not list."""


def process_reading(
    conn: sqlite3.Connection, site: SitePlan, reading: Reading
) -> Outcome:
    """Store, check, bill and decide for one reading, as one transaction."""
    plan = site.meters.get(reading.meter_id)
    if plan is None:
        raise UnknownMeter(f"reading for unconfigured meter {reading.meter_id!r}")
    value = reading.value * factor_to_canonical(reading.unit, plan.medium)

    with transaction(conn):
        state = _meter_state(conn, plan)
        previous = Previous(
            None if state["last_value"] is None else Decimal(state["last_value"]),
            None
            if state["last_taken_at"] is None
            else datetime.fromisoformat(state["last_taken_at"]),
            None if state["suspect_value"] is None else Decimal(state["suspect_value"]),
            state["suspect_count"],
        )
        verdict = assess(previous, value, reading.stamp.at, plan.limits)
        cursor = conn.execute(
            """INSERT INTO readings (meter_id, value, unit, taken_at, clock_synced,
                                     verdict, delta, source, raw)
               VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)""",
            (
                plan.id,
                str(reading.value),
                reading.unit,
                reading.stamp.iso(),
                int(reading.stamp.synced),
                verdict.verdict.value,
                str(verdict.consumption),
                reading.source,
                reading.raw.hex() or None,
            ),
        )
        reading_id = cursor.lastrowid

        if verdict.alarm is not None:
            alarms.raise_alarm(
                conn,
                verdict.verdict.value,
                plan.id,
                verdict.alarm,
                reading.stamp,
                {"value": str(value), "unit": plan.unit},
            )
        elif verdict.verdict not in _DISTRUST:
            for kind in _DISTRUST:
                alarms.clear_alarm(conn, kind.value, plan.id, reading.stamp)

        cost_accrued = Decimal(state["cost_accrued"])
        billed = Money(state["billed_minor"], site.currency)
        quantity_total = Decimal(state["quantity_total"]) + verdict.consumption
        quantity_booked = Decimal(state["quantity_booked"])
        value_booked: str | None = state["value_booked"]
        if value_booked is None and previous.value is not None:
            value_booked = str(previous.value)
        debit: Money | None = None
        # A closed account (its resident moved out) is billed nothing more:
        # the reading still advances the meter's last value (a vacant flat).
        closed = conn.execute(
            "SELECT closed_at FROM accounts WHERE id = ?", (plan.account_id,)
        ).fetchone()
        if verdict.consumption > 0 and (closed is None or closed[0] is None):
            charge = site.tariffs.charge(
                conn,
                plan.account_id,
                plan.medium,
                verdict.consumption,
                previous.taken_at or reading.stamp.at,
                reading.stamp.at,
            )
            cost_accrued += charge.cost
            due = Money.round_major(cost_accrued, site.currency)
            debit = due - billed
            if debit.minor != 0:
                ledger.post(
                    conn,
                    NewEntry(
                        id=f"consumption:{plan.id}:r{reading_id}",
                        account_id=plan.account_id,
                        kind=EntryKind.CONSUMPTION,
                        amount=-debit,
                        source=f"meter:{plan.id}",
                        booked=reading.stamp,
                        meter_id=plan.id,
                        medium=plan.medium.value,
                        # Everything since the meter's previous entry, so
                        # that entries add up to what the meter measured.
                        quantity=quantity_total - quantity_booked,
                        unit=plan.unit,
                        detail={
                            "from": value_booked,
                            "to": str(value),
                            "verdict": verdict.verdict.value,
                            "tariff": charge.detail(),
                        },
                    ),
                )
                quantity_booked, value_booked = quantity_total, str(value)
            billed = due

        remember = verdict.remember
        conn.execute(
            """UPDATE meter_state SET last_value = ?, last_unit = ?, last_taken_at = ?,
                   quantity_total = ?, cost_accrued = ?, billed_minor = ?,
                   quantity_booked = ?, value_booked = ?,
                   suspect_value = ?, suspect_count = ?
               WHERE meter_id = ?""",
            (
                None if remember.value is None else str(remember.value),
                plan.unit,
                None if remember.taken_at is None else remember.taken_at.isoformat(),
                str(quantity_total),
                str(cost_accrued),
                billed.minor,
                str(quantity_booked),
                value_booked,
                None if remember.suspect_value is None else str(remember.suspect_value),
                remember.suspect_count,
                plan.id,
            ),
        )
        outbox.enqueue(
            conn,
            "reading",
            {
                "meter_id": plan.id,
                "value": str(value),
                "unit": plan.unit,
                "verdict": verdict.verdict.value,
                "consumption": str(verdict.consumption),
                "taken_at": reading.stamp.iso(),
                "clock_synced": reading.stamp.synced,
            },
            reading.stamp,
            message_id=f"reading:{plan.id}:{reading_id}",
        )

        decision = accounts.evaluate(conn, plan.account_id, reading.stamp)
        balance = ledger.balance(conn, plan.account_id)

    log.debug(
        "reading_billed",
        meter=plan.id,
        verdict=verdict.verdict.value,
        consumption=str(verdict.consumption),
        debit=None if debit is None else str(debit),
        balance=str(balance),
    )
    return Outcome(
        plan.id,
        plan.account_id,
        verdict.verdict,
        verdict.consumption,
        debit,
        balance,
        decision,
    )


def _meter_state(conn: sqlite3.Connection, plan: MeterPlan) -> sqlite3.Row:
    conn.execute(
        "INSERT INTO meter_state (meter_id, account_id, medium) VALUES (?, ?, ?) "
        "ON CONFLICT(meter_id) DO NOTHING",
        (plan.id, plan.account_id, plan.medium.value),
    )
    # A meter handed to another account (the next resident after a move-out)
    # keeps its last value, but the new account's exact-cost accrual starts
    # from zero: no remainder of the old account's is billed to the new one.
    conn.execute(
        "UPDATE meter_state SET account_id = ?, cost_accrued = '0', billed_minor = 0, "
        "quantity_booked = quantity_total, value_booked = last_value "
        "WHERE meter_id = ? AND account_id != ?",
        (plan.account_id, plan.id, plan.account_id),
    )
    row: sqlite3.Row = conn.execute(
        "SELECT * FROM meter_state WHERE meter_id = ?", (plan.id,)
    ).fetchone()
    return row
