"""`prepaidgw decode` on wireless M-Bus telegrams: clear and mode 5, a wrong
key refused with its reason, and a key that is never echoed."""

from __future__ import annotations

import json

import typer
from typer.testing import CliRunner

from gateway.cli import decode

# The Diehl warm-water meter of the shared corpus, mode 5, with its key.
MODE5 = (
    "3944FA122162092002067A3604202567C94D48D00DC47B11213E23383DB51968A705AAFA"
    "60C60E263D50CD259D7C9A03FD0C08000002FD0B0011"
)
MODE5_KEY = "BEDB81B52C29B5C143388CBB0D15A051"
SENSUS = "1844AE4C4455223368077A55000000041389E20100023B0000"


def _run(*args: str) -> tuple[int, str, str]:
    app = typer.Typer()
    decode.register(app)
    app.command("noop")(lambda: None)  # a second command keeps `decode` a subcommand
    result = CliRunner().invoke(app, ["decode", *args])
    return result.exit_code, result.stdout, result.stderr


def test_mode5_telegram_is_decrypted_with_its_key() -> None:
    code, out, _ = _run("--key", MODE5_KEY, MODE5)
    assert code == 0, out
    data = json.loads(out)
    assert data["kind"] == "wmbus"
    assert (data["id"], data["manufacturer"], data["medium"]) == (
        "20096221",
        "DWZ",
        "warm_water",
    )
    assert data["encrypted"] is True
    assert data["billing"] == {"value": "0.106", "unit": "m3", "quantity": "Volume"}


def test_clear_telegram_needs_no_key() -> None:
    code, out, _ = _run(SENSUS)
    assert code == 0, out
    data = json.loads(out)
    assert data["id"] == "33225544"
    assert data["billing"]["unit"] == "m3"


def test_wrong_key_is_refused_with_its_reason_and_never_echoed() -> None:
    wrong = "00112233445566778899AABBCCDDEEFF"
    code, out, err = _run("--key", wrong, MODE5)
    assert code == 2
    assert err.startswith("error: wrong_key:")
    assert wrong.lower() not in (out + err).lower()


def test_malformed_key_is_named_but_not_shown() -> None:
    code, _, err = _run("--key", "BEDB81B52C29B5C1ZZ", MODE5)
    assert code == 2
    assert "32 hex digits" in err
    assert "BEDB81" not in err
