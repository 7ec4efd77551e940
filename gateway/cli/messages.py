"""Display message commands: `messages` lists messages with their read
receipts; `messages send` sends one to a unit, an account or all units."""

from __future__ import annotations

from typing import Annotated

import typer

from gateway.cli.common import DEFAULT_CONFIG, ConfigOption, fail, load, open_db
from gateway.cli.report import FormatOption, emit, output_format


def register(app: typer.Typer) -> None:
    """Add the messages group to the app."""
    group = typer.Typer(
        help="Messages to unit displays, and their read receipts.",
        invoke_without_command=True,
    )
    app.add_typer(group, name="messages")
    group.callback()(listing)
    group.command("send")(send)


def listing(
    ctx: typer.Context,
    config_path: ConfigOption = DEFAULT_CONFIG,
    limit: Annotated[int, typer.Option(help="How many recent messages.")] = 50,
    fmt: FormatOption = "table",
) -> None:
    """List messages, newest first, with who read them and when."""
    from gateway import messages

    if ctx.invoked_subcommand is not None:
        return
    chosen = output_format(fmt)
    conn = open_db(load(config_path))
    rows = [
        {
            "id": m.id,
            "sent": m.created_at,
            "by": m.source,
            "audience": m.audience,
            "text": m.text,
            "read": "; ".join(f"{r.unit_id} {r.read_at}" for r in m.receipts) or "-",
        }
        for m in messages.listing(conn, limit=limit)
    ]
    emit([("messages", ("id", "sent", "by", "audience", "text", "read"), rows)], chosen)


def send(
    text: Annotated[
        str, typer.Argument(help="What the display shows (160 characters).")
    ],
    unit_id: Annotated[str | None, typer.Option("--unit", help="One unit.")] = None,
    account_id: Annotated[
        str | None, typer.Option("--account", help="Every unit of one account.")
    ] = None,
    every: Annotated[bool, typer.Option("--all", help="Every unit.")] = False,
    until: Annotated[
        str | None, typer.Option(help="Stop showing it then (2026-03-20T18:00+01:00).")
    ] = None,
    ref: Annotated[str | None, typer.Option(help="Your reference; sent once.")] = None,
    config_path: ConfigOption = DEFAULT_CONFIG,
) -> None:
    """Send a message to one unit, one account's units, or all units."""
    from datetime import datetime

    from gateway import messages
    from gateway.clock import SystemClock

    if sum((unit_id is not None, account_id is not None, every)) != 1:
        fail("name exactly one of --unit, --account or --all")
    config = load(config_path)
    if unit_id is not None and unit_id not in {u.id for u in config.units}:
        fail(f"no unit {unit_id!r}; units: {', '.join(u.id for u in config.units)}")
    ends = None
    if until is not None:
        try:
            ends = datetime.fromisoformat(until)
        except ValueError:
            fail(
                f"--until {until!r} is not a time: write it like 2026-03-20T18:00+01:00"
            )
    conn = open_db(config)
    first = None if ref is None else messages.sent_with_ref(conn, ref)
    if first is not None:
        typer.echo(
            f"duplicate: message {first} was already queued with reference "
            f"{ref}; nothing changed"
        )
        return
    try:
        message_id = messages.send(
            conn,
            text,
            SystemClock().now(),
            unit_id=unit_id,
            account_id=account_id,
            until=ends,
            ref=ref,
        )
    except messages.MessageError as err:
        fail(str(err))
    typer.echo(f"message {message_id} queued for the displays")
