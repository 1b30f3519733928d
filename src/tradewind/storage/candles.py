"""The candle store: bulk insert (duplicates ignored), windows and ranges by market and timeframe."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
from sqlalchemy import and_, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from tradewind.storage.db import InsertFor, insert_for
from tradewind.storage.models import CandleRow, Market

Row = tuple[int, float, float, float, float, float]  # time, open, high, low, close, volume


def _insert(session: AsyncSession) -> InsertFor:
    bind = session.bind
    assert bind is not None, "the session factory binds every session to the engine"
    return insert_for(bind.dialect.name)


async def get_or_create_market(session: AsyncSession, exchange: str, symbol: str) -> Market:
    market = (
        await session.execute(select(Market).where(Market.exchange == exchange, Market.symbol == symbol))
    ).scalar_one_or_none()
    if market is None:
        ins = _insert(session)(Market).values(exchange=exchange, symbol=symbol, active=True)
        await session.execute(ins.on_conflict_do_nothing(index_elements=["exchange", "symbol"]))
        market = (
            await session.execute(select(Market).where(Market.exchange == exchange, Market.symbol == symbol))
        ).scalar_one()
    return market


async def insert_candles(session: AsyncSession, market_id: int, tf: str, rows: Iterable[Row]) -> int:
    """Insert candles, ignoring ones already stored (same market, timeframe and time). Returns rows sent."""
    values = [
        {
            "market_id": market_id,
            "tf": tf,
            "time": int(t),
            "open": o,
            "high": h,
            "low": lo,
            "close": c,
            "volume": v,
        }
        for t, o, h, lo, c, v in rows
    ]
    if not values:
        return 0
    ins = _insert(session)(CandleRow)
    stmt = ins.on_conflict_do_nothing(index_elements=["market_id", "tf", "time"])
    # Chunked: SQLite caps bound parameters per statement.
    for start in range(0, len(values), 2000):
        await session.execute(stmt, values[start : start + 2000])
    return len(values)


async def upsert_candles(session: AsyncSession, market_id: int, tf: str, rows: Iterable[Row]) -> None:
    """Insert or overwrite candles (used by resample, whose open bucket grows until it closes)."""
    ins = _insert(session)(CandleRow)
    for t, o, h, lo, c, v in rows:
        stmt = ins.values(market_id=market_id, tf=tf, time=int(t), open=o, high=h, low=lo, close=c, volume=v)
        stmt = stmt.on_conflict_do_update(
            index_elements=["market_id", "tf", "time"],
            set_={"open": o, "high": h, "low": lo, "close": c, "volume": v},
        )
        await session.execute(stmt)


async def last_candles(
    session: AsyncSession, market_id: int, tf: str, limit: int, before: int | None = None
) -> list[Row]:
    """The newest ``limit`` candles (open time < ``before`` if given), returned oldest first."""
    q = select(
        CandleRow.time, CandleRow.open, CandleRow.high, CandleRow.low, CandleRow.close, CandleRow.volume
    ).where(CandleRow.market_id == market_id, CandleRow.tf == tf)
    if before is not None:
        q = q.where(CandleRow.time < before)
    q = q.order_by(CandleRow.time.desc()).limit(limit)
    rows = (await session.execute(q)).all()
    return [tuple(r) for r in reversed(rows)]  # type: ignore[misc]


async def candle_range(
    session: AsyncSession, market_id: int, tf: str, start: int | None = None, end: int | None = None
) -> list[Row]:
    """Candles with open time in [start, end), oldest first."""
    conds = [CandleRow.market_id == market_id, CandleRow.tf == tf]
    if start is not None:
        conds.append(CandleRow.time >= start)
    if end is not None:
        conds.append(CandleRow.time < end)
    q = select(
        CandleRow.time, CandleRow.open, CandleRow.high, CandleRow.low, CandleRow.close, CandleRow.volume
    )
    rows = (await session.execute(q.where(and_(*conds)).order_by(CandleRow.time))).all()
    return [tuple(r) for r in rows]  # type: ignore[misc]


async def range_extent(
    session: AsyncSession, market_id: int, tf: str, start: int | None = None, end: int | None = None
) -> tuple[int, int | None]:
    """How many candles [start, end) holds, and the newest one's open time (None: none)."""
    conds = [CandleRow.market_id == market_id, CandleRow.tf == tf]
    if start is not None:
        conds.append(CandleRow.time >= start)
    if end is not None:
        conds.append(CandleRow.time < end)
    count, newest = (
        await session.execute(select(func.count(), func.max(CandleRow.time)).where(and_(*conds)))
    ).one()
    return int(count), newest


async def last_time(session: AsyncSession, market_id: int, tf: str) -> int | None:
    q = select(func.max(CandleRow.time)).where(CandleRow.market_id == market_id, CandleRow.tf == tf)
    return (await session.execute(q)).scalar_one_or_none()


async def summary(session: AsyncSession) -> list[tuple[str, str, str, int, int | None, int | None]]:
    """(exchange, symbol, tf, count, first, last) for every stored series."""
    q = (
        select(
            Market.exchange,
            Market.symbol,
            CandleRow.tf,
            func.count(),
            func.min(CandleRow.time),
            func.max(CandleRow.time),
        )
        .join(Market, Market.id == CandleRow.market_id)
        .group_by(Market.exchange, Market.symbol, CandleRow.tf)
        .order_by(Market.exchange, Market.symbol, CandleRow.tf)
    )
    return [tuple(r) for r in (await session.execute(q)).all()]  # type: ignore[misc]


def to_arrays(rows: Sequence[Row]) -> dict[str, np.ndarray]:
    """Column arrays (time as int64 ms, prices float64) for TA-Lib and the Lua sandbox."""
    if not rows:
        empty = np.empty(0, dtype=np.float64)
        return {
            "time": np.empty(0, dtype=np.int64),
            "open": empty,
            "high": empty,
            "low": empty,
            "close": empty,
            "volume": empty,
        }
    arr = np.asarray(rows, dtype=np.float64)
    return {
        "time": arr[:, 0].astype(np.int64),
        "open": np.ascontiguousarray(arr[:, 1]),
        "high": np.ascontiguousarray(arr[:, 2]),
        "low": np.ascontiguousarray(arr[:, 3]),
        "close": np.ascontiguousarray(arr[:, 4]),
        "volume": np.ascontiguousarray(arr[:, 5]),
    }
