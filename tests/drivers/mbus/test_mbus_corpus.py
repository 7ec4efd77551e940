"""Every wired frame of the public corpus decodes to the id, manufacturer,
medium and billing value its upstream decoder printed."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from drivers.mbus.decode import Telegram, decode_frame
from gateway.units import convert

DATA = Path(__file__).parents[2] / "data"
ROWS = [json.loads(line) for line in (DATA / "mbus_corpus.jsonl").open()]
UNMATCHED = {
    row["row"]: row for row in json.loads((DATA / "mbus_unmatched.json").read_text())
}
# Float registers carry about seven significant digits; upstream decoders
# print their binary value while we keep the shortest decimal that
# round-trips, so the two may differ in the eighth digit.
FLOAT_TOLERANCE = Decimal("1e-7")


def _problems(row: dict[str, Any], telegram: Telegram) -> list[str]:
    expected = row["expected"]
    problems = []
    if telegram.id != expected["id"].upper().zfill(8):
        problems.append(f"id {telegram.id} != {expected['id']}")
    if telegram.manufacturer != expected["manufacturer"]:
        problems.append(f"manufacturer {telegram.manufacturer}")
    kind = telegram.medium_kind.value if telegram.medium_kind else None
    if expected["medium"] not in (telegram.medium, kind):
        problems.append(f"medium {telegram.medium} / {kind} != {expected['medium']}")

    billing, got = row["billing"], telegram.billing
    if billing is None or got is None:
        if billing is not got:
            problems.append(f"billing {got} where {billing} was expected")
        return problems
    assert telegram.medium_kind is not None and isinstance(got.value, Decimal)
    printed = Decimal(billing["value"])
    unit = billing["unit"].replace("m^3", "m3")
    want = convert(printed, unit, got.unit, telegram.medium_kind)
    # Upstream printed a rounded number: allow half of its last digit.
    last_digit = Decimal(1).scaleb(int(printed.as_tuple().exponent)) / 2
    tolerance = convert(last_digit, unit, got.unit, telegram.medium_kind)
    if "real" in got.coding:
        tolerance = max(tolerance, abs(want) * FLOAT_TOLERANCE)
    if abs(got.value - want) > tolerance:
        problems.append(f"billing {got.value} {got.unit} != {want}")
    return problems


@pytest.mark.parametrize("index", range(len(ROWS)))
def test_corpus_frame_decodes_to_expected_values(index: int) -> None:
    row = ROWS[index]
    problems = _problems(row, decode_frame(bytes.fromhex(row["hex"])))
    if index in UNMATCHED:
        assert problems, f"row {index} now matches: remove it from mbus_unmatched.json"
    else:
        assert problems == [], row["source"]


def test_unmatched_list_names_real_rows_with_reasons() -> None:
    for index, entry in UNMATCHED.items():
        assert ROWS[index]["source"] == entry["source"]
        assert len(entry["reason"]) > 40


def test_corpus_covers_every_billing_path() -> None:
    telegrams = [decode_frame(bytes.fromhex(row["hex"])) for row in ROWS]
    billed = [t.billing for t in telegrams if t.billing is not None]
    assert any(b.tariff is None for b in billed)  # summed over tariffs
    assert any("real" in b.coding for b in billed)  # float register
    assert any("BCD" in b.coding for b in billed)
    assert {b.unit for b in billed} >= {"Wh", "m3", "J"}
