"""A LoRa radio on an SX1276/SX1278 module wired to a Raspberry Pi's SPI bus,
driven through pyLoRa (an optional, GPL-licensed extra)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

import structlog

from drivers.lora.airtime import LoraParams, time_on_air
from drivers.lora.radio import RadioError, Received

log = structlog.get_logger(__name__)

_POLL_S = 0.005


class Sx127xRadio:
    """Implement drivers.lora.radio.Radio on an SX127x through pyLoRa.

    pyLoRa is imported here, in the constructor, and only when this radio
    is configured: it needs RPi.GPIO and spidev, which exist only on a
    Raspberry Pi, and it is GPL-licensed, so prepaidgw does not depend on
    it by default.
    """

    # LIMITATION: untested. No SX127x hardware or pyLoRa installation exists
    # where this project's tests run. The calls follow pyLoRa's published
    # API (SX127x.LoRa, SX127x.board_config.BOARD); the frequency unit
    # (MHz) and the IRQ flag names are pyLoRa's. The radio is polled from
    # a worker thread instead of using pyLoRa's DIO0 callbacks, which run on
    # an RPi.GPIO thread that must not touch the asyncio loop.

    def __init__(
        self,
        params: LoraParams,
        *,
        listen_hz: int = 868_100_000,
        tx_power_dbm: int = 14,
    ) -> None:
        try:
            from SX127x.board_config import BOARD
            from SX127x.LoRa import (
                BW,
                CODING_RATE,
                MODE,
                LoRa,
            )
        except ImportError as err:
            raise RadioError(
                "the SX127x LoRa radio needs pyLoRa, which is missing or cannot load "
                f"({err}): install the lora-sx127x extra on a Raspberry Pi "
                "(pip install 'prepaidgw[lora-sx127x]'), or configure the UART "
                "modem instead"
            ) from None
        if not 2 <= tx_power_dbm <= 17:
            raise ValueError(
                f"SX127x PA_BOOST power is 2 to 17 dBm, got {tx_power_dbm}"
            )
        self._params = params
        self._listen_hz = listen_hz
        self._mode: Any = MODE
        self._board: Any = BOARD
        self._lock = asyncio.Lock()
        self._closed = False

        BOARD.setup()
        lora: Any = LoRa(verbose=False)
        bandwidths = {125_000: BW.BW125, 250_000: BW.BW250, 500_000: BW.BW500}
        rates = {
            5: CODING_RATE.CR4_5,
            6: CODING_RATE.CR4_6,
            7: CODING_RATE.CR4_7,
            8: CODING_RATE.CR4_8,
        }
        lora.set_mode(MODE.SLEEP)
        lora.set_freq(listen_hz / 1e6)
        lora.set_spreading_factor(params.spreading_factor)
        lora.set_bw(bandwidths[params.bandwidth_hz])
        lora.set_coding_rate(rates[params.coding_rate])
        lora.set_preamble(params.preamble_symbols)
        lora.set_rx_crc(params.crc)
        lora.set_low_data_rate_optim(params.low_data_rate_optimize)
        lora.set_pa_config(pa_select=1, max_power=0x04, output_power=tx_power_dbm - 2)
        self._lora = lora
        self._listen()
        log.info("lora_sx127x_ready", sf=params.spreading_factor, freq_hz=listen_hz)

    @property
    def params(self) -> LoraParams:
        return self._params

    def _listen(self) -> None:
        self._lora.set_mode(self._mode.STDBY)
        self._lora.set_freq(self._listen_hz / 1e6)
        self._lora.set_dio_mapping([0] * 6)
        self._lora.reset_ptr_rx()
        self._lora.set_mode(self._mode.RXCONT)

    def _transmit_blocking(self, frame: bytes, channel_hz: int) -> None:
        lora = self._lora
        lora.set_mode(self._mode.STDBY)
        lora.set_freq(channel_hz / 1e6)
        lora.set_dio_mapping([1, 0, 0, 0, 0, 0])
        lora.write_payload(list(frame))
        lora.set_mode(self._mode.TX)
        deadline = time.monotonic() + time_on_air(len(frame), self._params) + 1.0
        try:
            while not lora.get_irq_flags().get("tx_done"):
                if time.monotonic() > deadline:
                    raise RadioError("SX127x did not signal the end of a transmission")
                time.sleep(_POLL_S)
            lora.clear_irq_flags(TxDone=1)
        finally:
            self._listen()

    def _poll_blocking(self) -> Received | None:
        lora = self._lora
        flags = lora.get_irq_flags()
        if not flags.get("rx_done"):
            return None
        lora.clear_irq_flags(RxDone=1)
        if flags.get("crc_error"):
            lora.clear_irq_flags(PayloadCrcError=1)
            return None
        payload = bytes(lora.read_payload(nocheck=True))
        heard = Received(
            payload, float(lora.get_pkt_rssi_value()), float(lora.get_pkt_snr_value())
        )
        lora.reset_ptr_rx()
        lora.set_mode(self._mode.RXCONT)
        return heard

    async def send(self, frame: bytes, channel_hz: int) -> None:
        async with self._lock:
            await asyncio.to_thread(self._transmit_blocking, frame, channel_hz)

    async def receive(self) -> Received:
        while not self._closed:
            async with self._lock:
                heard = await asyncio.to_thread(self._poll_blocking)
            if heard is not None:
                return heard
            await asyncio.sleep(_POLL_S * 4)
        raise RadioError("SX127x radio is closed")

    async def close(self) -> None:
        self._closed = True
        with contextlib.suppress(Exception):
            self._lora.set_mode(self._mode.SLEEP)
            self._board.teardown()
