"""The simulated markets trade between candles: each minute is a path of trades, one every
``sim_tick_ms`` of sim time; the tick stream sends one tick per trade as the sim clock passes it, and the
candle of the minute is the aggregate of the same trades, with both streams running at once."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest

from tradewind.bus.messages import Candle, Tick
from tradewind.config import Settings
from tradewind.exchanges.sim import SimAdapter
from tradewind.exchanges.sim.market import MINUTE, RandomWalk

SYMBOLS = ["BTC/USD", "ETH/USD"]


async def started(tmp_path: Path, db_url: str, sf, **kw) -> SimAdapter:  # type: ignore[no-untyped-def]
    settings = Settings(data_dir=tmp_path, database_url=db_url, sim_symbols=SYMBOLS, history_days=0, **kw)
    sim = SimAdapter(settings, sf)
    await sim.start()
    return sim


@pytest.fixture
async def adapter(tmp_path: Path, db_url: str, sf) -> AsyncIterator[SimAdapter]:  # type: ignore[no-untyped-def]
    sim = await started(tmp_path, db_url, sf, sim_speed=300)  # a minute every 0.2 s
    yield sim
    await sim.close()


def test_a_minute_is_a_path_of_trades_and_its_candle_their_aggregate() -> None:
    walk = RandomWalk("BTC/USD", 7, tick_ms=1000)
    start = 1_700_000_000_000 // MINUTE * MINUTE
    before = walk.last_close
    paths = walk.paths(start, 5)
    assert paths.prices.shape == (5, 60)
    assert paths.times(2) == [start + 2 * MINUTE + k * 1000 for k in range(60)]
    previous = before
    for i, (t, o, h, lo, c, v) in enumerate(paths.rows):
        trades = paths.prices[i].tolist()
        assert t == start + i * MINUTE and v > 0
        assert (o, h, lo, c) == (previous, max(o, *trades), min(o, *trades), trades[-1])
        previous = c
    assert (walk.last_time, walk.last_close) == (start + 4 * MINUTE, previous)
    # trades every 7 s: nine a minute, the last before the next minute
    assert RandomWalk("BTC/USD", 7, tick_ms=7000).paths(start, 1).times(0)[-1] == start + 56_000


def test_the_walk_is_the_same_per_seed_minute_by_minute_or_a_page_at_once() -> None:
    start = 1_700_000_000_000 // MINUTE * MINUTE
    page = RandomWalk("ETH/USD", 3).paths(start, 30)
    again = RandomWalk("ETH/USD", 3).paths(start, 30)
    assert page.rows == again.rows and np.array_equal(page.prices, again.prices)
    one_by_one = RandomWalk("ETH/USD", 3)
    rows = [one_by_one.paths(start + i * MINUTE, 1).rows[0] for i in range(30)]
    assert [r[0] for r in rows] == [r[0] for r in page.rows]
    assert [r[5] for r in rows] == [r[5] for r in page.rows]  # volumes: a generator of their own
    assert np.allclose([r[1:5] for r in rows], [r[1:5] for r in page.rows], rtol=1e-12, atol=0)
    other = RandomWalk("ETH/USD", 4).paths(start, 30)
    assert not np.allclose(other.prices, page.prices)
    # the volatility per minute does not depend on the number of trades in it
    for tick_ms in (1000, 10_000):
        closes = np.array([r[4] for r in RandomWalk("BTC/USD", 1, tick_ms=tick_ms).generate(start, 20_000)])
        assert np.std(np.diff(np.log(closes))) == pytest.approx(0.001, rel=0.05)


async def test_a_tick_is_a_trade_with_the_book_around_it_as_the_clock_passes_it(tmp_path, db_url, sf) -> None:  # type: ignore[no-untyped-def]
    sim = await started(tmp_path, db_url, sf, sim_speed=300, sim_spread_bps=10.0, sim_tick_ms=500)
    assert sim.capabilities.streams_ticks
    got: list[tuple[Tick, int]] = []
    ticks = sim.stream_ticks(SYMBOLS)
    try:
        async with asyncio.timeout(20):
            async for tick in ticks:
                got.append((tick, sim.sim_now()))
                if len(got) == 300:
                    break
    finally:
        await ticks.aclose()
        await sim.close()
    for symbol in SYMBOLS:
        mine = [(t, now) for t, now in got if t.symbol == symbol]
        assert len(mine) >= 140
        times = [t.time for t, _ in mine]
        assert times == sorted(set(times)) and all(t % 500 == 0 for t in times)
        assert all(b - a == 500 for a, b in zip(times, times[1:], strict=False))  # none missed
        for t, now in mine:
            assert t.exchange == "sim" and t.trace_id and t.time <= now
            assert t.bid < t.last < t.ask
            assert t.bid == pytest.approx(t.last * (1 - 5e-4), rel=1e-12)
            assert t.ask == pytest.approx(t.last * (1 + 5e-4), rel=1e-12)
            assert t.bid_size > 0 and t.ask_size > 0
            assert abs(t.recv_ns - time.time_ns()) < 60e9
        assert len({t.last for t, _ in mine}) > len(mine) // 2  # the price moves


async def test_the_candles_are_the_aggregate_of_the_ticks_sent_during_their_minute(adapter) -> None:  # type: ignore[no-untyped-def]
    events: list[Tick | Candle] = []
    closed = {s: 0 for s in SYMBOLS}
    enough = asyncio.Event()

    async def ticks() -> None:
        async for tick in adapter.stream_ticks(SYMBOLS):
            events.append(tick)

    async def candles() -> None:
        async for candle in adapter.stream_candles(SYMBOLS, "1m"):
            events.append(candle)
            closed[candle.symbol] += 1
            if min(closed.values()) >= 7:
                enough.set()

    tasks = [asyncio.create_task(ticks()), asyncio.create_task(candles())]
    try:
        async with asyncio.timeout(30):
            await enough.wait()
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    for symbol in SYMBOLS:
        mine = [e for e in events if e.symbol == symbol]
        bars = [(i, e) for i, e in enumerate(mine) if isinstance(e, Candle)]
        whole = 0
        for (_, before), (_, bar) in zip(bars, bars[1:], strict=False):
            assert bar.time == before.time + MINUTE and bar.open == before.close
        for i, bar in bars:
            lasts = [e.last for e in mine if isinstance(e, Tick) and bar.time <= e.time < bar.time + MINUTE]
            sent_before = [
                e.last for e in mine[:i] if isinstance(e, Tick) and bar.time <= e.time < bar.time + MINUTE
            ]
            assert sent_before == lasts, "a tick of the minute came after its candle"
            if not lasts:  # the minute before the ticks started
                continue
            assert bar.low <= min(lasts) and bar.high >= max(lasts)
            # a minute ticked from its first trade to its last (the stream starts within one; on a loaded
            # machine the candle may go out before a late last tick, which is then not sent)
            if len(lasts) == 60:
                whole += 1
                assert bar.close == lasts[-1]
                assert (bar.high, bar.low) == (max(bar.open, *lasts), min(bar.open, *lasts))
        assert whole >= 4, f"{symbol}: {whole} whole minutes of ticks"


async def test_ticks_wait_for_a_walk_behind_the_clock_and_leave_its_history_whole(adapter) -> None:  # type: ignore[no-untyped-def]
    walk = adapter.walks["BTC/USD"]
    behind = adapter.sim_now() // MINUTE * MINUTE - 10 * MINUTE  # as a restart finds the stored history
    walk.last_time = behind
    got: list[Tick] = []

    async def ticks() -> None:
        async for tick in adapter.stream_ticks(["BTC/USD"]):
            got.append(tick)

    task = asyncio.create_task(ticks())
    try:
        await asyncio.sleep(0.6)  # three sim minutes
        assert got == [] and walk.last_time == behind, "the ticks moved a walk that history has to catch up"
        history = await adapter.fetch_history("BTC/USD", "1m", behind + MINUTE)
        assert [c.time for c in history] == [behind + (i + 1) * MINUTE for i in range(len(history))]
        assert len(history) >= 12
        candles = adapter.stream_candles(["BTC/USD"], "1m")
        async with asyncio.timeout(10):
            first = await anext(candles)  # the minute in progress when the history caught up
            assert first.time == history[-1].time + MINUTE and first.open == history[-1].close
            while not got:
                await asyncio.sleep(0.01)
        await candles.aclose()
        assert got[0].time >= first.time  # from the walk's next minute on, made once for both streams
        lasts = [t.last for t in got if first.time <= t.time < first.time + MINUTE]
        if lasts:
            assert first.close == lasts[-1] and first.low <= min(lasts) and first.high >= max(lasts)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
