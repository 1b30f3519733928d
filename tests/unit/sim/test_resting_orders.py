"""Resting orders on the sim exchange: limit entries, stops, take-profits and trailing stops, matched on
candles by the trading model, through the real engine and SQLite."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from tradewind.domain import protective_order_id
from tradewind.exchanges.base import ExchangeError, OrderResult, OrderSpec, Protect
from tradewind.exchanges.sim.engine import PaperEngine
from tradewind.storage.models import PaperBalance, PaperFill, PaperOrder
from tradewind.trading import model

D = Decimal
M = 60_000
T0 = 1_700_000_040_000 // M * M  # a candle's open time
CASH = D("10000")


class Heard:
    """A listener that keeps what it is told."""

    def __init__(self) -> None:
        self.results: list[OrderResult] = []

    async def __call__(self, trader_id: int, result: OrderResult) -> None:
        assert trader_id == 1
        self.results.append(result)

    def of(self, cid: str) -> OrderResult:
        (found,) = [r for r in self.results if r.client_order_id == cid]
        return found


async def started(
    sf, fee: str = "0", maker: str | None = None, slippage: str = "0"
) -> tuple[PaperEngine, Heard]:  # type: ignore[no-untyped-def]
    engine = PaperEngine(
        sf, D(fee), CASH, maker_fee=None if maker is None else D(maker), slippage_bps=D(slippage)
    )
    heard = Heard()
    engine.listener = heard
    await engine.start()
    return engine, heard


@pytest.fixture
async def engine(sf) -> AsyncIterator[tuple[PaperEngine, Heard]]:  # type: ignore[no-untyped-def]
    e, heard = await started(sf)
    yield e, heard
    await e.close()


def bar(t: int, o: float, h: float, lo: float, c: float) -> model.Bar:
    return model.Bar.of(T0 + t * M, o, h, lo, c)


def buy(cid: str, amount: str = "1", **kw) -> OrderSpec:  # type: ignore[no-untyped-def]
    return OrderSpec(cid, "BTC/USD", "buy", D(amount), **kw)


def sell(cid: str, kind: str, amount: str = "1", **kw) -> OrderSpec:  # type: ignore[no-untyped-def]
    return OrderSpec(cid, "BTC/USD", "sell", D(amount), type=kind, **kw)


async def stored(sf, cid: str) -> PaperOrder | None:  # type: ignore[no-untyped-def]
    async with sf() as s:
        return (
            await s.execute(select(PaperOrder).where(PaperOrder.client_order_id == cid))
        ).scalar_one_or_none()


async def stored_balances(sf) -> dict[str, Decimal]:  # type: ignore[no-untyped-def]
    async with sf() as s:
        return {b.asset: b.amount for b in (await s.execute(select(PaperBalance))).scalars()}


async def test_a_market_entry_with_protection_rests_its_orders_with_the_ids_core_derives(engine, sf) -> None:  # type: ignore[no-untyped-def]
    e, _ = engine
    protect = Protect(stop_loss=D("0.02"), take_profit=D("0.05"), trailing_stop=D("0.03"), rev=2)
    r = await e.place(1, buy("e1", protect=protect), D("100"))
    assert (r.status, r.price, r.filled) == ("filled", D("100"), D("1"))
    pair, trailing = (
        protective_order_id("e1", "take_profit", 2),
        protective_order_id("e1", "trailing_stop", 2),
    )
    row = await stored(sf, pair)  # stored before the entry was answered
    assert row is not None and (row.type, row.side, row.status, row.oco_group) == (
        "take_profit",
        "sell",
        "open",
        "e1",
    )
    assert (row.price, row.stop_price, row.amount) == (D("105"), D("98"), D("1"))
    row = await stored(sf, trailing)
    assert row is not None and (row.type, row.oco_group, row.trail, row.high, row.stop_price) == (
        "trailing_stop",
        "e1",
        D("0.03"),
        D("100"),
        D("97"),
    )
    assert await stored(sf, protective_order_id("e1", "stop", 2)) is None  # the stop is the pair's leg
    assert (await e.find(pair)).status == "open"  # type: ignore[union-attr]


async def test_a_stop_gapped_through_fills_at_the_open_and_cancels_its_group(engine, sf) -> None:  # type: ignore[no-untyped-def]
    e, heard = engine
    await e.place(1, buy("e1", protect=Protect(stop_loss=D("0.02"), trailing_stop=D("0.1"))), D("100"))
    stop, trailing = protective_order_id("e1", "stop", 0), protective_order_id("e1", "trailing_stop", 0)
    await e.on_candle("BTC/USD", bar(1, 99, 100, 98.5, 99))  # above the stop (98): nothing
    assert heard.results == []
    await e.on_candle("BTC/USD", bar(2, 95, 96, 94, 95))  # opens below it
    filled = heard.of(stop)
    assert (filled.status, filled.price, filled.filled, filled.reason) == (
        "filled",
        D("95"),
        D("1"),
        "stop_loss",
    )
    assert heard.of(trailing).status == "canceled"
    assert heard.of(trailing).reason == f"one-cancels-the-other: {stop} filled"
    assert await e.balances(1) == {"USD": CASH - 100 + 95, "BTC": D("0")}
    assert await stored_balances(sf) == {"USD": CASH - 100 + 95, "BTC": D("0")}  # stored before reported
    async with sf() as s:
        fill = (await s.execute(select(PaperFill).where(PaperFill.client_order_id == stop))).scalar_one()
    assert (fill.price, fill.reason) == (D("95"), "stop_loss")
    assert (await stored(sf, trailing)).status == "canceled"  # type: ignore[union-attr]
    await e.on_candle("BTC/USD", bar(3, 50, 50, 40, 45))  # nothing rests any more
    assert len(heard.results) == 2


async def test_a_stop_and_a_target_in_one_candle_the_stop_wins_and_the_target_is_cancelled(engine) -> None:  # type: ignore[no-untyped-def]
    e, heard = engine
    await e.place(1, buy("e1"), D("100"))
    # core's separate orders in one group
    assert (
        await e.place(1, sell("e1-s0", "stop", stop_price=D("98"), group="e1"), D("100"))
    ).status == "open"
    assert (
        await e.place(1, sell("e1-p0", "take_profit", price=D("105"), group="e1"), D("100"))
    ).status == "open"
    await e.on_candle("BTC/USD", bar(1, 100, 106, 97, 101))
    assert (heard.of("e1-s0").status, heard.of("e1-s0").price) == ("filled", D("98"))
    assert (heard.of("e1-p0").status, heard.of("e1-p0").reason) == (
        "canceled",
        "one-cancels-the-other: e1-s0 filled",
    )
    assert (await e.find("e1-p0")).status == "canceled"  # type: ignore[union-attr]


async def test_the_pair_of_a_target_and_a_stop_fills_its_target(engine) -> None:  # type: ignore[no-untyped-def]
    e, heard = engine
    await e.place(1, buy("e1", protect=Protect(stop_loss=D("0.02"), take_profit=D("0.05"))), D("100"))
    await e.on_candle("BTC/USD", bar(1, 107, 108, 104, 106))  # opens above the target: fills at the open
    r = heard.of("e1-p0")
    assert (r.status, r.price, r.reason) == ("filled", D("107"), "take_profit")


async def test_a_limit_entry_fills_at_its_price_and_its_stop_in_the_same_candle(engine, sf) -> None:  # type: ignore[no-untyped-def]
    e, heard = engine
    spec = buy(
        "l1", type="limit", price=D("100"), expires_at=T0 + 5 * M, protect=Protect(stop_loss=D("0.02"))
    )
    r = await e.place(1, spec, D("101"))
    assert (r.status, r.filled) == ("open", D("0"))
    assert (await e.balances(1))["USD"] == CASH - 100  # set aside (maker fee 0 here)
    await e.on_candle("BTC/USD", bar(1, 101, 102, 100.5, 101))  # not down to the limit
    assert heard.results == []
    await e.on_candle("BTC/USD", bar(2, 101, 101, 97, 99))  # at 100, then down through the stop (98)
    entry, stop = heard.of("l1"), heard.of("l1-s0")
    assert (entry.status, entry.price, entry.filled) == ("filled", D("100"), D("1"))
    assert (stop.status, stop.price, stop.reason) == ("filled", D("98"), "stop_loss")
    assert [r.client_order_id for r in heard.results] == ["l1", "l1-s0"]  # the entry is reported first
    assert await e.balances(1) == {"USD": CASH - 2, "BTC": D("0")}
    assert (await stored(sf, "l1")).status == "filled"  # type: ignore[union-attr]
    assert (await stored(sf, "l1-s0")).status == "filled"  # type: ignore[union-attr]


async def test_a_limit_entry_below_the_open_fills_at_the_open_and_rests_its_protection(engine, sf) -> None:  # type: ignore[no-untyped-def]
    e, heard = engine
    spec = buy("l1", type="limit", price=D("100"), protect=Protect(trailing_stop=D("0.1"), rev=1))
    await e.place(1, spec, D("101"))
    await e.on_candle("BTC/USD", bar(1, 99, 103, 98, 102))
    assert heard.of("l1").price == D("99")
    row = await stored(sf, "l1-r1")
    assert row is not None and (row.status, row.high, row.stop_price) == ("open", D("103"), D("92.7"))
    assert await e.balances(1) == {"USD": CASH - 99, "BTC": D("1")}  # the rest of the set-aside came back


async def test_a_limit_that_expires_gives_its_money_back(engine, sf) -> None:  # type: ignore[no-untyped-def]
    e, heard = engine
    expires = model.expiry(T0, M, 2)  # decided on candle 0, good for candles 1 and 2
    await e.place(1, buy("l1", "2", type="limit", price=D("90"), expires_at=expires), D("100"))
    assert (await e.balances(1))["USD"] == CASH - 180
    assert (await stored_balances(sf))["USD"] == CASH - 180
    await e.on_candle("BTC/USD", bar(1, 100, 101, 95, 96))
    assert heard.results == [] and (await e.find("l1")).status == "open"  # type: ignore[union-attr]
    await e.on_candle("BTC/USD", bar(2, 96, 97, 91, 92))
    r = heard.of("l1")
    assert (r.status, r.reason) == ("canceled", "expired")
    assert await e.balances(1) == {"USD": CASH}
    assert await stored_balances(sf) == {"USD": CASH}
    assert (await stored(sf, "l1")).status == "canceled"  # type: ignore[union-attr]


async def test_the_trailing_stop_ratchets_and_is_stored(engine, sf) -> None:  # type: ignore[no-untyped-def]
    e, heard = engine
    await e.place(1, buy("e1", protect=Protect(trailing_stop=D("0.05"))), D("100"))
    await e.on_candle("BTC/USD", bar(1, 100, 110, 99, 109))
    row = await stored(sf, "e1-r0")
    assert row is not None and (row.high, row.stop_price, row.status) == (D("110"), D("104.50"), "open")
    await e.on_candle("BTC/USD", bar(2, 109, 109.5, 106, 107))  # a lower high keeps the level
    assert (await stored(sf, "e1-r0")).high == D("110")  # type: ignore[union-attr]
    await e.on_candle("BTC/USD", bar(3, 107, 107, 104, 105))
    r = heard.of("e1-r0")
    assert (r.status, r.price, r.reason) == ("filled", D("104.50"), "trailing_stop")


async def test_cancel(engine, sf) -> None:  # type: ignore[no-untyped-def]
    e, heard = engine
    await e.place(1, buy("l1", type="limit", price=D("90")), D("100"))
    r = await e.cancel(1, "l1")
    assert (r.status, r.reason) == ("canceled", "canceled")
    assert await e.balances(1) == {"USD": CASH} and await stored_balances(sf) == {"USD": CASH}
    assert (await stored(sf, "l1")).status == "canceled"  # type: ignore[union-attr]
    assert (await e.cancel(1, "l1")).status == "canceled"  # final: answered again
    await e.place(1, buy("m1"), D("100"))
    assert (await e.cancel(1, "m1")).status == "filled"
    with pytest.raises(ExchangeError):
        await e.cancel(1, "nope")
    await e.on_candle("BTC/USD", bar(1, 80, 80, 70, 75))  # the cancelled limit does not fill
    assert heard.results == []


async def test_orders_named_in_cancels_go_down_with_the_order(engine, sf) -> None:  # type: ignore[no-untyped-def]
    e, heard = engine
    await e.place(1, buy("e1", protect=Protect(stop_loss=D("0.02"), take_profit=D("0.1"))), D("100"))
    r = await e.place(1, OrderSpec("x1", "BTC/USD", "sell", D("1"), cancels=("e1-p0",)), D("101"))
    assert r.status == "filled"
    assert (heard.of("e1-p0").status, (await stored(sf, "e1-p0")).status) == ("canceled", "canceled")  # type: ignore[union-attr]


async def test_a_signal_exit_after_its_stop_filled_is_refused_and_sells_nothing_more(engine, sf) -> None:  # type: ignore[no-untyped-def]
    e, heard = engine
    await e.place(1, buy("e1", protect=Protect(stop_loss=D("0.02"), take_profit=D("0.1"))), D("100"))
    await e.on_candle("BTC/USD", bar(T0, 99, 99, 97, 98))  # the stop (98) fills
    assert heard.of("e1-p0").status == "filled"
    after_stop = await e.balances(1)
    assert after_stop.get("BTC", D(0)) == 0
    r = await e.place(1, OrderSpec("x1", "BTC/USD", "sell", D("1"), cancels=("e1-p0",)), D("97"))
    assert (r.status, r.reason) == (
        "rejected",
        "not placed: the order it replaces (e1-p0) was filled meanwhile",
    )
    assert await e.balances(1) == after_stop and await stored_balances(sf) == after_stop


async def test_the_same_client_id_is_answered_with_its_first_result(engine, sf) -> None:  # type: ignore[no-untyped-def]
    e, _ = engine
    await e.place(1, buy("e1", protect=Protect(stop_loss=D("0.02"))), D("100"))
    # core places the protective order the engine made already: its state, not a second order
    again = await e.place(1, sell("e1-s0", "stop", stop_price=D("97"), group="e1"), D("100"))
    assert (again.status, again.client_order_id) == ("open", "e1-s0")
    assert (await stored(sf, "e1-s0")).stop_price == D("98")  # type: ignore[union-attr]
    limit = buy("l1", type="limit", price=D("90"))
    first = await e.place(1, limit, D("100"))
    assert await e.place(1, limit, D("100")) == first
    assert (await e.balances(1))["USD"] == CASH - 100 - 90  # set aside once
    bad = buy("b1", type="limit")  # no price
    assert (await e.place(1, bad, D("100"))).status == "rejected"
    assert (await e.place(1, buy("b1", type="limit", price=D("1")), D("100"))).status == "rejected"
    async with sf() as s:
        assert (await s.execute(select(func.count()).select_from(PaperOrder))).scalar() == 2


async def test_a_restarted_engine_loads_the_resting_orders_and_fills_them(sf) -> None:  # type: ignore[no-untyped-def]
    e, _ = await started(sf)
    await e.place(1, buy("e1", protect=Protect(stop_loss=D("0.02"))), D("100"))
    await e.place(1, buy("l1", type="limit", price=D("95")), D("100"))
    await e.close()
    again, heard = await started(sf)
    try:
        assert (await again.find("e1-s0")).status == "open"  # type: ignore[union-attr]
        assert (await again.find("l1")).status == "open"  # type: ignore[union-attr]
        assert await again.balances(1) == {"USD": CASH - 100 - 95, "BTC": D("1")}
        await again.on_candle("BTC/USD", bar(1, 96, 96, 94, 95))  # fills the limit and takes the stop (98)
        assert heard.of("l1").price == D("95") and heard.of("e1-s0").price == D("96")
        assert await again.balances(1) == {"USD": CASH - 100 + 96 - 95, "BTC": D("1")}
    finally:
        await again.close()
    third, _ = await started(sf)
    try:
        assert (await third.find("e1-s0")).status == "filled"  # type: ignore[union-attr]
        assert third._open == {}
    finally:
        await third.close()


async def test_maker_and_taker_fees_and_slippage(sf) -> None:  # type: ignore[no-untyped-def]
    e, heard = await started(sf, fee="0.002", maker="0.001", slippage="10")
    try:
        m = await e.place(1, buy("m1", protect=Protect(stop_loss=D("0.05"), take_profit=D("0.05"))), D("100"))
        assert (m.price, m.fee) == (D("100.1"), D("0.2002"))  # 10 bps against the buy, taker fee
        limit = buy("l1", type="limit", price=D("90"))
        await e.place(1, limit, D("100"))
        assert (await e.balances(1))["USD"] == CASH - D("100.3002") - D("90.09")  # 90 × (1 + maker)
        await e.on_candle("BTC/USD", bar(1, 100, 106, 89, 100))  # limit at 90; the pair: 95.095 first
        lim = heard.of("l1")
        assert (lim.price, lim.fee) == (D("90"), D("0.090"))  # maker, no slippage
        stop = heard.of("m1-p0")
        assert stop.reason == "stop_loss" and stop.price == D("95.095") * D("0.999")  # slippage, taker
        assert stop.fee == stop.price * D("0.002")
        # a take-profit fills at its price with the maker fee
        await e.place(1, sell("t1", "take_profit", price=D("110")), D("100"))
        await e.on_candle("BTC/USD", bar(2, 100, 111, 99, 100))
        tp = heard.of("t1")
        assert (tp.price, tp.fee, tp.reason) == (D("110"), D("0.110"), "take_profit")
    finally:
        await e.close()


async def test_a_protective_sell_without_the_coins_is_cancelled_with_a_reason(engine) -> None:  # type: ignore[no-untyped-def]
    e, heard = engine
    await e.place(1, sell("s1", "stop", stop_price=D("98")), D("100"))
    await e.on_candle("ETH/USD", bar(1, 1, 1, 1, 1))  # another market: untouched
    await e.on_candle("BTC/USD", bar(1, 99, 99, 97, 98))
    r = heard.of("s1")
    assert r.status == "canceled" and "insufficient BTC" in (r.reason or "")
