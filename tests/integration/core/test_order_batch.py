"""A chunk's orders travel to the exchange service in one request; each gets its own answer, in order."""

from __future__ import annotations

import asyncio
import dataclasses
from decimal import Decimal

from sqlalchemy import select

from tradewind.bus import messages as m
from tradewind.bus import subjects
from tradewind.exchanges.service import ExchangeService
from tradewind.exchanges.sim import SimAdapter
from tradewind.secrets import SecretBox
from tradewind.storage.models import Assignment, PaperBalance, PaperFill

from .conftest import make_assignment
from .test_pipeline import KEY


def order(
    a: Assignment, cid: str, side: str = "buy", amount: str = "0.001", symbol: str = "BTC/USD"
) -> m.PlaceOrder:
    """An order on the assignment's account, for its owner."""
    return m.PlaceOrder(
        trader_id=a.trader_id,
        owner_id=a.owner_id,
        client_order_id=cid,
        symbol=symbol,
        side=side,
        amount=amount,
    )


async def test_a_batch_is_answered_order_by_order_and_fills_each_client_id_once(settings, sf, nc) -> None:  # type: ignore[no-untyped-def]
    a = await make_assignment(sf)
    b = await make_assignment(sf, email="b@example.com")
    exchange = ExchangeService(settings, SimAdapter(settings, sf), nc, nc.jetstream(), sf, SecretBox([KEY]))
    await exchange.start(stream=False)
    try:

        async def send(*orders: m.PlaceOrder) -> list[m.OrderAck]:
            msg = await nc.request(
                subjects.exchange_orders("sim"), m.encode(m.PlaceOrders(orders=list(orders))), timeout=10
            )
            return m.decode(msg.data, m.OrderAcks).acks

        first = await send(order(a, "a1"), order(b, "b1", amount="0.002"))
        assert [(x.client_order_id, x.status) for x in first] == [("a1", "filled"), ("b1", "filled")]
        acks = await send(
            order(a, "a2"),
            order(a, "a1"),  # placed before: its first result, not a second fill
            m.PlaceOrder(
                trader_id=999_999,
                owner_id=a.owner_id,
                client_order_id="ghost",
                symbol="BTC/USD",
                side="buy",
                amount="0.001",
            ),  # no such account
            order(b, "b2", symbol="NOPE/USD"),  # no such market
            order(b, "b3", amount="lots"),  # not a number
            order(b, "b4", side="sell", amount="1"),  # more than it holds
            order(a, "a2"),  # the same id twice in one batch
        )
        assert [x.client_order_id for x in acks] == ["a2", "a1", "ghost", "b2", "b3", "b4", "a2"]
        assert [x.status for x in acks] == [
            "filled",
            "filled",
            "error",
            "rejected",
            "rejected",
            "rejected",
            "filled",
        ]
        assert acks[1].price == first[0].price and acks[6].price == acks[0].price
        assert "no trading account" in (acks[2].reason or "") and "no market" in (acks[3].reason or "")
        assert "insufficient BTC" in (acks[5].reason or "")
        async with sf() as s:
            fills = {f.client_order_id: f for f in (await s.execute(select(PaperFill))).scalars()}
            btc = {
                r.trader_id: r.amount
                for r in (await s.execute(select(PaperBalance).where(PaperBalance.asset == "BTC"))).scalars()
            }
        assert set(fills) == {"a1", "a2", "b1", "b4"} and fills["b4"].status == "rejected"
        assert btc == {a.trader_id: Decimal("0.002"), b.trader_id: Decimal("0.002")}
    finally:
        await exchange.stop()


async def test_balances_of_several_accounts_come_in_one_answer_and_an_unknown_one_fails_alone(
    settings, sf, nc
) -> None:  # type: ignore[no-untyped-def]
    a = await make_assignment(sf)
    b = await make_assignment(sf, email="b@example.com")
    exchange = ExchangeService(settings, SimAdapter(settings, sf), nc, nc.jetstream(), sf, SecretBox([KEY]))
    await exchange.start(stream=False)
    try:
        await nc.request(
            subjects.exchange_orders("sim"),
            m.encode(m.PlaceOrders(orders=[order(a, "a1")])),
            timeout=10,
        )
        req = m.BalancesRequest(trader_ids=[a.trader_id, b.trader_id, 999_999, a.trader_id])
        reply = m.decode(
            (await nc.request(subjects.exchange_balances("sim"), m.encode(req), timeout=10)).data,
            m.BalancesReply,
        )
        assert set(reply.balances) == {a.trader_id, b.trader_id} and set(reply.errors) == {999_999}
        assert (
            Decimal(reply.balances[a.trader_id]["BTC"]) == Decimal("0.001")
            and "BTC" not in reply.balances[b.trader_id]
        )
        assert Decimal(reply.balances[a.trader_id]["USD"]) < Decimal(reply.balances[b.trader_id]["USD"])
        assert "no trading account" in reply.errors[999_999]
    finally:
        await exchange.stop()


