"""`prepaidgw mbus ...`: tools for an installer at the meter cabinet."""

from __future__ import annotations

from typing import NoReturn

import typer


def register(app: typer.Typer) -> None:
    """Add the mbus command group to the app."""
    mbus = typer.Typer(help="Wired M-Bus tools.", no_args_is_help=True)
    app.add_typer(mbus, name="mbus")

    @mbus.command("scan")
    def scan(
        port: str = typer.Option(
            ..., "--port", help="Serial device, e.g. /dev/ttyUSB0."
        ),
        baudrate: int = typer.Option(2400, "--baudrate", help="Bus speed in baud."),
        parity: str = typer.Option("E", "--parity", help="E (M-Bus), N or O."),
        timeout: float = typer.Option(
            0.3, "--timeout", help="Seconds to wait for each address to answer."
        ),
        first: int = typer.Option(0, "--first", help="First primary address."),
        last: int = typer.Option(250, "--last", help="Last primary address."),
    ) -> None:
        """List the primary addresses that answer a link reset (SND_NKE)."""
        import asyncio

        from rich.progress import Progress

        from drivers.mbus.master import MbusMaster
        from gateway.model import LinkError

        if not 0 <= first <= last <= 250:
            _fail(
                f"--first {first} and --last {last} must satisfy "
                "0 <= first <= last <= 250"
            )
        try:
            master = MbusMaster(
                port, baudrate=baudrate, parity=parity.upper(), timeout_s=timeout
            )
        except ValueError as error:
            _fail(str(error))

        async def run() -> list[int]:
            addresses = range(first, last + 1)
            with Progress(transient=True) as progress:
                task = progress.add_task(f"scanning {port}", total=len(addresses))
                await master.open()
                try:
                    return await master.scan(
                        addresses, progress=lambda _a: progress.advance(task)
                    )
                finally:
                    await master.close()

        try:
            found = asyncio.run(run())
        except LinkError as error:
            _fail(str(error))
        if found:
            typer.echo("found: " + " ".join(str(address) for address in found))
        else:
            typer.echo("found: none")


def _fail(message: str) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code=2)
