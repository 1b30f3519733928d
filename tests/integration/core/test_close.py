"""Closing a position by hand (core.close): one sell at the market, through core's order path, only for
the asker's own assignment and account, never twice."""

from __future__ import annotations

import asyncio
from decimal import Decimal

from sqlalchemy import select, update

from tradewind.bus import messages as m
from tradewind.bus import subjects
from tradewind.core.close import EXIT_REASON, Closer
from tradewind.storage.models import Assignment, Order

from .conftest import make_assignment
from .test_trade import FakeExchange, candle, desk_for


async def holding(settings, nc, sf, exchange, **kw):  # type: ignore[no-untyped-def]
    """An assignment that bought on a "long" decision, and the desk that bought it."""
    a = await make_assignment(sf, **kw)
    desk, index = await desk_for(settings, nc, sf)
    await desk.handle(
        candle(60_000), [(index.by_id[a.id], m.EvalOutcome(assignment_id=a.id, status="ok", position="long"))]
    )
    await desk.drain()
    async with sf() as s:
        held = (await s.get(Assignment, a.id)).position_qty
    assert held > 0
    return a, desk, index, held


async def pause(sf, desk, a) -> None:  # type: ignore[no-untyped-def]
    async with sf() as s:
        await s.execute(
            update(Assignment)
            .where(Assignment.id == a.id)
            .values(enabled=False, paused_reason="paused by you")
        )
        await s.commit()
    await desk.index.load(sf)
    assert a.id not in desk.index.by_id


async def sells(sf) -> list[Order]:  # type: ignore[no-untyped-def]
    async with sf() as s:
        return list((await s.execute(select(Order).where(Order.side == "sell").order_by(Order.id))).scalars())


async def test_a_paused_assignments_position_is_sold_once_at_the_market(settings, nc, sf) -> None:  # type: ignore[no-untyped-def]
    exchange = FakeExchange(nc)
    await exchange.start()
    a, desk, _, held = await holding(settings, nc, sf, exchange)
    await pause(sf, desk, a)
    closer = Closer(desk)
    reply = await closer.close(m.ClosePositions(owner_id=a.owner_id, assignment_ids=[a.id]))
    (result,) = reply.results
    assert result.status == "placed" and result.amount == format(held, "f")
    await desk.drain()
    (sell,) = await sells(sf)
    assert (sell.client_order_id, sell.status, sell.type, sell.exit_reason) == (
        result.client_order_id,
        "filled",
        "market",
        EXIT_REASON,
    )
    assert sell.filled == held and sell.pnl is not None
    async with sf() as s:
        after = await s.get(Assignment, a.id)
    assert after.position_qty == 0 and after.enabled is False  # closed, and still paused
    again = await closer.close(m.ClosePositions(owner_id=a.owner_id, assignment_ids=[a.id]))
    assert again.results[0].status == "flat"
    assert len(await sells(sf)) == 1


async def test_closing_twice_while_the_sell_is_on_its_way_places_one_order(settings, nc, sf) -> None:  # type: ignore[no-untyped-def]
    exchange = FakeExchange(nc)
    await exchange.start()
    a, desk, _, _ = await holding(settings, nc, sf, exchange)
    await pause(sf, desk, a)
    exchange.outcome = "timeout"  # the sell is placed, its answer never comes: its outcome stays unknown
    closer = Closer(desk)
    req = m.ClosePositions(owner_id=a.owner_id, assignment_ids=[a.id])
    first, second = await asyncio.gather(closer.close(req), closer.close(req))  # a double click
    await desk.drain()
    third = await closer.close(req)  # a retry after a timeout
    assert [first.results[0].status, second.results[0].status, third.results[0].status] == [
        "placed",
        "closing",
        "closing",
    ]
    assert len({r.results[0].client_order_id for r in (first, second, third)}) == 1
    assert exchange.calls == 2  # the entry and one sell
    assert len(await sells(sf)) == 1


