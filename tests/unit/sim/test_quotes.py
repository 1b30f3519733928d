"""Paper quotes: post-only limit orders that rest on the sim exchange, are refused when they would take,
set aside what they may cost, and fill on the simulator's trades (never on candles), through the real
engine, the sim adapter and SQLite."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import event, select

from tradewind.bus.messages import Tick
from tradewind.config import Settings
from tradewind.exchanges.base import Credentials, OrderResult, OrderSpec, Protect
from tradewind.exchanges.sim import SimAdapter
from tradewind.exchanges.sim.engine import PaperEngine
from tradewind.exchanges.sim.market import MINUTE
from tradewind.storage.models import PaperBalance, PaperFill, PaperOrder
from tradewind.trading import model

D = Decimal
T0 = 1_700_000_040_000 // MINUTE * MINUTE
CASH = D("10000")
MAKER = D("0.0005")
BOOK = (D("99.9"), D("100.1"))  # bid, ask
CREDS = Credentials(trader_id=1, paper=True)


class Heard:
    def __init__(self) -> None:
        self.results: list[OrderResult] = []

    async def __call__(self, trader_id: int, result: OrderResult) -> None:
        assert trader_id == 1
        self.results.append(result)


@pytest.fixture
async def engine(sf) -> AsyncIterator[tuple[PaperEngine, Heard]]:  # type: ignore[no-untyped-def]
    e = PaperEngine(sf, D("0.002"), CASH, maker_fee=MAKER)
    heard = Heard()
    e.listener = heard
    await e.start()
    yield e, heard
    await e.close()


def quote(cid: str, side: str, price: str, amount: str = "1", **kw) -> OrderSpec:  # type: ignore[no-untyped-def]
    return OrderSpec(cid, "BTC/USD", side, D(amount), type="limit", price=D(price), post_only=True, **kw)


async def place(e: PaperEngine, spec: OrderSpec, book: tuple[Decimal, Decimal] = BOOK) -> OrderResult:
    return await e.place(1, spec, D("100"), now_ms=T0, book=book)


async def stored(sf, cid: str) -> PaperOrder | None:  # type: ignore[no-untyped-def]
    async with sf() as s:
        return (
            await s.execute(select(PaperOrder).where(PaperOrder.client_order_id == cid))
        ).scalar_one_or_none()


async def stored_balances(sf) -> dict[str, Decimal]:  # type: ignore[no-untyped-def]
    async with sf() as s:
        return {b.asset: b.amount for b in (await s.execute(select(PaperBalance))).scalars()}


# -- the engine ----------------------------------------------------------------------------------------------
async def test_a_quote_that_would_take_is_refused_with_the_book_it_met(engine) -> None:  # type: ignore[no-untyped-def]
    e, heard = engine
    await e.place(1, OrderSpec("m", "BTC/USD", "buy", D("2")), D("100"))  # base for the sells
    for cid, side, price in (
        ("b-ask", "buy", "100.1"),
        ("b-over", "buy", "101"),
        ("s-bid", "sell", "99.9"),
        ("s-under", "sell", "99"),
    ):
        r = await place(e, quote(cid, side, price))
        assert r.status == "rejected", cid
        assert r.reason == (
            f"post-only order refused: it would take liquidity ({side} at {price}; bid 99.9, ask 100.1)"
        )
        assert (await e.find(cid)).status == "rejected"  # type: ignore[union-attr]
    assert await e.balances(1) == {"USD": CASH - D("200") - D("0.4"), "BTC": D("2")}  # nothing set aside
    # inside the spread (and at the touch) it rests
    assert (await place(e, quote("b-in", "buy", "100"))).status == "open"
    assert (await place(e, quote("s-in", "sell", "100.05"))).status == "open"
    assert (await place(e, quote("b-bid", "buy", "99.9", "0.5"))).status == "open"
    assert heard.results == []


async def test_only_a_plain_limit_order_can_be_a_quote(engine) -> None:  # type: ignore[no-untyped-def]
    e, _ = engine
    market = OrderSpec("mk", "BTC/USD", "buy", D("1"), post_only=True)
    assert (await place(e, market)).reason == "only a limit order can be post-only"
    with_exits = quote("px", "buy", "99", protect=Protect(stop_loss=D("0.1")))
    assert (await place(e, with_exits)).status == "rejected"
    assert (await e.balances(1)) == {"USD": CASH}


async def test_a_buy_quote_sets_its_cost_aside_and_fills_only_when_a_trade_prints_below_it(
    engine, sf
) -> None:  # type: ignore[no-untyped-def]
    e, heard = engine
    r = await place(e, quote("q1", "buy", "99.5", "2"))
    assert (r.status, r.filled, r.exchange_order_id) == ("open", D("0"), "paper-q1")
    locked = D("2") * D("99.5") * (1 + MAKER)
    assert await e.balances(1) == {"USD": CASH - locked}
    assert await stored_balances(sf) == {"USD": CASH - locked}  # stored before it was answered
    row = await stored(sf, "q1")
    assert row is not None and (row.type, row.side, row.status, row.locked) == (
        "quote",
        "buy",
        "open",
        locked,
    )
    # a trade at its price is not through it (orders queued ahead may have taken it): nothing
    await e.on_trades("BTC/USD", [T0, T0 + 1000, T0 + 2000], [100.0, 99.7, 99.5])
    assert heard.results == [] and (await e.find("q1")).status == "open"  # type: ignore[union-attr]
    await e.on_trades("BTC/USD", [T0 + 3000, T0 + 4000, T0 + 5000], [99.6, 99.49, 98.0])
    (fill,) = heard.results
    assert (fill.client_order_id, fill.status, fill.filled, fill.price) == ("q1", "filled", D("2"), D("99.5"))
    assert fill.fee == D("2") * D("99.5") * MAKER and fill.fee_asset == "USD"
    assert fill.time == T0 + 4000  # the first trade below it, not the lowest
    expected = {"USD": CASH - D("199") - D("199") * MAKER, "BTC": D("2")}
    assert await e.balances(1) == expected
    assert await stored_balances(sf) == expected  # stored before it was reported
    async with sf() as s:
        stored_fill = (
            await s.execute(select(PaperFill).where(PaperFill.client_order_id == "q1"))
        ).scalar_one()
    assert (stored_fill.side, stored_fill.price, stored_fill.fee, stored_fill.time) == (
        "buy",
        D("99.5"),
        fill.fee,
        T0 + 4000,
    )
    assert (await stored(sf, "q1")).status == "filled"  # type: ignore[union-attr]
    assert (await e.find("q1")) == fill
    assert await e.find_many(["q1", "nope"]) == [fill, None]
    await e.on_trades("BTC/USD", [T0 + 6000], [50.0])  # filled once
    assert len(heard.results) == 1


async def test_a_sell_quote_needs_the_base_sets_it_aside_and_gives_it_back_when_cancelled(engine, sf) -> None:  # type: ignore[no-untyped-def]
    e, heard = engine
    r = await place(e, quote("s0", "sell", "101"))
    assert r.status == "rejected" and r.reason == "insufficient BTC: need 1.00000000, have 0"
    await e.place(1, OrderSpec("m", "BTC/USD", "buy", D("1.5")), D("100"))
    usd = CASH - D("150") - D("150") * D("0.002")
    assert (await place(e, quote("s1", "sell", "101"))).status == "open"
    assert await e.balances(1) == {"USD": usd, "BTC": D("0.5")}
    assert (await place(e, quote("s2", "sell", "102"))).reason == (
        "insufficient BTC: need 1.00000000, have 0.50000000"
    )
    c = await e.cancel(1, "s1", now_ms=T0 + 1)
    assert (c.status, c.reason, c.time) == ("canceled", "canceled", T0 + 1)
    assert await e.balances(1) == {"USD": usd, "BTC": D("1.5")}
    assert await stored_balances(sf) == {"USD": usd, "BTC": D("1.5")}
    assert (await stored(sf, "s1")).status == "canceled"  # type: ignore[union-attr]
    assert (await e.find("s1")).status == "canceled"  # type: ignore[union-attr]
    await e.on_trades("BTC/USD", [T0 + 2], [200.0])  # a cancelled quote does not fill
    assert heard.results == []
    # a sell fills when a trade prints above it: the base goes, the value less the maker fee comes
    assert (await place(e, quote("s3", "sell", "101", "1.5"))).status == "open"
    await e.on_trades("BTC/USD", [T0 + 3, T0 + 4], [101.0, 101.01])
    (fill,) = heard.results
    assert (fill.client_order_id, fill.price, fill.filled, fill.time) == ("s3", D("101"), D("1.5"), T0 + 4)
    fee = D("1.5") * D("101") * MAKER
    assert fill.fee == fee
    assert await e.balances(1) == {"USD": usd + D("151.5") - fee, "BTC": D("0")}


async def test_a_cancelled_buy_quote_gives_its_money_back(engine, sf) -> None:  # type: ignore[no-untyped-def]
    e, heard = engine
    await place(e, quote("q1", "buy", "99", "10"))
    assert (await e.balances(1))["USD"] == CASH - D("990") * (1 + MAKER)
    assert (await e.cancel(1, "q1")).status == "canceled"
    assert await e.balances(1) == {"USD": CASH} and await stored_balances(sf) == {"USD": CASH}
    assert (await e.cancel(1, "q1")).status == "canceled"  # its final state again, nothing more back
    assert await e.balances(1) == {"USD": CASH}
    assert heard.results == []


async def test_quotes_are_not_matched_on_candles(engine) -> None:  # type: ignore[no-untyped-def]
    e, heard = engine
    await place(e, quote("q1", "buy", "99"))
    await e.on_candle("BTC/USD", model.Bar.of(T0, 100, 100, 90, 95))  # a limit entry at 99 would fill here
    assert heard.results == [] and (await e.find("q1")).status == "open"  # type: ignore[union-attr]


async def test_the_quotes_a_batch_of_trades_goes_through_fill_in_trade_order_in_one_commit(
    engine, sf
) -> None:  # type: ignore[no-untyped-def]
    e, heard = engine
    await e.place(1, OrderSpec("m", "BTC/USD", "buy", D("10")), D("100"))
    for i in range(40):  # buys at 99.60 .. 99.99, sells at 100.01 .. 100.40
        assert (await place(e, quote(f"b{i}", "buy", f"{D('99.60') + D(i) / 100}", "0.1"))).status == "open"
        assert (await place(e, quote(f"s{i}", "sell", f"{D('100.01') + D(i) / 100}", "0.1"))).status == "open"
    await place(e, quote("far", "buy", "90", "0.1"))
    commits = 0

    def count(*_: object) -> None:
        nonlocal commits
        commits += 1

    sync_engine = sf.kw["bind"].sync_engine
    event.listen(sync_engine, "commit", count)
    try:
        # 99.95: through b36..b39; then 100.305: through s0..s29; then 99.795: through b20..b35
        await e.on_trades("BTC/USD", [T0, T0 + 1, T0 + 2, T0 + 3], [100.0, 99.95, 100.305, 99.795])
    finally:
        event.remove(sync_engine, "commit", count)
    assert commits == 1
    filled = [(r.client_order_id, r.time) for r in heard.results]
    assert filled == (
        [(f"b{i}", T0 + 1) for i in range(36, 40)]
        + [(f"s{i}", T0 + 2) for i in range(30)]
        + [(f"b{i}", T0 + 3) for i in range(20, 36)]
    )
    assert all(r.status == "filled" and r.filled == D("0.1") for r in heard.results)
    assert (await e.find("far")).status == "open"  # type: ignore[union-attr]


async def test_a_replacement_of_a_quote_that_filled_meanwhile_is_refused_and_buys_nothing(engine, sf) -> None:  # type: ignore[no-untyped-def]
    e, heard = engine
    await place(e, quote("q1", "buy", "99.5", "0.005"))
    await e.on_trades("BTC/USD", [T0 + 1000], [99.4])  # q1 fills just as core replaces it
    assert [(r.client_order_id, r.status) for r in heard.results] == [("q1", "filled")]
    after_fill = await e.balances(1)
    assert after_fill["BTC"] == D("0.005")
    r = await place(e, quote("q2", "buy", "99.6", "0.005", cancels=("q1",)))
    assert (r.status, r.filled) == ("rejected", D("0"))
    assert r.reason == "not placed: the order it replaces (q1) was filled meanwhile"
    assert await e.balances(1) == after_fill  # nothing bought, nothing set aside
    assert await stored_balances(sf) == after_fill
    assert not e.quoting("BTC/USD") and await stored(sf, "q2") is None
    assert await e.place(1, quote("q2", "buy", "99.6", "0.005"), D("100"), book=BOOK) == r  # answered again
    await e.on_trades("BTC/USD", [T0 + 2000], [90.0])
    assert len(heard.results) == 1  # q1's fill, nothing else
    # a replacement of a quote cancelled unfilled goes, as before
    await place(e, quote("q3", "buy", "99.5", "0.001"))
    r4 = await place(e, quote("q4", "buy", "99.6", "0.001", cancels=("q3",)))
    assert r4.status == "open" and (await e.find("q3")).status == "canceled"  # type: ignore[union-attr]


async def test_a_replacement_is_refused_when_the_fill_of_the_quote_it_cancels_is_only_stored(sf) -> None:  # type: ignore[no-untyped-def]
    first = PaperEngine(sf, D("0.002"), CASH, maker_fee=MAKER)
    await first.start()
    await first.place(1, quote("q1", "buy", "99.5"), D("100"), book=BOOK)
    await first.on_trades("BTC/USD", [T0 + 1000], [99.4])
    await first.close()
    again = PaperEngine(sf, D("0.002"), CASH, maker_fee=MAKER)  # q1's fill is no longer in memory
    await again.start()
    try:
        r = await again.place(1, quote("q2", "buy", "99.6", cancels=("q1",)), D("100"), book=BOOK)
        assert (r.status, r.reason) == (
            "rejected",
            "not placed: the order it replaces (q1) was filled meanwhile",
        )
        assert (await again.balances(1))["BTC"] == D("1")
    finally:
        await again.close()


async def test_another_accounts_order_named_in_cancels_tells_nothing_and_refuses_nothing(sf) -> None:  # type: ignore[no-untyped-def]
    """What became of an order is looked up within the placing order's own account: naming another account's
    filled quote (in memory, or only stored) neither refuses the order nor says that it filled."""
    from tradewind.storage.models import Trader, User

    async with sf() as s:
        s.add(User(id=2, email="other@example.com", password_hash="x"))
        await s.flush()
        s.add(Trader(id=2, owner_id=2, name="p", exchange="sim", paper=True))
        await s.commit()
    first = PaperEngine(sf, D("0.002"), CASH, maker_fee=MAKER)
    await first.start()
    try:
        await first.place(1, quote("q1", "buy", "99.5"), D("100"), book=BOOK)
        await first.on_trades("BTC/USD", [T0 + 1000], [99.4])  # account 1's q1 fills
        assert (await first.find("q1")).status == "filled"  # type: ignore[union-attr]
        r = await first.place(2, quote("x1", "buy", "99.6", cancels=("q1",)), D("100"), book=BOOK)
        assert (r.status, r.reason) == ("open", None)
    finally:
        await first.close()
    again = PaperEngine(sf, D("0.002"), CASH, maker_fee=MAKER)  # q1's fill only stored now
    await again.start()
    try:
        r = await again.place(2, quote("x2", "buy", "99.6", cancels=("q1",)), D("100"), book=BOOK)
        assert (r.status, r.reason) == ("open", None)
        mine = await again.place(1, quote("q2", "buy", "99.6", cancels=("q1",)), D("100"), book=BOOK)
        assert mine.status == "rejected"  # (its own account's fill still refuses it)
    finally:
        await again.close()


async def test_resting_quotes_are_loaded_again_after_a_restart(sf) -> None:  # type: ignore[no-untyped-def]
    first = PaperEngine(sf, D("0.002"), CASH, maker_fee=MAKER)
    await first.start()
    await first.place(1, quote("q1", "buy", "99"), D("100"), book=BOOK)
    await first.close()
    again = PaperEngine(sf, D("0.002"), CASH, maker_fee=MAKER)
    heard = Heard()
    again.listener = heard
    await again.start()
    try:
        assert again.quoting("BTC/USD")
        await again.on_candle("BTC/USD", model.Bar.of(T0, 100, 100, 90, 95))
        assert heard.results == []
        await again.on_trades("BTC/USD", [T0 + 5], [98.5])
        assert [(r.client_order_id, r.price) for r in heard.results] == [("q1", D("99"))]
        assert (await again.balances(1))["BTC"] == D("1")
        assert not again.quoting("BTC/USD")
    finally:
        await again.close()


# -- through the sim adapter ---------------------------------------------------------------------------------
@pytest.fixture
async def adapter(tmp_path: Path, db_url: str, sf) -> AsyncIterator[SimAdapter]:  # type: ignore[no-untyped-def]
    settings = Settings(
        data_dir=tmp_path,
        database_url=db_url,
        sim_symbols=["BTC/USD"],
        sim_speed=300,
        history_days=0,
        sim_maker_fee=str(MAKER),
        sim_spread_bps=2.0,
    )
    sim = SimAdapter(settings, sf)
    await sim.start()
    yield sim
    await sim.close()


def sim_quote(cid: str, side: str, price: Decimal, amount: str = "0.01") -> OrderSpec:
    return OrderSpec(cid, "BTC/USD", side, D(amount), type="limit", price=price, post_only=True)


async def test_a_quote_at_the_ask_of_the_last_tick_is_refused_and_one_at_the_bid_rests(adapter) -> None:  # type: ignore[no-untyped-def]
    assert adapter.capabilities.post_only and adapter.capabilities.streams_ticks
    ticks = adapter.stream_ticks(["BTC/USD"])
    try:
        tick = await anext(ticks)  # the stream waits at this tick: the book is its book
        bid, ask = D(repr(tick.bid)), D(repr(tick.ask))
        r = await adapter.place_order(CREDS, sim_quote("b-ask", "buy", ask))
        assert r.status == "rejected"
        assert (
            r.reason
            == f"post-only order refused: it would take liquidity (buy at {ask}; bid {bid}, ask {ask})"
        )
        r = await adapter.place_order(CREDS, sim_quote("s-bid", "sell", bid))
        assert r.status == "rejected" and "would take liquidity" in (r.reason or "")
        (r,) = await adapter.place_orders([(CREDS, sim_quote("b-bid", "buy", bid))])
        assert r.status == "open"
        assert (await adapter.fetch_order(CREDS, "b-bid", "BTC/USD")).status == "open"  # type: ignore[union-attr]
        assert (await adapter.fetch_balances(CREDS))["USD"] == CASH - D("0.01") * bid * (1 + MAKER)
        assert (await adapter.cancel_order(CREDS, "b-bid", "BTC/USD")).status == "canceled"
        assert await adapter.fetch_balances(CREDS) == {"USD": CASH}
    finally:
        await ticks.aclose()


async def test_a_resting_buy_fills_on_the_first_trade_below_it_reported_before_that_tick(adapter) -> None:  # type: ignore[no-untyped-def]
    seen: list[object] = []

    async def listener(trader_id: int, result: OrderResult) -> None:
        seen.append(result)

    adapter.set_listener(listener)
    ticks = adapter.stream_ticks(["BTC/USD"])
    try:
        first = await anext(ticks)
        # a few trades' moves below the market (the book is the one of this tick: the stream waits here)
        price = (D(repr(first.bid)) * D("0.9997")).quantize(D("0.01"))
        assert (await adapter.place_order(CREDS, sim_quote("q1", "buy", price))).status == "open"
        async with asyncio.timeout(30):
            async for tick in ticks:
                seen.append(tick)
                if D(repr(tick.last)) < price:
                    break
    finally:
        await ticks.aclose()
    *before, fill, crossing = seen
    assert isinstance(crossing, Tick) and isinstance(fill, OrderResult), "the fill came after its tick"
    assert all(isinstance(t, Tick) and D(repr(t.last)) >= price for t in before)
    assert (fill.client_order_id, fill.status, fill.price, fill.filled) == ("q1", "filled", price, D("0.01"))
    assert fill.fee == price * D("0.01") * MAKER and fill.time == crossing.time
    bal = await adapter.fetch_balances(CREDS)
    assert bal == {"USD": CASH - price * D("0.01") * (1 + MAKER), "BTC": D("0.01")}


async def test_without_ticks_a_quote_fills_before_the_candle_its_trade_is_in(adapter) -> None:  # type: ignore[no-untyped-def]
    seen: list[object] = []

    async def listener(trader_id: int, result: OrderResult) -> None:
        seen.append(result)

    adapter.set_listener(listener)
    bid, _ = adapter._book("BTC/USD")
    price = (bid * D("0.999")).quantize(D("0.01"))
    assert (await adapter.place_order(CREDS, sim_quote("q1", "buy", price))).status == "open"
    candles = adapter.stream_candles(["BTC/USD"], "1m")
    try:
        async with asyncio.timeout(30):
            async for candle in candles:
                seen.append(candle)
                if D(repr(candle.low)) < price:
                    break
    finally:
        await candles.aclose()
    *before, fill, candle = seen
    assert isinstance(fill, OrderResult) and fill.status == "filled" and fill.price == price
    assert all(D(repr(c.low)) >= price for c in before)  # type: ignore[attr-defined]
    assert candle.time <= fill.time < candle.time + MINUTE  # type: ignore[attr-defined]


async def test_the_minutes_generated_catching_up_fill_the_quotes_too(adapter) -> None:  # type: ignore[no-untyped-def]
    heard: list[OrderResult] = []

    async def listener(trader_id: int, result: OrderResult) -> None:
        heard.append(result)

    adapter.set_listener(listener)
    bid, _ = adapter._book("BTC/USD")
    price = (bid * D("0.997")).quantize(D("0.01"))
    assert (await adapter.place_order(CREDS, sim_quote("q1", "buy", price))).status == "open"
    start = adapter.sim_now() // MINUTE * MINUTE - 300 * MINUTE
    candles = await adapter.fetch_history("BTC/USD", "1m", start, until=start + 300 * MINUTE)
    assert len(candles) == 300
    (fill,) = heard
    assert (fill.client_order_id, fill.status, fill.price) == ("q1", "filled", price)
    i = next(i for i, c in enumerate(candles) if D(repr(c.low)) < price)
    assert candles[i].time <= fill.time < candles[i].time + MINUTE
    assert fill.time % adapter.settings.sim_tick_ms == 0
    # the book moved with the trades: it stands at the last close now
    assert adapter._book("BTC/USD")[0] == D(repr(candles[-1].close * (1 - 1e-4)))
