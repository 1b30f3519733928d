"""The exchange service cancels the orders an order names in ``cancels`` before it places it, and does not
place it when one of them had filled meanwhile (a real venue's cancel answers with the order's final
state). A venue stands in: the sim, whose cancel answers what the test says."""

from __future__ import annotations

import asyncio
import dataclasses
from decimal import Decimal

from tradewind.bus import messages as m
from tradewind.bus import subjects
from tradewind.exchanges.base import Credentials, OrderResult, OrderSpec
from tradewind.exchanges.service import ExchangeService
from tradewind.exchanges.sim import SimAdapter
from tradewind.secrets import SecretBox

from ..core.conftest import make_assignment

KEY = "yQ0c1c8b1nJmQ1W3Yw3q0m9XK2b6b4Q7b2b2Zm4z3xY="
D = Decimal


class Venue(SimAdapter):
    """A venue that places orders one by one (the service cancels first) and whose cancel answers
    ``answers[cid]``: the order's final state when it was gone already."""

    def __init__(self, settings, sf) -> None:  # type: ignore[no-untyped-def]
        super().__init__(settings, sf)
        self.capabilities = dataclasses.replace(self.capabilities, batch_orders=False)
        self.answers: dict[str, OrderResult] = {}
        self.placed: list[str] = []

    async def cancel_order(self, creds: Credentials, client_order_id: str, symbol: str) -> OrderResult:
        return self.answers[client_order_id]

    async def place_order(self, creds: Credentials, order: OrderSpec) -> OrderResult:
        self.placed.append(order.client_order_id)
        return await super().place_order(creds, order)


async def test_an_order_whose_cancelled_order_filled_meanwhile_is_not_placed(settings, sf, nc) -> None:  # type: ignore[no-untyped-def]
    a = await make_assignment(sf)
    venue = Venue(settings, sf)
    exchange = ExchangeService(settings, venue, nc, nc.jetstream(), sf, SecretBox([KEY]))
    updates: list[m.OrderUpdated] = []

    async def updated(msg) -> None:  # type: ignore[no-untyped-def]
        updates.append(m.decode(msg.data, m.OrderUpdated))

    sub = await nc.subscribe(subjects.order_updates("sim"), cb=updated)
    await exchange.start(stream=False)

    async def place(cid: str, cancels: list[str]) -> m.OrderAck:
        req = m.PlaceOrder(
            trader_id=a.trader_id,
            owner_id=a.owner_id,
            client_order_id=cid,
            symbol="BTC/USD",
            side="buy",
            amount="0.001",
            cancels=cancels,
        )
        msg = await nc.request(subjects.exchange_order("sim"), m.encode(req), timeout=10)
        return m.decode(msg.data, m.OrderAck)

    try:
        venue.answers = {
            "old-filled": OrderResult("old-filled", "filled", filled=D("0.001"), price=D("100")),
            "old-part": OrderResult("old-part", "canceled", filled=D("0.0004"), price=D("100")),
            "old-none": OrderResult("old-none", "canceled"),
        }
        ack = await place("new1", ["old-none", "old-filled"])
        assert (ack.status, ack.reason) == (
            "rejected",
            "not placed: the order it replaces (old-filled) was filled meanwhile",
        )
        ack = await place("new2", ["old-part"])
        assert (ack.status, ack.reason) == (
            "rejected",
            "not placed: the order it replaces (old-part) was partly filled (0.0004) meanwhile",
        )
        assert venue.placed == []  # neither reached the venue
        ack = await place("new3", ["old-none"])  # cancelled unfilled: placed, as before
        assert ack.status == "filled" and venue.placed == ["new3"]
        for _ in range(50):  # every cancel's outcome is published (core books the fill from it)
            if len(updates) >= 4:
                break
            await asyncio.sleep(0.05)
        assert [(u.client_order_id, u.status) for u in updates] == [
            ("old-none", "canceled"),
            ("old-filled", "filled"),
            ("old-part", "canceled"),
            ("old-none", "canceled"),
        ]
    finally:
        await sub.unsubscribe()
        await exchange.stop()
