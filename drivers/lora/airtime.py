"""LoRa time on air (Semtech AN1200.13) and an EU868 duty-cycle accountant that
keeps every sub-band within its share of a sliding hour."""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum

# Bandwidths an SX127x or SX126x can use for LoRa in EU868, in hertz.
_BANDWIDTHS = (125_000, 250_000, 500_000)

# The window ETSI EN 300 220 measures the duty cycle over.
HOUR_S = 3600.0


@dataclass(frozen=True, slots=True)
class LoraParams:
    """The modulation both ends of the link agree on.

    `coding_rate` is the denominator of 4/x: 5 means 4/5, 8 means 4/8.
    """

    spreading_factor: int = 7
    bandwidth_hz: int = 125_000
    coding_rate: int = 5
    preamble_symbols: int = 8
    explicit_header: bool = True
    crc: bool = True

    def __post_init__(self) -> None:
        if not 6 <= self.spreading_factor <= 12:
            raise ValueError(
                f"LoRa spreading factor must be 6 to 12, got {self.spreading_factor}"
            )
        if self.bandwidth_hz not in _BANDWIDTHS:
            raise ValueError(
                f"LoRa bandwidth must be one of {_BANDWIDTHS} Hz, "
                f"got {self.bandwidth_hz}"
            )
        if not 5 <= self.coding_rate <= 8:
            raise ValueError(
                f"LoRa coding rate is 4/5 to 4/8: give 5 to 8, got {self.coding_rate}"
            )
        if not 6 <= self.preamble_symbols <= 65535:
            raise ValueError(
                f"LoRa preamble must be 6 to 65535 symbols, got {self.preamble_symbols}"
            )

    @property
    def symbol_s(self) -> float:
        """Return the duration of one chirp symbol, 2^SF / BW."""
        return float(2**self.spreading_factor) / self.bandwidth_hz

    @property
    def low_data_rate_optimize(self) -> bool:
        """Return whether the radio must use LDRO (symbols longer than 16 ms)."""
        return self.symbol_s > 0.016


def time_on_air(payload_bytes: int, params: LoraParams) -> float:
    """Return the seconds one packet of `payload_bytes` occupies the channel."""
    if not 0 <= payload_bytes <= 255:
        raise ValueError(f"a LoRa payload is 0 to 255 bytes, got {payload_bytes}")

    sf = params.spreading_factor
    t_sym = params.symbol_s
    preamble_s = (params.preamble_symbols + 4.25) * t_sym

    # The numerator counts the bits the payload symbols must carry beyond
    # the eight symbols that are always sent, per AN1200.13 section 4.
    ih = 0 if params.explicit_header else 1
    de = 1 if params.low_data_rate_optimize else 0
    crc = 16 if params.crc else 0
    numerator = 8 * payload_bytes - 4 * sf + 28 + crc - 20 * ih
    denominator = 4 * (sf - 2 * de)
    cr = params.coding_rate - 4
    extra = max(math.ceil(numerator / denominator) * (cr + 4), 0)
    payload_symbols = 8 + extra
    return preamble_s + payload_symbols * t_sym


@dataclass(frozen=True, slots=True)
class SubBand:
    """One ETSI EN 300 220 sub-band and its duty-cycle limit."""

    name: str
    low_hz: int
    high_hz: int
    duty: float

    @property
    def limit_s(self) -> float:
        """Return the seconds of airtime a transmitter may use in an hour."""
        return self.duty * HOUR_S

    def holds(self, channel_hz: int) -> bool:
        return self.low_hz <= channel_hz <= self.high_hz


