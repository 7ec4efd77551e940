"""A LoRa radio behind a RAKwireless RUI3 modem (RAK3172, RAK3272S, RAK4630) on a
UART, used in LoRa P2P mode through its AT commands."""

from __future__ import annotations

import asyncio
import contextlib

import serial_asyncio_fast
import structlog

from drivers.lora.airtime import LoraParams, time_on_air
from drivers.lora.radio import RadioError, Received

log = structlog.get_logger(__name__)

# RUI3 codes the coding rate 4/5..4/8 as 0..3; bandwidth is given in kHz.
_CODING_RATE = {5: 0, 6: 1, 7: 2, 8: 3}
# AT+PRECV=65534 listens continuously and stays in receive mode; 0 stops it.
_LISTEN_FOREVER = 65534
_STOP_LISTENING = 0


class Rui3Modem:
    """Implement drivers.lora.radio.Radio on an RUI3 module in P2P mode.

    The module answers every command with a status line ("OK" or an
    "AT_..._ERROR"); received frames arrive as
    "+EVT:RXP2P:<rssi>:<snr>:<payload hex>" and the end of a transmission
    as "+EVT:TXP2P DONE". Frames are sent as hex with AT+PSEND. A module
    must stop listening (AT+PRECV=0) before it may transmit.
    """

    # LIMITATION: written from RAKwireless's RUI3 AT command manual and
    # tested against a fake modem over a pseudo-terminal, not against a
    # real RAK3172. Older RAK3172 firmware (1.0.x, before RUI3) uses
    # different commands and is not supported. AT+NWM=0 makes a module that
    # was in LoRaWAN mode restart; the first open after that may time out
    # once and succeed when retried.

    def __init__(
        self,
        port: str,
        params: LoraParams,
        *,
        baudrate: int = 115_200,
        listen_hz: int = 868_100_000,
        tx_power_dbm: int = 14,
        command_timeout_s: float = 2.0,
    ) -> None:
        if not 0 <= tx_power_dbm <= 22:
            raise ValueError(f"RUI3 transmit power is 0 to 22 dBm, got {tx_power_dbm}")
        self.port = port
        self._params = params
        self._baudrate = baudrate
        self._listen_hz = listen_hz
        self._tx_power = tx_power_dbm
        self._timeout = command_timeout_s
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._lines_task: asyncio.Task[None] | None = None
        self._replies: asyncio.Queue[str] = asyncio.Queue()
        self._frames: asyncio.Queue[Received | RadioError] = asyncio.Queue()
        self._tx_done = asyncio.Event()
        self._lock = asyncio.Lock()
        self._freq_hz = 0

    @property
    def params(self) -> LoraParams:
        return self._params

    async def open(self) -> None:
        """Open the port, put the module in P2P mode with our parameters, listen."""
        try:
            (
                self._reader,
                self._writer,
            ) = await serial_asyncio_fast.open_serial_connection(
                url=self.port, baudrate=self._baudrate
            )
        except OSError as err:
            raise RadioError(
                f"cannot open LoRa modem port {self.port}: {err.strerror or err}; "
                f"check the lora.port setting and that the gateway user may use it"
            ) from None
        self._lines_task = asyncio.create_task(self._read_lines(), name="rui3-lines")
        p = self._params
        await self._command("AT")
        await self._command("AT+NWM=0")
        await self._command(f"AT+PSF={p.spreading_factor}")
        await self._command(f"AT+PBW={p.bandwidth_hz // 1000}")
        await self._command(f"AT+PCR={_CODING_RATE[p.coding_rate]}")
        await self._command(f"AT+PPL={p.preamble_symbols}")
        await self._command(f"AT+PTP={self._tx_power}")
        await self._tune(self._listen_hz)
        await self._command(f"AT+PRECV={_LISTEN_FOREVER}")
        log.info("lora_modem_ready", port=self.port, sf=p.spreading_factor)

    async def close(self) -> None:
        if self._lines_task is not None:
            self._lines_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._lines_task
        if self._writer is not None:
            self._writer.close()
        self._lines_task = self._writer = self._reader = None

    async def send(self, frame: bytes, channel_hz: int) -> None:
        """Stop listening, transmit, wait for the end of transmission, listen again."""
        airtime = time_on_air(len(frame), self._params)
        async with self._lock:
            await self._command(f"AT+PRECV={_STOP_LISTENING}", locked=True)
            await self._tune(channel_hz, locked=True)
            self._tx_done.clear()
            await self._command(f"AT+PSEND={frame.hex().upper()}", locked=True)
            try:
                await asyncio.wait_for(self._tx_done.wait(), airtime + self._timeout)
            except TimeoutError:
                raise RadioError(
                    f"LoRa modem on {self.port} did not report the end of a "
                    f"{len(frame)}-byte transmission"
                ) from None
            finally:
                await self._tune(self._listen_hz, locked=True)
                await self._command(f"AT+PRECV={_LISTEN_FOREVER}", locked=True)

    async def receive(self) -> Received:
        item = await self._frames.get()
        if isinstance(item, RadioError):
            raise item
        return item

    async def _tune(self, channel_hz: int, *, locked: bool = False) -> None:
        if channel_hz != self._freq_hz:
            await self._command(f"AT+PFREQ={channel_hz}", locked=locked)
            self._freq_hz = channel_hz

    async def _command(self, line: str, *, locked: bool = False) -> None:
        """Send one AT command and wait for its status line."""
        if locked:
            await self._exchange(line)
            return
        async with self._lock:
            await self._exchange(line)

    async def _exchange(self, line: str) -> None:
        if self._writer is None:
            raise RadioError(
                f"LoRa modem on {self.port} is not open: call open() first"
            )
        while not self._replies.empty():
            self._replies.get_nowait()
        self._writer.write(line.encode("ascii") + b"\r\n")
        await self._writer.drain()
        name = line.split("=", 1)[0]
        try:
            async with asyncio.timeout(self._timeout):
                while True:
                    reply = await self._replies.get()
                    if reply == "OK":
                        return
                    if reply.startswith("AT_") and reply.endswith("ERROR"):
                        raise RadioError(
                            f"LoRa modem on {self.port} answered {reply} to {name}"
                        )
        except TimeoutError:
            raise RadioError(
                f"LoRa modem on {self.port} did not answer {name} within "
                f"{self._timeout} s: check the port, baud rate and that it runs RUI3"
            ) from None

    async def _read_lines(self) -> None:
        assert self._reader is not None
        while True:
            try:
                raw = await self._reader.readline()
            except OSError as err:
                self._frames.put_nowait(RadioError(f"LoRa modem port failed: {err}"))
                return
            if not raw:
                self._frames.put_nowait(
                    RadioError(f"LoRa modem port {self.port} closed")
                )
                return
            line = raw.decode("ascii", "replace").strip()
            if not line:
                continue
            if line.startswith("+EVT:RXP2P:"):
                self._on_frame(line)
            elif line.startswith("+EVT:TXP2P"):
                self._tx_done.set()
            elif line.startswith("+EVT:"):
                log.debug("lora_modem_event", line=line[:40])
            else:
                self._replies.put_nowait(line)

    def _on_frame(self, line: str) -> None:
        parts = line.split(":")
        try:
            rssi, snr = float(parts[2]), float(parts[3])
            frame = bytes.fromhex(parts[4])
        except (IndexError, ValueError):
            log.info("lora_modem_line_malformed", line=line[:60])
            return
        self._frames.put_nowait(Received(frame, rssi, snr))
