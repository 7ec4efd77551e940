"""Measure wired M-Bus decoding: accuracy of pymbusparser, pyMeterBus and our
decode_frame against the corpus, then frames per second of each, same run.

Run: .venv/bin/python bench/bench_decode.py [--seconds 2]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import pymbusparser  # noqa: E402

from drivers.mbus import tables  # noqa: E402
from drivers.mbus.decode import decode_frame  # noqa: E402
from drivers.mbus.pymeterbus_quiet import import_meterbus  # noqa: E402
from gateway.model import Medium  # noqa: E402
from gateway.units import CANONICAL, convert  # noqa: E402

meterbus = import_meterbus()
CORPUS = ROOT / "tests" / "data" / "mbus_corpus.jsonl"

# (id, manufacturer, medium, billing value, billing unit) as one decoder sees it.
Summary = tuple[str, str, Medium | None, Decimal | None, str | None]
# (quantity, storage, tariff, subunit, instantaneous, plain meaning, value, unit)
Candidate = tuple[str, int, int, int, bool, bool, Decimal, str]


def pick_billing(kind: Medium | None, records: list[Candidate]) -> tuple[Any, Any]:
    """Apply our billing rule to one library's own records and values."""
    if kind is None:
        return None, None
    quantity = tables.BILLING_QUANTITY[kind]
    units = CANONICAL[kind][1]
    usable = [
        r
        for r in records
        if r[0] == quantity and r[1] == 0 and r[3] == 0 and r[4] and r[5]
        if r[7] in units
    ]
    for record in usable:
        if record[2] == 0:
            return record[6], record[7]
    if any(r[0] == quantity and r[1] == 0 and r[2] == 0 for r in records):
        return None, None
    per_tariff = [r for r in usable if r[2] > 0]
    if not per_tariff:
        return None, None
    return sum((r[6] for r in per_tariff), Decimal(0)), per_tariff[0][7]


def ours(frame: bytes) -> Summary:
    telegram = decode_frame(frame)
    billing = telegram.billing
    value = billing.value if billing and isinstance(billing.value, Decimal) else None
    return (
        telegram.id,
        telegram.manufacturer,
        telegram.medium_kind,
        value,
        billing.unit if billing else None,
    )


_MBP_UNITS = {"W.h": "Wh", "m3": "m3", "J": "J", None: "HCA"}


def bare_pymbusparser(frame: bytes) -> Summary:
    parsed = pymbusparser.parse(frame, include_enrichment=False)
    identity = parsed.get("meter", {}).get("identity", {})
    kind = tables.MEDIUM_KIND.get(identity.get("device_type_code", -1))
    records: list[Candidate] = []
    for r in parsed.get("records", []):
        quantities = r.get("quantities") or [""]
        extra = " ".join(quantities[1:]).lower()
        raw = r.get("value", {}).get("value")
        if r.get("value", {}).get("kind") not in ("decimal", "float"):
            continue
        records.append(
            (
                quantities[0],
                r["storage_number"],
                r["tariff"],
                r["subunit"],
                r["function"] == "Instantaneous value",
                not any(w in extra for w in ("manufacturer", "negative", "pulse")),
                Decimal(str(raw)),
                _MBP_UNITS.get(r.get("unit"), str(r.get("unit"))),
            )
        )
    value, unit = pick_billing(kind, records)
    return (
        str(identity.get("id", "")),
        str(identity.get("manufacturer_code", "")),
        kind,
        value,
        unit,
    )


_PMB_TYPES = {"ENERGY_WH": "Energy", "ENERGY_J": "Energy", "VOLUME": "Volume"}
_PMB_TYPES |= {"HCA": "Dimensionless HCA", "Energy": "Energy"}
_PMB_UNITS = {"WH": "Wh", "J": "J", "M3": "m3", "NONE": "HCA"}


def bare_pymeterbus(frame: bytes) -> Summary:
    telegram = meterbus.load(frame)
    header = telegram.body.bodyHeader
    ident = "".join(f"{b:02X}" for b in header.id_nr)
    info = header.interpreted
    kind = tables.MEDIUM_KIND.get(int(info["medium"], 16))
    records: list[Candidate] = []
    for record in telegram.records:
        try:
            r = record.interpreted
        except Exception:  # pyMeterBus raises many types lazily.
            continue
        vif_type = str(r.get("type", "")).split(".")[-1]
        if vif_type not in _PMB_TYPES or not isinstance(r["value"], (int, Decimal)):
            continue
        records.append(
            (
                _PMB_TYPES[vif_type],
                r["storage_number"],
                r.get("tariff", 0),
                r.get("device", 0),
                r["function"].endswith("INSTANTANEOUS_VALUE"),
                "POSITIVE" in str(r.get("unit_enh", "POSITIVE")),
                Decimal(r["value"]),
                _PMB_UNITS.get(str(r["unit"]).split(".")[-1], "?"),
            )
        )
    value, unit = pick_billing(kind, records)
    return ident, str(info["manufacturer"]), kind, value, unit


