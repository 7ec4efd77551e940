"""Laundry commands: `laundry book`, `laundry cancel` and `laundry list`."""

from __future__ import annotations

from typing import Annotated

import typer

from gateway.cli.common import DEFAULT_CONFIG, ConfigOption, fail, load, open_db
from gateway.cli.report import FormatOption, emit, output_format


def register(app: typer.Typer) -> None:
    """Add the laundry group to the app."""
    group = typer.Typer(
        help="Washing machine and dryer bookings.", no_args_is_help=True
    )
    app.add_typer(group, name="laundry")
    group.command("book")(book)
    group.command("cancel")(cancel)
    group.command("list")(listing)


def _when(text: str, zone_name: str) -> object:
    from datetime import datetime
    from zoneinfo import ZoneInfo

    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        fail(f"{text!r} is not a time: write it like 2026-03-14T18:00")
    # A time without a zone is the building's local time.
    return moment if moment.tzinfo else moment.replace(tzinfo=ZoneInfo(zone_name))


def book(
    unit_id: Annotated[str, typer.Argument(help="The machine (a unit id).")],
    start: Annotated[str, typer.Argument(help="Slot start, e.g. 2026-03-14T18:00.")],
    end: Annotated[str, typer.Argument(help="Slot end, e.g. 2026-03-14T19:30.")],
    account_id: Annotated[str, typer.Option("--account", help="Who books.")],
    ref: Annotated[
        str | None, typer.Option(help="Your reference; the same one books once.")
    ] = None,
    config_path: ConfigOption = DEFAULT_CONFIG,
) -> None:
    """Book a machine for a slot; holds a cycle's price from the resident's funds."""
    from datetime import datetime

    from gateway import laundry
    from gateway.clock import SystemClock
    from gateway.site import SitePlan
    from gateway.store import transaction

    config = load(config_path)
    slot_start, slot_end = (
        _when(start, config.site.timezone),
        _when(end, config.site.timezone),
    )
    assert isinstance(slot_start, datetime) and isinstance(slot_end, datetime)
    conn = open_db(config)
    stamp = SystemClock().now()
    request = (
        f"cli:{ref}" if ref else f"cli:{unit_id}:{account_id}:{slot_start.isoformat()}"
    )
    try:
        with transaction(conn):
            laundry.sync_machines(conn, SitePlan(config))
            booking = laundry.book(
                conn,
                request,
                unit_id,
                account_id,
                slot_start,
                slot_end,
                stamp,
                source="cli",
            )
    except laundry.LaundryError as err:
        fail(f"refused: {err}")
    word = "duplicate: already booked" if booking.duplicate else "booked"
    typer.echo(
        f"{word}: booking {booking.id}, {unit_id} for {account_id} from "
        f"{booking.slot_start.isoformat()} to {booking.slot_end.isoformat()}, "
        f"holding {booking.hold} ({booking.state})"
    )


def cancel(
    booking_id: Annotated[int, typer.Argument(help="Booking number.")],
    config_path: ConfigOption = DEFAULT_CONFIG,
) -> None:
    """Cancel a booking that has not started; its hold is released."""
    from gateway import laundry
    from gateway.clock import SystemClock

    config = load(config_path)
    conn = open_db(config)
    try:
        booking = laundry.cancel(conn, booking_id, SystemClock().now(), reason="cli")
    except laundry.LaundryError as err:
        fail(str(err))
    if booking.duplicate:
        typer.echo(f"booking {booking.id} was already cancelled; nothing changed")
    else:
        typer.echo(f"cancelled booking {booking.id}; released {booking.hold}")


def listing(
    config_path: ConfigOption = DEFAULT_CONFIG,
    unit_id: Annotated[str | None, typer.Option("--unit")] = None,
    account_id: Annotated[str | None, typer.Option("--account")] = None,
    every: Annotated[
        bool, typer.Option("--all", help="Include past bookings.")
    ] = False,
    fmt: FormatOption = "table",
) -> None:
    """List bookings (open ones unless --all)."""
    from gateway import laundry

    chosen = output_format(fmt)
    config = load(config_path)
    conn = open_db(config)
    rows = [
        {
            "booking": b.id,
            "unit": b.unit_id,
            "account": b.account_id,
            "from": b.slot_start.isoformat(),
            "to": b.slot_end.isoformat(),
            "hold": b.hold,
            "state": b.state,
        }
        for b in laundry.bookings(
            conn, unit_id=unit_id, account_id=account_id, open_only=not every
        )
    ]
    emit(
        [
            (
                "bookings",
                ("booking", "unit", "account", "from", "to", "hold", "state"),
                rows,
            )
        ],
        chosen,
    )
