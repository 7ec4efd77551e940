"""Meter telegrams to exact values: the fixed header, every data record, and the
billing register a tariff charges by. pymbusparser does the record parsing;
this module corrects what it gets wrong and picks the billing register."""

from __future__ import annotations

import math
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import pymbusparser

from drivers.mbus import frames, tables
from gateway.model import FrameError, Medium
from gateway.units import CANONICAL

CI_LONG_HEADER = 0x72
FIXED_HEADER_LEN = 12
INSTANTANEOUS = "Instantaneous value"

# A billing candidate whose VIF extensions mention any of these is not the
# plain consumption register: it is an export register, a per-pulse
# constant, a value frozen at an error, or a manufacturer's private meaning.
_NOT_BILLING = ("manufacturer specific", "negative", "pulse", "error", "per ")


@dataclass(frozen=True, slots=True)
class Record:
    """One data record, its value scaled exactly into `unit`."""

    value: Decimal | str | None
    unit: str
    description: str
    storage: int
    tariff: int | None  # None only on a billing register summed over tariffs
    subunit: int
    function: str
    coding: str = ""
    header: bytes = b""
    data: bytes = b""


@dataclass(frozen=True, slots=True)
class Telegram:
    """A decoded RSP_UD: who sent it, every record, and the billing register."""

    id: str
    manufacturer: str
    version: int
    medium: str
    medium_code: int
    medium_kind: Medium | None
    access_number: int
    status: int
    records: list[Record]
    billing: Record | None
    address: int | None = None
    encrypted: bool = False
    diagnostics: list[str] = field(default_factory=list)
    raw: bytes = b""


def detect_kind(frame: bytes) -> str:
    """Say which link a frame came from: "mbus" for a wired long frame.

    The wireless helper adds its own kind here; until then anything that
    does not start with 0x68 is refused with a reason.
    """
    if frame[:1] == bytes((frames.START_LONG,)):
        return "mbus"
    first = f"{frame[0]:02X}" if frame else "nothing"
    raise FrameError(
        f"not a wired M-Bus long frame: it starts with {first}, not 68 "
        "(wireless M-Bus telegrams are not supported yet)"
    )


def decode_frame(frame: bytes) -> Telegram:
    """Decode one frame into a Telegram; raise FrameError on bad bytes."""
    return _DECODERS[detect_kind(frame)](frame)


def decode_wired(frame: bytes) -> Telegram:
    """Decode a wired RSP_UD long frame with the variable data structure."""
    long_frame = frames.parse_long(frame)
    if long_frame.ci != CI_LONG_HEADER:
        # LIMITATION: only the long fixed header (CI 72) is read. Meters that
        # answer with CI 76, 7A or 78 are refused rather than half-decoded.
        raise FrameError(
            f"CI field {long_frame.ci:02X} is not supported; only 72 "
            "(variable data with the long header) is"
        )
    data = long_frame.data
    if len(data) < FIXED_HEADER_LEN:
        raise FrameError(
            f"variable data header needs 12 bytes after the CI, got {len(data)}"
        )

    ident = data[3::-1].hex().upper()
    signature = int.from_bytes(data[10:12], "little")
    library_input = frame
    if not ident.isdigit():
        # pymbusparser 0.5.3 rejects identification numbers with hex digits
        # (seen on Saia-Burgess meters) and then returns no records at all.
        # The id is ours to print, so hand it a valid one instead.
        patched = frame[:7] + b"\x00\x00\x00\x00" + frame[11:]
        library_input = frames.with_checksum(patched)

    try:
        parsed = pymbusparser.parse(library_input, include_enrichment=False)
    except pymbusparser.MbusParserError as error:
        raise FrameError(f"pymbusparser refused the frame: {error}") from error

    medium_code = data[7]
    kind = tables.MEDIUM_KIND.get(medium_code)
    records = [_record(raw) for raw in parsed.get("records", [])]
    diagnostics = [str(d.get("message", d)) for d in parsed.get("diagnostics", [])]
    return Telegram(
        id=ident,
        manufacturer=_manufacturer(int.from_bytes(data[4:6], "little")),
        version=data[6],
        medium=tables.medium_text(medium_code),
        medium_code=medium_code,
        medium_kind=kind,
        access_number=data[8],
        status=data[9],
        records=records,
        billing=billing_register(records, kind),
        address=long_frame.a,
        encrypted=(signature >> 8) & 0x1F != 0,
        diagnostics=diagnostics,
        raw=bytes(frame),
    )


_DECODERS: dict[str, Callable[[bytes], Telegram]] = {"mbus": decode_wired}


def _manufacturer(code: int) -> str:
    return "".join(chr(((code >> shift) & 0x1F) + 64) for shift in (10, 5, 0))


def _record(raw: dict[str, Any]) -> Record:
    quantities = raw.get("quantities") or []
    description = ", ".join(quantities) or str(raw.get("function", ""))
    header = bytes.fromhex(raw.get("header_hex", ""))
    data = bytes.fromhex(raw.get("data_hex", ""))
    unit, factor = tables.normalise_unit(raw.get("unit"), description)
    coding = str(raw.get("data_coding", ""))
    value = _value(raw.get("value") or {}, header, data, coding)
    if isinstance(value, Decimal):
        value *= factor
    return Record(
        value=value,
        unit=unit,
        description=description,
        storage=int(raw.get("storage_number", 0)),
        tariff=int(raw.get("tariff", 0)),
        subunit=int(raw.get("subunit", 0)),
        function=str(raw.get("function", "")),
        coding=coding,
        header=header,
        data=data,
    )


