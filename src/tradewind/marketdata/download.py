"""Historical candles downloaded from an exchange into the candle store and the history store (Parquet,
what backtests read), resumable (`tradewind data download`).

Any adapter works (Bitfinex natively, every other exchange through ccxt, even sim); the download pages
through ``fetch_history`` and commits each page, so an interrupted download loses at most one page and
the next run starts after the last candle stored in both stores (a market downloaded before the history
store existed is downloaded again from ``since``: the database keeps what it has, the history store
gets it all).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from tradewind.domain import tf_ms
from tradewind.exchanges.base import ExchangeError
from tradewind.exchanges.registry import make_adapter
from tradewind.marketdata.accept import Accepted, accept_rows
from tradewind.marketdata.history import HistoryStore
from tradewind.storage import candles as store

if TYPE_CHECKING:
    from tradewind.config import Settings
    from tradewind.exchanges.base import ExchangeAdapter
    from tradewind.storage.db import SessionFactory

#: Told (candles done, candles in all) when the download starts and after each page.
Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class DownloadResult:
    stored: int  # new candles written (already stored ones are not written again)
    start: int  # open time the download started from (after the last stored candle when resuming)
    until: int
    last: int | None  # open time of the newest stored candle afterwards
    duplicates: int = 0  # candles received that were stored already
    rejected: dict[str, int] = field(default_factory=dict)  # invalid candles not stored, by reason
    history: int = 0  # candles added to the history store


async def download(
    settings: Settings,
    sf: SessionFactory,
    exchange: str,
    symbol: str,
    tf: str,
    since: int,
    until: int | None = None,
    *,
    adapter: ExchangeAdapter | None = None,
    progress: Progress | None = None,
) -> DownloadResult:
    """Download candles of ``symbol`` on ``exchange`` with open time in [since, until) into the (migrated)
    database of ``sf`` and the history store of ``settings``, starting after the last stored candle if
    there is one. Raises ExchangeError for an exchange or timeframe there is no adapter for."""
    size = tf_ms(tf)
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
            last = None  # the history store has none of it yet: from `since` again
        elif last is not None:
            last = min(last, kept[1])
        now = int(time.time() * 1000)
        until = min(until, now - now % size) if until is not None else now - now % size
        start = max(since - since % size, last + size if last is not None else 0)
        total = max((until - since) // size, 0)
        done = min(max((start - since) // size, 0), total)
        if progress is not None:
            progress(done, total)
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
            done += (page[-1].time + size - cursor) // size
            cursor = page[-1].time + size
            if progress is not None:
                progress(done, total)
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
