"""Through the exchange service and NATS: the sim's fills of resting orders are published as order
updates before the candle that made them, and cancels reach the engine."""

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


def limit(a: Assignment, cid: str, price: Decimal, **kw) -> m.PlaceOrder:  # type: ignore[no-untyped-def]
    return m.PlaceOrder(
        trader_id=a.trader_id,
        owner_id=a.owner_id,
        client_order_id=cid,
        symbol="BTC/USD",
        side="buy",
        amount="0.01",
        type="limit",
        price=format(price, "f"),
        **kw,
    )


async def test_fills_are_published_before_their_candle_and_cancels_release_the_money(
    settings, sf, nc
) -> None:  # type: ignore[no-untyped-def]
    a = await make_assignment(sf)
    adapter = SimAdapter(settings, sf)
    exchange = ExchangeService(settings, adapter, nc, nc.jetstream(), sf, SecretBox([KEY]))
    seen: list[tuple[str, object]] = []

    async def on_update(msg) -> None:  # type: ignore[no-untyped-def]
        seen.append(("update", m.decode(msg.data, m.OrderUpdated)))

    async def on_candle(msg) -> None:  # type: ignore[no-untyped-def]
        seen.append(("candle", m.decode(msg.data, m.Candle)))

    subs = [
        await nc.subscribe(subjects.order_updates("sim"), cb=on_update),
        await nc.subscribe(subjects.md_candle("sim", "BTC/USD", "1m"), cb=on_candle),
    ]
    await exchange.start(stream=False)
    try:
        price = Decimal(repr(adapter.walks["BTC/USD"].last_close))

        async def place(req: m.PlaceOrder) -> m.OrderAck:
            msg = await nc.request(subjects.exchange_order("sim"), m.encode(req), timeout=10)
            return m.decode(msg.data, m.OrderAck)

        protect = m.Protect(stop_loss="0.5", take_profit="0.5")
        assert (await place(limit(a, "l1", price * 2, protect=protect))).status == "open"
        assert (await place(limit(a, "l2", Decimal("1")))).status == "open"

        async def cancel(owner_id: int | None) -> m.OrderAck:
            req = m.CancelOrder(
                owner_id=owner_id, trader_id=a.trader_id, client_order_id="l2", symbol="BTC/USD"
            )
            return m.decode(
                (await nc.request(subjects.exchange_cancel("sim"), m.encode(req), timeout=10)).data,
                m.OrderAck,
            )

        # a cancel that names no user, or another user, is refused: taking down someone's stop costs money too
        for stranger in (None, a.owner_id + 1000):
            refused = await cancel(stranger)
            why = refused.reason or ""
            assert refused.status == "error" and ("for this user" in why or "name the user" in why), why
        assert (await cancel(a.owner_id)).status == "canceled"
        exchange._tasks.append(asyncio.create_task(exchange._stream()))  # the candles, from now on
        for _ in range(200):
            if any(kind == "update" and u.client_order_id == "l1" for kind, u in seen):  # type: ignore[attr-defined]
                break
            await asyncio.sleep(0.05)
        for _ in range(100):  # and the candle it filled on
            if any(kind == "candle" for kind, _ in seen):
                break
            await asyncio.sleep(0.05)
        kinds = [(kind, getattr(x, "client_order_id", None) or getattr(x, "time", None)) for kind, x in seen]
        fill = next(u for kind, u in seen if kind == "update" and u.client_order_id == "l1")  # type: ignore[attr-defined]
        assert fill.status == "filled" and Decimal(fill.price) <= price * 2  # type: ignore[attr-defined]
        first_candle = next(i for i, (kind, _) in enumerate(seen) if kind == "candle")
        assert seen.index(("update", fill)) < first_candle, kinds
        assert seen[first_candle][1].time == fill.time  # type: ignore[attr-defined]
        # core places the protective order the engine made at the fill: its state, no second order
        again = await place(
            m.PlaceOrder(
                trader_id=a.trader_id,
                owner_id=a.owner_id,
                client_order_id="l1-p0",
                symbol="BTC/USD",
                side="sell",
                amount="0.01",
                type="take_profit",
                price="1",
                stop_price="1",
                group="l1",
            )
        )
        assert again.status == "open"
        bal = await adapter.fetch_balances(await exchange.credentials(a.trader_id))
        assert bal["BTC"] == Decimal("0.01") and bal["USD"] == Decimal("10000") - Decimal(
            fill.price
        ) * Decimal("0.01") - Decimal(fill.fee)  # type: ignore[attr-defined]
    finally:
        for sub in subs:
            await sub.unsubscribe()
        await exchange.stop()