async def test_an_amount_that_is_not_a_number_is_rejected_alone_on_every_path(settings, sf, nc) -> None:  # type: ignore[no-untyped-def]
    """The single-order subject, and a batch to an adapter that places order by order (ccxt, Bitfinex):
    the bad order is rejected with the reason, the others are placed."""
    a = await make_assignment(sf)
    adapter = SimAdapter(settings, sf)
    adapter.capabilities = dataclasses.replace(adapter.capabilities, batch_orders=False)
    exchange = ExchangeService(settings, adapter, nc, nc.jetstream(), sf, SecretBox([KEY]))
    await exchange.start(stream=False)
    try:
        msg = await nc.request(
            subjects.exchange_order("sim"), m.encode(order(a, "one", amount="lots")), timeout=10
        )
        single = m.decode(msg.data, m.OrderAck)
        assert (single.status, single.client_order_id) == ("rejected", "one") and "not a number" in (
            single.reason or ""
        )
        msg = await nc.request(
            subjects.exchange_orders("sim"),
            m.encode(m.PlaceOrders(orders=[order(a, "bad", amount="1e"), order(a, "good")])),
            timeout=10,
        )
        acks = m.decode(msg.data, m.OrderAcks).acks
        assert [(x.client_order_id, x.status) for x in acks] == [("bad", "rejected"), ("good", "filled")]
    finally:
        await exchange.stop()


class OpenUntilAsked(SimAdapter):
    """A venue whose market orders answer 'open' and show as filled when asked later, pushing nothing."""

    def __init__(self, settings, sf) -> None:  # type: ignore[no-untyped-def]
        super().__init__(settings, sf)
        self.capabilities = dataclasses.replace(
            self.capabilities, pushes_fills=False, batch_orders=False, min_poll_interval_s=0.2
        )

    async def place_order(self, creds, order):  # type: ignore[no-untyped-def]
        filled = await super().place_order(creds, order)
        return dataclasses.replace(filled, status="open", filled=Decimal(0))


async def test_an_open_order_is_followed_until_filled_and_then_forgotten(settings, sf, nc) -> None:  # type: ignore[no-untyped-def]
    a = await make_assignment(sf)
    exchange = ExchangeService(
        settings, OpenUntilAsked(settings, sf), nc, nc.jetstream(), sf, SecretBox([KEY])
    )
    await exchange.start(stream=False)
    updates: list[m.OrderUpdated] = []

    async def updated(msg) -> None:  # type: ignore[no-untyped-def]
        updates.append(m.decode(msg.data, m.OrderUpdated))

    sub = await nc.subscribe(subjects.order_updates("sim"), cb=updated)
    try:
        for i in range(3):
            msg = await nc.request(
                subjects.exchange_orders("sim"),
                m.encode(m.PlaceOrders(orders=[order(a, f"o{i}")])),
                timeout=10,
            )
            assert m.decode(msg.data, m.OrderAcks).acks[0].status == "open"
        for _ in range(50):
            if len(updates) == 3 and not exchange._followers:
                break
            await asyncio.sleep(0.1)
        assert sorted((u.client_order_id, u.status) for u in updates) == [
            ("o0", "filled"),
            ("o1", "filled"),
            ("o2", "filled"),
        ]
        assert not exchange._followers, "a settled order's follower is still kept"
    finally:
        await sub.unsubscribe()
        await exchange.stop()


async def test_an_order_for_someone_else_s_account_or_for_nobody_moves_no_money(settings, sf, nc) -> None:  # type: ignore[no-untyped-def]
    """The exchange service checks ownership itself, whatever core sends: the last line before the money."""
    victim = await make_assignment(sf)
    thief = await make_assignment(sf, email="thief@example.com")
    exchange = ExchangeService(settings, SimAdapter(settings, sf), nc, nc.jetstream(), sf, SecretBox([KEY]))
    await exchange.start(stream=False)
    try:
        forged = [
            m.PlaceOrder(
                trader_id=victim.trader_id,
                owner_id=thief.owner_id,
                client_order_id="x1",
                symbol="BTC/USD",
                side="buy",
                amount="0.001",
            ),
            m.PlaceOrder(
                trader_id=victim.trader_id, client_order_id="x2", symbol="BTC/USD", side="buy", amount="0.001"
            ),
        ]
        msg = await nc.request(
            subjects.exchange_orders("sim"), m.encode(m.PlaceOrders(orders=forged)), timeout=10
        )
        acks = m.decode(msg.data, m.OrderAcks).acks
        single = await nc.request(subjects.exchange_order("sim"), m.encode(forged[0]), timeout=10)
        acks.append(m.decode(single.data, m.OrderAck))
        assert [a.status for a in acks] == ["error", "error", "error"]
        assert all(a.filled == "0" for a in acks)
        async with sf() as s:
            assert (await s.execute(select(PaperFill))).first() is None
            assert (await s.execute(select(PaperBalance).where(PaperBalance.asset == "BTC"))).first() is None
    finally:
        await exchange.stop()