async def test_a_refused_close_can_be_tried_again_under_a_new_id(settings, nc, sf) -> None:  # type: ignore[no-untyped-def]
    exchange = FakeExchange(nc)
    await exchange.start()
    a, desk, _, held = await holding(settings, nc, sf, exchange)
    await pause(sf, desk, a)
    closer = Closer(desk)
    req = m.ClosePositions(owner_id=a.owner_id, assignment_ids=[a.id])
    exchange.outcome = "rejected"
    first = (await closer.close(req)).results[0]
    await desk.drain()
    exchange.outcome = "filled"
    second = (await closer.close(req)).results[0]
    await desk.drain()
    assert first.status == second.status == "placed"
    assert second.client_order_id == f"{first.client_order_id}-1"
    assert [o.status for o in await sells(sf)] == ["rejected", "filled"]
    async with sf() as s:
        assert (await s.get(Assignment, a.id)).position_qty == 0
    assert held > 0


async def test_a_close_cancels_the_positions_resting_orders_in_the_same_call(settings, nc, sf) -> None:  # type: ignore[no-untyped-def]
    exchange = FakeExchange(nc)
    await exchange.start()
    a, desk, _, _ = await holding(settings, nc, sf, exchange)
    await pause(sf, desk, a)
    async with sf() as s:
        s.add(
            Order(
                owner_id=a.owner_id,
                assignment_id=a.id,
                trader_id=a.trader_id,
                client_order_id="its-stop",
                exchange="sim",
                symbol="BTC/USD",
                side="sell",
                amount=Decimal("1"),
                status="open",
                type="stop",
                stop_price=Decimal("90"),
            )
        )
        await s.commit()
    result = (await Closer(desk).close(m.ClosePositions(owner_id=a.owner_id, assignment_ids=[a.id]))).results[
        0
    ]
    await desk.drain()
    assert exchange.orders[result.client_order_id or ""].cancels == ["its-stop"]


async def test_a_running_assignments_decisions_wait_for_its_close(settings, nc, sf) -> None:  # type: ignore[no-untyped-def]
    exchange = FakeExchange(nc, outcome="timeout")
    a = await make_assignment(sf)
    await exchange.start()
    desk, index = await desk_for(settings, nc, sf)
    async with sf() as s:  # it holds something already (booked earlier)
        await s.execute(
            update(Assignment)
            .where(Assignment.id == a.id)
            .values(position_qty=Decimal("2"), entry_cost=Decimal("200"))
        )
        await s.commit()
    st = index.by_id[a.id]
    st.position_qty = Decimal("2")
    result = (await Closer(desk).close(m.ClosePositions(owner_id=a.owner_id, assignment_ids=[a.id]))).results[
        0
    ]
    assert result.status == "placed" and result.client_order_id in st.pending
    # the strategy's own exit on the next candle is not a second sell while the close is on its way
    await desk.handle(
        candle(120_000), [(st, m.EvalOutcome(assignment_id=a.id, status="ok", position="short"))]
    )
    await desk.drain()
    assert [o.client_order_id for o in await sells(sf)] == [result.client_order_id]


async def test_a_close_arriving_while_the_strategy_exits_makes_one_sell(settings, nc, sf) -> None:  # type: ignore[no-untyped-def]
    """A close that arrives while core turns the strategy's own exit into an order: one of the two sells goes
    out (the close, when it came before the exit's intent was stored), never both."""
    exchange = FakeExchange(nc, outcome="timeout")
    a = await make_assignment(sf)
    await exchange.start()
    desk, index = await desk_for(settings, nc, sf)
    async with sf() as s:
        await s.execute(
            update(Assignment)
            .where(Assignment.id == a.id)
            .values(position_qty=Decimal("2"), entry_cost=Decimal("200"))
        )
        await s.commit()
    st = index.by_id[a.id]
    st.position_qty = Decimal("2")
    exit_ = desk.handle(
        candle(120_000), [(st, m.EvalOutcome(assignment_id=a.id, status="ok", position="short"))]
    )
    closing = Closer(desk).close(m.ClosePositions(owner_id=a.owner_id, assignment_ids=[a.id]))
    _, reply = await asyncio.gather(exit_, closing)
    await desk.drain()
    (sell,) = await sells(sf)
    result = reply.results[0]
    if result.status == "placed":
        assert sell.client_order_id == result.client_order_id and sell.exit_reason == EXIT_REASON
    else:
        assert result.status == "refused" and "on its way" in (result.reason or "")
        assert sell.exit_reason == "signal"


