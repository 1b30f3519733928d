"""The ccxt adapter's ticks and post-only quotes, configured as Binance, against the local Binance: REST
tickers polled within the rate limit and through failures, the bookTicker websocket through a dropped
link, and LIMIT_MAKER orders that rest below the ask or come back rejected at it."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path

import pytest

from tradewind.bus.messages import Tick
from tradewind.config import Settings
from tradewind.exchanges.base import Credentials, OrderRejected, OrderSpec
from tradewind.exchanges.ccxt_adapter import CcxtAdapter

from .conftest import consecutive, load_rows
from .fake_binance import WOULD_TAKE, FakeBinance

ROWS = consecutive(load_rows("ETH-BTC-5m.csv"), 36, step=300_000)
CREDS = Credentials(trader_id=1, api_key="KEY", api_secret="SECRET")
D = Decimal


@pytest.fixture
async def binance() -> AsyncIterator[FakeBinance]:
    server = FakeBinance(ROWS)
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
def settings(binance: FakeBinance, tmp_path: Path) -> Settings:
    return Settings(
        data_dir=tmp_path, ccxt_urls={"binance": binance.url}, ccxt_symbols={"binance": ["ETH/BTC"]}
    )


@pytest.fixture
async def adapter(settings: Settings) -> AsyncIterator[CcxtAdapter]:
    a = CcxtAdapter("binance", settings, tick_interval_s=0.05)
    yield a
    await a.close()


@contextlib.asynccontextmanager
async def ticks(adapter: CcxtAdapter, symbols: list[str]) -> AsyncIterator[AsyncIterator[Tick]]:
    stream = adapter.stream_ticks(symbols)
    try:
        yield stream
    finally:
        await stream.aclose()  # type: ignore[attr-defined]


async def next_tick(stream: AsyncIterator[Tick], where=lambda t: True, timeout: float = 10) -> Tick:  # type: ignore[no-untyped-def]
    async with asyncio.timeout(timeout):
        async for tick in stream:
            if where(tick):
                return tick
    raise AssertionError("the tick stream ended")


def polls(server: FakeBinance, path: str = "24hr") -> list[float]:
    """When the server was asked for tickers."""
    return [t for (_, p, _), t in zip(server.requests, server.request_times, strict=True) if p == path]


async def test_polled_ticks_carry_the_books_top_and_follow_it(binance, adapter) -> None:  # type: ignore[no-untyped-def]
    assert adapter.capabilities.streams_ticks and adapter.capabilities.post_only
    assert not adapter.capabilities.streams_candles  # ccxt points at our REST server: it polls
    binance.set_book("0.05", "0.0502", bid_qty="2.5", ask_qty="3")
    async with ticks(adapter, ["ETH/BTC"]) as stream:
        before = int(time.time() * 1000)
        first = await next_tick(stream)
        assert (first.exchange, first.symbol) == ("binance", "ETH/BTC")
        assert (first.bid, first.ask, first.bid_size, first.ask_size) == (0.05, 0.0502, 2.5, 3.0)
        assert first.last == float(binance.last_price()) and first.trace_id
        assert before - 1000 <= first.time <= first.recv_ns // 1_000_000  # the venue's closeTime
        binance.set_book("0.0501", "0.0503")
        moved = await next_tick(stream, lambda t: t.bid == 0.0501)
        assert moved.ask == 0.0503 and moved.recv_ns > first.recv_ns
    asked = [q for _, p, q in binance.requests if p == "24hr"]
    assert asked and all(q == {"symbol": "ETHBTC"} for q in asked)


async def test_a_ticker_without_both_sides_is_skipped(binance, adapter) -> None:  # type: ignore[no-untyped-def]
    binance.set_book("0", "0.0502")  # nobody bids: Binance shows a zero price
    async with ticks(adapter, ["ETH/BTC"]) as stream:
        reader = asyncio.ensure_future(anext(stream))
        while len(polls(binance)) < 3:
            await asyncio.sleep(0.02)
        assert not reader.done()
        binance.set_book("0.05", "0.0502")
        tick = await asyncio.wait_for(reader, 5)
    assert (tick.bid, tick.ask) == (0.05, 0.0502)


async def test_polling_asks_about_a_market_at_most_once_a_second(binance, settings) -> None:  # type: ignore[no-untyped-def]
    adapter = CcxtAdapter("binance", settings)  # the venue's default interval: 1 s
    got: list[Tick] = []

    async def read() -> None:
        async for tick in adapter.stream_ticks(["ETH/BTC"]):
            got.append(tick)

    reader = asyncio.create_task(read())
    try:
        while not polls(binance):
            await asyncio.sleep(0.01)
        await asyncio.sleep(3.3)
    finally:
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reader
        await adapter.close()
    times = polls(binance)
    assert 4 <= len(times) <= 5, times  # at 0, 1, 2 and 3 s (and maybe the one due at 3.3)
    assert min(b - a for a, b in zip(times, times[1:], strict=False)) >= 0.95
    assert len(got) == len(times)


async def test_polling_never_outpaces_the_venues_rate_limit(binance, settings) -> None:  # type: ignore[no-untyped-def]
    adapter = CcxtAdapter("binance", settings, tick_interval_s=0.01)
    # A slow venue: ccxt's own throttle keeps the rate it was built with, so this is the poller's doing.
    adapter.public.rateLimit = 300
    try:
        async with ticks(adapter, ["ETH/BTC"]) as stream:
            await next_tick(stream)
            started = time.monotonic()
            while time.monotonic() - started < 1.5:
                await next_tick(stream)
    finally:
        await adapter.close()
    times = polls(binance)
    assert 5 <= len(times) <= 7, times
    assert min(b - a for a, b in zip(times, times[1:], strict=False)) >= 0.29


async def test_failed_polls_back_off_and_the_stream_goes_on(binance, adapter) -> None:  # type: ignore[no-untyped-def]
    binance.ticker_faults = [
        (502, "<html><body>502 Bad Gateway</body></html>"),
        (503, '{"code":-1001,"msg":"Internal error; unable to process your request. Please try again."}'),
        (429, '{"code":-1003,"msg":"Too many requests."}'),
        (200, '{"code":0,"data":"maintenance"}'),  # read as a ticker without bid and ask: no tick
    ]
    binance.set_book("0.05", "0.0502")
    async with ticks(adapter, ["ETH/BTC"]) as stream:
        tick = await next_tick(stream)
    assert not binance.ticker_faults and (tick.bid, tick.ask) == (0.05, 0.0502)
    t = polls(binance)
    assert len(t) >= 5
    # three failures in a row back off 0.1, 0.2, 0.4 s; the empty answer is a poll (0.05 s) without a tick
    gaps = [b - a for a, b in zip(t, t[1:], strict=False)]
    assert gaps[0] >= 0.1 and gaps[1] >= 0.2 and gaps[2] >= 0.4 and 0.05 <= gaps[3] < 0.4, gaps


async def test_websocket_book_ticks_survive_a_dropped_link(binance, settings) -> None:  # type: ignore[no-untyped-def]
    # ccxt.pro tells spot streams by "/stream" in the URL; the host becomes ours like every other URL
    adapter = CcxtAdapter(
        "binance",
        settings,
        urls={"ws": {"spot": "wss://stream.binance.com:9443/stream/ws"}},
        use_websocket=True,
        request_timeout_s=5,
    )
    assert adapter.capabilities.streams_ticks

    async def subscribed() -> None:
        while not binance.book_clients:
            await asyncio.sleep(0.02)

    try:
        async with ticks(adapter, ["ETH/BTC"]) as stream:
            reader = asyncio.ensure_future(anext(stream))
            async with asyncio.timeout(10):
                await subscribed()
            binance.set_book("0.05", "0.0502", bid_qty="1.5", ask_qty="0.25")
            assert await binance.send_book() == 1
            first = await asyncio.wait_for(reader, 5)
            assert (first.bid, first.ask, first.bid_size, first.ask_size) == (0.05, 0.0502, 1.5, 0.25)
            assert first.time == first.recv_ns // 1_000_000  # a book ticker carries no time: ours
            assert first.exchange == "binance" and first.symbol == "ETH/BTC"

            binance.drop_book_clients()
            binance.set_book("0.0499", "0.0501")
            reader = asyncio.ensure_future(anext(stream))
            async with asyncio.timeout(15):
                await subscribed()  # ccxt.pro reconnected and subscribed again
            await binance.send_book()
            second = await asyncio.wait_for(reader, 5)
            assert (second.bid, second.ask) == (0.0499, 0.0501)
    finally:
        await adapter.close()
    assert binance.ws_subscriptions[:2] == ["ethbtc@bookTicker", "ethbtc@bookTicker"]
    assert binance.ws_connections >= 2
    assert not polls(binance) and not polls(binance, "bookTicker"), "it polled REST instead"


def quote(cid: str, side: str, price: str, amount: str = "0.5") -> OrderSpec:
    return OrderSpec(
        client_order_id=cid,
        symbol="ETH/BTC",
        side=side,
        amount=D(amount),
        type="limit",
        price=D(price),
        post_only=True,
    )


def posted(server: FakeBinance) -> list[dict[str, str]]:
    return [q for m, p, q in server.requests if m == "POST" and p == "order"]


async def test_a_post_only_buy_below_the_ask_rests_as_limit_maker(binance, adapter) -> None:  # type: ignore[no-untyped-def]
    binance.set_book("0.05", "0.0502")
    placed = await adapter.place_order(CREDS, quote("tw-7-1-b", "buy", "0.0501"))
    assert placed.status == "open" and placed.filled == 0 and placed.reason is None
    [sent] = posted(binance)
    assert sent["type"] == "LIMIT_MAKER" and sent["price"] == "0.0501" and sent["quantity"] == "0.5"
    assert "timeInForce" not in sent and sent["newClientOrderId"] == "tw-7-1-b"
    found = await adapter.fetch_order(CREDS, "tw-7-1-b", "ETH/BTC")
    assert (
        found is not None and found.status == "open" and found.exchange_order_id == placed.exchange_order_id
    )
    canceled = await adapter.cancel_order(CREDS, "tw-7-1-b", "ETH/BTC")
    assert canceled.status == "canceled"


async def test_a_post_only_quote_that_would_take_comes_back_rejected(binance, adapter) -> None:  # type: ignore[no-untyped-def]
    binance.set_book("0.05", "0.0502")
    takers = [
        quote("tw-7-2-b", "buy", "0.0502"),
        quote("tw-7-3-b", "buy", "0.06"),
        quote("tw-7-4-s", "sell", "0.05"),
        quote("tw-7-5-s", "sell", "0.049"),
    ]
    binance.balances["ETH"] = D("1")
    for spec in takers:
        result = await adapter.place_order(CREDS, spec)
        assert result.status == "rejected" and result.client_order_id == spec.client_order_id
        assert result.reason == f"post-only order refused: it would take liquidity ({WOULD_TAKE})"
        assert await adapter.fetch_order(CREDS, spec.client_order_id, "ETH/BTC") is None
    assert [q["type"] for q in posted(binance)] == ["LIMIT_MAKER"] * 4  # each sent once, never again
    assert not binance.orders
    # the same price without post-only is an ordinary limit order, which the venue takes
    plain = OrderSpec(
        client_order_id="tw-7-6-b",
        symbol="ETH/BTC",
        side="buy",
        amount=D("0.5"),
        type="limit",
        price=D("0.0502"),
    )
    assert (await adapter.place_order(CREDS, plain)).status == "open"
    assert posted(binance)[-1]["type"] == "LIMIT" and posted(binance)[-1]["timeInForce"] == "GTC"


async def test_a_venue_without_post_only_refuses_a_quote_instead_of_placing_a_limit(settings) -> None:  # type: ignore[no-untyped-def]
    # ccxt's btcmarkets says it has no createPostOnlyOrder; kraken sends postOnly though its has is silent
    btcmarkets, kraken = CcxtAdapter("btcmarkets", settings), CcxtAdapter("kraken", settings)
    try:
        assert not btcmarkets.capabilities.post_only and btcmarkets.capabilities.streams_ticks
        assert kraken.capabilities.post_only
        with pytest.raises(OrderRejected, match="^btcmarkets cannot place post-only orders through ccxt$"):
            await btcmarkets.place_order(CREDS, quote("tw-8-1-b", "buy", "100"))
    finally:
        await btcmarkets.close()
        await kraken.close()


async def test_only_a_limit_order_can_be_post_only(binance, adapter) -> None:  # type: ignore[no-untyped-def]
    market = OrderSpec(
        client_order_id="tw-9-1-b", symbol="ETH/BTC", side="buy", amount=D("0.5"), post_only=True
    )
    with pytest.raises(OrderRejected, match="only a limit order can be post-only"):
        await adapter.place_order(CREDS, market)
    assert not posted(binance)
