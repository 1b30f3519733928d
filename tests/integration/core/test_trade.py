"""core.trade against a real bus: orders are never doubled, unknown outcomes are reconciled, losses pause."""

from __future__ import annotations

import asyncio
from decimal import Decimal

from sqlalchemy import select

from tradewind.bus import messages as m
from tradewind.bus import subjects
from tradewind.core.decide import AssignmentIndex
from tradewind.core.trade import STALE_NOTE, TradeDesk
from tradewind.storage.models import Assignment, Evaluation, Order, Trader

from .conftest import make_assignment


def candle(t: int, close: float = 100.0) -> m.Candle:
    return m.Candle(
        exchange="sim",
        symbol="BTC/USD",
        tf="1m",
        time=t,
        open=close,
        high=close,
        low=close,
        close=close,
        volume=1,
        recv_ns=1,
    )


class FakeExchange:
    """Answers balance and order requests like the sim would, with a scripted order outcome."""

    def __init__(self, nc, outcome: str = "filled", price: str = "100") -> None:  # type: ignore[no-untyped-def]
        self.nc, self.outcome, self.price = nc, outcome, price
        self.orders: dict[str, m.PlaceOrder] = {}
        self.calls = 0

    async def start(self) -> None:
        await self.nc.subscribe(subjects.exchange_balances("sim"), cb=self.balances)
        await self.nc.subscribe(subjects.exchange_orders("sim"), cb=self.orders_)
        await self.nc.subscribe(subjects.exchange_order_status("sim"), cb=self.status)

    async def balances(self, msg) -> None:  # type: ignore[no-untyped-def]
        req = m.decode(msg.data, m.BalancesRequest)
        await msg.respond(m.encode(m.BalancesReply(balances={t: {"USD": "10000"} for t in req.trader_ids})))

    async def orders_(self, msg) -> None:  # type: ignore[no-untyped-def]
        acks = []
        for req in m.decode(msg.data, m.PlaceOrders).orders:
            self.calls += 1
            self.orders.setdefault(req.client_order_id, req)
            if self.outcome == "rejected":
                acks.append(
                    m.OrderAck(
                        client_order_id=req.client_order_id,
                        status="rejected",
                        reason="EXCHANGE: minimum size",
                    )
                )
            else:
                acks.append(self._filled(req))
        if self.outcome == "timeout":
            return  # placed, but the answer never comes back
        await msg.respond(m.encode(m.OrderAcks(acks=acks)))

    def _filled(self, req: m.PlaceOrder) -> m.OrderAck:
        return m.OrderAck(
            client_order_id=req.client_order_id,
            status="filled",
            filled=req.amount,
            price=self.price,
            fee="0.1",
        )

    async def status(self, msg) -> None:  # type: ignore[no-untyped-def]
        req = m.decode(msg.data, m.OrderStatusRequest)
        placed = self.orders.get(req.client_order_id)
        ack = (
            self._filled(placed)
            if placed
            else m.OrderAck(client_order_id=req.client_order_id, status="not_found")
        )
        await msg.respond(m.encode(ack))


async def desk_for(settings, nc, sf):  # type: ignore[no-untyped-def]
    index = AssignmentIndex()
    await index.load(sf)
    desk = TradeDesk(settings, nc, sf, index)
    desk.order_timeout_s = 0.5
    return desk, index


async def test_a_timed_out_order_that_was_placed_is_found_once_by_reconciliation(settings, nc, sf) -> None:  # type: ignore[no-untyped-def]
    exchange = FakeExchange(nc, outcome="timeout")
    await exchange.start()
    a = await make_assignment(sf)
    desk, index = await desk_for(settings, nc, sf)
    st = index.by_id[a.id]
    ok = m.EvalOutcome(assignment_id=a.id, status="ok", position="long")
    await desk.handle(candle(60_000), [(st, ok)])
    await desk.drain()
    await desk.handle(candle(60_000), [(st, ok)])  # the same decision again (a redelivered candle)
    await desk.handle(candle(120_000), [(st, ok)])  # next candle: an order is still in flight, nothing new
    assert exchange.calls == 1
    async with sf() as s:
        (order,) = (await s.execute(select(Order))).scalars().all()
    assert order.status == "pending"
    assert await desk.reconcile(min_age_s=0) == 1
    async with sf() as s:
        order = (await s.execute(select(Order))).scalar_one()
        assignment = await s.get(Assignment, a.id)
    assert order.status == "filled" and assignment.position_qty == order.filled > 0
    assert exchange.calls == 1


