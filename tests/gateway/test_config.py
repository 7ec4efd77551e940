"""Configuration errors name the file, the line, the key path and what to change."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from gateway.config import ConfigError, parse_config
from tests.conftest import SITE_YAML


def _errors(text: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_config(text, Path("site.yaml"))
    return caught.value.lines


def test_the_test_site_is_valid(tmp_path: Path) -> None:
    config = parse_config(SITE_YAML, tmp_path / "site.yaml")
    assert config.state_dir == (tmp_path / "state").resolve()
    assert [m.id for m in config.meters] == ["m-elec", "m-water"]


def test_a_misspelt_key_names_line_and_path() -> None:
    broken = SITE_YAML.replace("port: /dev/null}", "port: /dev/null, baud: 2400}", 1)
    assert _errors(broken) == [
        "site.yaml:5: buses[0].baud = 2400: "
        "unknown key: remove it or check its spelling"
    ]


def test_a_dangling_reference_lists_the_valid_names() -> None:
    broken = SITE_YAML.replace("bus: mbus1, address: 2", "bus: mbus9, address: 2")
    (line,) = _errors(broken)
    assert line.startswith("site.yaml:9: meters[1].bus = 'mbus9': no such bus")
    assert "mbus1, rs485" in line


def test_bad_values_are_all_reported_at_once() -> None:
    broken = SITE_YAML.replace("address: 11", "address: 300").replace(
        'credit_line: "5.00"', 'credit_line: "-5"'
    )
    lines = _errors(broken)
    assert any(
        "units[0].address = 300" in x and "less than or equal to 247" in x
        for x in lines
    )
    assert any("accounts[0].credit_line" in x and "zero or more" in x for x in lines)


def test_price_unit_must_fit_the_medium() -> None:
    (line,) = _errors(SITE_YAML.replace("per: kWh", "per: litre"))
    assert "tariffs[0].prices.electricity.per = 'litre'" in line
    assert "kWh" in line


def test_yaml_syntax_error_names_the_line() -> None:
    (line,) = _errors(SITE_YAML.replace("buses:", "buses: [", 1))
    assert line.startswith("site.yaml:") and "not valid YAML" in line


def test_cli_validate_exits_non_zero_with_the_problem(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(SITE_YAML.replace("medium: water", "medium: wine"))
    run = subprocess.run(
        [sys.executable, "-m", "gateway", "config", "validate", str(bad)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert run.returncode == 2
    assert "meters[1].medium = 'wine'" in run.stderr
    assert "'electricity'" in run.stderr  # says what is expected

    good = tmp_path / "good.yaml"
    good.write_text(SITE_YAML)
    ok = subprocess.run(
        [sys.executable, "-m", "gateway", "config", "validate", str(good)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert ok.returncode == 0, ok.stderr
    assert "ok" in ok.stdout


def test_a_key_written_twice_is_an_error_not_a_silent_override() -> None:
    twice = SITE_YAML.replace(
        'credit_line: "5.00",', 'credit_line: "5.00", credit_line: "50.00",'
    )
    lines = _errors(twice)
    assert any("accounts[0].credit_line" in x and "written twice" in x for x in lines)


def test_a_comma_decimal_says_how_to_write_it() -> None:
    (line,) = _errors(SITE_YAML.replace('credit_line: "5.00"', 'credit_line: "5,00"'))
    assert "accounts[0].credit_line = '5,00'" in line
    assert "write it like 5.00" in line


@pytest.mark.parametrize(
    ("change", "where", "message"),
    [
        (
            ("bus: mbus1, address: 2", "bus: rs485, address: 2"),
            "meters[1].bus",
            "meters are read on an mbus or wmbus bus",
        ),
        (
            ("medium: water", "medium: heat"),
            "meters[1].medium",
            "has no price for heat",
        ),
        (
            ("port: /dev/null}", "port: /dev/ttyUSB0}"),
            "buses[1].port",
            "already uses this port",
        ),
    ],
)
def test_wiring_that_would_bill_or_switch_the_wrong_thing_is_refused(
    change: tuple[str, str], where: str, message: str
) -> None:
    lines = _errors(SITE_YAML.replace(*change))
    assert any(where in x and message in x for x in lines), lines


def test_one_unit_cannot_switch_two_flats() -> None:
    two_flats = (
        SITE_YAML.replace(
            "medium: water, account: flat1", "medium: water, account: flat2"
        )
        .replace(
            'credit_line: "5.00", low_balance: "10.00"}',
            'credit_line: "5.00", low_balance: "10.00"}\n  - {id: flat2, name: Flat 2}',
        )
        .replace("meters: [m-elec]", "meters: [m-elec, m-water]")
    )
    (line,) = _errors(two_flats)
    assert "units[0].meters" in line and "flat1, flat2" in line
