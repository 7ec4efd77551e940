"""The prepaidgw command line: one typer app, one module per command group.

Heavy imports stay inside the commands so that `prepaidgw --help` is fast.
"""

from __future__ import annotations

import typer

app = typer.Typer(
    name="prepaidgw",
    help="Prepaid utility gateway: meters, ledger, cut-off and reconnect.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,  # locals can hold keys
)


def _register() -> None:
    from importlib.metadata import entry_points

    from gateway.cli import (
        accounts,
        budgets,
        cloud,
        config_cmd,
        credit,
        decode,
        laundry,
        mbus,
        messages,
        report,
        run,
    )

    for module in (
        run,
        config_cmd,
        accounts,
        mbus,
        decode,
        cloud,
        credit,
        budgets,
        laundry,
        messages,
        report,
    ):
        module.register(app)
    # Commands that live outside gateway/ (the demo, which drives the
    # simulators) plug in by entry point, so gateway/ never imports them.
    for plugin in entry_points(group="prepaidgw.commands"):
        plugin.load()(app)


def main() -> None:
    from gateway import log

    # Commands print their own results; only warnings from the code beneath
    # them go to stderr. `run` and `demo` set up logging for a daemon.
    log.configure(json=False, level="WARNING", cache=False)
    _register()
    app()
