"""Payload schemas of the MQTT contract as pydantic models: they validate
what arrives, and `python -m gateway.sync.schemas DIR` writes them out as the
JSON Schema files under docs/schemas/."""

from __future__ import annotations

import json
import sys
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

Ident = Annotated[
    str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]*$")
]
Currency = Annotated[str, Field(pattern=r"^[A-Z]{3}$")]


class Closed(BaseModel):
    """A payload that refuses unknown keys."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Open(BaseModel):
    """A payload that documents its required keys and tolerates newer ones."""

    model_config = ConfigDict(extra="allow", frozen=True)


# -- downlink: commands ------------------------------------------------------


class TopUp(Closed):
    """Credit an account (money paid in)."""

    account_id: Ident
    amount_minor: int = Field(gt=0, le=10**9)
    currency: Currency
    ref: str | None = Field(None, max_length=128)


class Adjustment(Closed):
    """Correct an account by a signed amount, with a reason."""

    account_id: Ident
    amount_minor: int = Field(ge=-(10**9), le=10**9)
    currency: Currency
    reason: str = Field(min_length=1, max_length=256)


class Reversal(Closed):
    """Undo one earlier ledger entry by booking its exact opposite."""

    account_id: Ident
    entry_id: str = Field(min_length=1, max_length=200)
    reason: str = Field(min_length=1, max_length=256)


class AccountUpsert(Closed):
    """Create an account, or change its name and rules; omitted fields stay."""

    account_id: Ident
    name: str | None = Field(None, max_length=128)
    currency: Currency | None = Field(None, description="required to create")
    credit_line_minor: int | None = Field(None, ge=0, le=10**9)
    low_balance_minor: int | None = Field(None, ge=0, le=10**9)
    contact: str | None = Field(None, max_length=256)


class TariffPrice(Closed):
    price: Decimal = Field(ge=0)
    per: str = Field(min_length=1, max_length=16)
    standing_charge_per_day: Decimal = Field(Decimal(0), ge=0)


class TariffSet(Closed):
    """Schedule a tariff's prices from an effective time on."""

    tariff_id: Ident
    effective_at: AwareDatetime
    prices: dict[str, TariffPrice] = Field(min_length=1)


class UnitOverride(Closed):
    """Force a dispensing unit on or off for maintenance, or give it back (auto)."""

    unit_id: Ident
    mode: Literal["on", "off", "auto"]
    until: AwareDatetime | None = None
    reason: str = Field(min_length=1, max_length=256)


class DisplayMessage(Closed):
    """Show a text on an account's units until a time."""

    account_id: Ident | None = None
    unit_id: Ident | None = None
    text: str = Field(min_length=1, max_length=160)
    until: AwareDatetime | None = None


class LaundryBooking(Closed):
    """Book a washing machine or dryer for a slot, or cancel a booking."""

    action: Literal["book", "cancel"] = "book"
    unit_id: Ident | None = Field(None, description="required to book")
    account_id: Ident | None = Field(None, description="required to book")
    slot_start: AwareDatetime | None = Field(None, description="required to book")
    slot_end: AwareDatetime | None = Field(None, description="required to book")
    booking_id: int | None = Field(None, ge=1, description="required to cancel")


ARGS: dict[str, type[Closed]] = {
    "topup": TopUp,
    "adjustment": Adjustment,
    "reversal": Reversal,
    "account_upsert": AccountUpsert,
    "tariff_set": TariffSet,
    "unit_override": UnitOverride,
    "display_message": DisplayMessage,
    "laundry_booking": LaundryBooking,
}
CommandKind = Literal[
    "topup",
    "adjustment",
    "reversal",
    "account_upsert",
    "tariff_set",
    "unit_override",
    "display_message",
    "laundry_booking",
]


class Command(Closed):
    """The signed part of a command; `args` follows the schema of its kind."""

    command_id: str = Field(min_length=8, max_length=128, pattern=r"^[A-Za-z0-9_.:-]+$")
    site: Ident
    kind: CommandKind
    issued_at: AwareDatetime
    expires_at: AwareDatetime
    args: dict[str, Any]


