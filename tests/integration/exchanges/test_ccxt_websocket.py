"""The ccxt adapter's websocket candles (ccxt.pro ``watch_ohlcv``) against the local Binance's kline
stream: every interval closes once with its final OHLCV, the open candle's updates collapse into one,
and a dropped connection is reconnected with the gap it left filled from REST."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tradewind.config import Settings
from tradewind.exchanges.ccxt_adapter import CcxtAdapter

from .conftest import Row, consecutive, load_rows
from .fake_binance import FakeBinance

ROWS = consecutive(load_rows("ETH-BTC-5m.csv"), 40, step=300_000)


@pytest.fixture
async def binance() -> AsyncIterator[FakeBinance]:
    server = FakeBinance(ROWS, visible=4)
    await server.start()
    yield server
    await server.stop()


async def test_websocket_candles_close_once_and_a_dropped_link_leaves_no_gap(binance, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    settings = Settings(
        data_dir=tmp_path, ccxt_urls={"binance": binance.url}, ccxt_symbols={"binance": ["ETH/BTC"]}
    )
    # ccxt.pro tells spot streams by "/stream" in the URL; the host becomes ours like every other URL
    adapter = CcxtAdapter(
        "binance",
        settings,
        urls={"ws": {"spot": "wss://stream.binance.com:9443/stream/ws"}},
        use_websocket=True,
        request_timeout_s=5,
    )
    assert adapter.capabilities.streams_candles
    got: list[Row] = []
    stream = adapter.stream_candles(["ETH/BTC"], "5m")
    reader = asyncio.ensure_future(stream.__anext__())
    market: asyncio.Task[None] | None = None
    try:
        async with asyncio.timeout(30):
            while not binance.ws_clients:  # subscribed
                await asyncio.sleep(0.02)
            market = asyncio.create_task(binance.play_klines(len(ROWS), drop={20: 3}))
            while (
                len(got) < len(ROWS) - 5
            ):  # candles 3 to 37: the stream's first is 3, the last one sent (38) is open
                c = await reader
                assert (
                    c.exchange == "binance"
                    and c.symbol == "ETH/BTC"
                    and c.tf == "5m"
                    and c.closed
                    and c.recv_ns
                )
                got.append((c.time, c.open, c.high, c.low, c.close, c.volume))
                reader = asyncio.ensure_future(stream.__anext__())
            await market
    finally:
        for task in (reader, market):
            if task is not None:
                task.cancel()
                with contextlib.suppress(BaseException):
                    await task
        await stream.aclose()
        await adapter.close()
    assert binance.ws_subscriptions[0] == "ethbtc@kline_5m" and binance.ws_connections >= 2
    times = [g[0] for g in got]
    assert times[0] == ROWS[3][0] and times[-1] == ROWS[37][0]
    assert times == sorted(set(times)) and all(
        b - a == 300_000 for a, b in zip(times, times[1:], strict=False)
    )
    by_time = {r[0]: r for r in ROWS}
    assert all(g == pytest.approx(by_time[g[0]]) for g in got), (
        "a candle closed with other than its final OHLCV"
    )
    backfilled = [q for method, path, q in binance.requests if path == "klines" and "startTime" in q]
    assert backfilled, "the gap after the drop was not fetched from REST"
