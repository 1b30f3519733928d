"""Bitfinex ticks (the websocket v2 ticker channel, on the connection that carries the candles) and post-only
quotes (the POSTONLY flag, "POSTONLY CANCELED"), against the local Bitfinex server."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from tradewind.bus.messages import Candle, Tick
from tradewind.config import Settings
from tradewind.exchanges.base import Credentials, OrderRejected, OrderSpec
from tradewind.exchanges.bitfinex import BitfinexAdapter, StreamTiming, cid_of

from .conftest import Row, consecutive, load_rows
from .fake_bitfinex import FakeBitfinex

ROWS = consecutive(load_rows("UNITTEST-BTC-1m.csv"), 20)
FLAT: list[Row] = [
    (1_700_000_000_000 + i * 60_000, 40000.0, 40000.0, 40000.0, 40000.0, 1.0) for i in range(20)
]
FAST = StreamTiming(
    silence_s=0.25, maintenance_s=3.0, backoff_initial_s=0.02, backoff_max_s=0.2, close_grace_s=None
)
CREDS = Credentials(trader_id=1, api_key="KEY", api_secret="SECRET")
D = Decimal


@pytest.fixture
async def make() -> AsyncIterator[Any]:
    """make(**fake_options) -> (server, adapter); both are stopped after the test."""
    made: list[tuple[FakeBitfinex, BitfinexAdapter]] = []

    async def build(tmp_path: Path, **kw: Any) -> tuple[FakeBitfinex, BitfinexAdapter]:
        server = FakeBitfinex(**{"rows": ROWS, "start_at": 10, **kw})
        await server.start()
        settings = Settings(
            data_dir=tmp_path,
            bitfinex_ws_url=server.ws_url,
            bitfinex_rest_url=server.rest_url,
            bitfinex_auth_url=server.rest_url,
            bitfinex_symbols=["tBTCUSD"],
        )
        adapter = BitfinexAdapter(settings, timing=FAST)
        made.append((server, adapter))
        return server, adapter

    yield build
    for server, adapter in made:
        await adapter.close()
        await server.stop()


async def next_tick(ticks: AsyncIterator[Tick], timeout: float = 5) -> Tick:
    return await asyncio.wait_for(anext(ticks), timeout)


async def until_tick(ticks: AsyncIterator[Tick], bid: float, timeout: float = 5) -> list[Tick]:
    """The ticks read up to and including the first one with this bid."""
    seen: list[Tick] = []
    async with asyncio.timeout(timeout):
        while not seen or seen[-1].bid != bid:
            seen.append(await anext(ticks))
    return seen


async def candles_of(adapter: BitfinexAdapter, n: int, lags: list[float] | None = None) -> list[Row]:
    """The first ``n`` candles of the stream (and, in ``lags``, how long after its receipt each came out)."""
    out: list[Row] = []
    stream = adapter.stream_candles(["BTC/USD"], "1m")
    try:
        async with asyncio.timeout(15):
            async for c in stream:
                if lags is not None:
                    lags.append((time.time_ns() - c.recv_ns) / 1e9)
                assert isinstance(c, Candle) and c.symbol == "BTC/USD" and c.closed
                out.append((c.time, c.open, c.high, c.low, c.close, c.volume))
                if len(out) >= n:
                    break
    finally:
        await stream.aclose()
    return out


async def until(condition: Any, timeout: float = 5) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.01)


# -- ticks ----------------------------------------------------------------------------------------------
async def test_ticks_carry_the_best_bid_and_ask_their_sizes_and_the_last_price(make, tmp_path) -> None:
    server, adapter = await make(tmp_path, rows=FLAT)
    assert adapter.capabilities.streams_ticks and adapter.capabilities.post_only
    ticks = adapter.stream_ticks(["BTC/USD"])
    try:
        snapshot = await next_tick(ticks)  # on subscribing: the ticker as it stands
        bid, bid_size, ask, ask_size = server.top()
        assert (snapshot.bid, snapshot.bid_size, snapshot.ask, snapshot.ask_size, snapshot.last) == (
            bid,
            bid_size,
            ask,
            ask_size,
            40000.0,
        )
        before = time.time_ns()
        await server.send_ticker(bid=39990.5, ask=40001.25, bid_size=2.5, ask_size=3.75, last=39995.0)
        tick = await next_tick(ticks)
        after = time.time_ns()
        assert (tick.exchange, tick.symbol) == ("bitfinex", "BTC/USD")
        assert (tick.bid, tick.bid_size, tick.ask, tick.ask_size, tick.last) == (
            39990.5,
            2.5,
            40001.25,
            3.75,
            39995.0,
        )
        # Bitfinex's ticker has no timestamp: the time is when we received it.
        assert before <= tick.recv_ns <= after and tick.time == tick.recv_ns // 1_000_000
        assert tick.trace_id and tick.trace_id != snapshot.trace_id
    finally:
        await ticks.aclose()
    # Only ticks were read: one connection, subscribed to the ticker and nothing else.
    assert server.connections == 1
    assert (server.ticker_subscriptions, server.subscriptions) == (["tBTCUSD"], [])


@pytest.mark.parametrize("first", ["ticks", "candles"])
async def test_candles_and_ticks_share_one_connection_whichever_reader_comes_first(
    make, tmp_path, first
) -> None:
    server, adapter = await make(tmp_path, step_s=0.01)
    ticks = adapter.stream_ticks(["BTC/USD"])
    candles: asyncio.Task[list[Row]] | None = None
    try:
        if first == "ticks":
            await next_tick(ticks)  # the tick reader's connection is open before the candles are asked for
            candles = asyncio.create_task(candles_of(adapter, len(ROWS) - 1))
        else:
            candles = asyncio.create_task(candles_of(adapter, len(ROWS) - 1))
            await until(lambda: server.subscriptions)
            await next_tick(ticks)
        await server.send_ticker(bid=0.0015, ask=0.0016, bid_size=7.0, ask_size=9.0)
        got_tick = (await until_tick(ticks, 0.0015))[-1]
        assert (got_tick.ask, got_tick.bid_size, got_tick.ask_size) == (0.0016, 7.0, 9.0)
        assert await candles == ROWS[:-1]  # every closed minute once, the last one still open
    finally:
        if candles is not None:
            candles.cancel()
        await ticks.aclose()
    assert server.connections == 1
    assert server.subscriptions == ["trade:1m:tBTCUSD"] and server.ticker_subscriptions == ["tBTCUSD"]


async def test_after_the_connection_drops_candles_and_ticks_both_resume_resubscribed(make, tmp_path) -> None:
    server, adapter = await make(tmp_path, script={20: ("drop", 4)})
    ticks = adapter.stream_ticks(["BTC/USD"])
    try:
        await next_tick(ticks)
        got = await candles_of(adapter, len(ROWS) - 1)  # through the drop: the gap comes back from REST
        assert got == ROWS[:-1]
        await until(lambda: len(server.ticker_subscriptions) == 2)
        await server.send_ticker(bid=0.0012, ask=0.0013, bid_size=4.0, ask_size=5.0, last=0.00125)
        tick = (await until_tick(ticks, 0.0012))[-1]
        assert (tick.ask, tick.bid_size, tick.ask_size, tick.last) == (0.0013, 4.0, 5.0, 0.00125)
    finally:
        await ticks.aclose()
    assert server.connections == 2  # one drop, one reconnection that took up both channels again
    assert server.subscriptions == ["trade:1m:tBTCUSD"] * 2
    assert server.ticker_subscriptions == ["tBTCUSD"] * 2


async def test_many_unread_ticks_do_not_delay_candles_and_only_the_newest_waits(make, tmp_path) -> None:
    server, adapter = await make(tmp_path, step_s=0.01, ticks_per_update=20)
    tape_s = (len(server.tape) - server.cursor) * server.step_s
    ticks = adapter.stream_ticks(["BTC/USD"])
    try:
        await next_tick(ticks)  # the tick reader is there, then reads nothing while the market runs
        lags: list[float] = []
        started = time.monotonic()
        got = await candles_of(adapter, len(ROWS) - 1, lags)
        assert got == ROWS[:-1]
        assert time.monotonic() - started < tape_s + 1.0  # the candles kept pace with the market...
        assert max(lags) < 0.25  # ...each came out as soon as it arrived...
        assert server.ticks_sent > 500  # ...while it sent many ticks nobody read
        server.ticks_per_update = 0
        await asyncio.sleep(0.3)  # whatever was still on its way has arrived
        # What waited for the reader: the newest tick alone; the one sent now comes right after it.
        await server.send_ticker(bid=0.0011, ask=0.0019)
        seen = await until_tick(ticks, 0.0011)
        assert len(seen) <= 2
    finally:
        await ticks.aclose()
    assert server.connections == 1


# -- post-only quotes -----------------------------------------------------------------------------------
def quote(cid: str, side: str, price: str, amount: str = "0.1", type: str = "limit") -> OrderSpec:
    return OrderSpec(
        client_order_id=cid,
        symbol="BTC/USD",
        side=side,
        amount=D(amount),
        type=type,
        price=D(price),
        post_only=True,
    )


def submitted(server: FakeBitfinex) -> list[dict[str, Any]]:
    return [body for path, body in server.calls if path == "auth/w/order/submit"]


@pytest.mark.parametrize(("side", "price"), [("buy", "40005"), ("sell", "39995")])
async def test_a_post_only_quote_off_the_book_rests_with_the_postonly_flag(
    make, tmp_path, side, price
) -> None:
    server, adapter = await make(tmp_path, rows=FLAT, wallets={"USD": D("100000"), "BTC": D("1")})
    await server.send_ticker(bid=39990.0, ask=40010.0)
    placed = await adapter.place_order(CREDS, quote("q1", side, price))
    assert placed.status == "open" and placed.reason is None
    amount = "0.1" if side == "buy" else "-0.1"
    assert submitted(server) == [
        {
            "symbol": "tBTCUSD",
            "amount": amount,
            "cid": cid_of("q1"),
            "type": "EXCHANGE LIMIT",
            "price": price,
            "flags": 4096,
        },
    ]
    resting = next(o for o in server.orders if o.cid == cid_of("q1"))
    assert resting.open and resting.flags == 4096
    found = await adapter.fetch_order(CREDS, "q1", "BTC/USD")
    assert found is not None and found.status == "open"


@pytest.mark.parametrize(
    ("side", "price"),
    [("buy", "40010"), ("buy", "40050"), ("sell", "39990"), ("sell", "39000")],
    ids=["buy-at-the-ask", "buy-above-the-ask", "sell-at-the-bid", "sell-below-the-bid"],
)
async def test_a_post_only_quote_that_would_take_liquidity_comes_back_rejected_with_the_reason(
    make, tmp_path, side, price
) -> None:
    server, adapter = await make(tmp_path, rows=FLAT, wallets={"USD": D("100000"), "BTC": D("1")})
    await server.send_ticker(bid=39990.0, ask=40010.0)
    placed = await adapter.place_order(CREDS, quote("q2", side, price))
    assert placed.status == "rejected" and placed.filled == 0
    assert placed.reason is not None and "would have taken liquidity" in placed.reason
    assert "POSTONLY CANCELED" in placed.reason
    assert submitted(server)[0]["flags"] == 4096
    found = await adapter.fetch_order(CREDS, "q2", "BTC/USD")  # what the service's follower reads later
    assert found is not None and (found.status, found.reason) == ("rejected", placed.reason)
    balances = await adapter.fetch_balances(CREDS)
    assert balances == {"USD": D("100000"), "BTC": D("1")}  # nothing traded, nothing held back


async def test_a_quote_bitfinex_cancels_after_acknowledging_it_is_rejected_when_looked_up(
    make, tmp_path
) -> None:
    server, adapter = await make(tmp_path, rows=FLAT, postonly_cancel_late=True)
    await server.send_ticker(bid=39990.0, ask=40010.0)
    placed = await adapter.place_order(CREDS, quote("q3", "buy", "40020"))
    assert placed.status == "open"  # the acknowledgement still shows it ACTIVE
    found = await adapter.fetch_order(CREDS, "q3", "BTC/USD")
    assert found is not None and found.status == "rejected"
    assert found.reason is not None and "would have taken liquidity" in found.reason


async def test_only_a_limit_order_can_be_post_only(make, tmp_path) -> None:
    server, adapter = await make(tmp_path, rows=FLAT)
    stop = OrderSpec(
        client_order_id="s",
        symbol="BTC/USD",
        side="sell",
        amount=D("0.1"),
        type="stop",
        stop_price=D("39000"),
        post_only=True,
    )
    with pytest.raises(OrderRejected, match="post-only"):
        await adapter.place_order(CREDS, stop)
    assert submitted(server) == []  # refused before anything was sent
