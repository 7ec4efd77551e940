"""`prepaidgw report`: top-up sales per channel, consumption, active accounts
and cut-offs over a span; and the table, CSV or JSON output other commands
share."""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Literal

import typer

from gateway.cli.common import DEFAULT_CONFIG, ConfigOption, fail, load, open_db

Format = Literal["table", "csv", "json"]
FormatOption = Annotated[
    str,
    typer.Option(
        "--format",
        "-f",
        help="table (for a terminal), csv or json (for other programs).",
    ),
]
Row = dict[str, object]


def register(app: typer.Typer) -> None:
    """Add the report command to the app."""
    app.command("report")(report)


def output_format(text: str) -> Format:
    """Return the chosen format, or exit naming the ones there are."""
    if text not in ("table", "csv", "json"):
        fail(f"--format {text!r}: use table, csv or json")
    return text  # type: ignore[return-value]


def emit(
    sections: Sequence[tuple[str, Sequence[str], Sequence[Row]]], fmt: Format
) -> None:
    """Print (title, columns, rows) sections as tables, CSV blocks or one JSON object.

    Money prints as its exact text in tables and CSV, and as minor units
    with the currency in JSON, so no consumer has to parse decimals.
    """
    from gateway.money import Money

    if fmt == "json":

        def plain(value: object) -> object:
            if isinstance(value, Money):
                return {"minor": value.minor, "currency": value.currency}
            if isinstance(value, (int, bool)) or value is None:
                return value
            return str(value)

        typer.echo(
            json.dumps(
                {
                    key: [{c: plain(r.get(c)) for c in cols} for r in rows]
                    for key, cols, rows in sections
                },
                indent=2,
            )
        )
        return
    if fmt == "csv":
        writer = csv.writer(sys.stdout, lineterminator="\n")
        for i, (key, cols, rows) in enumerate(sections):
            if len(sections) > 1:
                if i:
                    writer.writerow([])
                writer.writerow([f"# {key}"])
            writer.writerow(cols)
            for r in rows:
                writer.writerow(
                    ["" if r.get(c) is None else str(r.get(c)) for c in cols]
                )
        sys.stdout.flush()
        return
    from rich.console import Console
    from rich.table import Table

    console = Console()
    for key, cols, rows in sections:
        table = Table(title=key)
        for c in cols:
            table.add_column(c, justify="left" if c in _LEFT else "right")
        for r in rows:
            table.add_row(*("" if r.get(c) is None else str(r.get(c)) for c in cols))
        console.print(table)


_LEFT = {"channel", "medium", "account", "accounts", "state", "text", "audience"}


def report(
    config_path: ConfigOption = DEFAULT_CONFIG,
    period: Annotated[
        str, typer.Option(help="Cut the span into day, week or month periods.")
    ] = "month",
    since: Annotated[
        str | None, typer.Option(help="First local day (YYYY-MM-DD); default 90 days.")
    ] = None,
    until: Annotated[
        str | None, typer.Option(help="Last local day, included (YYYY-MM-DD).")
    ] = None,
    fmt: FormatOption = "table",
) -> None:
    """Report top-up sales per channel, consumption, active accounts and cut-offs."""
    from zoneinfo import ZoneInfo

    from gateway import reports
    from gateway.budgets import local_midnight_utc

    if period not in ("day", "week", "month"):
        fail(f"--period {period!r}: use day, week or month")
    chosen = output_format(fmt)
    config = load(config_path)
    zone = ZoneInfo(config.site.timezone)
    now = datetime.now(UTC)
    try:
        first = (
            date.fromisoformat(since) if since else (now - timedelta(days=90)).date()
        )
        last = date.fromisoformat(until) if until else now.astimezone(zone).date()
    except ValueError as err:
        fail(f"--since/--until: {err}; write dates as YYYY-MM-DD")
    span = reports.Span(
        local_midnight_utc(first, zone),
        local_midnight_utc(last + timedelta(days=1), zone),
        period,  # type: ignore[arg-type]
        zone,
        config.site.currency,
    )
    conn = open_db(config, create=False)
    cuts = [
        {
            "account": c.account_id,
            "from": c.start.isoformat(timespec="seconds"),
            "to": "ongoing" if c.end is None else c.end.isoformat(timespec="seconds"),
            "seconds": c.seconds,
            "duration": str(timedelta(seconds=c.seconds)),
        }
        for c in reports.cut_offs(conn, span, now)
    ]
    totals = [{"total": k, "amount": v} for k, v in reports.totals(conn, span).items()]
    emit(
        [
            (
                "topups",
                ("period", "channel", "count", "amount"),
                reports.topup_sales(conn, span),
            ),
            (
                "consumption",
                ("period", "medium", "quantity", "unit", "cost", "standing"),
                reports.consumption(conn, span),
            ),
            (
                "active_accounts",
                ("period", "active", "accounts"),
                reports.active_accounts(conn, span),
            ),
            ("cut_offs", ("account", "from", "to", "seconds", "duration"), cuts),
            ("totals", ("total", "amount"), totals),
        ],
        chosen,
    )
