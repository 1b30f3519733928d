"""storage.retention: evaluations that led to no order go after their days, those that led to one stay
with it, and so do orders and recent rows; sampled ticks go after theirs. On SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from sqlalchemy import func, select

from tradewind.storage.models import Assignment, Evaluation, Market, Order, Strategy, TickRow, Trader, User
from tradewind.storage.retention import Policy, prune

NOW = dt.datetime(2026, 12, 4, 12, 0, tzinfo=dt.UTC)
MIN = 60_000


async def seed(sf, days: int = 20, per_day: int = 30) -> tuple[set[tuple[int, int]], int]:  # type: ignore[no-untyped-def]
    """Two assignments evaluated ``per_day`` times a day for ``days`` days (oldest first, as ids grow);
    every 7th evaluation of the first one led to an order. Returns the (assignment, candle) pairs that
    led to orders, and the market."""
    async with sf() as s:
        user = User(email="keep@example.com", password_hash="!")
        s.add(user)
        await s.flush()
        strategy = Strategy(owner_id=user.id, name="s")
        market = Market(exchange="sim", symbol="BTC/USD")
        trader = Trader(owner_id=user.id, name="paper", exchange="sim", paper=True)
        s.add_all([strategy, market, trader])
        await s.flush()
        a1, a2 = (
            Assignment(
                owner_id=user.id,
                strategy_id=strategy.id,
                market_id=market.id,
                timeframe="1m",
                trader_id=trader.id,
                params={},
            )
            for _ in range(2)
        )
        s.add_all([a1, a2])
        await s.flush()
        ordered: set[tuple[int, int]] = set()
        start = NOW - dt.timedelta(days=days)
        for i in range(days * per_day):
            at = start + dt.timedelta(days=i / per_day)
            candle = int(at.timestamp() * 1000) // MIN * MIN
            if i % 7 == 0:  # the order is written before its evaluation
                s.add(
                    Order(
                        owner_id=user.id,
                        assignment_id=a1.id,
                        trader_id=trader.id,
                        client_order_id=f"o{i}",
                        exchange="sim",
                        symbol="BTC/USD",
                        side="buy",
                        amount=Decimal(1),
                        status="filled",
                        candle_time=candle,
                        created_at=at - dt.timedelta(seconds=1),
                    )
                )
                await s.flush()
                ordered.add((a1.id, candle))
            for a in (a1, a2):
                s.add(
                    Evaluation(
                        assignment_id=a.id, candle_time=candle, status="ok", position="long", created_at=at
                    )
                )
            await s.flush()
        s.add_all(
            TickRow(
                market_id=market.id,
                time=int((NOW - dt.timedelta(hours=h)).timestamp() * 1000),
                bid=1.0,
                ask=1.1,
            )
            for h in range(0, 24 * days, 6)
        )
        await s.commit()
        return ordered, market.id


async def test_old_evaluations_without_orders_go_and_everything_else_stays(sf) -> None:  # type: ignore[no-untyped-def]
    ordered, _ = await seed(sf)
    async with sf() as s:
        before = (await s.execute(select(func.count()).select_from(Evaluation))).scalar_one()
        orders_before = (await s.execute(select(func.count()).select_from(Order))).scalar_one()
    done = await prune(sf, Policy(evaluations_days=7, ticks_days=10, batch=50, pause_s=0), now=NOW)
    cutoff = NOW - dt.timedelta(days=7)
    async with sf() as s:
        kept = (
            await s.execute(select(Evaluation.assignment_id, Evaluation.candle_time, Evaluation.created_at))
        ).all()
        orders_after = (await s.execute(select(func.count()).select_from(Order))).scalar_one()
        ticks = list((await s.execute(select(TickRow.time))).scalars())
    old = [k for k in kept if k.created_at < cutoff]
    assert old and all((k.assignment_id, k.candle_time) in ordered for k in old)  # only those with an order
    assert {(a, c) for a, c, _ in kept} >= ordered  # every evaluation that led to an order is there
    recent = sum(1 for k in kept if k.created_at >= cutoff)
    assert recent == 2 * 7 * 30  # the last 7 days in full, both assignments
    assert done.evaluations == before - len(kept) > 0
    assert orders_after == orders_before  # orders are never pruned
    assert ticks and min(ticks) >= (NOW - dt.timedelta(days=10)).timestamp() * 1000
    assert done.ticks == 20 * 4 - len(ticks)
    again = await prune(sf, Policy(evaluations_days=7, ticks_days=10, batch=50, pause_s=0), now=NOW)
    assert (again.evaluations, again.ticks) == (0, 0)  # nothing left to do


async def test_zero_days_keeps_everything(sf) -> None:  # type: ignore[no-untyped-def]
    await seed(sf, days=3, per_day=5)
    done = await prune(sf, Policy(evaluations_days=0, ticks_days=0), now=NOW)
    assert (done.evaluations, done.ticks) == (0, 0)
    async with sf() as s:
        assert (await s.execute(select(func.count()).select_from(Evaluation))).scalar_one() == 30
