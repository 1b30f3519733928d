"""Core and a real eval worker: an assignment pinned to a strategy version is evaluated with that version's
code while one that follows the latest switches with each save; and a buy cut to the account's free balance
records why, on its order and on its decision."""

from __future__ import annotations

from decimal import Decimal

from sqlalchemy import select, update

from tradewind.bus import messages as m
from tradewind.core.decide import AssignmentIndex, Decider
from tradewind.eval.worker import EvalWorker
from tradewind.storage import candles as store
from tradewind.storage.models import Assignment, Evaluation, Order, Strategy, StrategyVersion

from .conftest import make_assignment
from .test_trade import FakeExchange, candle, desk_for

T0 = 1_700_000_040_000 - 1_700_000_040_000 % 60_000
LONG = 'function decide(c, p) return {position = "long", note = "v1"} end'
SHORT = 'function decide(c, p) return {position = "short", note = "v2"} end'
NEUTRAL = 'function decide(c, p) return {position = "neutral", note = "v3"} end'


async def test_a_pinned_assignment_runs_its_version_and_a_following_one_the_latest(settings, nc, sf) -> None:  # type: ignore[no-untyped-def]
    following = await make_assignment(sf, trader=False, code=LONG)
    async with sf() as s:
        s.add(StrategyVersion(strategy_id=following.strategy_id, version=2, code=SHORT))
        await s.execute(update(Strategy).where(Strategy.id == following.strategy_id).values(latest_version=2))
        pinned = Assignment(
            owner_id=following.owner_id,
            strategy_id=following.strategy_id,
            market_id=following.market_id,
            timeframe="1m",
            allocation=Decimal("1000"),
            params={},
            pinned_version=1,
        )
        s.add(pinned)
        await store.insert_candles(
            s,
            following.market_id,
            "1m",
            [(T0 + i * 60_000, 100.0, 101.0, 99.0, 100.5, 1.0) for i in range(50)],
        )
        await s.commit()
    worker = EvalWorker(settings, nc, sf, name="w")
    await worker.start()
    try:
        index = AssignmentIndex()
        decider = Decider(nc, batch_size=100, timeout_s=20)

        async def decisions(minute: int) -> dict[int, tuple[int, str | None, str | None]]:
            await index.load(sf)
            states = [index.by_id[following.id], index.by_id[pinned.id]]
            bar = m.Candle(
                exchange="sim",
                symbol="BTC/USD",
                tf="1m",
                time=T0 + minute * 60_000,
                open=100,
                high=101,
                low=99,
                close=100.5,
                volume=1,
            )
            out = {}
            async for chunk in decider.evaluate(bar, states):
                for st, o in chunk:
                    out[st.id] = (st.version, o.position, o.note)
            return out

        assert await decisions(48) == {following.id: (2, "short", "v2"), pinned.id: (1, "long", "v1")}
        async with sf() as s:  # a save: version 3
            s.add(StrategyVersion(strategy_id=following.strategy_id, version=3, code=NEUTRAL))
            await s.execute(
                update(Strategy).where(Strategy.id == following.strategy_id).values(latest_version=3)
            )
            await s.commit()
        assert await decisions(49) == {following.id: (3, "neutral", "v3"), pinned.id: (1, "long", "v1")}
    finally:
        await worker.stop()


async def test_a_buy_cut_to_the_free_balance_says_why_on_its_order_and_decision(settings, nc, sf) -> None:  # type: ignore[no-untyped-def]
    exchange = FakeExchange(nc)  # 10,000 USD free, fills at 100
    await exchange.start()
    big = await make_assignment(sf)
    async with sf() as s:
        await s.execute(update(Assignment).where(Assignment.id == big.id).values(allocation=Decimal("50000")))
        await s.commit()
    desk, index = await desk_for(settings, nc, sf)
    st = index.by_id[big.id]
    st.allocation = Decimal("50000")
    await desk.handle(
        candle(60_000), [(st, m.EvalOutcome(assignment_id=big.id, status="ok", position="long"))]
    )
    await desk.drain()
    async with sf() as s:
        order = (await s.execute(select(Order))).scalar_one()
        evaluation = (await s.execute(select(Evaluation))).scalar_one()
    note = "smaller than asked (50000.00 USD): capped by the account's free balance (10000.00 USD)"
    assert order.status == "filled" and order.size_note == note and order.filled * 100 <= 10_000
    assert evaluation.note == note
