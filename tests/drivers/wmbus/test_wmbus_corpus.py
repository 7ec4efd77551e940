"""Every corpus telegram decodes to the expected meter and billing value, or
is listed, with its reason, in tests/data/wmbus_unmatched.json."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from drivers.wmbus import (
    MeterKey,
    WmbusFrameError,
    WmbusSecurityError,
    decode_frame,
    telegram_to_json,
)
from gateway.model import Medium
from gateway.units import canonical_unit

# Upstream decoders name the billing register differently per driver; these
# are the names meaning "the current total", in order of preference.
BILLING_NAMES = (
    "total",
    "total_energy_consumption",
    "total_energy",
    "energy",
    "Volume (record index 1)",
    "volume",
    "current_consumption",
    "consumption",
)
UNIT_SPELLING = {"hca": "HCA"}


def expected_billing(row: dict[str, Any], medium: Medium | None) -> Decimal | None:
    """Pick the expected billing value by name and the medium's unit."""
    if medium is None:
        return None
    unit = canonical_unit(medium)
    values = row["expected"]["values"]
    for name in BILLING_NAMES:
        for value in values:
            spelled = UNIT_SPELLING.get(value["unit"], value["unit"])
            if value["name"] == name and spelled == unit:
                return Decimal(str(value["value"]))
    return None


def check_row(row: dict[str, Any]) -> str | None:
    """Return why a row does not match, or None when it does."""
    key = MeterKey.from_hex(row["key"]) if row["key"] else None
    try:
        telegram = decode_frame(bytes.fromhex(row["hex"]), key)
    except (WmbusFrameError, WmbusSecurityError) as exc:
        return f"{type(exc).__name__}: {exc}"
    expected = row["expected"]
    if telegram.id != expected["id"]:
        return f"id {telegram.id} != {expected['id']}"
    if telegram.manufacturer != expected["manufacturer"]:
        return f"manufacturer {telegram.manufacturer}"
    if telegram.medium_text != expected["medium"].split(" (0x")[0]:
        return f"medium {telegram.medium_text}"
    want = expected_billing(row, telegram.medium)
    got = telegram.billing.value if telegram.billing else None
    if want != got:
        return f"billing {got} != {want}"
    telegram_to_json(telegram)  # must serialise
    return None


def test_failing_rows_are_exactly_the_listed_ones(
    rows: list[dict[str, Any]], unmatched: dict[str, Any]
) -> None:
    failing = {str(i): check_row(row) for i, row in enumerate(rows)}
    failing = {i: why for i, why in failing.items() if why is not None}
    assert set(failing) == set(unmatched), failing
    for index, entry in unmatched.items():
        assert rows[int(index)]["expected"]["id"] == entry["meter"]
        assert entry["reason"]


@pytest.mark.parametrize("index", [43, 44])
def test_mode7_engelmann_verifies_and_decrypts_in_both_forms(
    rows: list[dict[str, Any]], index: int
) -> None:
    row = rows[index]
    telegram = decode_frame(bytes.fromhex(row["hex"]), MeterKey.from_hex(row["key"]))
    assert telegram.security_mode == 7
    assert telegram.encrypted
    assert telegram.message_counter == 0x00025E89
    assert telegram.frame_format == ("B" if index == 43 else "none")
    assert telegram.billing is not None
    assert telegram.billing.value == Decimal(9341)
    assert telegram.billing.unit == "kWh"
    volumes = [r.value for r in telegram.records if r.quantity == "Volume"]
    assert Decimal("1348.631") in volumes


def test_cleartext_row_decodes_without_a_key(rows: list[dict[str, Any]]) -> None:
    telegram = decode_frame(bytes.fromhex(rows[40]["hex"]))
    assert telegram.id == "86868686"
    assert telegram.billing is not None
    assert telegram.billing.value == Decimal("0.016")
    assert not telegram.encrypted


def test_ff_filled_history_registers_are_missing(rows: list[dict[str, Any]]) -> None:
    row = rows[45]
    telegram = decode_frame(bytes.fromhex(row["hex"]), MeterKey.from_hex(row["key"]))
    history = [r for r in telegram.records if r.quantity == "Volume" and r.storage]
    assert history
    assert any(r.value is None for r in history)
    assert all(r.value is None or r.value >= 0 for r in history)


def test_long_header_names_the_meter_not_the_radio(rows: list[dict[str, Any]]) -> None:
    telegram = decode_frame(bytes.fromhex(rows[51]["hex"]))
    assert telegram.id == "01135263"
    assert telegram.link_id == "00005064"
    assert telegram.medium is Medium.ELECTRICITY
