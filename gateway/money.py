"""The one money type: whole minor units of one currency, never a float."""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation

# ISO 4217 minor-unit digits for the currencies a building is likely to bill
# in. A currency missing here is refused by the config loader: add it here.
MINOR_DIGITS: dict[str, int] = {
    "EUR": 2,
    "CHF": 2,
    "GBP": 2,
    "USD": 2,
    "SEK": 2,
    "NOK": 2,
    "DKK": 2,
    "PLN": 2,
    "CZK": 2,
    "HUF": 2,
    "RON": 2,
    "BGN": 2,
    "ZAR": 2,
    "KES": 2,
    "NGN": 2,
    "INR": 2,
    "JPY": 0,
    "ISK": 0,
    "KWD": 3,
}


# The largest amount one Money may hold, in minor units (10 trillion EUR). It
# keeps every sum of amounts far inside SQLite's 64-bit integers, which would
# otherwise overflow silently into floating point.
MAX_MINOR = 10**15

_PLAIN_AMOUNT = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)")


class MoneyError(ValueError):
    """An amount that cannot be money: bad text, wrong currency, sub-minor digits."""


def minor_digits(currency: str) -> int:
    """Return how many decimal places the currency's smallest unit has."""
    try:
        return MINOR_DIGITS[currency]
    except KeyError:
        raise MoneyError(
            f"unknown currency {currency!r}: use an ISO 4217 code such as EUR, "
            f"listed in gateway/money.py MINOR_DIGITS"
        ) from None


@dataclass(frozen=True, slots=True, order=False)
class Money:
    """An exact amount in the smallest unit of a currency (cents for EUR)."""

    minor: int
    currency: str

    def __post_init__(self) -> None:
        if not isinstance(self.minor, int) or isinstance(self.minor, bool):
            raise MoneyError(f"money holds whole minor units, got {self.minor!r}")
        if abs(self.minor) > MAX_MINOR:
            raise MoneyError(f"{self.minor} minor units is beyond any real amount")
        minor_digits(self.currency)

    # Construction -------------------------------------------------------

    @classmethod
    def zero(cls, currency: str) -> Money:
        return cls(0, currency)

    @classmethod
    def parse(cls, text: str | Decimal | int, currency: str) -> Money:
        """Read an exact amount in major units ("12.50"); refuse sub-minor digits."""
        plain = str(text).strip()
        if not isinstance(text, Decimal | int) and not _PLAIN_AMOUNT.fullmatch(plain):
            raise MoneyError(f"{text!r} is not an amount: write it like 12.50")
        try:
            major = Decimal(plain)
        except InvalidOperation:
            raise MoneyError(
                f"{text!r} is not an amount: write it like 12.50"
            ) from None
        if not major.is_finite():
            raise MoneyError(f"{text!r} is not a finite amount")
        scaled = major.scaleb(minor_digits(currency))
        if scaled != scaled.to_integral_value():
            raise MoneyError(
                f"{text} {currency} has more than {minor_digits(currency)} decimal "
                f"places: {currency} cannot hold it exactly"
            )
        if abs(scaled) > MAX_MINOR:
            raise MoneyError(f"{text} {currency} is more than any real amount")
        return cls(int(scaled), currency)

    @classmethod
    def round_major(cls, major: Decimal, currency: str) -> Money:
        """Round an exact major-unit Decimal to the nearest minor unit (half even)."""
        scaled = major.scaleb(minor_digits(currency))
        return cls(int(scaled.quantize(Decimal(1), rounding=ROUND_HALF_EVEN)), currency)

    # Views ----------------------------------------------------------------

    @property
    def major(self) -> Decimal:
        """The amount in major units, exact."""
        return Decimal(self.minor).scaleb(-minor_digits(self.currency))

    def __str__(self) -> str:
        digits = minor_digits(self.currency)
        return f"{self.major:.{digits}f} {self.currency}"

    # Arithmetic -----------------------------------------------------------

    def _same(self, other: Money) -> None:
        if not isinstance(other, Money):
            raise TypeError(f"cannot combine money with {type(other).__name__}")
        if other.currency != self.currency:
            raise MoneyError(f"cannot combine {self.currency} with {other.currency}")

    def __add__(self, other: Money) -> Money:
        self._same(other)
        return Money(self.minor + other.minor, self.currency)

    def __sub__(self, other: Money) -> Money:
        self._same(other)
        return Money(self.minor - other.minor, self.currency)

    def __neg__(self) -> Money:
        return Money(-self.minor, self.currency)

    def __abs__(self) -> Money:
        return Money(abs(self.minor), self.currency)

    def __lt__(self, other: Money) -> bool:
        self._same(other)
        return self.minor < other.minor

    def __le__(self, other: Money) -> bool:
        self._same(other)
        return self.minor <= other.minor

    def __gt__(self, other: Money) -> bool:
        self._same(other)
        return self.minor > other.minor

    def __ge__(self, other: Money) -> bool:
        self._same(other)
        return self.minor >= other.minor

    def is_negative(self) -> bool:
        return self.minor < 0