async def test_an_order_the_exchange_never_got_is_marked_not_placed_and_not_retried(settings, nc, sf) -> None:  # type: ignore[no-untyped-def]
    exchange = FakeExchange(nc)
    await exchange.start()
    a = await make_assignment(sf)
    desk, _ = await desk_for(settings, nc, sf)
    async with sf() as s:
        s.add(
            Order(
                owner_id=a.owner_id,
                assignment_id=a.id,
                trader_id=a.trader_id,
                client_order_id="tw-lost",
                exchange="sim",
                symbol="BTC/USD",
                side="buy",
                amount=Decimal("1"),
                status="pending",
            )
        )
        await s.commit()
    await desk.reconcile(min_age_s=0)
    async with sf() as s:
        order = (await s.execute(select(Order).where(Order.client_order_id == "tw-lost"))).scalar_one()
    assert order.status == "not_placed" and exchange.calls == 0


async def test_a_rejection_is_recorded_with_its_reason(settings, nc, sf) -> None:  # type: ignore[no-untyped-def]
    exchange = FakeExchange(nc, outcome="rejected")
    await exchange.start()
    a = await make_assignment(sf)
    desk, index = await desk_for(settings, nc, sf)
    await desk.handle(
        candle(60_000), [(index.by_id[a.id], m.EvalOutcome(assignment_id=a.id, status="ok", position="long"))]
    )
    await desk.drain()
    async with sf() as s:
        order = (await s.execute(select(Order))).scalar_one()
    assert order.status == "rejected" and order.reason == "EXCHANGE: minimum size"
    assert exchange.calls == 1 and not index.by_id[a.id].pending


async def test_a_losing_round_trip_past_the_daily_limit_pauses_the_account(settings, nc, sf) -> None:  # type: ignore[no-untyped-def]
    exchange = FakeExchange(nc, price="100")
    await exchange.start()
    a = await make_assignment(sf)
    async with sf() as s:
        trader = await s.get(Trader, a.trader_id)
        trader.daily_loss_limit = Decimal("5")
        await s.commit()
    desk, index = await desk_for(settings, nc, sf)
    st = index.by_id[a.id]
    await desk.handle(candle(60_000), [(st, m.EvalOutcome(assignment_id=a.id, status="ok", position="long"))])
    await desk.drain()
    # the buy's fill booked before the next decision (under load it can come after drain() returns)
    for _ in range(200):
        async with sf() as s:
            if (await s.execute(select(Order.status).where(Order.side == "buy"))).scalar_one() == "filled":
                break
        await asyncio.sleep(0.02)
    exchange.price = "90"  # a 10% drop on ~1000 USD: a loss well past 5
    await desk.handle(
        candle(120_000, 90), [(st, m.EvalOutcome(assignment_id=a.id, status="ok", position="short"))]
    )
    await desk.drain()
    async with sf() as s:
        assignment = await s.get(Assignment, a.id)
        sell = (await s.execute(select(Order).where(Order.side == "sell"))).scalar_one()
    assert sell.pnl is not None and sell.pnl < -5
    assert assignment.realized_pnl == sell.pnl and assignment.position_qty == 0 and assignment.entry_cost == 0
    assert not assignment.enabled and "daily loss limit" in assignment.paused_reason
    assert a.id not in index.by_id


