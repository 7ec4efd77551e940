"""Policy: a balance and an account's rules in, a supply decision out.
It decides; it switches nothing."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from gateway.money import Money


class SupplyState(StrEnum):
    """Where an account stands."""

    OK = "ok"
    LOW = "low"
    CUT_OFF = "cut_off"


@dataclass(frozen=True, slots=True)
class Rules:
    """An account's credit line (how far below zero it may go) and its warning level."""

    credit_line: Money
    low_balance: Money


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


def decide(balance: Money, rules: Rules, previous: SupplyState) -> Decision:
    """Cut off at or below minus the credit line; warn at or below the low level."""
    floor = -rules.credit_line
    if balance <= floor:
        return Decision(
            SupplyState.CUT_OFF,
            previous,
            f"balance {balance} is at or below the credit line limit {floor}",
        )
    if balance <= rules.low_balance:
        reason = (
            f"balance {balance} is at or below the warning level {rules.low_balance}"
        )
        if previous == SupplyState.CUT_OFF:
            reason = f"balance {balance} is above {floor} again; {reason}"
        return Decision(SupplyState.LOW, previous, reason)
    return Decision(
        SupplyState.OK,
        previous,
        f"balance {balance} is above the warning level {rules.low_balance}",
    )