# The sub-bands of ERC Recommendation 70-03 annex 1 that LoRa devices use in
# EU868, with the names LoRaWAN documents give them. The default LoRa
# channels 868.1, 868.3 and 868.5 MHz are all in g1 (1 %: 36 s an hour).
EU868_SUBBANDS: tuple[SubBand, ...] = (
    SubBand("h1.3", 863_000_000, 865_000_000, 0.001),
    SubBand("h1.4", 865_000_000, 868_000_000, 0.01),
    SubBand("g1", 868_000_000, 868_600_000, 0.01),
    SubBand("g2", 868_700_000, 869_200_000, 0.001),
    SubBand("g3", 869_400_000, 869_650_000, 0.10),
    SubBand("g4", 869_700_000, 870_000_000, 0.01),
)


class DutyCycleExceeded(Exception):
    """A transmission now would break the sub-band's duty cycle."""

    def __init__(self, band: str, wait_s: float) -> None:
        super().__init__(
            f"sub-band {band} has used its duty cycle for this hour: the next "
            f"transmission may start in {wait_s:.1f} s"
        )
        self.band = band
        self.wait_s = wait_s


class Policy(Enum):
    """What `DutyCycle.reserve` does when the band is full."""

    WAIT = "wait"
    REFUSE = "refuse"


class DutyCycle:
    """Count one transmitter's airtime per sub-band over a sliding hour.

    Transmissions are counted at their start time. The accountant keeps the
    invariant that for every start time t, the airtime of transmissions that
    started in (t - 1 h, t] stays within the sub-band's limit.
    """

    def __init__(
        self,
        monotonic: Callable[[], float] = time.monotonic,
        *,
        bands: tuple[SubBand, ...] = EU868_SUBBANDS,
        window_s: float = HOUR_S,
    ) -> None:
        self._monotonic = monotonic
        self._bands = bands
        self._window = window_s
        self._sent: dict[str, deque[tuple[float, float]]] = {
            b.name: deque() for b in bands
        }

    def band_of(self, channel_hz: int) -> SubBand:
        """Return the sub-band a channel lies in, or refuse a channel outside EU868."""
        for band in self._bands:
            if band.holds(channel_hz):
                return band
        raise ValueError(
            f"channel {channel_hz} Hz lies in no EU868 sub-band with a duty-cycle "
            f"rule: use 868100000, 868300000 or 868500000"
        )

    def used_s(self, channel_hz: int) -> float:
        """Return the airtime the channel's sub-band used in the last hour."""
        band = self.band_of(channel_hz)
        now = self._monotonic()
        return sum(
            a for start, a in self._sent[band.name] if start > now - self._window
        )

    def reserve(self, channel_hz: int, airtime_s: float, policy: Policy) -> float:
        """Book a transmission; return how many seconds to wait before starting it.

        With Policy.REFUSE a transmission that cannot start now raises
        DutyCycleExceeded and books nothing. With Policy.WAIT it is booked at
        the earliest moment it fits, and the caller must wait that long.
        """
        band = self.band_of(channel_hz)
        limit = band.limit_s * self._window / HOUR_S
        if airtime_s > limit:
            raise DutyCycleExceeded(band.name, math.inf)
        now = self._monotonic()
        sent = self._sent[band.name]
        while sent and sent[0][0] <= now - self._window:
            sent.popleft()

        start = self._earliest_start(sent, airtime_s, limit, now)
        wait = start - now
        if wait > 0 and policy is Policy.REFUSE:
            raise DutyCycleExceeded(band.name, wait)
        sent.append((start, airtime_s))
        return max(wait, 0.0)

    def _earliest_start(
        self,
        sent: deque[tuple[float, float]],
        airtime_s: float,
        limit: float,
        now: float,
    ) -> float:
        # Bookings are appended in start order, so no booking may start
        # before the last one; the window ending at the new start then holds
        # every booking that can still count against it.
        start = max(now, sent[-1][0]) if sent else now
        total = sum(a for _, a in sent) + airtime_s
        # A small tolerance keeps float sums from refusing an exact fit.
        for old_start, old_airtime in sent:
            if total <= limit + 1e-9:
                break
            total -= old_airtime
            # A microsecond past the hour, so that float rounding cannot put
            # the old transmission back inside the new start's window.
            start = max(start, old_start + self._window + 1e-6)
        return start
