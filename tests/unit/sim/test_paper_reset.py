"""A paper account put back to its starting cash: stored at once, and refused when it traded since the caller
looked, or while it has orders resting."""

from __future__ import annotations

from decimal import Decimal

from sqlalchemy import func, select

from tradewind.exchanges.base import OrderSpec
from tradewind.exchanges.sim.engine import PaperEngine
from tradewind.storage.models import PaperBalance, PaperFill


async def _newest_fill(sf) -> int | None:  # type: ignore[no-untyped-def]
    async with sf() as s:
        return (await s.execute(select(func.max(PaperFill.id)).where(PaperFill.trader_id == 1))).scalar_one()


async def test_a_reset_leaves_only_the_starting_cash_in_memory_and_stored(sf) -> None:  # type: ignore[no-untyped-def]
    engine = PaperEngine(sf, Decimal("0.001"), Decimal("10000"))
    await engine.start()
    try:
        await engine.place(1, OrderSpec("b1", "BTC/USD", "buy", Decimal("0.1")), Decimal("50000"))
        assert (await engine.balances(1))["BTC"] == Decimal("0.1")
        seen = await _newest_fill(sf)
        error, balances = await engine.reset(1, seen)
        assert (error, balances) == (None, {"USD": Decimal("10000")})
        assert await engine.balances(1) == {"USD": Decimal("10000")}
        async with sf() as s:
            stored = {r.asset: r.amount for r in (await s.execute(select(PaperBalance))).scalars()}
        assert stored == {"USD": Decimal("10000")}
    finally:
        await engine.close()
    again = PaperEngine(sf, Decimal("0.001"), Decimal("10000"))  # a restart reads the same
    await again.start()
    assert await again.balances(1) == {"USD": Decimal("10000")}
    await again.close()


async def test_a_fill_after_the_callers_look_or_a_resting_order_refuses_the_reset(sf) -> None:  # type: ignore[no-untyped-def]
    engine = PaperEngine(sf, Decimal("0.001"), Decimal("10000"))
    await engine.start()
    try:
        seen = await _newest_fill(sf)  # the caller checks positions against the fills up to here, then a fill
        await engine.place(1, OrderSpec("b1", "BTC/USD", "buy", Decimal("0.1")), Decimal("50000"))
        error, balances = await engine.reset(1, seen)
        assert error is not None and "traded meanwhile" in error and balances == {}
        assert (await engine.balances(1))["BTC"] == Decimal("0.1")
        limit = OrderSpec("l1", "BTC/USD", "buy", Decimal("0.01"), type="limit", price=Decimal("100"))
        assert (await engine.place(1, limit, Decimal("50000"))).status == "open"
        error, _ = await engine.reset(1, await _newest_fill(sf))
        assert error is not None and "resting" in error
        assert (await engine.balances(1))["BTC"] == Decimal("0.1")
    finally:
        await engine.close()
