"""`tradewind data download`: historical candles from an exchange into the candle store and the history
store (Parquet, what backtests read), resumable.

Any adapter works (Bitfinex natively, every other exchange through ccxt, even sim); the command pages
through ``fetch_history`` and commits each page, so an interrupted download loses at most one page and
the next run starts after the last candle stored in both stores (a market downloaded before the history
store existed is downloaded again from ``--since``: the database keeps what it has, the history store
gets it all).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import click

from tradewind.domain import TIMEFRAMES, tf_ms

if TYPE_CHECKING:  # imported where used: every `tradewind` command registers this one, few run it
    from rich.progress import Progress

    from tradewind.config import Settings
    from tradewind.exchanges.base import ExchangeAdapter

DATE_FORMATS = ["%Y-%m-%d", "%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M"]


@dataclass(frozen=True)
class DownloadResult:
    stored: int  # new candles written (already stored ones are not written again)
    start: int  # open time the download started from (after the last stored candle when resuming)
    until: int
    last: int | None  # open time of the newest stored candle afterwards
    duplicates: int = 0  # candles received that were stored already
    rejected: dict[str, int] = field(default_factory=dict)  # invalid candles not stored, by reason
    history: int = 0  # candles added to the history store


def _ms(value: datetime) -> int:
    dt = value if value.tzinfo else value.replace(tzinfo=UTC)  # dates on the command line are UTC
    return int(dt.timestamp() * 1000)


async def run_download(
    settings: Settings,
    exchange: str,
    symbol: str,
    tf: str,
    since: int,
    until: int | None = None,
    *,
    adapter: ExchangeAdapter | None = None,
    progress: Progress | None = None,
) -> DownloadResult:
    """Download candles of ``symbol`` on ``exchange`` with open time in [since, until) into the store of
    ``settings`` (migrated first), starting after the last stored candle if there is one."""
    # imported here, not at the top: `tradewind` registers this command, and SQLAlchemy with every model
    # would add 0.4 s to the start-up of every other command (backtest included)
    from tradewind.exchanges.base import ExchangeError
    from tradewind.exchanges.registry import make_adapter
    from tradewind.marketdata.accept import Accepted, accept_rows
    from tradewind.marketdata.history import HistoryStore
    from tradewind.storage import candles as store
    from tradewind.storage.db import make_engine, make_session_factory
    from tradewind.storage.migrate import upgrade_async

    size = tf_ms(tf)
    if settings.db_url.startswith("sqlite"):
        settings.make_data_dir()
    await upgrade_async(settings.db_url)
    engine = make_engine(settings.db_url)
    sf = make_session_factory(engine)
    own_adapter = adapter is None
    adapter = adapter or make_adapter(exchange, settings, sf)
    try:
        if tf not in adapter.capabilities.timeframes:
            available = ", ".join(adapter.capabilities.timeframes)
            raise ExchangeError(f"{exchange} has no {tf} candles; available: {available}")
        await adapter.start()
        history = HistoryStore.of(settings).market(exchange, symbol)
        async with sf() as s:
            market = await store.get_or_create_market(s, exchange, symbol)
            last = await store.last_time(s, market.id, tf)
            await s.commit()
        kept = await asyncio.to_thread(history.store.span, exchange, symbol, tf, derived=False)
        if kept is None:
            last = None  # the history store has none of it yet: from --since again
        elif last is not None:
            last = min(last, kept[1])
        now = int(time.time() * 1000)
        until = min(until, now - now % size) if until is not None else now - now % size
        start = max(since - since % size, last + size if last is not None else 0)
        task = None
        if progress is not None:
            total = max((until - since) // size, 0)
            task = progress.add_task(
                f"{exchange} {symbol} {tf}",
                total=total,
                completed=min(max((start - since) // size, 0), total),
            )
        report = Accepted()
        cursor = start
        while cursor < until:
            page = [
                c for c in await adapter.fetch_history(symbol, tf, cursor, until) if cursor <= c.time < until
            ]
            if not page:
                break
            rows = [(c.time, c.open, c.high, c.low, c.close, c.volume) for c in page]
            async with sf() as s:  # checked, de-duplicated and (for 1m) derived by the one door
                report.add(
                    await accept_rows(s, market.id, tf, rows, now=int(time.time() * 1000), history=history)
                )
                await s.commit()  # each page is durable: an interruption resumes after it
            advanced = page[-1].time + size - cursor
            cursor = page[-1].time + size
            if progress is not None and task is not None:
                progress.advance(task, advanced // size)
        async with sf() as s:
            last = await store.last_time(s, market.id, tf)
        return DownloadResult(
            history=report.history,
            stored=report.stored,
            start=start,
            until=until,
            last=last,
            duplicates=report.duplicates,
            rejected=dict(report.rejected),
        )
    finally:
        if own_adapter:
            await adapter.close()
        await engine.dispose()


@click.command("download")
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
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    from tradewind.config import ConfigError, load_settings
    from tradewind.exchanges.base import ExchangeError
    from tradewind.marketdata.history import HistoryError

    try:
        settings = load_settings()
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    columns = (
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("candles"),
        TimeElapsedColumn(), TimeRemainingColumn(),
    )  # fmt: skip
    try:
        with Progress(*columns) as progress:
            result = asyncio.run(
                run_download(
                    settings,
                    exchange,
                    symbol,
                    tf,
                    _ms(since),
                    _ms(until) if until else None,
                    progress=progress,
                )
            )
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


if (
    __name__ == "__main__"
):  # `python -m tradewind.exchanges.download`, until it is registered under `tradewind data`
    download()