def _value(
    value: dict[str, Any], header: bytes, data: bytes, coding: str
) -> Decimal | str | None:
    kind = value.get("kind")
    if kind == "decimal":
        if "integer" in coding and data and all(byte == 0xFF for byte in data):
            # An integer register filled with FF is "no value" (an unused
            # history slot), which pymbusparser 0.5.3 reads as -1 scaled.
            return None
        return Decimal(str(value["value"]))
    if kind == "float":
        return _float_value(data, header)
    if kind == "manufacturer_specific":
        return None
    if kind == "date" and isinstance(value.get("value"), dict):
        parts = value["value"]
        return "-".join(str(parts.get(k, "?")) for k in ("year", "month", "day"))
    inner = value.get("value")
    return None if inner is None else str(inner)


def _float_value(data: bytes, header: bytes) -> Decimal | None:
    """Decode an IEEE-754 record and apply the VIF's decimal exponent.

    pymbusparser 0.5.3 returns the bare float and forgets the VIF exponent
    (a float with VIF 13, litres, comes out as m3 unscaled). We decode the
    bytes ourselves and keep the shortest decimal that round-trips the float:
    that is the number the meter meant, not its binary approximation.
    """
    if len(data) not in (4, 8):
        return None
    number = struct.unpack("<f" if len(data) == 4 else "<d", data)[0]
    if not math.isfinite(number):
        return None
    text = repr(number) if len(data) == 8 else _shortest_float32(number, data)
    exponent = _float_exponent(header)
    # LIMITATION: a float under a VIF whose decimal scale we do not know
    # (most extension-table VIFs) is left unscaled, as pymbusparser has it.
    return Decimal(text).scaleb(exponent or 0)


def _shortest_float32(number: float, data: bytes) -> str:
    for digits in range(1, 10):
        text = f"{number:.{digits}g}"
        if struct.pack("<f", float(text)) == data:
            return text
    return repr(number)


def _float_exponent(header: bytes) -> int | None:
    position = 1
    while position < len(header) and header[position - 1] & 0x80:
        position += 1  # skip DIFEs: the VIF follows the last one
    if position >= len(header):
        return None
    vif = header[position] & 0x7F
    if vif == 0x7B and position + 1 < len(header):
        extension = header[position + 1] & 0x7F
        if extension in (0x00, 0x01):  # energy in 0.1 MWh or MWh, to Wh
            return extension + 5
        if extension in (0x08, 0x09):  # energy in 0.1 GJ or GJ, to J
            return extension + 8
        return None
    return tables.vif_exponent(vif)


def billing_register(records: list[Record], kind: Medium | None) -> Record | None:
    """Pick the register a tariff bills: current value of the main quantity.

    That is storage 0, tariff 0, subunit 0, an instantaneous value of the
    medium's quantity (energy, volume or HCA units), without extensions that
    change its meaning. When a meter keeps only per-tariff registers (many
    electricity meters count day and night separately and send no total),
    the bill is their sum, marked with tariff None. A meter that has some
    tariff-0 register of the quantity, only with a meaning we exclude, gets
    no sum: its tariff registers may sit unused at zero (Schneider iEM3000
    keeps its total in a manufacturer-specific record), and billing zero
    would hand out free supply.
    """
    if kind is None:
        return None
    quantity = tables.BILLING_QUANTITY[kind]
    units = CANONICAL[kind][1]
    candidates = [
        record
        for record in records
        if record.description.split(", ")[0] == quantity
        and record.storage == 0
        and record.subunit == 0
        and record.function == INSTANTANEOUS
        and isinstance(record.value, Decimal)
        and record.unit in units
        and not any(word in record.description.lower() for word in _NOT_BILLING)
    ]
    current = [record for record in candidates if record.tariff == 0]
    if current:
        return current[0]
    has_total_elsewhere = any(
        record.description.split(", ")[0] == quantity
        and record.storage == 0
        and record.tariff == 0
        for record in records
    )
    per_tariff = [record for record in candidates if record.tariff]
    if (
        has_total_elsewhere
        or not per_tariff
        or len({record.unit for record in per_tariff}) != 1
    ):
        return None
    total = sum(
        (r.value for r in per_tariff if isinstance(r.value, Decimal)), Decimal(0)
    )
    tariffs = ", ".join(str(record.tariff) for record in per_tariff)
    return Record(
        value=total,
        unit=per_tariff[0].unit,
        description=f"{quantity} (sum of tariffs {tariffs})",
        storage=0,
        tariff=None,
        subunit=0,
        function=INSTANTANEOUS,
    )


def telegram_to_json(telegram: Telegram) -> dict[str, Any]:
    """Return the telegram as JSON-ready data; numbers are exact strings."""
    return {
        "kind": "mbus",
        "id": telegram.id,
        "manufacturer": telegram.manufacturer,
        "version": telegram.version,
        "medium": telegram.medium,
        "medium_kind": telegram.medium_kind.value if telegram.medium_kind else None,
        "access_number": telegram.access_number,
        "status": f"{telegram.status:02X}",
        "encrypted": telegram.encrypted,
        "billing": _record_json(telegram.billing) if telegram.billing else None,
        "records": [_record_json(record) for record in telegram.records],
        "diagnostics": telegram.diagnostics,
    }


def _record_json(record: Record) -> dict[str, Any]:
    value = record.value
    return {
        "description": record.description,
        "value": _decimal_text(value) if isinstance(value, Decimal) else value,
        "unit": record.unit,
        "storage": record.storage,
        "tariff": record.tariff,
        "subunit": record.subunit,
        "function": record.function,
    }


def _decimal_text(value: Decimal) -> str:
    """Print a Decimal without exponent notation (1E+3 becomes 1000)."""
    text = format(value, "f")
    return text
