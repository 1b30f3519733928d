"""`tradewind up` (the whole platform: this process and the web server's processes) and `tradewind run <component>`."""

from __future__ import annotations

import asyncio
from pathlib import Path

import click

from tradewind.cli.context import read_settings


@click.command()
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Where SQLite, NATS data and keys live.",
)
@click.option("--host", default=None, help="Address of the web app (default 127.0.0.1).")
@click.option("--port", type=int, default=None, help="Port of the web app (default 8000).")
def up(data_dir: Path | None, host: str | None, port: int | None) -> None:
    """Run the whole platform (embedded NATS, SQLite, the sim exchange; the web app in child processes)."""
    settings = read_settings(data_dir=data_dir, host=host, port=port)
    from tradewind.exchanges.base import ExchangeError
    from tradewind.runtime import ComponentFailed, setup_logging
    from tradewind.runtime import up as run_up
    from tradewind.secrets import load_secret_box

    settings.make_data_dir()
    load_secret_box(settings)  # a key that is not one stops here, before anything starts
    setup_logging(settings.log_level)
    click.echo(
        f"tradewind: data in {settings.data_dir}; web app on http://{settings.host}:{settings.port}/ (Ctrl-C stops)"
    )
    try:
        asyncio.run(run_up(settings, settings.host, settings.port))
    except (ExchangeError, ComponentFailed) as exc:
        raise click.ClickException(str(exc)) from None
    except OSError as exc:
        raise click.ClickException(f"cannot start: {exc}") from None


@click.command()
@click.argument("component", type=click.Choice(["web", "core", "eval", "exchange", "alerts"]))
@click.option(
    "--exchange", "exchange", default=None, help="For `exchange`: which adapter (sim, bitfinex, a ccxt id)."
)
def run(component: str, exchange: str | None) -> None:
    """Run one component in this process (distributed mode), configured by TRADEWIND_* settings."""
    settings = read_settings()
    if component == "exchange" and not exchange:
        raise click.UsageError("`run exchange` needs --exchange NAME")
    from tradewind.exchanges.base import ExchangeError
    from tradewind.runtime import run_component, setup_logging
    from tradewind.secrets import load_secret_box

    if component in ("web", "exchange", "alerts"):
        load_secret_box(settings)  # exchange keys and alert secrets are decrypted there: a bad key stops here
    setup_logging(settings.log_level)
    try:
        asyncio.run(run_component(settings, component, exchange))
    except ExchangeError as exc:
        raise click.ClickException(str(exc)) from None
    except OSError as exc:  # a port in use, a NATS server or database that cannot be reached
        raise click.ClickException(f"cannot start: {exc}") from None
