"""Credit commands: `emergency` lends an account its emergency credit."""

from __future__ import annotations

from typing import Annotated

import typer

from gateway.cli.common import DEFAULT_CONFIG, ConfigOption, fail, load, open_db


def register(app: typer.Typer) -> None:
    """Add the credit commands to the app."""
    app.command("emergency")(emergency)


def emergency(
    account_id: Annotated[str, typer.Argument(help="Account to lend to, e.g. flat6.")],
    config_path: ConfigOption = DEFAULT_CONFIG,
) -> None:
    """Lend an account its emergency credit; the next top-up repays it first."""
    from gateway import accounts, ledger
    from gateway import emergency as credit_rules
    from gateway.clock import SystemClock
    from gateway.store import transaction

    config = load(config_path)
    conn = open_db(config)
    stamp = SystemClock().now()
    try:
        with transaction(conn):
            rules = accounts.rules_of(conn, account_id)
            entry = credit_rules.lend(conn, account_id, rules, stamp)
            accounts.evaluate(conn, account_id, stamp)
            balance = ledger.balance(conn, account_id)
    except LookupError:
        known = ", ".join(r["id"] for r in conn.execute("SELECT id FROM accounts"))
        fail(f"no account {account_id!r}; known accounts: {known}")
    except credit_rules.EmergencyRefused as err:
        fail(f"refused: {err}")
    typer.echo(
        f"lent: {entry.amount} of emergency credit to {account_id} ({entry.id}); "
        f"the next top-up repays it first. Balance now {balance}"
    )
