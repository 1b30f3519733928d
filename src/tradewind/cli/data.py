"""`tradewind data import`, `data list` and `data download`: historical candles into the database and the
history store (the work is ``tradewind.marketdata``'s)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from tradewind.cli.context import open_storage, read_settings
from tradewind.domain import TIMEFRAMES, valid_exchange, valid_symbol

DATE_FORMATS = ["%Y-%m-%d", "%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M"]


@click.group()
def data() -> None:
    """Historical candles: import, download, list."""


@data.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--exchange", required=True, help="Exchange id to file the candles under, e.g. binance.")
@click.option("--symbol", required=True, help="Market, e.g. BTC/USDT.")
@click.option("--timeframe", required=True, type=click.Choice(list(TIMEFRAMES)))
def import_(file: Path, exchange: str, symbol: str, timeframe: str) -> None:
    """Import a candle file into the database and the history store; duplicates and gaps are reported."""
    settings = read_settings()
    from tradewind.backtest.engine import iso
    from tradewind.backtest.importers import ImportError_, load
    from tradewind.marketdata.history import HistoryError, HistoryStore
    from tradewind.marketdata.stored import store_rows

    if not valid_exchange(exchange):
        raise click.BadParameter("lower-case letters, digits and _", param_hint="--exchange")
    symbol = symbol.upper()
    if not valid_symbol(symbol):
        raise click.BadParameter("BASE/QUOTE, e.g. BTC/USDT", param_hint="--symbol")
    try:
        loaded = load(file, timeframe)
    except ImportError_ as exc:
        raise click.ClickException(str(exc)) from None
    history = HistoryStore.of(settings)

    async def save() -> Any:
        async with open_storage(settings, migrate=True) as sf:
            return await store_rows(sf, history, exchange, symbol, timeframe, loaded.rows)

    try:
        market, report = asyncio.run(save())
    except HistoryError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"market {market}: {exchange} {symbol} {timeframe}")
    first, last = iso(int(loaded.time[0])), iso(int(loaded.time[-1]))
    valid = len(loaded) - report.rejected_total
    click.echo(f"imported {valid:,} candles ({loaded.format}) from {first} to {last}")
    if report.rejected:
        click.echo(f"{report.rejections()}: not stored")
    click.echo(
        f"history store: {report.history:,} new candles in {history.folder(exchange, symbol, timeframe)}"
    )
    if loaded.duplicates:
        click.echo(f"dropped {loaded.duplicates:,} duplicate candle(s)")
    if loaded.gaps:
        missing = sum(g for _, g in loaded.gaps)
        click.echo(f"{len(loaded.gaps):,} gap(s), {missing:,} candle(s) missing:")
        for after, count in loaded.gaps[:5]:
            click.echo(f"  {count:,} after {iso(after)}")
        if len(loaded.gaps) > 5:
            click.echo(f"  ... and {len(loaded.gaps) - 5:,} more")


@data.command("list")
def list_() -> None:
    """What candles are stored, per market and timeframe: in the database, and in the history store."""
    settings = read_settings()
    from tradewind.backtest.engine import iso
    from tradewind.marketdata.history import HistoryError, HistoryStore
    from tradewind.marketdata.stored import inventory

    async def fetch() -> list[Any]:
        async with open_storage(settings, migrate=True) as sf:
            return await inventory(sf)

    rows = asyncio.run(fetch())
    history = HistoryStore.of(settings)
    try:
        files = history.summary()
    except HistoryError as exc:
        raise click.ClickException(str(exc)) from None
    if not rows and not files:
        click.echo("no candles stored; import some with `tradewind data import` or `tradewind data download`")
        return
    if rows:
        click.echo("database:")
        click.echo(f"{'market':>6}  {'exchange':<10} {'symbol':<12} {'tf':<4} {'candles':>9}  from -> to")
        for mid, e, sym, tf, n, a, b in rows:
            click.echo(f"{mid:>6}  {e:<10} {sym:<12} {tf:<4} {n:>9,}  {iso(a)} -> {iso(b)}")
    if files:
        click.echo(f"history store ({history.root}; backtests read it first; 5m ... 1d are made from 1m):")
        click.echo(f"{'market':<24} {'tf':<4} {'candles':>9}  from -> to")
        for e, sym, tf, n, a, b in files:
            click.echo(f"{e + ':' + sym:<24} {tf:<4} {n:>9,}  {iso(a)} -> {iso(b)}")


def _ms(value: datetime) -> int:
    dt = value if value.tzinfo else value.replace(tzinfo=UTC)  # dates on the command line are UTC
    return int(dt.timestamp() * 1000)


@data.command("download")
@click.option(
    "--exchange",
    required=True,
    help="bitfinex, sim, or any exchange id ccxt supports (binance, kraken, ...).",
)
@click.option("--symbol", required=True, help="Market, e.g. BTC/USDT.")
@click.option("--timeframe", "tf", default="1m", show_default=True, type=click.Choice(list(TIMEFRAMES)))
@click.option(
    "--since",
    required=True,
    type=click.DateTime(DATE_FORMATS),
    help="First candle's open time (UTC), e.g. 2024-01-01.",
)
@click.option(
    "--until",
    default=None,
    type=click.DateTime(DATE_FORMATS),
    help="Stop before this time (UTC); default: now.",
)
def download(exchange: str, symbol: str, tf: str, since: datetime, until: datetime | None) -> None:
    """Download historical candles into the candle store; a second run resumes after the last stored one."""
    settings = read_settings()
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TaskID,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    from tradewind.exchanges.base import ExchangeError
    from tradewind.marketdata.download import DownloadResult
    from tradewind.marketdata.download import download as run_download
    from tradewind.marketdata.history import HistoryError

    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("candles"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )

    async def go(bar: Progress) -> DownloadResult:
        tasks: list[TaskID] = []

        def show(done: int, total: int) -> None:  # the bar appears once the range to fetch is known
            if not tasks:
                tasks.append(bar.add_task(f"{exchange} {symbol} {tf}", total=total))
            bar.update(tasks[0], completed=done)

        async with open_storage(settings, migrate=True) as sf:
            return await run_download(
                settings, sf, exchange, symbol, tf, _ms(since), _ms(until) if until else None, progress=show
            )

    try:
        with Progress(*columns) as bar:
            result = asyncio.run(go(bar))
    except (ExchangeError, HistoryError) as exc:
        raise click.ClickException(str(exc)) from None
    if result.rejected:
        why = ", ".join(
            f"{n:,} {reason}" for reason, n in sorted(result.rejected.items(), key=lambda x: -x[1])
        )
        click.echo(f"{sum(result.rejected.values()):,} invalid candle(s) rejected: {why}")
    if result.last is None:
        click.echo(f"no {tf} candles of {symbol} on {exchange} in that range")
        return
    newest = datetime.fromtimestamp(result.last / 1000, UTC).strftime("%Y-%m-%d %H:%M")
    click.echo(f"{result.stored} candles of {exchange} {symbol} {tf} downloaded; stored up to {newest} UTC")
    click.echo(f"history store: {result.history:,} new candles")
