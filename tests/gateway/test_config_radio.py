"""Radio buses in the site YAML: receivers and their sources, LoRa radios,
per-device keys that are validated and never shown, and the cross checks."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.config import ConfigError, parse_config
from gateway.config.radio import LoraBus, WmbusBus

KEY = "00112233445566778899aabbccddeeff"


def _site(buses: str, meters: str, units: str = "units: []") -> str:
    return f"""
site: {{id: s}}
state_dir: /tmp/radio-config-test
buses:
{buses}
meters:
{meters}
{units}
accounts: [{{id: a, name: A}}]
tariffs: [{{id: t, prices: {{water: {{price: "1", per: m3}}}}}}]
"""


AIR = "  - {id: air, kind: wmbus, receiver: lines, path: /run/wmbus.fifo}"
LORA = "  - {id: lora, kind: lora, radio: simulated}"


def _problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_config(text, Path("site.yaml"))
    return caught.value.lines


def test_radio_buses_load_with_their_defaults() -> None:
    config = parse_config(
        _site(
            f"{AIR}\n{LORA}",
            f"  - {{id: m, bus: air, secondary_id: '20096221', medium: water,"
            f" account: a, key: '{KEY.upper()}'}}",
            "units:\n  - {id: u, bus: lora, address: 9, kind: valve, meters: [m],"
            f" key: '{KEY}'}}",
        ),
        Path("site.yaml"),
    )
    air, lora = config.buses
    assert isinstance(air, WmbusBus) and air.mode == "T1"
    assert isinstance(lora, LoraBus) and lora.max_wait_s == 60
    meter_key = config.meters[0].key
    assert meter_key is not None and meter_key.get_secret_value() == KEY
    assert KEY not in repr(config) and KEY not in str(config.model_dump())


def test_a_bad_key_is_named_but_never_shown() -> None:
    bad = "00112233445566778899aabbccddeeZZ"
    lines = _problems(
        _site(
            AIR,
            f"  - {{id: m, bus: air, secondary_id: '20096221', medium: water,"
            f" account: a, key: '{bad}'}}",
        )
    )
    assert len(lines) == 1
    assert "meters[0].key" in lines[0] and "32 hex digits" in lines[0]
    assert "0011223344" not in lines[0]


def test_wireless_meter_needs_its_id_and_lora_unit_its_key() -> None:
    lines = _problems(
        _site(
            f"{AIR}\n{LORA}",
            "  - {id: m, bus: air, medium: water, account: a}",
            "units:\n  - {id: u, bus: lora, address: 9, kind: valve, meters: [m]}",
        )
    )
    text = "\n".join(lines)
    assert "meters[0]: a wireless M-Bus meter needs `secondary_id`" in text
    assert "units[0]: a LoRa unit needs `key`" in text


@pytest.mark.parametrize(
    ("bus", "expected"),
    [
        ("{id: air, kind: wmbus, receiver: lines}", "exactly one of `path`"),
        (
            "{id: air, kind: wmbus, receiver: lines, path: /x, tcp: 'h:1'}",
            "found path, tcp",
        ),
        ("{id: air, kind: wmbus, receiver: im871a}", "needs `port`"),
        ("{id: air, kind: wmbus, receiver: im871a, port: /dev/x, mode: X1}", "mode"),
        ("{id: lora, kind: lora, radio: rui3}", "rui3 modem needs `port`"),
        ("{id: lora, kind: lora, radio: simulated, spreading_factor: 13}", "12"),
    ],
)
def test_bus_settings_that_cannot_work_are_refused(bus: str, expected: str) -> None:
    lines = _problems(_site(f"  - {bus}", "  []"))
    assert any(expected in line for line in lines), lines
