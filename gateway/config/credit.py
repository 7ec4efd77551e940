"""Configuration of the credit rules: maximum balance, emergency credit,
friendly (non-disconnect) hours, the water lifeline, warnings and where
residents are notified."""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
WEEKDAYS: tuple[Weekday, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")

_CLOCK = re.compile(r"^([01][0-9]|2[0-3]):[0-5][0-9]$|^24:00$")
_EMAIL = re.compile(r"^[^@\s:/]+@[^@\s:/]+\.[^@\s:/]+$")

# Text the loader may print for an apprise URL: the scheme only, since the
# rest can hold a password or an API token.
Contact = Annotated[str, Field(min_length=3, max_length=512)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def minutes_of(clock: str) -> int:
    """Return minutes since local midnight for "HH:MM" ("24:00" is 1440)."""
    hours, minutes = clock.split(":")
    return int(hours) * 60 + int(minutes)


class FriendlyWindow(_Strict):
    """A weekly window of local time in which nobody is cut off.

    The window opens on each listed day at `start`; an `end` at or before
    `start` closes it on the next day (18:00 to 08:00 covers the night).
    """

    days: list[Weekday] = Field(min_length=1)
    start: str = "00:00"
    end: str = "24:00"

    @field_validator("start", "end")
    @classmethod
    def _clock_time(cls, value: str) -> str:
        if not _CLOCK.match(value):
            raise ValueError(f"{value!r} is not a local time: write it like 18:00")
        return value

    @model_validator(mode="after")
    def _not_empty(self) -> FriendlyWindow:
        if minutes_of(self.start) == 1440:
            raise ValueError("start 24:00 is the next day's 00:00: write 00:00")
        return self


class PublicHolidays(_Strict):
    """Public holidays of one country (and optionally one of its regions)."""

    country: str = Field(min_length=2, max_length=3)
    subdivision: str | None = None

    @model_validator(mode="after")
    def _known_region(self) -> PublicHolidays:
        import holidays

        supported = holidays.list_supported_countries()
        if self.country not in supported:
            raise ValueError(
                f"country {self.country!r} has no holiday calendar: use an ISO "
                f"3166 code such as DE, AT, CH, GB"
            )
        regions = supported[self.country]
        if self.subdivision is not None and self.subdivision not in regions:
            raise ValueError(
                f"{self.country} has no subdivision {self.subdivision!r}: use one "
                f"of {', '.join(regions)}"
            )
        return self


class FriendlyHours(_Strict):
    """When no cut-off happens: weekly windows plus whole public holidays."""

    windows: list[FriendlyWindow] = []
    public_holidays: PublicHolidays | None = None


class EmergencyCredit(_Strict):
    """A fixed amount lent once the credit has run out; repaid from the next top-up."""

    amount: Decimal = Field(gt=0)
    automatic: bool = Field(
        default=False, description="lend it by itself when the credit runs out"
    )
    available_below: Decimal = Field(
        default=Decimal(0),
        ge=0,
        description="on request, lend once the remaining credit is at or below this",
    )


class Warnings(_Strict):
    """When to warn a resident, and how far things must recover before re-arming."""

    remaining_below: list[Decimal] = Field(
        default=[], description="warn when balance plus credit line falls to this"
    )
    days_left_below: list[Decimal] = Field(
        default=[], description="warn when the forecast days to empty fall to this"
    )
    hysteresis: Decimal = Field(
        default=Decimal(1),
        ge=0,
        description="money above a threshold before it re-arms",
    )
    hysteresis_days: Decimal = Field(default=Decimal(1), ge=0)
    forecast_days: int = Field(
        default=7, ge=1, le=90, description="days of recent use the forecast averages"
    )
    channels: list[Literal["display", "cloud", "contact"]] = [
        "display",
        "cloud",
        "contact",
    ]

    @field_validator("remaining_below", "days_left_below")
    @classmethod
    def _not_negative(cls, values: list[Decimal]) -> list[Decimal]:
        if any(v < 0 for v in values):
            raise ValueError("thresholds must be zero or more")
        return sorted(set(values))


class AccountCredit(_Strict):
    """An account's credit rules beyond its credit line."""

    max_balance: Decimal | None = Field(
        default=None,
        gt=0,
        description="a top-up that would lift the balance above is refused",
    )
    emergency: EmergencyCredit | None = None
    lifeline_litres_per_day: Decimal | None = Field(
        default=None,
        gt=0,
        description="water a cut-off account may still draw each local day (as debt)",
    )
    warnings: Warnings | None = None


class Notify(_Strict):
    """How residents are reached: apprise, and an SMTP URL for bare e-mail contacts."""

    email_via: str | None = Field(
        default=None,
        description="apprise mailto:// or mailtos:// URL of the SMTP account that "
        "sends to residents whose contact is a bare e-mail address",
    )
    timeout_s: float = Field(default=10.0, gt=0, le=120)


class CreditSettings(_Strict):
    """Site-wide credit settings, and the defaults for accounts without their own."""

    friendly_hours: FriendlyHours | None = None
    unsynced_debt_floor: Decimal = Field(
        default=Decimal(20),
        ge=0,
        description="while the clock is not synchronised, cut off only once the "
        "debt exceeds the credit line by more than this",
    )
    reconnect_margin: Decimal = Field(
        default=Decimal(1),
        ge=0,
        description="a cut-off supply comes back once the balance is this much "
        "above the cut-off limit, so that a tiny top-up does not make it flap",
    )
    defaults: AccountCredit = Field(default_factory=AccountCredit)
    notify: Notify = Field(default_factory=Notify)


def contact_problem(contact: str, email_via: str | None) -> str | None:
    """Say what is wrong with one contact, never repeating the secret part of it."""
    if _EMAIL.match(contact):
        if email_via is None:
            return (
                "is an e-mail address: set credit.notify.email_via to the apprise "
                "mailtos:// URL of the SMTP account that sends it"
            )
        return None
    if "://" not in contact:
        return (
            "is neither an e-mail address nor an apprise URL (scheme://...), e.g. "
            "json://host/path or tgram://token/chat"
        )
    import apprise

    if not apprise.Apprise().add(contact):
        return (
            f"is not an apprise URL that apprise can use (scheme "
            f"{contact.split('://', 1)[0]!r}): check its spelling and fields"
        )
    return None


def apprise_urls(contacts: list[str], email_via: str | None) -> list[str]:
    """Turn contacts into apprise URLs; a bare e-mail goes out through `email_via`."""
    urls = []
    for contact in contacts:
        if _EMAIL.match(contact):
            if email_via is None:
                continue
            joiner = "&" if "?" in email_via else "?"
            urls.append(f"{email_via}{joiner}to={contact}")
        else:
            urls.append(contact)
    return urls


def contacts_of(value: str | list[str] | None) -> list[str]:
    """Return a contact setting as a list (one string is one contact)."""
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value)
