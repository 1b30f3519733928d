"""Core checks, for every order, what its memory may have missed: whose account it is, and its limits now.

Each test leaves core's in-memory index as it was before a change made behind its back (no event), which
is what a lost or late event looks like; the order must follow the database, never the memory.
"""

from __future__ import annotations

from decimal import Decimal

from sqlalchemy import delete, select, update

from tradewind.bus import messages as m
from tradewind.storage.models import Assignment, Evaluation, Order, Trader

from .conftest import make_assignment
from .test_trade import FakeExchange, candle, desk_for

LONG = "long"


def long_for(a: Assignment) -> m.EvalOutcome:
    return m.EvalOutcome(assignment_id=a.id, status="ok", position=LONG)


async def orders(sf) -> list[Order]:  # type: ignore[no-untyped-def]
    async with sf() as s:
        return list((await s.execute(select(Order).order_by(Order.id))).scalars())


async def note_of(sf, assignment_id: int) -> str | None:  # type: ignore[no-untyped-def]
    async with sf() as s:
        return (
            await s.execute(select(Evaluation.note).where(Evaluation.assignment_id == assignment_id))
        ).scalar_one()


async def test_an_assignment_linked_to_someone_else_s_account_never_orders_on_it(settings, nc, sf) -> None:  # type: ignore[no-untyped-def]
    exchange = FakeExchange(nc)
    await exchange.start()
    mallory = await make_assignment(sf, email="mallory@example.com")
    bob = await make_assignment(sf, email="bob@example.com")
    async with sf() as s:  # however it came about, the link points at bob's account
        await s.execute(update(Assignment).where(Assignment.id == mallory.id).values(trader_id=bob.trader_id))
        await s.commit()
    desk, index = await desk_for(settings, nc, sf)
    await desk.handle(candle(60_000), [(index.by_id[mallory.id], long_for(mallory))])
    await desk.drain()
    assert exchange.calls == 0 and await orders(sf) == []
    assert "does not belong" in (await note_of(sf, mallory.id) or "")


async def test_a_deleted_account_is_not_traded_on_by_a_stale_index(settings, nc, sf) -> None:  # type: ignore[no-untyped-def]
    exchange = FakeExchange(nc)
    await exchange.start()
    mallory = await make_assignment(sf, email="mallory@example.com")
    desk, index = await desk_for(settings, nc, sf)  # the index still holds mallory's account
    async with sf() as s:
        await s.execute(delete(Trader).where(Trader.id == mallory.trader_id))
        await s.commit()
    bob = await make_assignment(sf, email="bob@example.com")
    assert bob.trader_id != mallory.trader_id  # ids are never handed out twice
    await desk.handle(candle(60_000), [(index.by_id[mallory.id], long_for(mallory))])
    await desk.drain()
    assert exchange.calls == 0 and await orders(sf) == []


async def test_a_paused_assignment_does_not_order_before_core_reloads(settings, nc, sf) -> None:  # type: ignore[no-untyped-def]
    exchange = FakeExchange(nc)
    await exchange.start()
    a = await make_assignment(sf)
    desk, index = await desk_for(settings, nc, sf)
    async with sf() as s:
        await s.execute(
            update(Assignment).where(Assignment.id == a.id).values(enabled=False, paused_reason="paused")
        )
        await s.commit()
    await desk.handle(candle(60_000), [(index.by_id[a.id], long_for(a))])
    await desk.drain()
    assert exchange.calls == 0 and await orders(sf) == []


async def test_a_lowered_order_limit_holds_for_the_very_next_order(settings, nc, sf) -> None:  # type: ignore[no-untyped-def]
    exchange = FakeExchange(nc)
    await exchange.start()
    a = await make_assignment(sf)
    async with sf() as s:
        await s.execute(
            update(Trader).where(Trader.id == a.trader_id).values(max_order_notional=Decimal("5"))
        )
        await s.commit()
    desk, index = await desk_for(settings, nc, sf)
    async with sf() as s:  # lowered after core loaded it, and nobody told core
        await s.execute(
            update(Trader).where(Trader.id == a.trader_id).values(max_order_notional=Decimal("2"))
        )
        await s.commit()
    await desk.handle(candle(60_000, close=100.0), [(index.by_id[a.id], long_for(a))])
    await desk.drain()
    (order,) = await orders(sf)
    assert 0 < order.amount * 100 <= 2
    assert "max_order_notional 2" in (await note_of(sf, a.id) or "")


async def test_max_position_holds_for_the_account_across_its_assignments(settings, nc, sf) -> None:  # type: ignore[no-untyped-def]
    exchange = FakeExchange(nc)
    await exchange.start()
    first = await make_assignment(sf)
    async with sf() as s:
        await s.execute(update(Trader).where(Trader.id == first.trader_id).values(max_position=Decimal("10")))
        for _ in range(2):
            s.add(
                Assignment(
                    owner_id=first.owner_id,
                    strategy_id=first.strategy_id,
                    market_id=first.market_id,
                    timeframe="1m",
                    trader_id=first.trader_id,
                    allocation=Decimal("1000"),
                    params={},
                )
            )
        await s.commit()
    desk, index = await desk_for(settings, nc, sf)
    states = list(index.by_id.values())
    assert len(states) == 3
    await desk.handle(
        candle(60_000),
        [(st, m.EvalOutcome(assignment_id=st.id, status="ok", position=LONG)) for st in states],
    )
    await desk.drain()
    held = sum((o.filled for o in await orders(sf)), Decimal(0))
    assert 0 < held * 100 <= 10  # one account, three assignments: 10 in all, not 10 each
    # The next candle adds nothing: the account is at its limit (the fills are booked).
    for st in states:
        st.position_qty = Decimal(0)  # as if each wanted in again
    await desk.handle(
        candle(120_000),
        [(st, m.EvalOutcome(assignment_id=st.id, status="ok", position=LONG)) for st in states],
    )
    await desk.drain()
    placed = [o for o in await orders(sf) if o.candle_time == 120_000 and o.status != "rejected"]
    assert placed == []
