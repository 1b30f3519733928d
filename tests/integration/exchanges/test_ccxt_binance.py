"""The ccxt adapter, configured as Binance, against a local server speaking Binance's spot REST API."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path

import pytest
from aiohttp import web

from tradewind.config import Settings
from tradewind.exchanges.base import (
    AuthError,
    Credentials,
    ExchangeError,
    ExchangeUnavailable,
    OrderRejected,
    OrderSpec,
)
from tradewind.exchanges.bitfinex import BitfinexAdapter
from tradewind.exchanges.ccxt_adapter import CcxtAdapter
from tradewind.exchanges.registry import make_adapter
from tradewind.marketdata import resample_rows

from .conftest import Row, consecutive, load_rows
from .fake_binance import FakeBinance

ROWS = consecutive(load_rows("ETH-BTC-5m.csv"), 36, step=300_000)
CREDS = Credentials(trader_id=1, api_key="KEY", api_secret="SECRET")


def rounded(rows: list[Row]) -> list[Row]:
    return [(r[0], *(round(x, 8) for x in r[1:])) for r in rows]  # type: ignore[misc]


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
    a = CcxtAdapter("binance", settings, poll_interval_s=0.03)
    yield a
    await a.close()


async def test_polled_candles_close_each_interval_once_as_time_moves_on(binance, adapter) -> None:
    binance.visible = 5
    assert not adapter.capabilities.streams_candles  # ccxt points at our REST server: it polls

    async def market() -> None:
        while binance.visible < 30:
            await asyncio.sleep(0.06)
            binance.visible += 3 if binance.visible == 12 else 1  # one jump: a poll misses two intervals

    mover = asyncio.create_task(market())
    got: list[Row] = []
    stream = adapter.stream_candles(["ETH/BTC"], "5m")
    async with asyncio.timeout(15):
        async for c in stream:
            assert (
                c.exchange == "binance"
                and c.symbol == "ETH/BTC"
                and c.tf == "5m"
                and c.trace_id
                and c.recv_ns
            )
            got.append((c.time, c.open, c.high, c.low, c.close, c.volume))
            if len(got) == 29:
                break
    await stream.aclose()
    await mover
    assert got == rounded(ROWS[:29])  # the 30th is still open


async def test_history_in_hours_holds_only_closed_candles(binance, adapter) -> None:
    candles = await adapter.fetch_history("ETH/BTC", "1h", ROWS[0][0])
    hourly = rounded(resample_rows(rounded(ROWS), "1h"))
    got = [(c.time, c.open, c.high, c.low, c.close, round(c.volume, 8)) for c in candles]
    assert got == [(t, o, h, lo, c, round(v, 8)) for t, o, h, lo, c, v in hourly if t >= ROWS[0][0]]
    assert [q for m, p, q in binance.requests if p == "klines"][-1]["interval"] == "1h"


async def test_balances_and_key_errors(binance, adapter) -> None:
    assert await adapter.fetch_balances(CREDS) == {"BTC": Decimal("1"), "ETH": Decimal("0")}
    with pytest.raises(AuthError, match="Invalid API-key"):
        await adapter.fetch_balances(Credentials(trader_id=2, api_key="NOPE", api_secret="SECRET"))
    with pytest.raises(AuthError, match="Signature"):
        await adapter.fetch_balances(Credentials(trader_id=3, api_key="KEY", api_secret="WRONG"))


async def test_order_carries_the_client_id_and_is_found_by_it(binance, adapter) -> None:
    spec = OrderSpec(client_order_id="tw-3-1515560100-l", symbol="ETH/BTC", side="buy", amount=Decimal("0.5"))
    placed = await adapter.place_order(CREDS, spec)
    assert placed.status == "filled" and placed.filled == Decimal("0.5")
    assert (
        placed.price == binance.last_price() and placed.fee == Decimal("0.0005") and placed.fee_asset == "ETH"
    )
    post = next(p for m, path, p in binance.requests if m == "POST")
    assert (
        post["newClientOrderId"] == spec.client_order_id
        and post["type"] == "MARKET"
        and post["quantity"] == "0.5"
    )
    found = await adapter.fetch_order(CREDS, spec.client_order_id, "ETH/BTC")
    assert (
        found is not None and found.status == "filled" and found.exchange_order_id == placed.exchange_order_id
    )
    lookup = [p for m, path, p in binance.requests if m == "GET" and path == "order"][-1]
    assert lookup["origClientOrderId"] == spec.client_order_id
    assert await adapter.fetch_order(CREDS, "tw-3-0-s", "ETH/BTC") is None
    assert await adapter.fetch_balances(CREDS) == {
        "BTC": Decimal("1") - Decimal("0.5") * binance.last_price(),
        "ETH": Decimal("0.4995"),
    }


async def test_a_refused_order_raises_the_exchanges_reason_and_is_not_retried(binance, adapter) -> None:
    spec = OrderSpec(client_order_id="tw-3-1515560400-l", symbol="ETH/BTC", side="buy", amount=Decimal("100"))
    with pytest.raises(OrderRejected, match="insufficient balance"):
        await adapter.place_order(CREDS, spec)
    assert sum(1 for m, _, _ in binance.requests if m == "POST") == 1
    assert await adapter.fetch_order(CREDS, spec.client_order_id, "ETH/BTC") is None


async def test_order_that_timed_out_after_being_placed_is_found_once(binance, settings) -> None:
    binance.order_delay_s = 1.0
    impatient = CcxtAdapter("binance", settings, request_timeout_s=0.3)
    spec = OrderSpec(
        client_order_id="tw-4-1515560700-l", symbol="ETH/BTC", side="buy", amount=Decimal("0.25")
    )
    started = time.monotonic()
    with pytest.raises(ExchangeUnavailable):
        await impatient.place_order(CREDS, spec)
    assert time.monotonic() - started < 1.0
    await impatient.close()
    restarted = CcxtAdapter("binance", settings)
    found = await restarted.fetch_order(CREDS, spec.client_order_id, "ETH/BTC")
    await restarted.close()
    assert found is not None and found.status == "filled" and found.filled == Decimal("0.25")
    assert len(binance.orders) == 1


async def test_registry_builds_bitfinex_natively_and_other_ids_through_ccxt(settings) -> None:
    assert isinstance(make_adapter("bitfinex", settings), BitfinexAdapter)
    kraken = make_adapter("kraken", settings)
    assert isinstance(kraken, CcxtAdapter) and kraken.capabilities.name == "kraken"
    binance = make_adapter("binance", settings)
    assert binance.capabilities.symbols == ("ETH/BTC",) and not binance.capabilities.streams_candles
    with pytest.raises(ExchangeError, match="no adapter for exchange 'nowhere'"):
        make_adapter("nowhere", settings)
    for a in (kraken, binance):
        await a.close()


class GlitchingBinance(FakeBinance):
    """Binance behind a proxy that sometimes answers the candles call with something that is not candles."""

    glitches: list[web.Response] = []

    async def _klines(self, request: web.Request) -> web.Response:
        if self.glitches:
            return self.glitches.pop(0)
        return await super()._klines(request)


async def test_polling_outlives_answers_that_are_not_candles(tmp_path: Path) -> None:
    server = GlitchingBinance(ROWS, visible=5)
    server.glitches = [
        web.Response(text="<html><body>502 Bad Gateway</body></html>", content_type="text/html"),
        web.json_response({"code": 0, "data": "maintenance"}),
        web.json_response([[ROWS[0][0], None, None, None, None, None]]),
    ]
    await server.start()
    settings = Settings(data_dir=tmp_path, ccxt_urls={"binance": server.url})
    adapter = CcxtAdapter("binance", settings, poll_interval_s=0.01)
    stream = adapter.stream_candles(["ETH/BTC"], "5m")
    try:
        async with asyncio.timeout(20):
            first = await anext(stream)  # after three failed polls, backing off 0.02, 0.04, 0.08 s
        assert not server.glitches
        assert (first.time, first.close) == (ROWS[0][0], round(ROWS[0][4], 8))
    finally:
        await stream.aclose()
        await adapter.close()
        await server.stop()
