"""`prepaidgw mbus ...`: tools for an installer at the meter cabinet."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add the mbus command group to the app."""
    mbus = typer.Typer(help="Wired M-Bus tools.", no_args_is_help=True)
    app.add_typer(mbus, name="mbus")
