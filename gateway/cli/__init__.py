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
    from gateway.cli import decode, mbus

    for module in (mbus, decode):
        module.register(app)


def main() -> None:
    _register()
    app()
