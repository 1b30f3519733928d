"""An assignment's evaluations are read through ``ix_evaluations_hour`` (issue 17: no index leads with the
assignment): newest first, page after page, only the owner's; rows far back in time and rows of other
assignments in between are found or left out as they should be. On SQLite and PostgreSQL."""

from __future__ import annotations

from decimal import Decimal

from tradewind.storage.models import Assignment, Evaluation, Market, Order, Strategy, Trader, User
from tradewind.storage.repositories import Owned

HOUR = 3_600_000
NOW = 1_764_806_400_000  # 2026-12-04 00:00 UTC, in the partition of its month on PostgreSQL


async def seed(sf) -> tuple[int, int, int, list[int]]:  # type: ignore[no-untyped-def]
    """Alice's two assignments, evaluated every 20 minutes over 30 hours (interleaved), and one of the
    first's evaluations 40 days further back; Bob's assignment. Returns the ids of both users, of Alice's
    first assignment, and its evaluations' candle times, newest first."""
    async with sf() as s:
        alice, bob = (
            User(email="a@example.com", password_hash="!"),
            User(email="b@example.com", password_hash="!"),
        )
        s.add_all([alice, bob])
        await s.flush()
        market = Market(exchange="sim", symbol="BTC/USD")
        strategies = [Strategy(owner_id=u.id, name="s") for u in (alice, bob)]
        s.add_all([market, *strategies])
        await s.flush()
        a1, a2, b1 = (
            Assignment(
                owner_id=st.owner_id, strategy_id=st.id, market_id=market.id, timeframe="1m", params={}
            )
            for st in (strategies[0], strategies[0], strategies[1])
        )
        s.add_all([a1, a2, b1])
        await s.flush()
        old = NOW - 40 * 24 * HOUR
        times = [old] + [NOW - 30 * HOUR + i * 20 * 60_000 for i in range(90)]
        for t in times:
            for a in (a1, a2, b1):
                s.add(Evaluation(assignment_id=a.id, candle_time=t, status="ok", position="long"))
        await s.commit()
        return alice.id, bob.id, a1.id, sorted(times, reverse=True)


async def test_an_assignments_evaluations_come_newest_first_page_after_page(sf) -> None:  # type: ignore[no-untyped-def]
    alice, bob, a1, times = await seed(sf)
    async with sf() as s:
        repo = Owned(s, alice)
        first = await repo.evaluations(40, None, a1)
        assert [e.candle_time for e in first] == times[:40]
        assert {e.assignment_id for e in first} == {a1}
        second = await repo.evaluations(40, first[-1].id, a1)
        assert [e.candle_time for e in second] == times[40:80]
        rest = await repo.evaluations(40, second[-1].id, a1)
        assert [e.candle_time for e in rest] == times[80:]  # the one 40 days back too
        everything = await repo.evaluations(500, None, a1)
        assert [e.candle_time for e in everything] == times
        assert [e.id for e in everything] == sorted((e.id for e in everything), reverse=True)
        assert await Owned(s, bob).evaluations(500, None, a1) == []  # not Bob's
        assert len(await repo.evaluations(500)) == 2 * len(times)  # all of Alice's, no assignment named


async def test_an_assignments_orders_are_found_block_after_block(sf) -> None:  # type: ignore[no-untyped-def]
    """Orders of one assignment, by ``ix_orders_block`` (65,536 ids a block): newest first across blocks,
    page after page, its fills too; not another assignment's, not another user's."""
    alice, bob, a1, _ = await seed(sf)
    async with sf() as s:
        a2 = a1 + 1
        trader = Trader(owner_id=alice, name="paper", exchange="sim", paper=True)
        s.add(trader)
        await s.flush()
        ids = [7, 9, 70_000, 70_001, 200_000, 200_005]  # three blocks, the two assignments in turn
        for i, oid in enumerate(ids):
            s.add(
                Order(
                    id=oid,
                    owner_id=alice,
                    assignment_id=a1 if i % 2 == 0 else a2,
                    trader_id=trader.id,
                    client_order_id=f"tw-{oid}",
                    exchange="sim",
                    symbol="BTC/USD",
                    side="buy",
                    amount=Decimal(1),
                    filled=Decimal(1) if oid != 70_000 else Decimal(0),
                    status="filled",
                )
            )
        await s.commit()
    async with sf() as s:
        repo = Owned(s, alice)
        first = await repo.page(Order, 2, None, assignment_id=a1)
        assert [o.id for o in first] == [200_000, 70_000]
        assert [o.id for o in await repo.page(Order, 2, first[-1].id, assignment_id=a1)] == [7]
        assert [o.id for o in await repo.page(Order, 10, None, assignment_id=a2)] == [200_005, 70_001, 9]
        assert [o.id for o in await repo.page(Order, 10, 2**31 - 1, assignment_id=a2)] == [200_005, 70_001, 9]
        fills = await repo.order_fills(10, assignment_id=a1)
        assert [f.assignment_id for f in fills] == [a1, a1]  # 70,000 filled nothing
        assert await Owned(s, bob).page(Order, 10, None, assignment_id=a1) == []
