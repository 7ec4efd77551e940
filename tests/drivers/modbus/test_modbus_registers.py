"""The dispensing-unit register map: word order, scaling, and refusals."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from drivers.modbus import registers as regs


@given(st.integers(min_value=0, max_value=regs.U32_MAX))
def test_u32_round_trip(value: int) -> None:
    high, low = regs.u32_to_words(value)
    assert 0 <= high <= 0xFFFF and 0 <= low <= 0xFFFF
    assert regs.words_to_u32(high, low) == value


@given(st.integers(min_value=-0x8000_0000, max_value=0x7FFF_FFFF))
def test_i32_round_trip(value: int) -> None:
    assert regs.words_to_i32(*regs.i32_to_words(value)) == value


def test_high_word_comes_first() -> None:
    assert regs.u32_to_words(0x0001_86A0) == [0x0001, 0x86A0]
    assert regs.i32_to_words(-1234) == [0xFFFF, 0xFB2E]
    assert regs.words_to_i32(0xFFFF, 0xFFFF) == -1


def test_out_of_range_words_are_refused() -> None:
    with pytest.raises(regs.RegisterMapError, match="32 unsigned bits"):
        regs.u32_to_words(1 << 32)
    with pytest.raises(regs.RegisterMapError, match="not 16 bits"):
        regs.words_to_u32(0x1_0000, 0)


def test_allowance_scaling() -> None:
    assert regs.allowance_to_raw(None) == regs.UNLIMITED
    assert regs.allowance_to_raw(Decimal("1.5")) == 1500
    # Rounded down: the unit may never dispense more than it was allowed.
    assert regs.allowance_to_raw(Decimal("0.0019")) == 1
    assert regs.allowance_to_raw(Decimal("-3")) == 0
    assert regs.allowance_to_raw(Decimal("1e12")) == regs.UNLIMITED - 1
    assert regs.raw_to_allowance(regs.UNLIMITED) is None
    assert regs.raw_to_allowance(1500) == Decimal("1.5")
    with pytest.raises(regs.RegisterMapError, match="not a number"):
        regs.allowance_to_raw(Decimal("NaN"))


def test_command_layout() -> None:
    words = regs.encode_command(
        supply_on=True,
        allowance=Decimal("100"),
        display_balance_minor=-1234,
        display_decimals=2,
        message_id=regs.DisplayMessage.LOW_BALANCE,
        watchdog_s=600,
    )
    assert words == [1, 0x0001, 0x86A0, 0xFFFF, 0xFB2E, 2, 1, 600]
    block = regs.decode_command(words)
    assert block.supply_on and block.allowance_raw == 100_000
    assert block.display_balance_raw == -1234 and block.watchdog_s == 600


def test_command_blank_display_and_no_message() -> None:
    words = regs.encode_command(
        supply_on=False,
        allowance=None,
        display_balance_minor=None,
        display_decimals=0,
        message_id=None,
        watchdog_s=0,
    )
    assert words == [0, 0xFFFF, 0xFFFF, 0x8000, 0x0000, 0, 0, 0]


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"display_decimals": 5}, "display decimals"),
        ({"display_balance_minor": 1 << 31}, "32 signed bits"),
        ({"display_balance_minor": regs.BALANCE_BLANK}, "blank"),
        ({"message_id": 70_000}, "message id"),
        ({"watchdog_s": -1}, "watchdog"),
    ],
)
def test_command_values_the_map_cannot_carry(
    change: dict[str, int], reason: str
) -> None:
    args: dict[str, object] = {
        "supply_on": True,
        "allowance": Decimal(1),
        "display_balance_minor": 0,
        "display_decimals": 2,
        "message_id": 0,
        "watchdog_s": 60,
    }
    args.update(change)
    with pytest.raises(regs.RegisterMapError, match=reason):
        regs.encode_command(**args)  # type: ignore[arg-type]


def _state(**change: object) -> regs.StateBlock:
    values: dict[str, object] = {
        "device_type": regs.DEVICE_TYPE,
        "output_kind": regs.OutputKind.WATER_VALVE,
        "firmware": 0x0102,
        "map_version": regs.REGISTER_MAP_VERSION,
        "supply_feedback": True,
        "status": regs.Status.TAMPER | regs.Status.RELAY_FAULT,
        "allowance_raw": 2500,
        "consumption_raw": 0xFFFF_FFFE,
        "watchdog_left_s": 42,
    }
    values.update(change)
    return regs.StateBlock(**values)  # type: ignore[arg-type]


def test_state_round_trip() -> None:
    state = _state()
    words = regs.encode_state(state)
    assert len(words) == regs.STATE_COUNT
    assert words[:6] == [0x5047, 1, 0x0102, 1, 1, 0x0011]
    decoded = regs.decode_state(words)
    assert decoded == state
    assert decoded.firmware_text == "1.2"


def test_status_bits_decode_and_unknown_bits_are_dropped() -> None:
    words = regs.encode_state(_state(status=regs.Status(0)))
    words[regs.IR_STATUS] = 0x8000 | 0x0002 | 0x0004 | 0x0008
    status = regs.decode_state(words).status
    assert regs.Status.MANUAL_OVERRIDE in status
    assert regs.Status.ALLOWANCE_EXHAUSTED in status
    assert regs.Status.WATCHDOG_EXPIRED in status
    assert regs.Status.TAMPER not in status
    assert int(status) == 0x000E


@pytest.mark.parametrize(
    ("index", "value", "reason"),
    [
        (regs.IR_DEVICE_TYPE, 0x1234, "not a prepaidgw dispensing unit"),
        (regs.IR_MAP_VERSION, 2, "register map 2"),
        (regs.IR_SUPPLY_FEEDBACK, 2, "supply feedback"),
    ],
)
def test_state_from_the_wrong_device_is_refused(
    index: int, value: int, reason: str
) -> None:
    words = regs.encode_state(_state())
    words[index] = value
    with pytest.raises(regs.RegisterMapError, match=reason):
        regs.decode_state(words)


def test_state_of_wrong_length_is_refused() -> None:
    with pytest.raises(regs.RegisterMapError, match=f"{regs.STATE_COUNT} registers"):
        regs.decode_state([regs.DEVICE_TYPE] * 3)