async def test_repeated_failures_pause_the_assignment_with_the_reason(settings, nc, sf) -> None:  # type: ignore[no-untyped-def]
    a = await make_assignment(sf)
    desk, index = await desk_for(settings, nc, sf)
    st = index.by_id[a.id]
    for i in range(settings.eval_pause_after_failures):
        err = m.EvalOutcome(
            assignment_id=a.id, status="error", error="strategy 's': instruction limit reached at line 3"
        )
        await desk.handle(candle(60_000 * (i + 1)), [(st, err)])
        await desk.drain()
    async with sf() as s:
        assignment = await s.get(Assignment, a.id)
    assert not assignment.enabled and "instruction limit" in assignment.paused_reason


async def test_a_chunk_of_orders_is_booked_together_and_once(settings, nc, sf) -> None:  # type: ignore[no-untyped-def]
    exchange = FakeExchange(nc)
    await exchange.start()
    assignments = [await make_assignment(sf, email=f"u{i}@example.com") for i in range(5)]
    desk, index = await desk_for(settings, nc, sf)
    results = [
        (index.by_id[a.id], m.EvalOutcome(assignment_id=a.id, status="ok", position="long"))
        for a in assignments
    ]
    await desk.handle(candle(60_000), results)
    await desk.drain()
    async with sf() as s:
        orders = (await s.execute(select(Order))).scalars().all()
        held = [(await s.get(Assignment, a.id)).position_qty for a in assignments]
    assert len(orders) == 5 and {o.status for o in orders} == {"filled"}
    assert all(q > 0 for q in held) and all(o.latency_ms is not None for o in orders)
    before = held
    # the same fills reported again (an exchange's late updates) change nothing
    await desk.apply(
        [
            (
                o.client_order_id,
                m.OrderAck(
                    client_order_id=o.client_order_id,
                    status="filled",
                    filled=format(o.filled, "f"),
                    price="100",
                    fee="0.1",
                ),
                None,
            )
            for o in orders
        ]
    )
    async with sf() as s:
        assert [(await s.get(Assignment, a.id)).position_qty for a in assignments] == before


async def test_a_decision_handled_again_stores_no_second_intent_and_places_no_second_order(
    settings, nc, sf
) -> None:  # type: ignore[no-untyped-def]
    """A redelivered candle decides again: the batch insert meets the stored intent, falls back to the
    insert that skips it, and only the new assignment's order goes out."""
    exchange = FakeExchange(nc)
    await exchange.start()
    first, second = [await make_assignment(sf, email=f"r{i}@example.com") for i in range(2)]
    desk, index = await desk_for(settings, nc, sf)
    long = [
        (index.by_id[a.id], m.EvalOutcome(assignment_id=a.id, status="ok", position="long"))
        for a in (first, second)
    ]
    await desk.handle(candle(60_000), long[:1])
    await desk.drain()
    async with sf() as s:  # as after a crash before the fill was booked: core believes it holds nothing
        await s.execute(Assignment.__table__.update().values(position_qty=0))
        await s.commit()
    index.by_id[first.id].position_qty = Decimal(0)
    await desk.handle(candle(60_000), long)
    await desk.drain()
    async with sf() as s:
        orders = (await s.execute(select(Order).order_by(Order.id))).scalars().all()
    assert [o.assignment_id for o in orders] == [first.id, second.id]
    assert exchange.calls == 2 and len(set(exchange.orders)) == 2


async def test_a_buy_whose_balance_is_unknown_is_rejected_with_the_reason_and_not_sent(
    settings, nc, sf
) -> None:  # type: ignore[no-untyped-def]
    exchange = FakeExchange(nc)
    exchange.balances = _balance_unknown  # type: ignore[method-assign]
    await exchange.start()
    a = await make_assignment(sf)
    desk, index = await desk_for(settings, nc, sf)
    await desk.handle(
        candle(60_000), [(index.by_id[a.id], m.EvalOutcome(assignment_id=a.id, status="ok", position="long"))]
    )
    await desk.drain()
    async with sf() as s:
        order = (await s.execute(select(Order))).scalar_one()
    assert order.status == "rejected" and "balance check failed" in (order.reason or "")
    assert exchange.calls == 0


