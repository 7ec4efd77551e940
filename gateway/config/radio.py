"""The radio buses of a site's YAML: a wireless M-Bus receiver (`kind: wmbus`)
and a LoRa radio that reaches dispensing units (`kind: lora`)."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    model_validator,
)

BusIdent = Annotated[
    str,
    Field(
        min_length=1,
        max_length=64,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$",
        description="letters, digits, '.', '_' or '-'",
    ),
]


class _Strict(BaseModel):
    # Same rules as gateway.config.model.Strict, which cannot be imported
    # here: that module imports this one for its `Bus` union.
    model_config = ConfigDict(extra="forbid", frozen=True)


def check_aes_key(value: SecretStr) -> SecretStr:
    """Accept an AES-128 key as 32 hex digits; the message never shows the key."""
    text = "".join(value.get_secret_value().split())
    if len(text) != 32:
        raise ValueError(
            f"an AES-128 key is 32 hex digits; this one has {len(text)} characters"
            " (the key itself is not shown)"
        )
    if any(c not in "0123456789abcdefABCDEF" for c in text):
        raise ValueError(
            "an AES-128 key is 32 hex digits (0-9, a-f); this one has another"
            " character in it (the key itself is not shown)"
        )
    return SecretStr(text.lower())


def key_bytes(value: SecretStr) -> bytes:
    """Return a validated key's 16 bytes."""
    return bytes.fromhex(value.get_secret_value())


# A per-device AES-128 key (wireless meters, LoRa units): 32 hex digits,
# shown as ********** wherever the configuration is printed.
AesKey = Annotated[SecretStr, AfterValidator(check_aes_key)]


class WmbusBus(_Strict):
    """A wireless M-Bus receiver: a USB stick, or hex lines from an SDR receiver.

    Sticks (`im871a`, `amb8465`) need `port`; `lines` needs exactly one of
    `path` (a file or a named pipe), `command` (e.g. rtl_wmbus) or `tcp`
    (host:port).
    """

    id: BusIdent
    kind: Literal["wmbus"]
    receiver: Literal["im871a", "amb8465", "lines"]
    port: str | None = Field(None, description="serial port of a USB stick")
    baudrate: int | None = Field(
        None, gt=0, description="stick speed; default 57600 (iM871A), 9600 (AMB8465)"
    )
    mode: Literal["T1", "C1", "S1"] = "T1"
    path: str | None = Field(None, description="a file or named pipe of hex lines")
    command: list[str] | None = Field(
        None, min_length=1, description="a program whose output is hex lines"
    )
    tcp: str | None = Field(
        None, pattern=r"^[^:\s]+:\d{1,5}$", description="host:port serving hex lines"
    )
    receiver_timeout_s: float = Field(
        900.0,
        gt=0,
        description="raise an alarm and reopen the receiver after this long "
        "without any telegram",
    )
    meter_interval_s: float = Field(
        900.0, gt=0, description="how often a meter on this bus is expected to send"
    )
    missed_intervals: int = Field(
        3, ge=1, le=100, description="silent intervals before a meter alarm"
    )
    duplicate_window_s: float = Field(
        120.0, gt=0, description="a repeated telegram within this time is dropped"
    )
    replay_reset_after_s: float = Field(
        86400.0,
        gt=0,
        description="after this long unheard, a meter's access number may restart",
    )

    @model_validator(mode="after")
    def _source_fits_receiver(self) -> WmbusBus:
        sources = [n for n in ("path", "command", "tcp") if getattr(self, n)]
        if self.receiver == "lines":
            if len(sources) != 1:
                raise ValueError(
                    "a `lines` receiver needs exactly one of `path` (file or named"
                    " pipe), `command` or `tcp` (host:port)"
                    + (f"; found {', '.join(sources)}" if sources else "")
                )
            if self.port is not None:
                raise ValueError("`port` is for USB sticks; a `lines` receiver reads")
        else:
            if self.port is None:
                raise ValueError(
                    f"a {self.receiver} receiver needs `port`, e.g. /dev/ttyUSB0"
                )
            if sources:
                raise ValueError(
                    f"{', '.join(sources)} is for `receiver: lines`, not a USB stick"
                )
        return self

    @property
    def tcp_address(self) -> tuple[str, int] | None:
        """Return `tcp` as (host, port)."""
        if self.tcp is None:
            return None
        host, port = self.tcp.rsplit(":", 1)
        return host, int(port)


class LoraBus(_Strict):
    """A LoRa radio reaching dispensing units with our own frame (docs/lora.md).

    Airtime is scarce (36 s an hour on the default channels), so a changed
    allowance or display balance is sent at once only when the supply state
    changes or the allowance grew by more than `allowance_change_percent`
    over what the unit last reported; any other change waits for
    `display_refresh_s`. Units count their allowance down themselves, so the
    wait never lets them dispense beyond what was paid for.
    """

    id: BusIdent
    kind: Literal["lora"]
    radio: Literal["sx127x", "rui3", "simulated"]
    port: str | None = Field(None, description="serial port of a RUI3 modem")
    baudrate: int = Field(115_200, gt=0)
    ether: str = Field(
        "default", min_length=1, description="simulated radio: the in-process ether"
    )
    spreading_factor: int = Field(9, ge=7, le=12)
    bandwidth_hz: Literal[125_000, 250_000, 500_000] = 125_000
    coding_rate: int = Field(5, ge=5, le=8, description="5 for 4/5 ... 8 for 4/8")
    channel_hz: int = Field(868_100_000, ge=863_000_000, le=870_000_000)
    tx_power_dbm: int = Field(14, ge=2, le=14, description="EU868 allows 14 dBm ERP")
    retries: int = Field(3, ge=0, le=5)
    duty_cycle: Literal["wait", "refuse"] = Field(
        "wait",
        description="when the sub-band is full: wait up to max_airtime_wait_s, "
        "or refuse the command at once",
    )
    max_airtime_wait_s: float = Field(60.0, ge=0, le=3600)
    poll_interval_s: float = Field(
        30.0, gt=0, description="how often the gateway checks each unit's command"
    )
    display_refresh_s: float = Field(
        900.0,
        ge=0,
        description="a changed balance or allowance alone is sent at most this often",
    )
    allowance_change_percent: Decimal = Field(
        Decimal(10),
        ge=0,
        description="send at once when the allowance exceeds the unit's own "
        "by more than this percentage of the last one sent",
    )

    @model_validator(mode="after")
    def _port_fits_radio(self) -> LoraBus:
        if self.radio == "rui3" and self.port is None:
            raise ValueError("a rui3 modem needs `port`, e.g. /dev/ttyUSB0")
        if self.radio != "rui3" and self.port is not None:
            raise ValueError(
                f"`port` is for a rui3 modem; a {self.radio} radio has none"
            )
        return self

    @property
    def max_wait_s(self) -> float:
        """Return how long a command may wait for airtime (0 when refusing)."""
        return 0.0 if self.duty_cycle == "refuse" else self.max_airtime_wait_s
