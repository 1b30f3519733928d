"""A decision that comes while the assignment's previous market order is on its way waits for its answer.

Candles held up behind a retried chunk (a killed eval worker) are released one right after the other: the
next candle's decisions come while the previous candle's orders are still travelling. They used to be
dropped without a word; now core waits for the answer and trades them, and says so when it never came.
"""

from __future__ import annotations

import asyncio

from sqlalchemy import select

from tradewind.core.service import CoreService
from tradewind.core.trade import IN_FLIGHT_NOTE
from tradewind.storage.models import Evaluation, Order

from .conftest import make_assignment
from .test_pipeline import FlipWorker
from .test_trade import FakeExchange, candle


class SlowExchange(FakeExchange):
    """Answers order calls after ``delay`` seconds (or never, with ``outcome="timeout"``)."""

    def __init__(self, nc, delay: float, outcome: str = "filled") -> None:  # type: ignore[no-untyped-def]
        super().__init__(nc, outcome=outcome)
        self.delay = delay

    async def orders_(self, msg) -> None:  # type: ignore[no-untyped-def]
        asyncio.get_running_loop().create_task(self._later(msg))

    async def _later(self, msg) -> None:  # type: ignore[no-untyped-def]
        await asyncio.sleep(self.delay)
        await FakeExchange.orders_(self, msg)


async def _core(settings, nc, sf) -> CoreService:  # type: ignore[no-untyped-def]
    core = CoreService(settings, nc, nc.jetstream(), sf)
    await core.index.load(sf)
    return core


async def _orders(sf) -> list[Order]:  # type: ignore[no-untyped-def]
    async with sf() as s:
        return list((await s.execute(select(Order).order_by(Order.id))).scalars())


async def test_the_next_candles_decision_waits_for_the_previous_order_and_trades(settings, nc, sf) -> None:  # type: ignore[no-untyped-def]
    worker = FlipWorker(nc)  # long on even minutes, short on odd ones
    await worker.start()
    exchange = SlowExchange(nc, delay=0.3)
    await exchange.start()
    a = await make_assignment(sf)
    core = await _core(settings, nc, sf)
    await core.decide(candle(120_000), resume=False)  # long: a buy, answered 0.3 s later
    assert core.index.by_id[a.id].pending  # still on its way when the next candle comes
    await core.decide(candle(180_000), resume=False)  # short: waits for the buy's answer, then sells
    await core.desk.drain()
    orders = await _orders(sf)
    assert [(o.candle_time, o.side, o.status) for o in orders] == [
        (120_000, "buy", "filled"),
        (180_000, "sell", "filled"),
    ]
    assert exchange.calls == 2


async def test_a_decision_behind_an_unanswered_order_says_why(settings, nc, sf) -> None:  # type: ignore[no-untyped-def]
    worker = FlipWorker(nc)
    await worker.start()
    exchange = SlowExchange(nc, delay=0.0, outcome="timeout")  # placed, never answered
    await exchange.start()
    a = await make_assignment(sf)
    core = await _core(settings, nc, sf)
    core.desk.order_timeout_s = 0.4
    await core.decide(candle(120_000), resume=False)
    await core.decide(candle(180_000), resume=False)  # waits at most the order call's timeout
    async with sf() as s:
        later = (
            await s.execute(
                select(Evaluation).where(Evaluation.assignment_id == a.id, Evaluation.candle_time == 180_000)
            )
        ).scalar_one()
    assert later.note == IN_FLIGHT_NOTE
    assert exchange.calls == 1  # nothing sent twice, nothing new while the first is unknown
    await core.desk.drain()


async def test_held_decisions_are_recorded_once_and_not_evaluated_again(settings, nc, sf) -> None:  # type: ignore[no-untyped-def]
    worker = FlipWorker(nc)
    await worker.start()
    exchange = SlowExchange(nc, delay=0.2)
    await exchange.start()
    first = await make_assignment(sf)
    second = await make_assignment(sf, email="b@example.com")
    core = await _core(settings, nc, sf)
    await core.decide(candle(120_000), resume=False)
    await core.decide(candle(180_000), resume=False)
    await core.desk.drain()
    async with sf() as s:
        rows = (await s.execute(select(Evaluation.assignment_id, Evaluation.candle_time))).all()
    assert sorted(rows) == sorted(
        [(first.id, 120_000), (second.id, 120_000), (first.id, 180_000), (second.id, 180_000)]
    )
    assert worker.requests == 2  # each candle evaluated once: a held decision is not evaluated again