async def _balance_unknown(msg) -> None:  # type: ignore[no-untyped-def]
    req = m.decode(msg.data, m.BalancesRequest)
    await msg.respond(m.encode(m.BalancesReply(errors={t: "rate limited" for t in req.trader_ids})))


async def test_a_decision_older_than_one_acted_on_is_recorded_and_not_traded(settings, nc, sf) -> None:  # type: ignore[no-untyped-def]
    """After a failover the stream hands the dead core's candle back only after the standby has handled
    the next one: that late 'long' must not buy against the newer 'short'."""
    exchange = FakeExchange(nc)
    await exchange.start()
    a = await make_assignment(sf, email="late@example.com")
    desk, index = await desk_for(settings, nc, sf)
    st = index.by_id[a.id]
    await desk.handle(
        candle(120_000), [(st, m.EvalOutcome(assignment_id=a.id, status="ok", position="short"))]
    )
    await desk.handle(candle(60_000), [(st, m.EvalOutcome(assignment_id=a.id, status="ok", position="long"))])
    await desk.drain()
    async with sf() as s:
        assert (await s.execute(select(Order))).scalars().all() == []
        evaluated = sorted(
            (await s.execute(select(Evaluation.candle_time, Evaluation.position, Evaluation.note))).all()
        )
    assert evaluated == [(60_000, "long", STALE_NOTE), (120_000, "short", None)]
    # The next candle's decision trades as usual, and the index reloaded keeps what it had acted on.
    await index.load(sf)
    st = index.by_id[a.id]
    await desk.handle(
        candle(180_000), [(st, m.EvalOutcome(assignment_id=a.id, status="ok", position="long"))]
    )
    await desk.handle(
        candle(150_000), [(st, m.EvalOutcome(assignment_id=a.id, status="ok", position="short"))]
    )
    await desk.drain()
    async with sf() as s:
        orders = (await s.execute(select(Order.candle_time, Order.side))).all()
    assert [tuple(o) for o in orders] == [(180_000, "buy")]


async def test_a_candle_whose_intent_an_older_core_stored_places_nothing_after_the_upgrade(
    settings, nc, sf
) -> None:  # type: ignore[no-untyped-def]
    """Issue 17 changed the client order id's form (led by the candle now): an intent stored under the old
    form just before the upgrade, its candle delivered again after it, is found and not placed twice."""
    exchange = FakeExchange(nc, outcome="timeout")
    await exchange.start()
    a = await make_assignment(sf)
    t = 1_764_806_400_000  # 2026-12-04 00:00 UTC
    async with sf() as s:
        s.add(
            Order(
                owner_id=a.owner_id,
                assignment_id=a.id,
                trader_id=a.trader_id,
                client_order_id=f"tw-{a.id}-{t // 1000}-l",  # what the core before the upgrade stored
                exchange="sim",
                symbol="BTC/USD",
                side="buy",
                amount=Decimal("0.01"),
                status="pending",
                candle_time=t,
            )
        )
        await s.commit()
    desk, index = await desk_for(settings, nc, sf)  # the upgraded core, started afresh
    st = index.by_id[a.id]
    ok = m.EvalOutcome(assignment_id=a.id, status="ok", position="long")
    await desk.handle(candle(t), [(st, ok)])  # the candle, redelivered
    await desk.drain()
    async with sf() as s:
        orders = (await s.execute(select(Order.client_order_id))).scalars().all()
    assert orders == [f"tw-{a.id}-{t // 1000}-l"] and exchange.calls == 0
    assert not st.pending
    # A later candle trades under the new form as usual.
    await desk.handle(candle(t + 60_000), [(st, ok)])
    await desk.drain()
    assert list(exchange.orders) == [f"tw-{(t + 60_000) // 1000}-{a.id}-l"]
