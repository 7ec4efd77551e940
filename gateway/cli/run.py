"""`prepaidgw run`: the daemon in the foreground (systemd runs it so)."""

from __future__ import annotations

from typing import Annotated

import typer

from gateway.cli.common import DEFAULT_CONFIG, ConfigOption, fail, load


def register(app: typer.Typer) -> None:
    """Add the run command to the app."""
    app.command("run")(run)


def run(
    config_path: ConfigOption = DEFAULT_CONFIG,
    log_level: Annotated[str, typer.Option(help="DEBUG, INFO, WARNING.")] = "INFO",
    json_logs: Annotated[
        bool | None,
        typer.Option(
            "--json-logs/--text-logs", help="Default: JSON unless on a terminal."
        ),
    ] = None,
) -> None:
    """Run the gateway daemon until SIGTERM or Ctrl-C."""
    from gateway import log
    from gateway.daemon import run as run_daemon
    from gateway.store import StoreError

    config = load(config_path)
    log.configure(json=json_logs, level=log_level.upper())
    try:
        run_daemon(config)
    except StoreError as err:
        fail(str(err))
