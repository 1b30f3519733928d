"""Through the exchange service and NATS: the sim publishes a tick per trade, a post-only quote that would
take is refused, and a resting quote's fill is published before the tick of the trade that filled it."""

from __future__ import annotations

import asyncio
from decimal import Decimal

from tradewind.bus import messages as m
from tradewind.bus import subjects
from tradewind.exchanges.service import ExchangeService
from tradewind.exchanges.sim import SimAdapter
from tradewind.secrets import SecretBox
from tradewind.storage.models import Assignment

from ..core.conftest import make_assignment

KEY = "yQ0c1c8b1nJmQ1W3Yw3q0m9XK2b6b4Q7b2b2Zm4z3xY="


def quote(a: Assignment, cid: str, side: str, price: Decimal) -> m.PlaceOrder:
    return m.PlaceOrder(
        trader_id=a.trader_id,
        owner_id=a.owner_id,
        client_order_id=cid,
        symbol="BTC/USD",
        side=side,
        amount="0.01",
        type="limit",
        price=format(price, "f"),
        post_only=True,
    )


async def test_a_quote_fill_is_published_before_the_tick_that_filled_it(settings, sf, nc) -> None:  # type: ignore[no-untyped-def]
    settings = settings.model_copy(update={"sim_speed": 120.0})  # a minute every 0.5 s
    a = await make_assignment(sf)
    adapter = SimAdapter(settings, sf)
    exchange = ExchangeService(settings, adapter, nc, nc.jetstream(), sf, SecretBox([KEY]))
    seen: list[m.Tick | m.OrderUpdated] = []
    first_tick = asyncio.Event()

    async def on_message(msg) -> None:  # type: ignore[no-untyped-def]
        # one subscription for both subjects: the messages are seen in the order they were published
        if msg.subject == subjects.order_updates("sim"):
            seen.append(m.decode(msg.data, m.OrderUpdated))
        elif msg.subject == subjects.md_tick("sim", "BTC/USD"):
            seen.append(m.decode(msg.data, m.Tick))
            first_tick.set()

    sub = await nc.subscribe(">", cb=on_message)
    await exchange.start(stream=False)
    try:
        exchange._tasks.append(asyncio.create_task(exchange._ticks()))
        async with asyncio.timeout(10):
            await first_tick.wait()

        async def place(req: m.PlaceOrder) -> m.OrderAck:
            msg = await nc.request(subjects.exchange_order("sim"), m.encode(req), timeout=10)
            return m.decode(msg.data, m.OrderAck)

        tick = next(t for t in reversed(seen) if isinstance(t, m.Tick))
        ask = Decimal(repr(tick.ask))
        taker = await place(quote(a, "q-take", "buy", ask * 2))
        assert taker.status == "rejected" and "would take liquidity" in (taker.reason or "")
        price = (Decimal(repr(tick.bid)) * Decimal("0.9997")).quantize(Decimal("0.01"))
        assert (await place(quote(a, "q1", "buy", price))).status == "open"

        def filled() -> m.OrderUpdated | None:
            return next(
                (u for u in seen if isinstance(u, m.OrderUpdated) and u.client_order_id == "q1"), None
            )

        async with asyncio.timeout(30):
            while (fill := filled()) is None or seen[-1] is fill:
                await asyncio.sleep(0.01)
        assert fill.status == "filled" and Decimal(fill.price or "0") == price
        after = seen[seen.index(fill) + 1]
        assert isinstance(after, m.Tick) and after.time == fill.time and Decimal(repr(after.last)) < price
        assert Decimal(fill.fee or "0") == price * Decimal("0.01") * Decimal(settings.sim_maker_fee)
    finally:
        await sub.unsubscribe()
        await exchange.stop()
