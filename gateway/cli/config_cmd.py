"""`prepaidgw config ...`: check a site configuration before it goes live."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from gateway.cli.common import fail


def register(app: typer.Typer) -> None:
    """Add the config command group to the app."""
    group = typer.Typer(help="Check site configuration files.", no_args_is_help=True)
    app.add_typer(group, name="config")

    @group.command("validate")
    def validate(
        file: Annotated[Path, typer.Argument(help="The YAML file to check.")],
    ) -> None:
        """Check a configuration; exit 0 if it can run, else list what to change."""
        from gateway.config import ConfigError, load_config

        try:
            config = load_config(file)
        except ConfigError as err:
            fail(f"{file}: {len(err.lines)} problem(s):\n" + "\n".join(err.lines))
        typer.echo(
            f"{file}: ok — site {config.site.id}, {len(config.buses)} bus(es), "
            f"{len(config.meters)} meter(s), {len(config.units)} unit(s), "
            f"{len(config.accounts)} account(s), {len(config.tariffs)} tariff(s)"
        )
