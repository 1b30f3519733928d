"""What the candle stores hold, for the command line: rows of a file put in (through the one door), the
inventory of both stores, and a market's candles read back (from the history store when it holds the
market, else from the database)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from tradewind.marketdata.accept import Accepted, accept_rows
from tradewind.marketdata.history import NotStored, history_candles
from tradewind.storage import candles as store
from tradewind.storage.models import Market

if TYPE_CHECKING:
    from collections.abc import Sequence

    import numpy as np

    from tradewind.marketdata.candles import Row
    from tradewind.marketdata.history import HistoryStore
    from tradewind.storage.db import SessionFactory

Arrays = dict[str, "np.ndarray[Any, Any]"]


async def store_rows(
    sf: SessionFactory, history: HistoryStore, exchange: str, symbol: str, tf: str, rows: Sequence[Row]
) -> tuple[int, Accepted]:
    """Put candle rows of a market into the database and the history store, checked, de-duplicated
    against what is stored and (for 1m) derived by the one door; (market id, what the door did)."""
    async with sf() as s:
        market = await store.get_or_create_market(s, exchange, symbol)
        report = await accept_rows(s, market.id, tf, rows, history=history.market(exchange, symbol))
        await s.commit()
    return market.id, report


async def inventory(sf: SessionFactory) -> list[tuple[int, str, str, str, int, int | None, int | None]]:
    """(market id, exchange, symbol, tf, candles, first, last) of every series in the database."""
    async with sf() as s:
        ids = {(m.exchange, m.symbol): m.id for m in (await s.execute(select(Market))).scalars()}
        return [(ids[(e, sym)], e, sym, tf, n, a, b) for e, sym, tf, n, a, b in await store.summary(s)]


async def market_id(sf: SessionFactory, exchange: str, symbol: str) -> int | None:
    """The id of the market ``exchange``:``symbol`` in the database, None when it has none."""
    async with sf() as s:
        q = select(Market.id).where(Market.exchange == exchange, Market.symbol == symbol)
        return (await s.execute(q)).scalar_one_or_none()


async def market_candles(
    sf: SessionFactory, history: HistoryStore, market: int, tf: str, start: int | None, end: int | None
) -> Arrays:
    """The ``tf`` candles in [start, end) of the market with id ``market``: from the history store when it
    holds the market, else from the database; NotStored when there are none."""
    async with sf() as s:
        found = await s.get(Market, market)
        if found is not None:
            arrays = history_candles(history, found.exchange, found.symbol, tf, start, end)
            if arrays is not None:
                return arrays
        rows = await store.candle_range(s, market, tf, start, end)
    if not rows:
        raise NotStored(f"no {tf} candles stored for market {market} in that range")
    return store.to_arrays(rows)