def score(decoder: Callable[[bytes], Summary], rows: list[dict[str, Any]]) -> str:
    """Count matching fields; billing within printed precision, and exactly."""
    counts = dict.fromkeys(
        ("id", "manufacturer", "medium", "billing", "exact", "all"), 0
    )
    for row in rows:
        expected = row["expected"]
        try:
            ident, manufacturer, kind, value, unit = decoder(bytes.fromhex(row["hex"]))
        except Exception:  # a crash is a miss on every field.
            continue
        ok_id = ident.upper().lstrip("0") == expected["id"].upper().lstrip("0")
        ok_man = manufacturer == expected["manufacturer"]
        codes = row["meta"]["header"]["medium_code"]
        ok_medium = kind == tables.MEDIUM_KIND.get(int(codes, 16))
        near, exact = _billing_matches(row["billing"], kind, value, unit)
        for name, ok in zip(
            counts, (ok_id, ok_man, ok_medium, near, exact), strict=False
        ):
            counts[name] += ok
        counts["all"] += ok_id and ok_man and ok_medium and near
    total = len(rows)
    return "  ".join(f"{name} {count}/{total}" for name, count in counts.items())


def _billing_matches(
    billing: dict[str, str] | None, kind: Medium | None, value: Any, unit: Any
) -> tuple[bool, bool]:
    if billing is None or value is None or kind is None:
        return (billing is None and value is None,) * 2
    printed = Decimal(billing["value"])
    source = billing["unit"].replace("m^3", "m3")
    try:
        want = convert(printed, source, unit, kind)
        half = convert(
            Decimal(1).scaleb(int(printed.as_tuple().exponent)) / 2, source, unit, kind
        )
    except Exception:  # a unit we cannot convert is a miss.
        return False, False
    tolerance = max(half, abs(want) * Decimal("1e-7"))
    return abs(value - want) <= tolerance, value == want


def rate(
    decoder: Callable[[bytes], object], frames: list[bytes], seconds: float
) -> float:
    """Return frames decoded per second, decoding the list over and over."""
    done = 0
    started = time.perf_counter()
    while time.perf_counter() - started < seconds:
        for frame in frames:
            try:
                decoder(frame)
            except Exception:  # speed only; accuracy is above.
                continue
        done += len(frames)
    return done / (time.perf_counter() - started)


def _meterbus_bare_parse(frame: bytes) -> object:
    telegram = meterbus.load(frame)
    return [record.interpreted for record in telegram.records]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=2.0)
    args = parser.parse_args()
    rows = [json.loads(line) for line in CORPUS.open()]
    print(f"accuracy on {len(rows)} corpus frames (billing: within printed precision)")
    for name, decoder in (
        ("pymbusparser 0.5.3 (bare)", bare_pymbusparser),
        ("pyMeterBus 0.8.5 (bare)", bare_pymeterbus),
        ("ours: decode_frame", ours),
    ):
        print(f"  {name:28} {score(decoder, rows)}")

    frames = [bytes.fromhex(row["hex"]) for row in rows]

    def library(frame: bytes) -> object:
        return pymbusparser.parse(frame, include_enrichment=False)

    reference = rate(library, frames, args.seconds)
    ours_rate = rate(decode_frame, frames, args.seconds)
    pmb_rate = rate(_meterbus_bare_parse, frames, args.seconds)
    print("speed (frames per second, same frames, same run)")
    print(f"  pymbusparser.parse (bare)      {reference:10.0f}")
    print(f"  pyMeterBus load + interpret    {pmb_rate:10.0f}")
    print(f"  ours: decode_frame             {ours_rate:10.0f}")
    print(f"  ratio ours / pymbusparser      {ours_rate / reference:10.2f}")
    print(f"  ours: {1e6 / ours_rate:.0f} us a frame")


if __name__ == "__main__":
    main()