# -- someone else's position ---------------------------------------------------------------------------


async def test_another_user_cannot_close_a_position_over_the_bus(settings, nc, sf) -> None:  # type: ignore[no-untyped-def]
    """Mallory publishes the close request herself, naming alice's assignment: core refuses, nothing is sold."""
    exchange = FakeExchange(nc)
    await exchange.start()
    alice, desk, _, held = await holding(settings, nc, sf, exchange, email="alice@example.com")
    mallory = await make_assignment(sf, email="mallory@example.com")
    await nc.subscribe(subjects.CORE_CLOSE, queue=subjects.CORE_QUEUE, cb=Closer(desk).on_request)
    calls = exchange.calls

    async def ask(body: m.ClosePositions) -> m.PositionsClosed:
        msg = await nc.request(subjects.CORE_CLOSE, m.encode(body), timeout=5)
        return m.decode(msg.data, m.PositionsClosed)

    named = await ask(m.ClosePositions(owner_id=mallory.owner_id, assignment_ids=[alice.id]))
    assert [(r.assignment_id, r.status) for r in named.results] == [(alice.id, "not_found")]
    everything = await ask(m.ClosePositions(owner_id=mallory.owner_id))  # "flatten all" as mallory
    assert everything.results == []
    garbage = await nc.request(subjects.CORE_CLOSE, b"\x93not a message", timeout=5)
    assert m.decode(garbage.data, m.PositionsClosed).error
    await desk.drain()
    assert exchange.calls == calls and await sells(sf) == []
    async with sf() as s:
        assert (await s.get(Assignment, alice.id)).position_qty == held


async def test_an_assignment_linked_to_someone_elses_account_is_not_closed_on_it(settings, nc, sf) -> None:  # type: ignore[no-untyped-def]
    """However mallory's assignment came to point at alice's account, closing it sells nothing of alice's."""
    exchange = FakeExchange(nc)
    await exchange.start()
    alice, desk, _, _ = await holding(settings, nc, sf, exchange, email="alice@example.com")
    mallory = await make_assignment(sf, email="mallory@example.com")
    async with sf() as s:
        await s.execute(
            update(Assignment)
            .where(Assignment.id == mallory.id)
            .values(trader_id=alice.trader_id, position_qty=Decimal("1"))
        )
        await s.commit()
    calls = exchange.calls
    reply = await Closer(desk).close(m.ClosePositions(owner_id=mallory.owner_id, assignment_ids=[mallory.id]))
    await desk.drain()
    assert reply.results[0].status == "refused" and "does not belong" in (reply.results[0].reason or "")
    assert exchange.calls == calls and await sells(sf) == []


async def test_flatten_all_closes_every_position_of_the_asker_and_nobody_elses(settings, nc, sf) -> None:  # type: ignore[no-untyped-def]
    exchange = FakeExchange(nc)
    await exchange.start()
    alice, desk, _, _ = await holding(settings, nc, sf, exchange, email="alice@example.com")
    bob = await make_assignment(sf, email="bob@example.com")
    async with sf() as s:
        await s.execute(
            update(Assignment)
            .where(Assignment.id == bob.id)
            .values(position_qty=Decimal("1"), entry_cost=Decimal("100"))
        )
        await s.commit()
    reply = await Closer(desk).close(m.ClosePositions(owner_id=alice.owner_id, why="flatten"))
    await desk.drain()
    assert [(r.assignment_id, r.status) for r in reply.results] == [(alice.id, "placed")]
    assert [o.assignment_id for o in await sells(sf)] == [alice.id]
    async with sf() as s:
        assert (await s.get(Assignment, bob.id)).position_qty == Decimal("1")
