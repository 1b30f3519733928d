"""What the research commands (backtest, optimize, walkforward, check) read the same way: ``--param``,
``--from``/``--to``, and the candles of ``--data FILE`` or ``--market ID|EXCHANGE:SYMBOL``."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from tradewind.cli.context import open_storage
from tradewind.domain import valid_exchange, valid_symbol

if TYPE_CHECKING:
    from tradewind.config import Settings
    from tradewind.storage.db import SessionFactory

SEE_LIST = "(see `tradewind data list`)"


def parse_params(items: tuple[str, ...]) -> dict[str, Any]:
    """``--param name=value`` options as a dict; numbers and true/false become what they say."""
    params: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key.isidentifier():
            raise click.BadParameter(f"{item!r}: write name=value", param_hint="--param")
        value: Any = raw.strip()
        for cast in (int, float):
            try:
                value = cast(raw)
                break
            except ValueError:
                pass
        if value in ("true", "false"):
            value = value == "true"
        params[key] = value
    return params


def parse_times(start: str | None, end: str | None) -> tuple[int | None, int | None]:
    """``--from`` and ``--to`` in epoch ms (ISO 8601 or epoch ms on the command line)."""
    from tradewind.backtest.importers import ImportError_, parse_time

    try:
        return (parse_time(start) if start else None), (parse_time(end) if end else None)
    except ImportError_ as exc:
        raise click.BadParameter(str(exc), param_hint="--from/--to") from None


def parse_market(market: str) -> tuple[str, str] | None:
    """(exchange, symbol) of ``--market EXCHANGE:SYMBOL``, None for a market id; BadParameter otherwise."""
    if market.strip().isdigit():
        return None
    exchange, sep, symbol = market.partition(":")
    exchange, symbol = exchange.strip(), symbol.strip().upper()
    if not sep or not valid_exchange(exchange) or not valid_symbol(symbol):
        raise click.BadParameter(
            f"{market!r}: give a market id or EXCHANGE:SYMBOL, e.g. sim:BTC/USD", param_hint="--market"
        )
    return exchange, symbol


async def _market_id(sf: SessionFactory, market: str) -> int:
    from sqlalchemy.exc import DBAPIError

    from tradewind.marketdata.stored import market_id

    named = parse_market(market)
    if named is None:
        return int(market)
    try:
        found = await market_id(sf, *named)
    except DBAPIError as exc:  # a database without the markets table
        raise click.ClickException(f"cannot read the stored markets: {exc.orig}") from None
    if found is None:
        raise click.ClickException(f"no market {named[0]}:{named[1]} is stored {SEE_LIST}")
    return found


def market_id(settings: Settings, market: str) -> int:
    """The id of ``--market``: given as it is, or EXCHANGE:SYMBOL looked up in the database."""
    if parse_market(market) is None:
        return int(market)

    async def go() -> int:
        async with open_storage(settings) as sf:
            return await _market_id(sf, market)

    return asyncio.run(go())


def market_candles(
    settings: Settings, market: str, tf: str, start: int | None, end: int | None
) -> dict[str, Any]:
    """``--market``'s candles: from the history store when it holds the market (no database is opened),
    else from the database."""
    from tradewind.marketdata.history import HistoryError, HistoryStore, NotStored, history_candles

    history = HistoryStore.of(settings)
    named = parse_market(market)

    async def from_db() -> dict[str, Any]:
        from tradewind.marketdata import stored

        async with open_storage(settings) as sf:
            return await stored.market_candles(sf, history, await _market_id(sf, market), tf, start, end)

    try:
        if named is not None:
            found = history_candles(history, *named, tf, start, end)
            if found is not None:
                return found
        return asyncio.run(from_db())
    except NotStored as exc:
        raise click.ClickException(f"{exc} {SEE_LIST}") from None
    except HistoryError as exc:
        raise click.ClickException(str(exc)) from None


def file_candles(path: Path, tf: str) -> dict[str, Any]:
    """A candle file's candles (resampled to ``tf`` unless it is 1m, the importers' default)."""
    from tradewind.backtest.importers import ImportError_, load

    try:
        return load(path, tf if tf != "1m" else None).arrays()
    except ImportError_ as exc:
        raise click.ClickException(str(exc)) from None


def candles(
    settings: Settings | None,
    data_file: Path | None,
    market: str | None,
    tf: str,
    start: int | None,
    end: int | None,
) -> dict[str, Any]:
    """The candles of ``--data FILE`` or ``--market`` (exactly one of them; ``settings`` for a market)."""
    if data_file is not None:
        return file_candles(data_file, tf)
    assert settings is not None and market is not None
    return market_candles(settings, market, tf, start, end)


def one_source(data_file: Path | None, market: str | None) -> None:
    if (data_file is None) == (market is None):
        raise click.UsageError("give exactly one of --data FILE or --market ID")


def inline(path: Path, timeframe: str) -> Any:
    """A candle file's candles to send with each job to workers on a bus (``sweep.inline_data``), or None
    (said on stderr) when they are too large for a message and the workers read the file themselves."""
    from tradewind.backtest.importers import ImportError_
    from tradewind.backtest.sweep import inline_data

    try:
        data = inline_data(path, timeframe)
    except ImportError_ as exc:
        raise click.ClickException(str(exc)) from None
    if data is None:
        click.echo(
            f"{path.name} is too large to send with each job: the workers read it at {path.resolve()}",
            err=True,
        )
    return data
