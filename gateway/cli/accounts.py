"""Operator commands: `status`, `accounts show`, `topup` and `history`."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

import typer

from gateway.cli.common import DEFAULT_CONFIG, ConfigOption, fail, load, open_db
from gateway.cli.report import FormatOption, emit, output_format


def register(app: typer.Typer) -> None:
    """Add the operator commands to the app."""
    group = typer.Typer(help="Resident accounts.", no_args_is_help=True)
    app.add_typer(group, name="accounts")
    app.command("status")(status)
    group.command("show")(show)
    app.command("topup")(topup)
    app.command("adjust")(adjust)
    app.command("history")(history)
    from gateway.cli.budgets import move_out

    group.command("move-out")(move_out)


def status(config_path: ConfigOption = DEFAULT_CONFIG) -> None:
    """Show accounts (balance, state), meters (last reading) and buses (health)."""
    from rich.console import Console
    from rich.table import Table

    from gateway import ledger, outbox
    from gateway.money import Money

    config = load(config_path)
    conn = open_db(config, create=False)
    console = Console()

    accounts = Table(title=f"Accounts — {config.site.id}")
    for col in ("account", "name", "balance", "credit line", "state", "since"):
        accounts.add_column(col)
    for row in conn.execute(
        "SELECT a.id, a.name, a.credit_line_minor, a.currency, b.state, b.state_since "
        "FROM accounts a JOIN balances b ON b.account_id = a.id ORDER BY a.id"
    ):
        balance = ledger.balance(conn, row["id"])
        style = {"cut_off": "red", "pending_cut_off": "magenta", "low": "yellow"}.get(
            row["state"], "green"
        )
        accounts.add_row(
            row["id"],
            row["name"],
            str(balance),
            str(Money(row["credit_line_minor"], row["currency"])),
            f"[{style}]{row['state']}[/]",
            row["state_since"] or "",
        )
    console.print(accounts)

    meters = Table(title="Meters")
    for col in (
        "meter",
        "bus",
        "account",
        "last value",
        "read at",
        "verdict",
        "health",
    ):
        meters.add_column(col)
    for m in config.meters:
        last = conn.execute(
            "SELECT value, unit, taken_at, clock_synced, verdict FROM readings "
            "WHERE meter_id = ? ORDER BY id DESC LIMIT 1",
            (m.id,),
        ).fetchone()
        health = conn.execute(
            "SELECT ok, failures, last_error FROM device_health WHERE device_id = ?",
            (m.id,),
        ).fetchone()
        meters.add_row(
            m.id,
            m.bus,
            m.account,
            f"{last['value']} {last['unit']}" if last else "-",
            (last["taken_at"] + ("" if last["clock_synced"] else " (clock unsynced)"))
            if last
            else "-",
            last["verdict"] if last else "-",
            _health_text(health),
        )
    console.print(meters)

    buses = Table(title="Buses")
    for col in ("bus", "kind", "port", "devices ok", "failing", "not yet heard"):
        buses.add_column(col)
    for bus in config.buses:
        ids = [m.id for m in config.meters if m.bus == bus.id] + [
            u.id for u in config.units if u.bus == bus.id
        ]
        marks = ",".join("?" * len(ids)) or "''"
        seen = {
            r["device_id"]: bool(r["ok"])
            for r in conn.execute(
                f"SELECT device_id, ok FROM device_health WHERE device_id IN ({marks})",
                ids,
            )
        }
        failing = [d for d in ids if seen.get(d) is False]
        unheard = [d for d in ids if d not in seen]
        buses.add_row(
            bus.id,
            bus.kind,
            bus.port,
            f"{sum(seen.values())}/{len(ids)}",
            ", ".join(failing) or "-",
            ", ".join(unheard) or "-",
        )
    console.print(buses)

    alarms = conn.execute(
        "SELECT kind, subject, message, raised_at FROM alarms WHERE cleared_at IS NULL "
        "ORDER BY id"
    ).fetchall()
    if alarms:
        console.print("[bold]Open alarms[/]")
        for a in alarms:
            console.print(
                f"  {a['raised_at']}  {a['kind']}  {a['subject']}: {a['message']}"
            )
    messages, size = outbox.pending(conn)
    console.print(f"Outbox: {messages} message(s), {size} bytes waiting for the cloud")


def _health_text(row: object) -> str:
    if row is None:
        return "not yet read"
    if row["ok"]:  # type: ignore[index]
        return "ok"
    return f"failing x{row['failures']}: {row['last_error']}"  # type: ignore[index]


def show(
    account_id: Annotated[str, typer.Argument(help="Account id, e.g. flat6.")],
    config_path: ConfigOption = DEFAULT_CONFIG,
    entries: Annotated[int, typer.Option(help="How many recent entries.")] = 15,
) -> None:
    """Show one account: balance, rules, state, recent entries and decisions."""
    from gateway import accounts, laundry, ledger

    config = load(config_path)
    conn = open_db(config, create=False)
    row = conn.execute("SELECT * FROM accounts WHERE id = ?", (account_id,)).fetchone()
    if row is None:
        known = ", ".join(r["id"] for r in conn.execute("SELECT id FROM accounts"))
        fail(f"no account {account_id!r}; known accounts: {known}")
    rules = accounts.rules_of(conn, account_id)
    typer.echo(f"{row['id']}  {row['name']}")
    typer.echo(f"  balance      {ledger.balance(conn, account_id)}")
    held = laundry.held(conn, account_id)
    if held.minor:
        typer.echo(
            f"  held         {held} for laundry bookings; available "
            f"{laundry.available(conn, account_id)}"
        )
    typer.echo(f"  state        {accounts.state_of(conn, account_id).value}")
    typer.echo(f"  credit line  {rules.credit_line}")
    typer.echo(f"  low warning  {rules.low_balance}")
    typer.echo(f"  tariff       {row['tariff_id']}")
    typer.echo("  recent entries:")
    for e in ledger.entries(conn, account_id, limit=entries):
        what = (
            f"{e.quantity} {e.unit} {e.medium}"
            if e.quantity is not None
            else (e.ref or "")
        )
        typer.echo(f"    {e.booked_at}  {e.kind.value:<15} {e.amount!s:>12}  {what}")
    typer.echo("  decisions:")
    for d in conn.execute(
        "SELECT * FROM decisions WHERE account_id = ? ORDER BY id DESC LIMIT 5",
        (account_id,),
    ):
        typer.echo(
            f"    {d['decided_at']}  {d['previous']} -> {d['state']}: {d['reason']}"
        )


def topup(
    account_id: Annotated[str, typer.Argument(help="Account to credit.")],
    amount: Annotated[
        str,
        typer.Argument(
            help="Amount in major units, e.g. 20.00; more than zero (to take "
            "money back, the cloud books a reversal or adjustment)."
        ),
    ],
    ref: Annotated[
        str,
        typer.Option(
            "--ref",
            help="Your unique reference (receipt "
            "number); the same reference is applied once.",
        ),
    ],
    config_path: ConfigOption = DEFAULT_CONFIG,
) -> None:
    """Credit an account by hand (an administrator's top-up); idempotent by --ref."""
    from gateway import accounts, ledger
    from gateway.clock import SystemClock
    from gateway.ledger import EntryKind, IdempotencyConflict, LedgerError, NewEntry
    from gateway.money import Money, MoneyError
    from gateway.store import transaction

    config = load(config_path)
    try:
        money = Money.parse(amount, config.site.currency)
    except MoneyError as err:
        fail(str(err))
    if money.minor <= 0:
        fail(f"a top-up must be more than zero, got {money}")
    if not ref.strip():
        fail("--ref must not be empty: use the receipt or transfer number")
    conn = open_db(config)
    stamp = SystemClock().now()
    try:
        with transaction(conn):
            posted = ledger.post(
                conn,
                NewEntry(
                    id=f"topup:admin:{ref}",
                    account_id=account_id,
                    kind=EntryKind.TOPUP,
                    amount=money,
                    source="cli",
                    booked=stamp,
                    ref=ref,
                ),
            )
            # Emergency credit is repaid first; a top-up above the maximum
            # balance raises TopUpRejected and rolls back whole.
            repayment = accounts.accept_topup(conn, posted, stamp)
            accounts.evaluate(conn, account_id, stamp)
            balance = ledger.balance(conn, account_id)
    except IdempotencyConflict:
        first = ledger.get_entry(conn, f"topup:admin:{ref}")
        assert first is not None
        fail(
            f"reference {ref} was already used at {first.booked_at} for "
            f"{first.amount} to {first.account_id}; nothing changed. A different "
            f"top-up needs its own reference."
        )
    except LedgerError as err:
        fail(str(err))
    if posted.duplicate:
        typer.echo(
            f"duplicate: reference {ref} was already applied at "
            f"{posted.entry.booked_at} ({posted.entry.amount} to "
            f"{posted.entry.account_id}); nothing changed. Balance {posted.balance}"
        )
    else:
        if repayment is not None:
            typer.echo(
                f"repaid first: {-repayment.amount} of emergency credit "
                f"({repayment.ref})"
            )
        typer.echo(f"applied: {money} to {account_id}, balance now {balance}")


def adjust(
    account_id: Annotated[str, typer.Argument(help="Account to correct.")],
    by: Annotated[
        str,
        typer.Option(
            "--by",
            help="Signed amount in major units: -20.00 takes money back (a mistaken "
            "top-up), 5.00 credits a goodwill refund.",
        ),
    ],
    ref: Annotated[
        str, typer.Option("--ref", help="Your unique reference; applied once.")
    ],
    reason: Annotated[
        str, typer.Option("--reason", help="Why, for the resident and the auditor.")
    ],
    config_path: ConfigOption = DEFAULT_CONFIG,
) -> None:
    """Correct an account by hand with a signed adjustment; idempotent by --ref."""
    from gateway import accounts, ledger
    from gateway.clock import SystemClock
    from gateway.ledger import EntryKind, IdempotencyConflict, LedgerError, NewEntry
    from gateway.money import Money, MoneyError
    from gateway.store import transaction

    config = load(config_path)
    try:
        money = Money.parse(by, config.site.currency)
    except MoneyError as err:
        fail(str(err))
    if money.minor == 0:
        fail("an adjustment of zero changes nothing")
    if not ref.strip() or not reason.strip():
        fail("--ref and --reason must not be empty")
    conn = open_db(config)
    stamp = SystemClock().now()
    entry_id = f"adjustment:admin:{ref}"
    try:
        with transaction(conn):
            posted = ledger.post(
                conn,
                NewEntry(
                    id=entry_id,
                    account_id=account_id,
                    kind=EntryKind.ADJUSTMENT,
                    amount=money,
                    source="cli",
                    booked=stamp,
                    ref=ref,
                    detail={"reason": reason},
                ),
            )
            accounts.evaluate(conn, account_id, stamp)
    except IdempotencyConflict:
        first = ledger.get_entry(conn, entry_id)
        assert first is not None
        fail(
            f"reference {ref} was already used at {first.booked_at} for "
            f"{first.amount} on {first.account_id}; use a new reference"
        )
    except LedgerError as err:
        fail(str(err))
    if posted.duplicate:
        typer.echo(f"duplicate: reference {ref} was already applied; nothing changed")
    else:
        typer.echo(f"adjusted {account_id} by {money}, balance now {posted.balance}")


def history(
    account_id: Annotated[str, typer.Argument(help="Account id.")],
    config_path: ConfigOption = DEFAULT_CONFIG,
    days: Annotated[
        int | None, typer.Option(help="Per day, for this many days.")
    ] = None,
    weeks: Annotated[
        int | None, typer.Option(help="Per week, for this many weeks.")
    ] = None,
    months: Annotated[
        int | None, typer.Option(help="Per month, for this many months.")
    ] = None,
    fmt: FormatOption = "table",
) -> None:
    """Show consumption and cost per day, week or month, per medium, and a forecast."""
    from zoneinfo import ZoneInfo

    from gateway.budgets import local_midnight_utc
    from gateway.clock import SystemClock
    from gateway.forecast import forecast
    from gateway.history import Bucket, period_start
    from gateway.history import history as load_history

    chosen = output_format(fmt)
    if sum(x is not None for x in (days, weeks, months)) > 1:
        fail("give one of --days, --weeks or --months")
    for name, count in (("--days", days), ("--weeks", weeks), ("--months", months)):
        if count is not None and count < 1:
            fail(f"{name} must be 1 or more, got {count}")
    config = load(config_path)
    zone = ZoneInfo(config.site.timezone)
    stamp = SystemClock().now()
    today = stamp.at.astimezone(zone).date()
    bucket: Bucket
    if months is not None:
        bucket, first = "month", today.replace(day=1)
        for _ in range(max(months, 1) - 1):
            first = (first - timedelta(days=1)).replace(day=1)
    elif weeks is not None:
        bucket = "week"
        first = period_start(today, "week") - timedelta(weeks=max(weeks, 1) - 1)
    else:
        bucket, first = "day", today - timedelta(days=max(days or 7, 1) - 1)
    conn = open_db(config, create=False)
    if (
        conn.execute("SELECT 1 FROM accounts WHERE id = ?", (account_id,)).fetchone()
        is None
    ):
        fail(f"no account {account_id!r}")
    rows = [
        {
            "from": p.start.isoformat(),
            "medium": p.medium,
            "quantity": p.quantity,
            "unit": p.unit,
            "cost": p.cost,
            "standing": p.standing,
        }
        for p in load_history(
            conn,
            account_id,
            zone=zone,
            since=local_midnight_utc(first, zone),
            bucket=bucket,
            currency=config.site.currency,
        )
    ]
    outlook = forecast(conn, account_id, stamp)
    ahead = {
        "daily_cost": outlook.daily_cost_money,
        "trend": "-" if outlook.trend is None else f"{outlook.trend:.2f}",
        "credit": outlook.credit,
        "days_left": "-" if outlook.days_left is None else f"{outlook.days_left:.1f}",
        "empty_at": "-"
        if outlook.empty_at is None
        else outlook.empty_at.astimezone(zone).isoformat(timespec="minutes"),
    }
    columns: tuple[str, ...] = ("from", "medium", "quantity", "unit", "cost")
    if chosen == "table":
        # On a terminal the unit reads best beside its quantity.
        for r in rows:
            r["quantity"] = f"{r.pop('quantity')} {r.pop('unit')}"
        columns = ("from", "medium", "quantity", "cost")
    emit(
        [
            (f"{account_id} per {bucket}", (*columns, "standing"), rows),
            ("forecast", tuple(ahead), [ahead]),
        ],
        chosen,
    )
