"""`prepaidgw outbox ...` and `prepaidgw commands ...`: what waits to go up to
the cloud, and what the cloud asked the gateway to do."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import typer

from gateway.cli.common import DEFAULT_CONFIG, ConfigOption, load, open_db


def register(app: typer.Typer) -> None:
    """Add the outbox and commands command groups to the app."""
    outbox_app = typer.Typer(help="The uplink outbox.", no_args_is_help=True)
    commands_app = typer.Typer(help="Commands from the cloud.", no_args_is_help=True)
    app.add_typer(outbox_app, name="outbox")
    app.add_typer(commands_app, name="commands")

    @outbox_app.command("status")
    def status(config: ConfigOption = DEFAULT_CONFIG) -> None:
        """Print what waits in the outbox, by kind, and the outbox alarms."""
        conn = _open(config)
        rows = conn.execute(
            "SELECT kind, COUNT(*) AS n, SUM(bytes) AS b, MIN(created_at) AS oldest "
            "FROM outbox GROUP BY kind ORDER BY MIN(priority), kind"
        ).fetchall()
        total = sum(r["n"] for r in rows)
        size = sum(r["b"] for r in rows)
        typer.echo(f"{total} messages, {size} bytes waiting")
        for r in rows:
            typer.echo(
                f"  {r['kind']:<15}{r['n']:>9}{r['b']:>12} B  oldest {r['oldest']}"
            )
        seq = conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'outbox'")
        row = seq.fetchone()
        typer.echo(f"highest sequence number: {0 if row is None else row[0]}")
        for alarm in conn.execute(
            "SELECT kind, message, raised_at FROM alarms WHERE cleared_at IS NULL "
            "AND kind IN ('outbox_near_full', 'disk_low')"
        ):
            typer.echo(
                f"ALARM {alarm['kind']} since {alarm['raised_at']}: {alarm['message']}"
            )

    @commands_app.command("list")
    def list_commands(
        config: ConfigOption = DEFAULT_CONFIG,
        limit: int = typer.Option(20, help="How many, newest first."),
    ) -> None:
        """Print the newest commands from the cloud and what became of them."""
        conn = _open(config)
        rows = conn.execute(
            "SELECT command_id, kind, status, reason, received_at FROM commands "
            "ORDER BY received_at DESC LIMIT ?",
            (limit,),
        ).fetchall()
        if not rows:
            typer.echo("no commands from the cloud yet")
        for r in rows:
            reason = f" ({r['reason']})" if r["reason"] else ""
            typer.echo(
                f"{r['received_at']}  {r['kind']:<16}{r['status']:<10}"
                f"{r['command_id']}{reason}"
            )


def _open(config_file: Path) -> sqlite3.Connection:
    return open_db(load(config_file), create=False)
