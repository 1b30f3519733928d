"""The sim adapter matches the resting orders on every 1m candle it makes, before handing the candle on."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from tradewind.config import Settings
from tradewind.exchanges.base import Credentials, OrderResult, OrderSpec, Protect
from tradewind.exchanges.sim import SimAdapter
from tradewind.exchanges.sim.market import MINUTE

CREDS = Credentials(trader_id=1, paper=True)


@pytest.fixture
async def adapter(tmp_path: Path, db_url: str, sf):  # type: ignore[no-untyped-def]
    settings = Settings(
        data_dir=tmp_path,
        database_url=db_url,
        sim_symbols=["BTC/USD"],
        sim_speed=10_000,
        history_days=0,
        sim_maker_fee="0.0005",
        sim_slippage_bps="5",
    )
    sim = SimAdapter(settings, sf)
    await sim.start()
    yield sim
    await sim.close()


def limit(cid: str, price: Decimal, **kw) -> OrderSpec:  # type: ignore[no-untyped-def]
    return OrderSpec(cid, "BTC/USD", "buy", Decimal("0.01"), type="limit", price=price, **kw)


async def test_a_fill_is_reported_before_the_candle_that_made_it(adapter) -> None:  # type: ignore[no-untyped-def]
    assert {"stop", "take_profit", "trailing_stop", "oco"} <= adapter.capabilities.order_types
    assert adapter.engine.costs.maker_fee == Decimal("0.0005") and adapter.engine.costs.slippage_bps == 5
    heard: list[tuple[OrderResult, int]] = []
    candles = []

    async def listener(trader_id: int, result: OrderResult) -> None:
        heard.append((result, len(candles)))

    adapter.set_listener(listener)
    high = Decimal(repr(adapter.walks["BTC/USD"].last_close)) * 2  # fills on the next candle, at its open
    r = await adapter.place_order(CREDS, limit("l1", high, protect=Protect(stop_loss=Decimal("0.5"))))
    assert r.status == "open"
    low = await adapter.place_order(CREDS, limit("l2", Decimal("1")))
    async for candle in adapter.stream_candles(["BTC/USD"], "1m"):
        candles.append(candle)
        break
    ((fill, seen),) = heard
    assert seen == 0, "the fill was reported after its candle"
    assert (fill.client_order_id, fill.status, fill.time) == ("l1", "filled", candles[0].time)
    assert fill.price == Decimal(repr(candles[0].open))
    assert fill.fee == fill.price * Decimal("0.01") * Decimal("0.0005")
    assert (await adapter.fetch_order(CREDS, "l1-s0", "BTC/USD")).status == "open"  # type: ignore[union-attr]
    assert low.status == "open"
    cancelled = await adapter.cancel_order(CREDS, "l2", "BTC/USD")
    assert (cancelled.status, cancelled.reason) == ("canceled", "canceled")


async def test_the_candles_generated_catching_up_match_the_resting_orders(adapter) -> None:  # type: ignore[no-untyped-def]
    heard: list[OrderResult] = []

    async def listener(trader_id: int, result: OrderResult) -> None:
        heard.append(result)

    adapter.set_listener(listener)
    walk = adapter.walks["BTC/USD"]
    await adapter.place_order(CREDS, limit("l1", Decimal(repr(walk.last_close)) * 2))
    start = adapter.sim_now() // (5 * MINUTE) * (5 * MINUTE) - 10 * MINUTE
    candles = await adapter.fetch_history("BTC/USD", "5m", start, until=start + 10 * MINUTE)
    assert len(candles) == 2 and [r.client_order_id for r in heard] == ["l1"]
    assert heard[0].time == start  # the first 1m candle of the page
