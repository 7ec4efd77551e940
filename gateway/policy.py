"""Policy: a balance and an account's rules in, a supply decision out.
It decides; it switches nothing.

An account is cut off once its balance reaches minus its credit line, with
two exceptions that only postpone the cut-off (what is used meanwhile is
billed as usual and becomes debt):

- inside friendly hours (a weekly window or a public holiday), and
- while the clock is not synchronised and friendly hours are configured,
  because then nobody can tell whether it is inside them; a hard safety
  floor still applies. A site without friendly hours has no time-based
  cut-off rule, so its clock's trust does not matter.

A postponed cut-off is the state PENDING_CUT_OFF: supply stays on, and the
next evaluation after the window ends (or the clock syncs) cuts off.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum

from gateway.money import Money


class SupplyState(StrEnum):
    """Where an account stands."""

    OK = "ok"
    LOW = "low"
    PENDING_CUT_OFF = "pending_cut_off"
    CUT_OFF = "cut_off"


@dataclass(frozen=True, slots=True)
class Rules:
    """An account's credit rules.

    `credit_line` is how far below zero the balance may go; `low_balance` is
    the warning level. The rest are optional: `max_balance` caps top-ups,
    `emergency` is the amount lent as emergency credit (`emergency_automatic`
    lends it without being asked; on request it is lent once the remaining
    credit is at or below `emergency_available`), `lifeline_litres` is the
    water a cut-off account may still draw each day, and `unsynced_floor` is
    the debt beyond the credit line tolerated while the clock is unsynced;
    a cut-off supply comes back only above the limit plus `reconnect_margin`.
    """

    credit_line: Money
    low_balance: Money
    max_balance: Money | None = None
    emergency: Money | None = None
    emergency_automatic: bool = False
    emergency_available: Money | None = None
    lifeline_litres: Decimal | None = None
    unsynced_floor: Money | None = None
    reconnect_margin: Money | None = None

    def remaining(self, balance: Money) -> Money:
        """Return what may be used before the cut-off: balance plus credit line."""
        return balance + self.credit_line


@dataclass(frozen=True, slots=True)
class Moment:
    """What the policy must know about now: clock trust and friendly hours.

    `clock_trusted` is False when friendly hours exist but the clock is not
    synchronised; `friendly` names the window or holiday the moment falls
    in, or is None.
    """

    clock_trusted: bool = True
    friendly: str | None = None


@dataclass(frozen=True, slots=True)
class Decision:
    """The state an account should be in, and why."""

    state: SupplyState
    previous: SupplyState
    reason: str

    @property
    def changed(self) -> bool:
        return self.state != self.previous

    @property
    def supply_on(self) -> bool:
        return self.state != SupplyState.CUT_OFF


_ALWAYS = Moment()


def decide(
    balance: Money,
    rules: Rules,
    previous: SupplyState,
    moment: Moment = _ALWAYS,
) -> Decision:
    """Cut off at or below minus the credit line, unless the moment postpones it."""
    floor = -rules.credit_line
    if balance <= floor:
        return _at_or_below_floor(balance, rules, previous, moment, floor)
    margin = rules.reconnect_margin
    if previous == SupplyState.CUT_OFF and margin is not None and margin.minor > 0:
        reconnect_at = floor + margin
        if balance < reconnect_at:
            return Decision(
                SupplyState.CUT_OFF,
                previous,
                f"balance {balance} is above the limit {floor} but supply comes "
                f"back only from {reconnect_at}: top up at least "
                f"{reconnect_at - balance} more",
            )
    if balance <= rules.low_balance:
        reason = (
            f"balance {balance} is at or below the warning level {rules.low_balance}"
        )
        if previous in (SupplyState.CUT_OFF, SupplyState.PENDING_CUT_OFF):
            reason = f"balance {balance} is above {floor} again; {reason}"
        return Decision(SupplyState.LOW, previous, reason)
    return Decision(
        SupplyState.OK,
        previous,
        f"balance {balance} is above the warning level {rules.low_balance}",
    )


def _at_or_below_floor(
    balance: Money,
    rules: Rules,
    previous: SupplyState,
    moment: Moment,
    floor: Money,
) -> Decision:
    below = f"balance {balance} is at or below the credit line limit {floor}"
    if previous == SupplyState.CUT_OFF:
        # Friendly hours keep supply on; they do not reconnect a supply that
        # was already cut before the window opened.
        return Decision(SupplyState.CUT_OFF, previous, below)
    if not moment.clock_trusted:
        hard = floor - (rules.unsynced_floor or Money.zero(balance.currency))
        if balance <= hard:
            return Decision(
                SupplyState.CUT_OFF,
                previous,
                f"{below}, and at or below the safety floor {hard} that applies "
                f"while the clock is not synchronised",
            )
        return Decision(
            SupplyState.PENDING_CUT_OFF,
            previous,
            f"{below}; cut-off waits because the clock is not synchronised "
            f"(friendly hours cannot be checked); safety floor {hard}",
        )
    if moment.friendly is not None:
        return Decision(
            SupplyState.PENDING_CUT_OFF,
            previous,
            f"{below}; cut-off waits for the end of friendly hours "
            f"({moment.friendly}); use meanwhile becomes debt",
        )
    return Decision(SupplyState.CUT_OFF, previous, below)


def topup_refusal(balance_after: Money, rules: Rules, amount: Money) -> str | None:
    """Say why a top-up must be refused whole, or return None to accept it."""
    if rules.max_balance is not None and balance_after > rules.max_balance:
        room = rules.max_balance - (balance_after - amount)
        return (
            f"top-up of {amount} refused: the balance would be {balance_after}, "
            f"above the maximum balance {rules.max_balance}; at most "
            f"{max(room, Money.zero(amount.currency))} can be topped up now"
        )
    return None
