"""Budget and tenancy commands: `budgets show`, `budgets grant` (run the
catch-up now) and `accounts move-out`."""

from __future__ import annotations

from typing import Annotated

import typer

from gateway.cli.common import DEFAULT_CONFIG, ConfigOption, fail, load, open_db


def register(app: typer.Typer) -> None:
    """Add the budgets group to the app (move-out joins the accounts group)."""
    group = typer.Typer(help="Monthly or annual budgets.", no_args_is_help=True)
    app.add_typer(group, name="budgets")
    group.command("show")(show)
    group.command("grant")(grant)


def show(
    account_id: Annotated[str, typer.Argument(help="Account id.")],
    config_path: ConfigOption = DEFAULT_CONFIG,
) -> None:
    """Show an account's budget periods and its per-medium sub-budgets now."""
    from gateway import budgets
    from gateway.clock import SystemClock
    from gateway.money import Money

    config = load(config_path)
    conn = open_db(config)
    rule = conn.execute(
        "SELECT * FROM budget_rules WHERE account_id = ?", (account_id,)
    ).fetchone()
    if rule is None:
        fail(
            f"account {account_id!r} has no budget; add one under `budgets:` "
            "in the config"
        )
    currency = config.site.currency
    typer.echo(
        f"{account_id}: {Money(rule['amount_minor'], currency)} per {rule['period']}, "
        f"unused budget: {rule['unused']}"
        + (
            ""
            if rule["rollover_cap_minor"] is None
            else f" (cap {Money(rule['rollover_cap_minor'], currency)})"
        )
    )
    for p in conn.execute(
        "SELECT * FROM budget_periods WHERE account_id = ? ORDER BY period_start",
        (account_id,),
    ):
        closed = (
            f"rolled over {Money(p['rolled_over_minor'], currency)}, forfeited "
            f"{Money(p['forfeited_minor'], currency)}"
            if p["closed_at"]
            else "current"
        )
        typer.echo(
            f"  {p['period_start']}  granted {Money(p['granted_minor'], currency)}, "
            f"carried in {Money(p['carried_in_minor'], currency)}; {closed}"
        )
    for s in budgets.sub_budgets(conn, account_id, SystemClock().now()):
        mark = "  EXHAUSTED: supply of this medium is cut off" if s.exhausted else ""
        typer.echo(f"  {s.medium}: spent {s.spent} of {s.cap}{mark}")


def grant(config_path: ConfigOption = DEFAULT_CONFIG) -> None:
    """Book every budget grant and period end that is due (the daemon does it too)."""
    from gateway import budgets
    from gateway.clock import SystemClock
    from gateway.site import SitePlan

    config = load(config_path)
    conn = open_db(config)
    booked = budgets.grant_due(conn, SitePlan(config), SystemClock().now())
    typer.echo(f"{booked} budget entr{'y' if booked == 1 else 'ies'} booked")


def move_out(
    account_id: Annotated[str, typer.Argument(help="Account of the resident leaving.")],
    config_path: ConfigOption = DEFAULT_CONFIG,
) -> None:
    """Close an account: final readings and balance snapshot; debt stays with it."""
    from gateway import tenancy
    from gateway.clock import SystemClock

    config = load(config_path)
    conn = open_db(config)
    try:
        snap = tenancy.move_out(conn, account_id, SystemClock().now())
    except tenancy.TenancyError as err:
        fail(str(err))
    typer.echo(f"closed {account_id} at {snap.closed_at}; balance {snap.balance}")
    for r in snap.readings:
        typer.echo(
            f"  final reading {r['meter_id']}: {r['value']} {r['unit']} "
            f"at {r['taken_at']}"
        )
    if snap.cancelled_bookings:
        typer.echo(f"  {snap.cancelled_bookings} laundry booking(s) cancelled")
    if snap.balance.is_negative():
        typer.echo(
            f"  the resident owes {-snap.balance}; the debt stays on {account_id}"
        )
    typer.echo(
        "  next: assign the flat's meters to the new resident's account in the "
        "config; billing starts from the meters' current values"
    )
