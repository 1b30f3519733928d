"""The `tradewind` command: up, run <component>, db, backtest, data, user, secrets, bench."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

if (
    TYPE_CHECKING
):  # the settings (pydantic) load when a command needs them: `tradewind backtest` starts sooner
    from tradewind.config import Settings


def settings_from(ctx: click.Context, **overrides: Any) -> Settings:
    from tradewind.config import ConfigError, load_settings

    try:
        return load_settings(**{k: v for k, v in overrides.items() if v is not None})
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None


@click.group()
@click.version_option(package_name="tradewind")
def main() -> None:
    """tradewind: write trading strategies in Lua, backtest them, and run them on live markets."""


@main.command()
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Where SQLite, NATS data and keys live.",
)
@click.option("--host", default=None, help="Address of the web app (default 127.0.0.1).")
@click.option("--port", type=int, default=None, help="Port of the web app (default 8000).")
@click.pass_context
def up(ctx: click.Context, data_dir: Path | None, host: str | None, port: int | None) -> None:
    """Run the whole platform in this process (embedded NATS, SQLite, the sim exchange, web app)."""
    from tradewind.runtime import setup_logging
    from tradewind.runtime import up as run_up

    settings = settings_from(ctx, data_dir=data_dir, host=host, port=port)
    setup_logging(settings.log_level)
    click.echo(
        f"tradewind: data in {settings.data_dir}; web app on http://{settings.host}:{settings.port}/ (Ctrl-C stops)"
    )
    from tradewind.config import ConfigError
    from tradewind.exchanges.base import ExchangeError

    try:
        asyncio.run(run_up(settings, settings.host, settings.port))
    except (ConfigError, ExchangeError) as exc:
        raise click.ClickException(str(exc)) from None
    except OSError as exc:
        raise click.ClickException(f"cannot start: {exc}") from None


@main.command()
@click.argument("component", type=click.Choice(["web", "core", "eval", "exchange"]))
@click.option(
    "--exchange", "exchange", default=None, help="For `exchange`: which adapter (sim, bitfinex, a ccxt id)."
)
@click.pass_context
def run(ctx: click.Context, component: str, exchange: str | None) -> None:
    """Run one component in this process (distributed mode), configured by TRADEWIND_* settings."""
    from tradewind.runtime import run_component, setup_logging

    settings = settings_from(ctx)
    setup_logging(settings.log_level)
    from tradewind.config import ConfigError
    from tradewind.exchanges.base import ExchangeError

    try:
        asyncio.run(run_component(settings, component, exchange))
    except (ConfigError, ValueError, ExchangeError) as exc:
        raise click.ClickException(str(exc)) from None


@main.group()
def db() -> None:
    """Database schema."""


@db.command("upgrade")
@click.pass_context
def db_upgrade(ctx: click.Context) -> None:
    """Apply the Alembic migrations to the configured database."""
    from tradewind.storage.migrate import upgrade

    settings = settings_from(ctx)
    settings.make_data_dir()
    upgrade(settings.db_url)
    click.echo("database is up to date")


@main.group()
def data() -> None:
    """Historical candles: import, download, list."""


def _register() -> None:
    """Commands that live next to the code they drive (backtest, data, user, secrets, bench)."""
    from tradewind.backtest.commands import backtest, data_import, data_list
    from tradewind.backtest.optimize_cli import optimize
    from tradewind.backtest.research_cli import check, walkforward
    from tradewind.bench.commands import bench
    from tradewind.exchanges.download import download
    from tradewind.web.commands import secrets, user

    main.add_command(backtest)
    main.add_command(optimize)
    main.add_command(walkforward)
    main.add_command(check)
    data.add_command(data_import)
    data.add_command(data_list)
    data.add_command(download)
    main.add_command(user)
    main.add_command(secrets)
    main.add_command(bench)


_register()

if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
