"""`prepaidgw decode`: a telegram as JSON."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add the decode command to the app."""
