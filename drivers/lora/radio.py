"""The one interface every LoRa radio backend offers the link: send a frame on a
channel, receive the next frame with its signal quality."""

from __future__ import annotations

from typing import NamedTuple, Protocol

from drivers.lora.airtime import LoraParams
from gateway.model import LinkError

# The three default EU868 LoRa channels; all lie in sub-band g1 (1 %).
DEFAULT_CHANNELS_HZ = (868_100_000, 868_300_000, 868_500_000)


class Received(NamedTuple):
    """A frame as the radio heard it."""

    frame: bytes
    rssi: float
    snr: float


class RadioError(LinkError):
    """The radio itself failed: port gone, modem refused a command, no hardware."""


class Radio(Protocol):
    """A half-duplex LoRa transceiver with fixed modulation parameters.

    Backends: SimulatedRadio (drivers.lora.simulated), Rui3Modem
    (drivers.lora.uart_modem) and Sx127xRadio (drivers.lora.sx127x).
    """

    @property
    def params(self) -> LoraParams: ...

    async def send(self, frame: bytes, channel_hz: int) -> None:
        """Transmit one frame; return when it has left the antenna."""
        ...

    async def receive(self) -> Received:
        """Wait for the next frame heard on the listening channel."""
        ...

    async def close(self) -> None:
        """Release the port or the hardware."""
        ...
