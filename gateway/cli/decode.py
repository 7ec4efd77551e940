"""`prepaidgw decode`: a telegram as JSON."""

from __future__ import annotations

from typing import Any, NoReturn

import typer


def register(app: typer.Typer) -> None:
    """Add the decode command to the app."""

    @app.command("decode")
    def decode(
        frame_hex: str = typer.Argument(..., metavar="HEX", help="The frame as hex."),
        key: str | None = typer.Option(
            None,
            "--key",
            help="AES-128 key as 32 hex digits, for encrypted wireless telegrams"
            " (ignored for wired frames).",
        ),
    ) -> None:
        """Print a wired or wireless meter telegram as JSON; numbers are exact strings.

        A frame starting 68 L L 68 is wired M-Bus; anything else is read as a
        wireless M-Bus telegram from its L-field.
        """
        import json

        text = "".join(frame_hex.split())
        try:
            frame = bytes.fromhex(text)
        except ValueError:
            _fail("HEX must be pairs of hex digits (0-9, A-F), e.g. 68 03 03 68 ...")
        if not frame:
            _fail("HEX is empty; pass the frame from the 68 start byte to the 16 stop")
        if _is_wired(frame):
            data = _decode_wired(frame)
        else:
            data = _decode_wireless(frame, key)
        typer.echo(json.dumps(data, indent=2, ensure_ascii=False))


def _is_wired(frame: bytes) -> bool:
    """Tell a wired long frame (68 L L 68 ... 16) from a wireless L-field."""
    return (
        len(frame) >= 4
        and frame[0] == 0x68
        and frame[3] == 0x68
        and frame[1] == frame[2]
    )


def _decode_wired(frame: bytes) -> dict[str, Any]:
    from drivers.mbus.decode import decode_frame, telegram_to_json
    from gateway.model import FrameError

    # LIMITATION: wired frames are read in clear; no key is used for them.
    try:
        telegram = decode_frame(frame)
    except FrameError as error:
        _fail(str(error))
    return telegram_to_json(telegram)


def _decode_wireless(frame: bytes, key_hex: str | None) -> dict[str, Any]:
    from drivers.wmbus import MeterKey, decode_frame, telegram_to_dict
    from gateway.model import FrameError

    key = None
    if key_hex is not None:
        digits = "".join(key_hex.split())
        if len(digits) != 32 or any(c not in "0123456789abcdefABCDEF" for c in digits):
            # The key is never echoed, not even a mistyped one.
            _fail(f"--key must be 32 hex digits; {len(digits)} characters were given")
        key = MeterKey.from_hex(digits)
    try:
        telegram = decode_frame(frame, key)
    except FrameError as error:
        reason = getattr(error, "reason", None)
        _fail(f"{reason}: {error}" if reason else str(error))
    return {"kind": "wmbus", **telegram_to_dict(telegram)}


def _fail(message: str) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code=2)
