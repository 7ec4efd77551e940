"""`prepaidgw decode` and `prepaidgw mbus scan` through typer's test runner."""

from __future__ import annotations

import json
from decimal import Decimal

import typer
from typer.testing import CliRunner

from gateway.cli import decode, mbus
from simulators.mbus_meter import MbusMeterSimulator, SimMeter, corpus_frame

KAMSTRUP = "681F1F68080072317767172D2C0102000000002F2F04833B881300002F2F2F2F2F2F2F0016"


def _app() -> typer.Typer:
    app = typer.Typer()
    mbus.register(app)
    decode.register(app)
    return app


def test_decode_prints_json_with_billing() -> None:
    result = CliRunner().invoke(_app(), ["decode", "--key", "00" * 16, KAMSTRUP])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["id"] == "17677731"
    assert data["manufacturer"] == "KAM"
    assert data["medium"] == "Electricity"
    assert data["billing"] == {
        "description": "Energy, Accumulation only if value is positive",
        "value": "5000",
        "unit": "Wh",
        "storage": 0,
        "tariff": 0,
        "subunit": 0,
        "function": "Instantaneous value",
    }
    assert data["records"][0]["value"] == "5000"


def test_decode_accepts_spaced_hex() -> None:
    spaced = " ".join(KAMSTRUP[i : i + 2] for i in range(0, len(KAMSTRUP), 2))
    result = CliRunner().invoke(_app(), ["decode", spaced])
    assert result.exit_code == 0
    assert json.loads(result.stdout)["id"] == "17677731"


def test_decode_bad_hex_is_one_line_and_exit_2() -> None:
    result = CliRunner().invoke(_app(), ["decode", "68zz"])
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1
    assert "hex digits" in result.stderr


def test_decode_bad_checksum_is_one_line_and_exit_2() -> None:
    broken = KAMSTRUP[:-4] + "FF16"
    result = CliRunner().invoke(_app(), ["decode", broken])
    assert result.exit_code == 2
    assert result.stderr.startswith("error: long frame checksum")
    assert result.stdout == ""


def test_scan_lists_live_addresses() -> None:
    meters = [
        SimMeter(3, corpus_frame("water"), Decimal(1)),
        SimMeter(5, corpus_frame("electricity"), Decimal(1)),
    ]
    with MbusMeterSimulator(meters) as simulator:
        result = CliRunner().invoke(
            _app(),
            [
                "mbus",
                "scan",
                "--port",
                simulator.port,
                "--parity",
                "N",
                "--timeout",
                "0.05",
                "--last",
                "6",
            ],
        )
    assert result.exit_code == 0, result.output
    assert result.stdout.strip().endswith("found: 3 5")


def test_scan_missing_port_exit_2() -> None:
    result = CliRunner().invoke(
        _app(), ["mbus", "scan", "--port", "/dev/nope", "--parity", "N", "--last", "1"]
    )
    assert result.exit_code == 2
    assert "cannot open M-Bus port /dev/nope" in result.stderr


def test_scan_with_parity_the_port_refuses_exit_2() -> None:
    meters = [SimMeter(3, corpus_frame("water"), Decimal(1))]
    with MbusMeterSimulator(meters) as simulator:
        result = CliRunner().invoke(
            _app(), ["mbus", "scan", "--port", simulator.port, "--last", "1"]
        )
    assert result.exit_code == 2
    assert "parity E" in result.stderr
    assert result.stderr.count("\n") == 1
