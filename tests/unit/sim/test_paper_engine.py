"""The paper matching engine: fills, fees, refusals, idempotency by client order id, durability."""

import asyncio
from decimal import Decimal

from tradewind.exchanges.base import OrderSpec
from tradewind.exchanges.sim.engine import PaperEngine


async def test_buy_then_sell_charges_the_fee_on_both(sf) -> None:  # type: ignore[no-untyped-def]
    engine = PaperEngine(sf, Decimal("0.001"), Decimal("10000"))
    await engine.start()
    buy = await engine.place(1, OrderSpec("c1", "BTC/USD", "buy", Decimal("0.1")), Decimal("50000"))
    assert buy.status == "filled" and buy.fee == Decimal("5.000")
    bal = await engine.balances(1)
    assert bal["USD"] == Decimal("4995.000") and bal["BTC"] == Decimal("0.1")
    sell = await engine.place(1, OrderSpec("c2", "BTC/USD", "sell", Decimal("0.1")), Decimal("51000"))
    assert sell.status == "filled"
    assert (await engine.balances(1))["USD"] == Decimal("4995") + Decimal("5100") - Decimal("5.1")
    await engine.close()


async def test_the_same_client_order_id_fills_once(sf) -> None:  # type: ignore[no-untyped-def]
    engine = PaperEngine(sf, Decimal("0.001"), Decimal("10000"))
    await engine.start()
    spec = OrderSpec("dup", "BTC/USD", "buy", Decimal("0.01"))
    results = await asyncio.gather(*(engine.place(1, spec, Decimal("50000")) for _ in range(5)))
    assert {r.client_order_id for r in results} == {"dup"}
    assert (await engine.balances(1))["BTC"] == Decimal("0.01")
    await engine.close()
    # a new engine (a restarted exchange) finds the fill in storage and does not fill again
    again = PaperEngine(sf, Decimal("0.001"), Decimal("10000"))
    await again.start()
    r = await again.place(1, spec, Decimal("1"))
    assert r.price == Decimal("50000")
    assert (await again.balances(1))["BTC"] == Decimal("0.01")
    await again.close()


async def test_insufficient_funds_is_a_rejection_with_a_reason(sf) -> None:  # type: ignore[no-untyped-def]
    engine = PaperEngine(sf, Decimal("0.001"), Decimal("100"))
    await engine.start()
    r = await engine.place(1, OrderSpec("big", "BTC/USD", "buy", Decimal("1")), Decimal("50000"))
    assert r.status == "rejected" and "insufficient USD" in (r.reason or "")
    r = await engine.place(1, OrderSpec("nobase", "BTC/USD", "sell", Decimal("1")), Decimal("50000"))
    assert r.status == "rejected" and "insufficient BTC" in (r.reason or "")
    assert (await engine.find("big")).status == "rejected"  # type: ignore[union-attr]
    await engine.close()


async def test_a_burst_after_a_restart_mixes_new_orders_and_repeats_of_stored_ones(sf) -> None:  # type: ignore[no-untyped-def]
    engine = PaperEngine(sf, Decimal("0"), Decimal("10000"))
    await engine.start()
    first = [OrderSpec(f"old{i}", "BTC/USD", "buy", Decimal("0.001")) for i in range(40)]
    await asyncio.gather(*(engine.place(1, spec, Decimal("100")) for spec in first))
    await engine.close()
    again = PaperEngine(sf, Decimal("0"), Decimal("10000"))
    await again.start()
    assert (await again.balances(1))["BTC"] == Decimal("0.040")  # stored by the group commit's upsert
    new = [OrderSpec(f"new{i}", "BTC/USD", "buy", Decimal("0.001")) for i in range(600)]
    results = await asyncio.gather(*(again.place(1, spec, Decimal("7")) for spec in [*first, *new]))
    assert [r.price for r in results[:40]] == [Decimal("100")] * 40  # the stored fills, not new ones
    assert {r.price for r in results[40:]} == {Decimal("7")} and {r.status for r in results} == {"filled"}
    assert (await again.balances(1))["BTC"] == Decimal("0.640")
    await again.close()
    third = PaperEngine(sf, Decimal("0"), Decimal("10000"))
    await third.start()
    assert (await third.balances(1))["USD"] == Decimal("10000") - Decimal("4") - Decimal("4.2")
    assert (await third.find("new599")).price == Decimal("7")  # type: ignore[union-attr]
    assert await third.find("never") is None
    await third.close()


def test_the_recent_results_keep_the_newest_and_forget_the_oldest() -> None:
    from tradewind.exchanges.base import OrderResult
    from tradewind.exchanges.sim.engine import _Recent

    recent = _Recent(3)
    for i in range(5):
        recent.put(7, OrderResult(client_order_id=f"c{i}", status="filled", filled=Decimal(i)))
    assert [recent.get(f"c{i}") is not None for i in range(5)] == [False, False, True, True, True]
    got = recent.get("c4")
    assert got is not None and got.filled == Decimal(4) and got.status == "filled"
    assert recent.get("c4", 7) == got and recent.get("c4", 8) is None  # another account learns nothing
