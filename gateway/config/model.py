"""The shape of a site's YAML configuration, validated by pydantic."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from gateway.config.budgets import Budget
from gateway.config.cloud import Cloud
from gateway.config.credit import AccountCredit, Contact, CreditSettings
from gateway.config.laundry import Laundry
from gateway.config.radio import AesKey, LoraBus, WmbusBus
from gateway.config.tariffs import Price as Price  # re-exported for older imports
from gateway.config.tariffs import Tariff
from gateway.model import Medium
from gateway.money import Money, MoneyError, minor_digits

Ident = Annotated[
    str,
    Field(
        min_length=1,
        max_length=64,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$",
        description="letters, digits, '.', '_' or '-'",
    ),
]


class Strict(BaseModel):
    """Refuse unknown keys, so a typo is an error instead of a silent default."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Site(Strict):
    id: Ident
    name: str = ""
    timezone: str = "UTC"
    currency: str = "EUR"

    @field_validator("currency")
    @classmethod
    def _known_currency(cls, value: str) -> str:
        try:
            minor_digits(value)
        except MoneyError as err:
            raise ValueError(str(err)) from None
        return value

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"unknown time zone {value!r}: use an IANA name like Europe/Berlin"
            ) from None
        return value


class SerialBus(Strict):
    id: Ident
    port: str
    baudrate: int = Field(2400, gt=0)
    parity: Literal["N", "E", "O"] = "E"
    timeout_s: float = Field(0.5, gt=0, le=30)
    retries: int = Field(1, ge=0, le=5)
    poll_interval_s: float = Field(60.0, gt=0)


class MbusBus(SerialBus):
    """A wired M-Bus master behind a level converter."""

    kind: Literal["mbus"]
    echo: bool = Field(
        False, description="the level converter echoes what the master sends"
    )


class ModbusBus(SerialBus):
    """An RS485 line with Modbus RTU dispensing units."""

    kind: Literal["modbus"]
    baudrate: int = Field(9600, gt=0)
    poll_interval_s: float = Field(2.0, gt=0)
    watchdog_s: int = Field(
        600,
        ge=10,
        le=65535,
        description="a unit not written for this long falls back to its safe state",
    )


Bus = Annotated[MbusBus | ModbusBus | WmbusBus | LoraBus, Field(discriminator="kind")]


class Meter(Strict):
    id: Ident
    bus: Ident
    medium: Medium
    account: Ident
    address: int | None = Field(None, ge=0, le=250)
    secondary_id: str | None = Field(None, pattern=r"^[0-9A-Fa-f]{8}([0-9A-Fa-f]{8})?$")
    key: AesKey | None = Field(None, description="wireless M-Bus AES-128 key")
    register_digits: int = Field(
        8,
        ge=1,
        le=12,
        description="integer digits of the billing register in the medium's unit "
        "(kWh, m3); it wraps at 10^digits",
    )
    max_rate_per_hour: Decimal | None = Field(
        None,
        gt=0,
        description="fastest plausible consumption an hour, in the medium's unit",
    )


UnitKind = Literal["valve", "contactor", "appliance"]


class Unit(Strict):
    id: Ident
    bus: Ident
    # LIMITATION: LoRa units share the Modbus range 1-247 here, although our
    # LoRa frame carries a 4-byte address; program units within that range.
    address: int = Field(ge=1, le=247)
    kind: UnitKind
    meters: list[Ident] = Field(min_length=1)
    key: AesKey | None = Field(None, description="LoRa AES-128 key")


class Account(Strict):
    id: Ident
    name: str
    tariff: Ident | None = None
    credit_line: Decimal = Decimal(0)
    low_balance: Decimal = Decimal(0)
    contact: Contact | list[Contact] | None = None
    credit: AccountCredit | None = None

    @field_validator("credit_line", "low_balance")
    @classmethod
    def _not_negative(cls, value: Decimal) -> Decimal:
        if value < 0:
            raise ValueError("must be zero or more")
        return value


class Config(Strict):
    site: Site
    state_dir: Path = Path("/var/lib/prepaidgw")
    buses: list[Bus] = Field(min_length=1)
    meters: list[Meter] = []
    units: list[Unit] = []
    accounts: list[Account] = []
    tariffs: list[Tariff] = Field(min_length=1)
    cloud: Cloud | None = None
    budgets: list[Budget] = []
    laundry: Laundry | None = None
    credit: CreditSettings = Field(default_factory=CreditSettings)

    def money(self, amount: Decimal) -> Money:
        return Money.parse(amount, self.site.currency)
