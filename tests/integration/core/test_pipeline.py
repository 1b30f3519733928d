"""Candles from the sim exchange through core to paper orders, with a fake eval worker on the bus."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from tradewind.bus import messages as m
from tradewind.bus import subjects
from tradewind.core.service import CoreService
from tradewind.exchanges.service import ExchangeService
from tradewind.exchanges.sim import SimAdapter
from tradewind.secrets import SecretBox
from tradewind.storage.models import Assignment, CandleRow, Evaluation, Order, PaperBalance, PaperFill

from .conftest import make_assignment

KEY = "yQ0c1c8b1nJmQ1W3Yw3q0m9XK2b6b4Q7b2b2Zm4z3xY="


class FlipWorker:
    """A stand-in eval worker: long on even minutes, short on odd ones (the real one is tested in eval/)."""

    def __init__(self, nc):  # type: ignore[no-untyped-def]
        self.nc = nc
        self.requests = 0

    async def start(self) -> None:
        self.sub = await self.nc.subscribe(subjects.EVAL_RUN, queue=subjects.EVAL_QUEUE, cb=self.on)

    async def on(self, msg) -> None:  # type: ignore[no-untyped-def]
        self.requests += 1
        req = m.decode(msg.data, m.EvalRequest)
        pos = "long" if (req.candle_time // 60_000) % 2 == 0 else "short"
        # a strategy's own series, with its long decisions
        plot = {"minute": float(req.candle_time // 60_000)} if pos == "long" else None
        outs = [
            m.EvalOutcome(assignment_id=j.assignment_id, status="ok", position=pos, plot=plot)
            for j in req.jobs
        ]
        await msg.respond(m.encode(m.EvalReply(outcomes=outs, worker="flip")))


async def wait_for(predicate, timeout: float = 20.0) -> None:  # type: ignore[no-untyped-def]
    deadline = asyncio.get_running_loop().time() + timeout
    while not await predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.1)


async def count(sf, model, *where) -> int:  # type: ignore[no-untyped-def]
    async with sf() as s:
        return (await s.execute(select(func.count()).select_from(model).where(*where))).scalar_one()


@pytest.fixture
async def platform(settings, sf, nc):  # type: ignore[no-untyped-def]
    worker = FlipWorker(nc)
    await worker.start()
    exchange = ExchangeService(settings, SimAdapter(settings, sf), nc, nc.jetstream(), sf, SecretBox([KEY]))
    core = CoreService(settings, nc, nc.jetstream(), sf)
    yield worker, exchange, core
    await core.stop()
    await exchange.stop()


async def test_candles_become_evaluations_and_filled_paper_orders(platform, sf) -> None:  # type: ignore[no-untyped-def]
    worker, exchange, core = platform
    a = await make_assignment(sf)
    await core.start()
    await exchange.start()

    async def enough_fills() -> bool:
        return await count(sf, Order, Order.status == "filled") >= 4

    await wait_for(enough_fills)
    await core.stop()  # waits for the orders in flight, so both books are settled
    async with sf() as s:
        orders = (await s.execute(select(Order).order_by(Order.id))).scalars().all()
        evals = (await s.execute(select(Evaluation))).scalars().all()
        balances = {b.asset: b.amount for b in (await s.execute(select(PaperBalance))).scalars()}
        assignment = await s.get(Assignment, a.id)
    sides = [o.side for o in orders if o.status == "filled"]
    assert all(x != y for x, y in zip(sides, sides[1:], strict=False)), "buys and sells alternate"
    assert len({o.client_order_id for o in orders}) == len(orders)
    assert len({e.candle_time for e in evals}) == len(evals), "one evaluation per candle"
    assert all(e.latency_ms is not None and e.latency_ms >= 0 for e in evals)
    assert all(
        e.plot == ({"minute": e.candle_time // 60_000} if e.position == "long" else None) for e in evals
    )
    assert all(o.latency_ms is not None for o in orders if o.status == "filled")
    assert balances["USD"] != Decimal("10000")
    held = balances.get("BTC", Decimal(0))
    assert assignment.position_qty == held, "core's position and the paper account agree"
    async with sf() as s:
        fills = {f.client_order_id: f for f in (await s.execute(select(PaperFill))).scalars()}
    for o in orders:
        if o.status == "filled":
            assert fills[o.client_order_id].amount == o.filled and fills[o.client_order_id].price == o.price


async def test_duplicate_and_stale_candles_are_discarded(platform, sf, nc) -> None:  # type: ignore[no-untyped-def]
    _, _, core = platform
    await make_assignment(sf, trader=False)  # decisions only: no exchange in this test
    await core.start()
    js = nc.jetstream()
    base = 1_700_000_040_000 - 1_700_000_040_000 % 60_000

    def candle(t: int, close: float = 100.0) -> bytes:
        return m.encode(
            m.Candle(
                exchange="sim",
                symbol="BTC/USD",
                tf="1m",
                time=t,
                open=100,
                high=101,
                low=99,
                close=close,
                volume=1,
            )
        )

    for t in (base, base + 60_000, base + 60_000, base, base + 120_000):
        await js.publish(subjects.md_candle("sim", "BTC/USD", "1m"), candle(t))
    bad = m.Candle(
        exchange="sim",
        symbol="BTC/USD",
        tf="1m",
        time=base + 180_000,
        open=100,
        high=90,
        low=99,
        close=100,
        volume=1,
    )
    await js.publish(subjects.md_candle("sim", "BTC/USD", "1m"), m.encode(bad))

    async def three() -> bool:
        return core.processed >= 3 and await count(sf, Evaluation) >= 3

    await wait_for(three)
    await asyncio.sleep(0.5)
    assert await count(sf, CandleRow, CandleRow.tf == "1m") == 3
    assert await count(sf, Evaluation) == 3


async def test_a_changed_ack_wait_reaches_the_durable_consumer_core_finds(settings, sf, nc) -> None:  # type: ignore[no-untyped-def]
    """The consumer outlives core: one made under the old 60 s would go on redelivering a dead core's
    candle a minute late, behind the next one."""
    js = nc.jetstream()
    first = CoreService(settings.model_copy(update={"core_ack_wait_s": 60}), nc, js, sf)
    await first.start()
    await first.stop()
    assert (await js.consumer_info(subjects.MD_STREAM, subjects.CORE_CONSUMER)).config.ack_wait == 60
    again = CoreService(settings.model_copy(update={"core_ack_wait_s": 15}), nc, js, sf)
    await again.start()
    try:
        assert (await js.consumer_info(subjects.MD_STREAM, subjects.CORE_CONSUMER)).config.ack_wait == 15
    finally:
        await again.stop()
