"""The RUI3 UART modem backend over a pseudo-terminal, against a small fake
modem that answers AT commands the way the RUI3 manual describes."""

from __future__ import annotations

import asyncio
import os
import tty
from collections.abc import AsyncIterator

import pytest

from drivers.lora.airtime import LoraParams
from drivers.lora.radio import RadioError
from drivers.lora.uart_modem import Rui3Modem


class FakeRui3:
    """Answer AT commands on the master side of a pty like an RUI3 module in P2P."""

    def __init__(self, master: int, *, refuse: str | None = None) -> None:
        self.master = master
        self.refuse = refuse
        self.commands: list[str] = []
        self.sent: list[bytes] = []
        self.listening = False
        self._buffer = b""

    def start(self) -> None:
        asyncio.get_running_loop().add_reader(self.master, self._readable)

    def stop(self) -> None:
        asyncio.get_running_loop().remove_reader(self.master)

    def write(self, line: str) -> None:
        os.write(self.master, line.encode("ascii") + b"\r\n")

    def hear(self, frame: bytes, rssi: int = -71, snr: int = 9) -> None:
        """Pretend a LoRa frame arrived over the air."""
        self.write(f"+EVT:RXP2P:{rssi}:{snr}:{frame.hex().upper()}")

    def _readable(self) -> None:
        self._buffer += os.read(self.master, 1024)
        while b"\r\n" in self._buffer:
            line, self._buffer = self._buffer.split(b"\r\n", 1)
            self._answer(line.decode("ascii"))

    def _answer(self, command: str) -> None:
        self.commands.append(command)
        name = command.split("=", 1)[0]
        if name == self.refuse:
            self.write("AT_PARAM_ERROR")
            return
        if name == "AT+PSEND":
            if self.listening:
                self.write("AT_BUSY_ERROR")
                return
            self.sent.append(bytes.fromhex(command.split("=", 1)[1]))
            self.write("OK")
            asyncio.get_running_loop().call_later(0.01, self.write, "+EVT:TXP2P DONE")
            return
        if name == "AT+PRECV":
            self.listening = command.endswith("=65534")
        self.write("OK")


@pytest.fixture
async def pty_pair() -> AsyncIterator[tuple[int, str]]:
    master, slave = os.openpty()
    tty.setraw(master)
    name = os.ttyname(slave)
    yield master, name
    os.close(master)
    os.close(slave)


async def test_modem_is_configured_sends_and_receives(
    pty_pair: tuple[int, str],
) -> None:
    master, name = pty_pair
    fake = FakeRui3(master)
    fake.start()
    modem = Rui3Modem(
        name, LoraParams(spreading_factor=9, coding_rate=6), command_timeout_s=1
    )
    try:
        await modem.open()
        assert fake.commands == [
            "AT",
            "AT+NWM=0",
            "AT+PSF=9",
            "AT+PBW=125",
            "AT+PCR=1",
            "AT+PPL=8",
            "AT+PTP=14",
            "AT+PFREQ=868100000",
            "AT+PRECV=65534",
        ]

        await modem.send(b"\x19\x00\x01\x02\x03", 868_300_000)
        assert fake.sent == [b"\x19\x00\x01\x02\x03"]
        assert fake.commands[9:] == [
            "AT+PRECV=0",
            "AT+PFREQ=868300000",
            "AT+PSEND=1900010203",
            "AT+PFREQ=868100000",
            "AT+PRECV=65534",
        ]
        assert fake.listening

        fake.write("+EVT:RXP2P RECEIVE TIMEOUT")
        fake.write("+EVT:RXP2P:-80:1:ZZ")
        fake.hear(b"\xca\xfe", rssi=-103, snr=-4)
        heard = await asyncio.wait_for(modem.receive(), 1)
        assert heard.frame == b"\xca\xfe"
        assert (heard.rssi, heard.snr) == (-103.0, -4.0)
    finally:
        await modem.close()
        fake.stop()


async def test_modem_error_names_the_command(pty_pair: tuple[int, str]) -> None:
    master, name = pty_pair
    fake = FakeRui3(master, refuse="AT+PSF")
    fake.start()
    modem = Rui3Modem(name, LoraParams(), command_timeout_s=1)
    try:
        with pytest.raises(RadioError, match="answered AT_PARAM_ERROR to AT\\+PSF"):
            await modem.open()
    finally:
        await modem.close()
        fake.stop()


async def test_silent_port_times_out_with_advice(pty_pair: tuple[int, str]) -> None:
    _, name = pty_pair
    modem = Rui3Modem(name, LoraParams(), command_timeout_s=0.2)
    try:
        with pytest.raises(RadioError, match="did not answer AT within"):
            await modem.open()
    finally:
        await modem.close()


async def test_missing_port_is_a_clear_error() -> None:
    modem = Rui3Modem("/dev/does-not-exist-lora", LoraParams())
    with pytest.raises(RadioError, match="cannot open LoRa modem port"):
        await modem.open()
