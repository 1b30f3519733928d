"""An account deleted while the paper engine fills its order costs nobody else their fills."""

from __future__ import annotations

import asyncio
from decimal import Decimal

from sqlalchemy import delete, select

from tradewind.exchanges.base import OrderSpec
from tradewind.exchanges.sim.engine import PaperEngine
from tradewind.storage.models import PaperFill, Trader

from .conftest import make_assignment


async def test_a_fill_for_a_deleted_account_is_dropped_and_the_others_are_stored(sf) -> None:  # type: ignore[no-untyped-def]
    gone = await make_assignment(sf, email="gone@example.com")
    stays = await make_assignment(sf, email="stays@example.com")
    engine = PaperEngine(sf, fee=Decimal("0.001"), initial_cash=Decimal("10000"))  # flushed by hand below

    def buy(cid: str) -> OrderSpec:
        return OrderSpec(client_order_id=cid, symbol="BTC/USD", side="buy", amount=Decimal("0.01"))

    placing = asyncio.create_task(
        engine.place_many(
            [(gone.trader_id, buy("g1"), Decimal("100")), (stays.trader_id, buy("s1"), Decimal("100"))]
        )
    )
    alone = asyncio.create_task(engine.place(stays.trader_id, buy("s2"), Decimal("100")))
    while len(engine._queue) < 3:
        await asyncio.sleep(0.01)
    async with sf() as s:  # the account goes while its fill waits to be stored
        await s.execute(delete(Trader).where(Trader.id == gone.trader_id))
        await s.commit()
    await engine._flush()  # drops the deleted account's fill (it used to raise, and keep raising)
    # kept for the next pass; the two tasks queue in whichever order the loop runs them
    assert sorted(row["client_order_id"] for row, *_ in engine._queue) == ["s1", "s2"]
    await engine._flush()
    await asyncio.wait_for(asyncio.gather(placing, alone), 5)
    async with sf() as s:
        stored = sorted((await s.execute(select(PaperFill.client_order_id))).scalars())
    assert stored == ["s1", "s2"]
    assert await engine.balances(stays.trader_id) == {
        "USD": Decimal("10000") - 2 * Decimal("1.001"),
        "BTC": Decimal("0.02"),
    }


async def test_an_order_for_an_account_deleted_before_it_arrived_fails_alone(sf) -> None:  # type: ignore[no-untyped-def]
    gone = await make_assignment(sf, email="gone@example.com")
    stays = await make_assignment(sf, email="stays@example.com")
    engine = PaperEngine(sf, fee=Decimal("0.001"), initial_cash=Decimal("10000"))
    await engine.start()
    try:
        async with sf() as s:
            await s.execute(delete(Trader).where(Trader.id == gone.trader_id))
            await s.commit()

        def spec(cid: str) -> OrderSpec:
            return OrderSpec(client_order_id=cid, symbol="BTC/USD", side="buy", amount=Decimal("0.01"))

        results = await asyncio.wait_for(
            engine.place_many(
                [(stays.trader_id, spec("s1"), Decimal("100")), (gone.trader_id, spec("g1"), Decimal("100"))]
            ),
            5,
        )
        assert [r.status for r in results] == ["filled", "rejected"]
        async with sf() as s:  # answered filled only once stored, the other order's failure notwithstanding
            assert list((await s.execute(select(PaperFill.client_order_id))).scalars()) == ["s1"]
    finally:
        await engine.close()
