"""The backtest worker reads a market's candles from the history store where it holds them whole and from the
database around them (minutes stored live since the last import): the same candles as the database alone."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tradewind.bus.messages import BacktestData
from tradewind.config import Settings
from tradewind.marketdata.accept import accept_rows
from tradewind.marketdata.history import HistoryStore
from tradewind.storage import candles as store
from tradewind.storage.db import make_engine, make_session_factory
from tradewind.storage.migrate import upgrade_async

M = 60_000
T0 = 1_706_745_600_000  # 2024-02-01 00:00 UTC


def minutes(start: int, n: int) -> list[tuple]:
    close = 100 + np.sin(np.arange(n) / 30) + np.arange(n) * 0.001
    return [
        (start + i * M, close[i] - 0.05, close[i] + 0.2, close[i] - 0.3, close[i], 1.0 + i % 4)
        for i in range(n)
    ]


@pytest.mark.parametrize(
    ("tf", "start", "end"),
    [
        ("1m", None, None),
        ("1h", None, None),
        ("1h", T0 + 3 * 3600_000, None),
        ("15m", T0 + 600_000, T0 + 2000 * M),
    ],
)
async def test_history_and_the_candles_stored_since_read_as_the_database_holds_them(
    tmp_path: Path, tf: str, start: int | None, end: int | None
) -> None:
    from tradewind.backtest.worker import BacktestWorker

    settings = Settings(data_dir=tmp_path)
    await upgrade_async(settings.db_url)
    engine = make_engine(settings.db_url)
    sf = make_session_factory(engine)
    try:
        async with sf() as s:
            market = await store.get_or_create_market(s, "binance", "BTC/USDT")
            history = HistoryStore.of(settings).market("binance", "BTC/USDT")
            # an import of 1,500 minutes from 00:07 (it ends inside an hour), then 700 minutes stored live
            await accept_rows(s, market.id, "1m", minutes(T0 + 7 * M, 1500), history=history)
            await accept_rows(s, market.id, "1m", minutes(T0 + 1507 * M, 700))
            await s.commit()
            expected = store.to_arrays(await store.candle_range(s, market.id, tf, start, end))
        worker = BacktestWorker(settings, None, sf)  # type: ignore[arg-type]  # (no bus: candles only)
        got = await worker.candles(BacktestData(market_id=market.id, tf=tf, start=start, end=end))
        assert len(got["time"]) == len(expected["time"]) > 10
        for k in ("time", "open", "high", "low", "close"):
            np.testing.assert_array_equal(got[k], expected[k], err_msg=k)
        np.testing.assert_allclose(got["volume"], expected["volume"], rtol=1e-12)
    finally:
        await engine.dispose()


async def test_the_worker_reads_the_history_store_and_says_which_file_it_cannot_read(tmp_path: Path) -> None:
    from tradewind.backtest.worker import BacktestWorker

    settings = Settings(data_dir=tmp_path)
    await upgrade_async(settings.db_url)
    engine = make_engine(settings.db_url)
    sf = make_session_factory(engine)
    try:
        async with sf() as s:
            market = await store.get_or_create_market(s, "binance", "BTC/USDT")
            history = HistoryStore.of(settings).market("binance", "BTC/USDT")
            await accept_rows(s, market.id, "1m", minutes(T0, 300), history=history)
            await s.commit()
        month = history.store.folder("binance", "BTC/USDT", "1m") / "2024-02.parquet"
        month.write_bytes(b"not parquet")
        worker = BacktestWorker(settings, None, sf)  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="2024-02.parquet: not a readable candle file"):
            await worker.candles(BacktestData(market_id=market.id, tf="1m"))
    finally:
        await engine.dispose()