class CommandEnvelope(Closed):
    """What the cloud publishes on <root>/<site>/cmd.

    `command` is the JSON text of a Command exactly as signed; `signature` is
    the base64 Ed25519 signature of its UTF-8 bytes, or null on a development
    site.
    """

    v: Literal[1]
    command: str = Field(min_length=2, max_length=12_000)
    signature: str | None = Field(None, max_length=128)


# -- downlink: acknowledgement -----------------------------------------------


class Ack(Closed):
    """What the cloud has stored: every seq up to `upto`, and the listed seqs above."""

    v: Literal[1]
    upto: int = Field(ge=0)
    seqs: list[int] = Field(default_factory=list, max_length=5000)


# -- uplink ------------------------------------------------------------------


class Status(Closed):
    """Retained on <root>/<site>/status; the last will is {"state": "offline"}."""

    state: Literal["online", "offline"]
    at: datetime | None = None
    clock_synced: bool | None = None


class UplinkMessage(Closed):
    """One outbox message: unique id, the gateway's persisted sequence, its time."""

    id: str = Field(min_length=1, max_length=200)
    seq: int = Field(ge=1)
    kind: str
    at: str = Field(description="ISO 8601 UTC time the message was produced")
    clock_synced: bool
    body: dict[str, Any]


class UplinkBatch(Closed):
    """What the gateway publishes on <root>/<site>/up/<kind>: messages of that kind."""

    v: Literal[1]
    site: str
    messages: list[UplinkMessage] = Field(min_length=1)


class LedgerEntryBody(Open):
    """kind "ledger_entry": one booked change of money (never dropped)."""

    entry_id: str
    ledger_seq: int = Field(ge=1)
    account_id: str
    kind: str
    amount_minor: int
    currency: Currency
    booked_at: str
    clock_synced: bool


class ReadingBody(Open):
    """kind "reading": a meter's register and what integrity made of it."""

    meter_id: str
    value: str
    unit: str
    verdict: str
    consumption: str
    taken_at: str


class DecisionBody(Open):
    """kind "decision": an account's supply state changed."""

    account_id: str
    state: str
    previous: str
    reason: str
    balance_minor: int


class AlarmBody(Open):
    """kind "alarm": an alarm was raised or cleared."""

    kind: str
    subject: str
    state: Literal["raised", "cleared"]


class CommandResultBody(Closed):
    """kind "command_result": what became of one command (never dropped)."""

    command_id: str | None
    kind: str | None
    status: Literal["applied", "duplicate", "rejected", "expired"]
    reason: str | None = None
    result: dict[str, Any] = Field(default_factory=dict)
    first_status: str | None = Field(None, description="for a duplicate")


class OutboxGapBody(Closed):
    """kind "outbox_gap": these seqs were dropped when the outbox was full."""

    ranges: list[tuple[int, int]] = Field(min_length=1)
    count: int = Field(ge=1)
    reason: str


BODIES: dict[str, type[BaseModel]] = {
    "ledger_entry": LedgerEntryBody,
    "reading": ReadingBody,
    "decision": DecisionBody,
    "alarm": AlarmBody,
    "command_result": CommandResultBody,
    "outbox_gap": OutboxGapBody,
}

ALL: dict[str, type[BaseModel]] = {
    "command_envelope": CommandEnvelope,
    "command": Command,
    **{f"command_{k}": v for k, v in ARGS.items()},
    "ack": Ack,
    "status": Status,
    "uplink_batch": UplinkBatch,
    **{f"body_{k}": v for k, v in BODIES.items()},
}


def schema_files() -> dict[str, str]:
    """Return {file name: JSON Schema text} for every payload."""
    return {
        f"{name}.json": json.dumps(model.model_json_schema(), indent=2, sort_keys=True)
        + "\n"
        for name, model in ALL.items()
    }


def main(argv: list[str]) -> int:
    """Write the schema files into the directory given."""
    if len(argv) != 1:
        print("usage: python -m gateway.sync.schemas DIR", file=sys.stderr)
        return 2
    target = Path(argv[0])
    target.mkdir(parents=True, exist_ok=True)
    for name, text in schema_files().items():
        (target / name).write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
