"""An in-process LoRa ether for simulators and tests: radios on one asyncio loop
hear each other's frames after their time on air, with optional loss."""

from __future__ import annotations

import asyncio
import random

from drivers.lora.airtime import LoraParams, time_on_air
from drivers.lora.radio import Received


class Ether:
    """The shared air: every frame sent reaches every other radio on its channel.

    `loss` is the chance (0 to 1) that one receiver misses one frame; the
    seed makes a run repeatable.
    """

    def __init__(self, *, loss: float = 0.0, seed: int = 1) -> None:
        if not 0.0 <= loss < 1.0:
            raise ValueError(f"loss must be at least 0 and below 1, got {loss}")
        self.loss = loss
        self._rng = random.Random(seed)
        self._radios: list[SimulatedRadio] = []
        self.sent: list[tuple[float, str, int, float]] = []

    def radio(
        self,
        name: str,
        params: LoraParams | None = None,
        *,
        listen_hz: int = 868_100_000,
        rssi: float = -90.0,
        snr: float = 7.5,
    ) -> SimulatedRadio:
        """Attach a new radio to this ether and return it."""
        radio = SimulatedRadio(self, name, params or LoraParams(), listen_hz, rssi, snr)
        self._radios.append(radio)
        return radio

    def _carry(self, sender: SimulatedRadio, frame: bytes, channel_hz: int) -> None:
        for radio in self._radios:
            if radio is sender or radio.listen_hz != channel_hz or radio.closed:
                continue
            if self._rng.random() < self.loss:
                continue
            radio._inbox.put_nowait(Received(frame, radio.rssi, radio.snr))


class SimulatedRadio:
    """One radio on an Ether; implements drivers.lora.radio.Radio."""

    # LIMITATION: the simulation has no collisions and no half-duplex deafness:
    # two frames that overlap in time both arrive, and a radio hears frames
    # while it transmits. Loss stands in for both.

    def __init__(
        self,
        ether: Ether,
        name: str,
        params: LoraParams,
        listen_hz: int,
        rssi: float,
        snr: float,
    ) -> None:
        self.name = name
        self._params = params
        self.listen_hz = listen_hz
        self.rssi = rssi
        self.snr = snr
        self.closed = False
        self.airtime_log: list[tuple[float, int, float]] = []
        self._ether = ether
        self._inbox: asyncio.Queue[Received] = asyncio.Queue()

    @property
    def params(self) -> LoraParams:
        return self._params

    async def send(self, frame: bytes, channel_hz: int) -> None:
        """Occupy the channel for the frame's time on air, then deliver it."""
        loop = asyncio.get_running_loop()
        airtime = time_on_air(len(frame), self._params)
        started = loop.time()
        self.airtime_log.append((started, channel_hz, airtime))
        self._ether.sent.append((started, self.name, channel_hz, airtime))
        await asyncio.sleep(airtime)
        self._ether._carry(self, frame, channel_hz)

    async def receive(self) -> Received:
        return await self._inbox.get()

    async def close(self) -> None:
        self.closed = True


_NAMED: dict[str, Ether] = {}


def named_ether(name: str, *, loss: float = 0.0, seed: int = 1) -> Ether:
    """Return the process's ether of this name, made on first use.

    A daemon configured with a simulated radio and simulated units started
    in the same process find each other by name, so production code needs
    no reference to the simulators. `loss` and `seed` apply on creation.
    """
    ether = _NAMED.get(name)
    if ether is None:
        ether = _NAMED[name] = Ether(loss=loss, seed=seed)
    return ether
