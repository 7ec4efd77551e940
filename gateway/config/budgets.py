"""Budget configuration: per-account monthly or annual grants billed with the
rent, what happens to the unused part, and per-medium spending caps."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date
from decimal import Decimal
from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

if TYPE_CHECKING:
    from gateway.config.model import Config

# What a sub-budget can cap: a medium's value (electricity, water, ...) or
# "laundry" for washing machines and dryers.
CapName = Annotated[str, Field(pattern=r"^[a-z_]+$")]


class Budget(BaseModel):
    """One account's budget: a grant each period, rollover rule, per-medium caps."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    account: str = Field(min_length=1, max_length=64)
    period: Literal["month", "year"] = "month"
    amount: Decimal = Field(Decimal(0), ge=0, description="granted each period")
    unused: Literal["rollover", "forfeit"] = Field(
        "rollover", description="what happens to budget left at the period's end"
    )
    rollover_cap: Decimal | None = Field(
        None, ge=0, description="most that rolls over; no cap when left out"
    )
    moved_in: date | None = Field(
        None,
        description="the resident's first day; the first period is pro-rated "
        "from it (default: the day the account was created)",
    )
    media_caps: dict[CapName, Decimal] = Field(
        default_factory=dict,
        description="most each medium may cost per period, e.g. electricity: 30.00",
    )

    @field_validator("media_caps")
    @classmethod
    def _caps_not_negative(cls, value: dict[str, Decimal]) -> dict[str, Decimal]:
        for name, cap in value.items():
            if cap < 0:
                raise ValueError(f"cap for {name} must be zero or more")
        return value


def problems(config: Config) -> Iterable[tuple[tuple[str | int, ...], str, object]]:
    """Yield (key path, message, value) for budget references the schema cannot see."""
    from gateway.model import Medium
    from gateway.money import minor_digits

    accounts = {a.id for a in config.accounts}
    digits = minor_digits(config.site.currency)
    known_caps = {m.value for m in Medium} | {"laundry"}
    seen: set[str] = set()
    for i, b in enumerate(config.budgets):
        if b.account not in accounts:
            listed = ", ".join(sorted(accounts)) or "none is configured"
            yield (
                ("budgets", i, "account"),
                f"no such account; expected one of: {listed}",
                b.account,
            )
        if b.account in seen:
            yield (
                ("budgets", i, "account"),
                "this account already has a budget",
                b.account,
            )
        seen.add(b.account)
        amounts: list[tuple[tuple[str | int, ...], Decimal]] = [
            (("budgets", i, "amount"), b.amount)
        ]
        if b.rollover_cap is not None:
            amounts.append((("budgets", i, "rollover_cap"), b.rollover_cap))
        for name, cap in b.media_caps.items():
            if name not in known_caps:
                yield (
                    ("budgets", i, "media_caps", name),
                    f"unknown medium; expected one of: {', '.join(sorted(known_caps))}",
                    name,
                )
            amounts.append((("budgets", i, "media_caps", name), cap))
        for path, amount in amounts:
            if int(amount.as_tuple().exponent) < -digits:
                yield (
                    path,
                    f"{config.site.currency} has {digits} decimal places",
                    amount,
                )
