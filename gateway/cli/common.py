"""What every command shares: the --config option, loading, and clean errors."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Annotated, NoReturn

import typer

from gateway.config import Config

DEFAULT_CONFIG = Path("/etc/prepaidgw/site.yaml")

ConfigOption = Annotated[
    Path,
    typer.Option(
        "--config",
        "-c",
        envvar="PREPAIDGW_CONFIG",
        help="Site configuration (YAML).",
        show_default=True,
    ),
]


def fail(message: str, code: int = 2) -> NoReturn:
    """Print an error an installer can act on, and exit non-zero."""
    typer.secho(message, err=True, fg=typer.colors.RED)
    raise typer.Exit(code)


def load(path: Path) -> Config:
    """Load the configuration or exit with its problems listed."""
    from gateway.config import ConfigError, load_config

    try:
        return load_config(path)
    except ConfigError as err:
        fail(f"configuration has {len(err.lines)} problem(s):\n" + "\n".join(err.lines))


def open_db(config: Config, *, create: bool = True) -> sqlite3.Connection:
    """Open the site's database (WAL: safe while the daemon runs).

    Commands that only look (`create=False`) refuse to create a database, so
    that running them before the service does not leave a state directory
    owned by the wrong user.
    """
    from gateway import accounts
    from gateway.clock import SystemClock
    from gateway.site import SitePlan
    from gateway.store import DB_NAME, StoreError, open_state, transaction

    if not create and not (config.state_dir / DB_NAME).exists():
        fail(
            f"no database in {config.state_dir} yet: the daemon creates it when it "
            f"first starts (systemctl start prepaidgw, or prepaidgw run)"
        )
    try:
        conn = open_state(config.state_dir)
    except StoreError as err:
        fail(str(err))
    except OSError as err:
        fail(f"cannot open the state directory {config.state_dir}: {err.strerror}")
    with transaction(conn):
        accounts.sync_from_config(conn, SitePlan(config), SystemClock().now())
    return conn
