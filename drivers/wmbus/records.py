"""Application-layer records of a decrypted telegram: parsed by pymbusparser,
then corrected where it is wrong for meters in the field (FF-filled registers,
float exponents), and the billing register chosen by explicit rules."""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

import pymbusparser

from gateway.model import Medium
from gateway.units import UnitError, canonical_unit, convert

from .errors import UnsupportedFrameError

# UCUM-like spellings of pymbusparser, in gateway.units spellings.
_UNITS = {
    "W.h": "Wh",
    "kW.h": "kWh",
    "MW.h": "MWh",
    "J": "J",
    "kJ": "kJ",
    "MJ": "MJ",
    "GJ": "GJ",
    "m3": "m3",
    "l": "l",
    "Cel": "C",
    "m3.h-1": "m3/h",
    "%": "%",
}

_MAIN_QUANTITY: dict[Medium, str] = {
    Medium.ELECTRICITY: "Energy",
    Medium.HEAT: "Energy",
    Medium.COOLING: "Energy",
    Medium.WATER: "Volume",
    Medium.WARM_WATER: "Volume",
    Medium.GAS: "Volume",
    Medium.HEAT_COST: "Dimensionless HCA",
}

# Data field codes (low nibble of the DIF) and their data lengths.
_DATA_LENGTHS = {
    0: 0,
    1: 1,
    2: 2,
    3: 3,
    4: 4,
    5: 4,
    6: 6,
    7: 8,
    8: 0,
    9: 1,
    10: 2,
    11: 3,
    12: 4,
    14: 6,
}


@dataclass(frozen=True, slots=True)
class Record:
    """One data record: what it measures, its value and where it is stored.

    `value` is None when the meter sent a "no value" filler (all FF bytes);
    `text` carries dates and strings.
    """

    quantity: str
    value: Decimal | None
    unit: str
    function: str
    storage: int
    tariff: int
    subunit: int
    text: str | None = None
    qualifiers: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class BillingRegister:
    """The register a tariff bills: value in the medium's canonical unit."""

    value: Decimal
    unit: str
    quantity: str


def record_spans(data: bytes) -> list[tuple[int, int, int, bool]]:
    """Split records: (header start, data start, end, all data bytes FF).

    Only the structure is read here (DIF/DIFE/VIF/VIFE and lengths); the
    values are left to pymbusparser. Idle fillers (2F) are skipped.
    """
    spans: list[tuple[int, int, int, bool]] = []
    pos = 0
    while pos < len(data):
        start = pos
        dif = data[pos]
        pos += 1
        if dif == 0x2F:
            continue
        if dif in (0x0F, 0x1F):
            spans.append((start, pos, len(data), False))
            break
        while data[pos - 1] & 0x80 and pos < len(data):
            pos += 1  # DIFEs
        if pos >= len(data):
            break
        vif = data[pos]
        pos += 1
        while data[pos - 1] & 0x80 and pos < len(data):
            pos += 1  # VIFEs
        if vif in (0x7C, 0xFC) and pos < len(data):
            pos += 1 + data[pos]  # plain-text VIF carries its own length
        coding = dif & 0x0F
        if coding == 0x0D:
            length = data[pos] if pos < len(data) else 0
            data_start = pos + 1
        else:
            length = _DATA_LENGTHS.get(coding, 0)
            data_start = pos
        end = data_start + length
        if end > len(data):
            break
        filled = length > 0 and all(b == 0xFF for b in data[data_start:end])
        spans.append((start, data_start, end, filled))
        pos = end
    return spans


def vif_scale(header: bytes) -> Decimal:
    """Ask the library for the VIF's decimal scale by parsing the integer 1."""
    probe = bytes([(header[0] & 0xF0) | 0x04]) + header[1:] + b"\x01\x00\x00\x00"
    try:
        parsed = pymbusparser.parse_records(probe)
        return Decimal(parsed[0]["value"]["value"])
    except (pymbusparser.MbusParserError, KeyError, IndexError, InvalidOperation):
        return Decimal(1)


def _record(raw: dict[str, Any], header: bytes, missing: bool) -> Record:
    quantities = tuple(raw.get("quantities") or ("unknown",))
    unit = raw.get("unit")
    value_obj = raw.get("value") or {}
    kind = value_obj.get("kind")
    value: Decimal | None = None
    text: str | None = None
    if kind == "decimal" and not missing:
        value = Decimal(value_obj["value"])
    elif kind == "float" and not missing:
        # pymbusparser 0.5 returns 32-bit real records without the VIF's
        # exponent; apply it, keeping the float's 7 significant digits.
        # NaN and infinity come back as text and mean "no value".
        number = value_obj["value"]
        if isinstance(number, float) and math.isfinite(number):
            value = Decimal(format(number, ".7g")) * vif_scale(header)
    elif kind not in ("decimal", "float") and "value" in value_obj:
        text = str(value_obj["value"])
    if quantities[0] == "Dimensionless HCA":
        unit = "HCA"
    return Record(
        quantity=quantities[0],
        value=value,
        unit=_UNITS.get(unit or "", unit or ""),
        function=str(raw.get("function", "")),
        storage=int(raw.get("storage_number", 0)),
        tariff=int(raw.get("tariff", 0)),
        subunit=int(raw.get("subunit", 0)),
        text=text,
        qualifiers=quantities[1:],
    )


def decode_records(data: bytes) -> list[Record]:
    """Decode the plaintext records after the 2F 2F marker."""
    spans = record_spans(data)
    if spans:
        # Some meters (Axioma gas) leave stray bytes after their 2F idle
        # filler; pymbusparser rejects the telegram for them, so drop what
        # does not form a whole record.
        data = data[: spans[-1][2]]
    # pymbusparser rejects a whole telegram when one BCD register is all FF
    # ("no value" on Engelmann and others), and reads FF integers as -1;
    # zero those bytes for the library and mark the records missing.
    cleaned = bytearray(data)
    for _start, data_start, end, filled in spans:
        if filled:
            cleaned[data_start:end] = bytes(end - data_start)
    try:
        parsed = pymbusparser.parse_records(bytes(cleaned))
    except pymbusparser.MbusParserError as exc:
        raise UnsupportedFrameError(
            f"application records do not decode: {exc}"
        ) from None
    records = []
    for index, raw in enumerate(parsed):
        header = bytes.fromhex(str(raw.get("header_hex", "")).replace(" ", ""))
        missing = False
        if index < len(spans):
            start, data_start, _end, filled = spans[index]
            if bytes(data[start:data_start]).startswith(header):
                missing = filled
        records.append(_record(raw, header, missing))
    return records


def billing_register(
    records: list[Record], medium: Medium | None
) -> BillingRegister | None:
    """Pick the current register the tariff bills, or None if there is none.

    The register is the medium's main quantity, instantaneous, storage 0,
    tariff 0, subunit 0 and present; never "the last volume in the frame".
    A plain register wins over one whose VIF carries extensions.
    """
    if medium is None or medium not in _MAIN_QUANTITY:
        return None
    wanted = _MAIN_QUANTITY[medium]
    candidates = [
        r
        for r in records
        if r.quantity == wanted
        and r.function == "Instantaneous value"
        and r.storage == 0
        and r.tariff == 0
        and r.subunit == 0
        and r.value is not None
    ]
    if not candidates:
        return None
    candidates.sort(key=lambda r: len(r.qualifiers))
    chosen = candidates[0]
    assert chosen.value is not None
    target = canonical_unit(medium)
    try:
        value = convert(chosen.value, chosen.unit, target, medium)
    except UnitError:
        return None
    return BillingRegister(value, target, wanted)
