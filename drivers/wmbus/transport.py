"""Layers above the link (EN 13757-4/-7): extended link layer (CI 8C/8D), the
authentication and fragmentation layer (CI 90) and the transport headers
(short 7A, long 72, none 78)."""

from __future__ import annotations

from dataclasses import dataclass

from .errors import TruncatedFrameError, UnsupportedFrameError
from .link import Address, parse_address

CI_ELL_SHORT = 0x8C
CI_ELL_LONG = 0x8D
CI_AFL = 0x90
CI_TPL_SHORT = 0x7A
CI_TPL_LONG = 0x72
CI_TPL_NONE = 0x78


@dataclass(frozen=True, slots=True)
class Ell:
    """Extended link layer: communication control, access number, session."""

    ci: int
    control: int
    access_number: int
    session_number: int | None  # CI 8D only; its top 3 bits say the cipher
    session_raw: bytes

    @property
    def encryption(self) -> int:
        """0 for none, 1 for AES-128-CTR (EN 13757-4 ELL session number)."""
        if self.session_number is None:
            return 0
        return self.session_number >> 29


def parse_ell(data: bytes, pos: int) -> tuple[Ell, int]:
    """Read an ELL starting at its CI byte; return it and the next offset."""
    ci = data[pos]
    need = 3 if ci == CI_ELL_SHORT else 7
    if len(data) < pos + need:
        raise TruncatedFrameError(f"extended link layer CI {ci:02X} is cut short")
    if ci == CI_ELL_SHORT:
        return Ell(ci, data[pos + 1], data[pos + 2], None, b""), pos + 3
    raw = bytes(data[pos + 3 : pos + 7])
    ell = Ell(ci, data[pos + 1], data[pos + 2], int.from_bytes(raw, "little"), raw)
    return ell, pos + 7


# Length of the MAC for each AFL authentication type (EN 13757-7, MCL bits 0-3).
MAC_LENGTHS = {0: 0, 3: 2, 4: 4, 5: 8, 6: 12, 7: 16, 8: 12}


@dataclass(frozen=True, slots=True)
class Afl:
    """Authentication and fragmentation layer fields."""

    fragment_control: int
    message_control: int | None
    key_info: int | None
    message_counter: int | None
    mac: bytes
    message_length: int | None
    mac_input_head: bytes  # MCL, MCR and ML as sent: the MAC covers them

    @property
    def more_fragments(self) -> bool:
        return bool(self.fragment_control & 0x4000)


def parse_afl(data: bytes, pos: int) -> tuple[Afl, int]:
    """Read an AFL starting at its CI byte; return it and the next offset."""
    if len(data) < pos + 4:
        raise TruncatedFrameError("authentication layer (CI 90) is cut short")
    afl_len = data[pos + 1]
    end = pos + 2 + afl_len
    if len(data) < end or afl_len < 2:
        raise TruncatedFrameError(
            f"authentication layer says {afl_len} bytes; the frame ends first"
        )
    fcl = int.from_bytes(data[pos + 2 : pos + 4], "little")
    cur = pos + 4
    mcl = ki = mcr = ml = None
    mac = b""
    head = bytearray()
    if fcl & 0x2000:
        mcl = data[cur]
        head.append(mcl)
        cur += 1
    if fcl & 0x0200:
        ki = int.from_bytes(data[cur : cur + 2], "little")
        cur += 2
    if fcl & 0x0800:
        mcr = int.from_bytes(data[cur : cur + 4], "little")
        head += data[cur : cur + 4]
        cur += 4
    if fcl & 0x0400:
        at = (mcl or 0) & 0x0F
        if at not in MAC_LENGTHS:
            raise UnsupportedFrameError(f"AFL authentication type {at} is unknown")
        mac = bytes(data[cur : cur + MAC_LENGTHS[at]])
        cur += MAC_LENGTHS[at]
    if fcl & 0x1000:
        ml = int.from_bytes(data[cur : cur + 2], "little")
        head += data[cur : cur + 2]
        cur += 2
    if cur > end:
        raise TruncatedFrameError("authentication layer fields overrun its length")
    afl = Afl(fcl, mcl, ki, mcr, mac, ml, bytes(head))
    return afl, end


@dataclass(frozen=True, slots=True)
class Tpl:
    """Transport header: access number, status, configuration (security mode)."""

    ci: int
    access_number: int | None
    status: int | None
    config: int
    config_ext: int | None
    address: Address | None  # long header only

    @property
    def security_mode(self) -> int:
        return (self.config >> 8) & 0x1F

    @property
    def encrypted_blocks(self) -> int:
        return (self.config >> 4) & 0x0F


def parse_tpl(data: bytes, pos: int) -> tuple[Tpl, int]:
    """Read a transport header starting at its CI byte."""
    ci = data[pos]
    if ci == CI_TPL_NONE:
        return Tpl(ci, None, None, 0, None, None), pos + 1
    if ci == CI_TPL_SHORT:
        head, address = 4, None
        if len(data) < pos + 1 + head:
            raise TruncatedFrameError("short transport header (CI 7A) is cut short")
        cur = pos + 1
    elif ci == CI_TPL_LONG:
        head = 12
        if len(data) < pos + 1 + head:
            raise TruncatedFrameError("long transport header (CI 72) is cut short")
        # The long header sends ID before M; reorder to the link layer's M, ID.
        raw = bytes(data[pos + 5 : pos + 7] + data[pos + 1 : pos + 5])
        address = parse_address(raw + data[pos + 7 : pos + 9])
        cur = pos + 9
    else:
        raise UnsupportedFrameError(
            f"CI field 0x{ci:02X} is not a transport header this driver reads"
            " (manufacturer-specific or compact frame)"
        )
    acc, status = data[cur], data[cur + 1]
    config = int.from_bytes(data[cur + 2 : cur + 4], "little")
    cur += 4
    ext = None
    if (config >> 8) & 0x1F == 7:
        if len(data) <= cur:
            raise TruncatedFrameError("mode-7 configuration extension is missing")
        ext = data[cur]
        cur += 1
    return Tpl(ci, acc, status, config, ext, address), cur
