"""`prepaidgw decode`: a telegram as JSON."""

from __future__ import annotations

from typing import NoReturn

import typer


def register(app: typer.Typer) -> None:
    """Add the decode command to the app."""

    @app.command("decode")
    def decode(
        frame_hex: str = typer.Argument(..., metavar="HEX", help="The frame as hex."),
        key: str | None = typer.Option(
            None, "--key", help="AES-128 key as hex (ignored for wired frames)."
        ),
    ) -> None:
        """Print a meter telegram as JSON; numbers are exact decimal strings."""
        import json

        from drivers.mbus.decode import decode_frame, telegram_to_json
        from gateway.model import FrameError

        del key  # LIMITATION: wired frames are read in clear; no key is used yet.
        text = "".join(frame_hex.split())
        try:
            frame = bytes.fromhex(text)
        except ValueError:
            _fail("HEX must be pairs of hex digits (0-9, A-F), e.g. 68 03 03 68 ...")
        if not frame:
            _fail("HEX is empty; pass the frame from the 68 start byte to the 16 stop")
        try:
            telegram = decode_frame(frame)
        except FrameError as error:
            _fail(str(error))
        typer.echo(json.dumps(telegram_to_json(telegram), indent=2, ensure_ascii=False))


def _fail(message: str) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code=2)
