"""core and a position's protective exits, against a real bus and a scripted venue: the orders that hold
them (types, prices, client ids derived from the entry), moving them, exits by signal and by the venue,
a venue that cannot hold them (core watches), limit entries that expire, and re-creating lost orders."""

from __future__ import annotations

from decimal import Decimal

from sqlalchemy import select

from tradewind.bus import messages as m
from tradewind.bus import subjects
from tradewind.core.decide import AssignmentIndex
from tradewind.core.trade import TradeDesk
from tradewind.storage.models import Assignment, Order
from tradewind.trading import model

from .conftest import make_assignment


def candle(t: int, close: float = 100.0, low: float | None = None, high: float | None = None) -> m.Candle:
    return m.Candle(
        exchange="sim",
        symbol="BTC/USD",
        tf="1m",
        time=t,
        open=close,
        high=high or close,
        low=low or close,
        close=close,
        volume=1,
        recv_ns=1,
    )


class Venue:
    """Answers like an exchange that holds resting orders: market orders fill at ``price``; limit and
    protective orders rest (or are refused, for the types in ``cannot``); cancels cancel."""

    def __init__(self, nc, price: str = "100", cannot: tuple[str, ...] = ()) -> None:  # type: ignore[no-untyped-def]
        self.nc, self.price, self.cannot = nc, price, cannot
        self.placed: list[m.PlaceOrder] = []
        self.cancelled: list[str] = []
        self.open: dict[str, m.PlaceOrder] = {}

    async def start(self) -> None:
        await self.nc.subscribe(subjects.exchange_balances("sim"), cb=self.balances)
        await self.nc.subscribe(subjects.exchange_orders("sim"), cb=self.orders)
        await self.nc.subscribe(subjects.exchange_cancel("sim"), cb=self.cancel)

    async def balances(self, msg) -> None:  # type: ignore[no-untyped-def]
        req = m.decode(msg.data, m.BalancesRequest)
        await msg.respond(m.encode(m.BalancesReply(balances={t: {"USD": "10000"} for t in req.trader_ids})))

    async def orders(self, msg) -> None:  # type: ignore[no-untyped-def]
        acks = []
        for req in m.decode(msg.data, m.PlaceOrders).orders:
            self.placed.append(req)
            outcomes = []
            for cid in req.cancels:  # what the exchange service does before placing it, and reports
                self.cancelled.append(cid)
                upd = self.taken_down(req, cid)
                outcomes.append((cid, upd.status, Decimal(upd.filled)))
                await self.nc.publish(subjects.order_updates("sim"), m.encode(upd))
            refused = model.refused_after_cancels(outcomes)
            if refused is not None:
                acks.append(
                    m.OrderAck(client_order_id=req.client_order_id, status="rejected", reason=refused)
                )
            elif req.type == "market":
                acks.append(
                    m.OrderAck(
                        client_order_id=req.client_order_id,
                        status="filled",
                        filled=req.amount,
                        price=self.price,
                        fee="0",
                    )
                )
            elif req.type in self.cannot:
                acks.append(
                    m.OrderAck(
                        client_order_id=req.client_order_id,
                        status="rejected",
                        reason=f"this venue cannot hold a {req.type}; core watches it",
                    )
                )
            else:
                self.open[req.client_order_id] = req
                acks.append(m.OrderAck(client_order_id=req.client_order_id, status="open"))
        await msg.respond(m.encode(m.OrderAcks(acks=acks)))

    def taken_down(self, req: m.PlaceOrder, cid: str) -> m.OrderUpdated:
        """How an order that ``req`` names in ``cancels`` ends: cancelled."""
        self.open.pop(cid, None)
        return m.OrderUpdated(exchange="sim", trader_id=req.trader_id, client_order_id=cid, status="canceled")

    async def cancel(self, msg) -> None:  # type: ignore[no-untyped-def]
        req = m.decode(msg.data, m.CancelOrder)
        self.cancelled.append(req.client_order_id)
        self.open.pop(req.client_order_id, None)
        await msg.respond(m.encode(m.OrderAck(client_order_id=req.client_order_id, status="canceled")))


async def setup(settings, nc, sf, kind: type[Venue] | None = None, **venue):  # type: ignore[no-untyped-def]
    v = (kind or Venue)(nc, **venue)
    await v.start()
    a = await make_assignment(sf)
    index = AssignmentIndex()
    await index.load(sf)
    desk = TradeDesk(settings, nc, sf, index)
    desk.order_timeout_s = 2
    desk.orders.updates = await nc.subscribe(subjects.ORDER_UPDATES_ALL, cb=desk.on_order_update)
    return v, a, desk, index


def ok(aid: int, position: str = "long", **exits) -> m.EvalOutcome:  # type: ignore[no-untyped-def]
    return m.EvalOutcome(assignment_id=aid, status="ok", position=position, **exits)


async def orders_of(sf, aid: int) -> list[Order]:  # type: ignore[no-untyped-def]
    async with sf() as s:
        return list(
            (await s.execute(select(Order).where(Order.assignment_id == aid).order_by(Order.id))).scalars()
        )


async def test_an_entry_with_exits_is_protected_by_orders_derived_from_it(settings, nc, sf) -> None:  # type: ignore[no-untyped-def]
    v, a, desk, index = await setup(settings, nc, sf)
    st = index.by_id[a.id]
    await desk.handle(candle(60_000), [(st, ok(a.id, stop_loss=0.02, take_profit=0.04, trailing_stop=0.01))])
    await desk.drain()
    entry, pair, trail = v.placed
    assert entry.type == "market" and entry.protect is not None and entry.protect.stop_loss == "0.02"
    # the take-profit carries the stop as its other leg (one cancels the other); the trailing stop apart
    assert (pair.client_order_id, pair.type, pair.price, pair.stop_price, pair.group) == (
        f"{entry.client_order_id}-p0",
        "take_profit",
        "104.00",
        "98.00",
        entry.client_order_id,
    )
    assert (trail.client_order_id, trail.type, trail.trail, trail.stop_price, trail.price) == (
        f"{entry.client_order_id}-r0",
        "trailing_stop",
        "0.01",
        "99.00",
        "100",
    )
    rows = await orders_of(sf, a.id)
    assert [(o.type, o.status) for o in rows] == [
        ("market", "filled"),
        ("take_profit", "open"),
        ("trailing_stop", "open"),
    ]
    async with sf() as s:
        p = (await s.get(Assignment, a.id)).protection
    assert p["entry"] == "100" and p["stop"] == "98.00" and p["target"] == "104.00" and p["rev"] == 0
    assert st.resting == {pair.client_order_id: "take_profit", trail.client_order_id: "trailing_stop"}


async def test_moving_the_stop_replaces_the_orders_and_a_signal_exit_takes_them_down_first(
    settings, nc, sf
) -> None:  # type: ignore[no-untyped-def]
    v, a, desk, index = await setup(settings, nc, sf)
    st = index.by_id[a.id]
    await desk.handle(candle(60_000), [(st, ok(a.id, stop_loss=0.02, take_profit=0.04))])
    await desk.drain()
    first = v.placed[1].client_order_id
    # the same exits again: nothing to do; a tighter stop: a new revision, the old order cancelled first
    await desk.handle(candle(120_000), [(st, ok(a.id, "neutral", stop_loss=0.02))])
    await desk.handle(candle(180_000), [(st, ok(a.id, "neutral", stop_loss=0.005))])
    await desk.drain()
    moved = v.placed[2]
    assert len(v.placed) == 3 and moved.client_order_id.endswith("-p1") and moved.cancels == [first]
    assert (moved.price, moved.stop_price) == ("104.00", "99.500")
    await nc.flush()
    await desk.settle()  # the venue's reports of what it cancelled, as core waits for them before a candle
    await desk.handle(candle(240_000), [(st, ok(a.id, "short"))])
    await desk.drain()
    exit_ = v.placed[3]
    assert exit_.side == "sell" and exit_.type == "market" and exit_.cancels == [moved.client_order_id]
    rows = {o.client_order_id: o for o in await orders_of(sf, a.id)}
    assert rows[exit_.client_order_id].exit_reason == "signal"
    async with sf() as s:
        assert (await s.get(Assignment, a.id)).protection is None


async def test_a_protective_fill_closes_the_position_with_its_reason_and_cancels_the_rest(
    settings, nc, sf
) -> None:  # type: ignore[no-untyped-def]
    v, a, desk, index = await setup(settings, nc, sf)
    st = index.by_id[a.id]
    await desk.handle(candle(60_000), [(st, ok(a.id, stop_loss=0.02, take_profit=0.04, trailing_stop=0.01))])
    await desk.drain()
    pair, trail = v.placed[1], v.placed[2]
    qty = st.position_qty
    # the venue reports the pair's stop leg filled (the paper engine names the leg)
    await desk.on_order_update(
        type(
            "Msg",
            (),
            {
                "data": m.encode(
                    m.OrderUpdated(
                        exchange="sim",
                        trader_id=a.trader_id,
                        client_order_id=pair.client_order_id,
                        status="filled",
                        filled=format(qty, "f"),
                        price="98",
                        fee="0.1",
                        reason="stop_loss",
                    )
                )
            },
        )()
    )
    await desk.drain()
    rows = {o.client_order_id: o for o in await orders_of(sf, a.id)}
    assert rows[pair.client_order_id].exit_reason == "stop_loss" and rows[pair.client_order_id].pnl < 0
    assert v.cancelled == [trail.client_order_id] and rows[trail.client_order_id].status == "canceled"
    assert st.position_qty == 0 and st.protection is None and st.resting == {}


class FilledMeanwhile(Venue):
    """A venue on which the orders in ``filled`` filled before core's next order cancelled them: that
    order's cancel answers "filled" (published, as the exchange service does) and the order is refused
    (``model.refused_after_cancels``); the rest as ``Venue``."""

    def __init__(self, nc, filled: dict[str, str]) -> None:  # type: ignore[no-untyped-def]
        super().__init__(nc)
        self.filled = filled  # client id -> fill price

    def taken_down(self, req: m.PlaceOrder, cid: str) -> m.OrderUpdated:
        price = self.filled.get(cid)
        if price is None:
            return super().taken_down(req, cid)
        gone = self.open.pop(cid, None)
        return m.OrderUpdated(
            exchange="sim",
            trader_id=req.trader_id,
            client_order_id=cid,
            status="filled",
            filled=gone.amount if gone is not None else "0",
            price=price,
            reason="stop_loss",
        )


async def test_a_signal_exit_whose_stop_filled_meanwhile_is_refused_and_the_stop_books_the_exit(
    settings, nc, sf
) -> None:  # type: ignore[no-untyped-def]
    v, a, desk, index = await setup(settings, nc, sf, FilledMeanwhile, filled={})
    st = index.by_id[a.id]
    await desk.handle(candle(60_000), [(st, ok(a.id, stop_loss=0.02))])
    await desk.drain()
    entry, stop = v.placed
    qty = st.position_qty
    v.filled[stop.client_order_id] = "98"  # its fill is reported only when the exit's cancel meets it
    await desk.handle(candle(120_000), [(st, ok(a.id, "short"))])
    await desk.drain()
    await nc.flush()
    await desk.settle()
    exit_ = v.placed[2]
    assert exit_.cancels == [stop.client_order_id]
    rows = {o.client_order_id: o for o in await orders_of(sf, a.id)}
    assert (rows[exit_.client_order_id].status, rows[exit_.client_order_id].reason) == (
        "rejected",
        f"not placed: the order it replaces ({stop.client_order_id}) was filled meanwhile",
    )
    assert rows[exit_.client_order_id].filled == 0 and rows[exit_.client_order_id].pnl is None
    stop_row = rows[stop.client_order_id]
    assert (stop_row.status, stop_row.filled, stop_row.exit_reason) == ("filled", qty, "stop_loss")
    # out once, by the stop: flat, nothing pending or resting, the loss booked once
    assert st.position_qty == 0 and not st.pending and st.resting == {} and st.protection is None
    async with sf() as s:
        held = await s.get(Assignment, a.id)
    assert held.position_qty == 0 and held.realized_pnl == stop_row.pnl < 0
    # the next decision is taken with the position as it is: a "short" while flat does nothing
    await desk.handle(candle(180_000), [(st, ok(a.id, "short"))])
    await desk.drain()
    assert len(v.placed) == 3


async def test_a_moved_stop_whose_old_orders_filled_meanwhile_places_none_of_its_orders(
    settings, nc, sf
) -> None:  # type: ignore[no-untyped-def]
    v, a, desk, index = await setup(settings, nc, sf, FilledMeanwhile, filled={})
    st = index.by_id[a.id]
    await desk.handle(candle(60_000), [(st, ok(a.id, stop_loss=0.02, take_profit=0.04, trailing_stop=0.01))])
    await desk.drain()
    _, pair, trail = v.placed
    v.filled[pair.client_order_id] = "98"  # the pair's stop leg filled; the venue cancelled the trail
    await desk.handle(candle(120_000), [(st, ok(a.id, "long", stop_loss=0.005))])
    await desk.drain()
    await nc.flush()
    await desk.settle()
    new = v.placed[3:]
    assert [o.type for o in new] == ["take_profit", "trailing_stop"]
    # every order of the move names the old ones, so none rests for the position the stop sold
    assert all(o.cancels == [pair.client_order_id, trail.client_order_id] for o in new)
    rows = {o.client_order_id: o for o in await orders_of(sf, a.id)}
    assert [rows[o.client_order_id].status for o in new] == ["rejected", "rejected"]
    assert v.open == {} and st.position_qty == 0 and st.resting == {} and not st.pending
    assert st.protection is None and rows[pair.client_order_id].status == "filled"


async def test_exits_a_venue_cannot_hold_are_watched_by_core(settings, nc, sf) -> None:  # type: ignore[no-untyped-def]
    v, a, desk, index = await setup(settings, nc, sf, cannot=("take_profit", "stop", "trailing_stop"))
    st = index.by_id[a.id]
    await desk.handle(candle(60_000), [(st, ok(a.id, stop_loss=0.02, take_profit=0.04))])
    await desk.drain()
    assert st.protection is not None and st.protection["watched"] is True
    # a candle that stays above the stop: nothing; one whose low reaches it: core exits at the market
    await desk.handle(candle(120_000, close=99, low=98.5), [(st, ok(a.id, "long"))])
    await desk.handle(candle(180_000, close=99, low=97.9), [(st, ok(a.id, "long"))])
    await desk.drain()
    exit_ = v.placed[-1]
    assert exit_.type == "market" and exit_.side == "sell"
    rows = {o.client_order_id: o for o in await orders_of(sf, a.id)}
    assert rows[exit_.client_order_id].exit_reason == "stop_loss" and st.position_qty == 0


async def test_a_limit_entry_rests_expires_and_takes_its_exits_with_it(settings, nc, sf) -> None:  # type: ignore[no-untyped-def]
    v, a, desk, index = await setup(settings, nc, sf)
    st = index.by_id[a.id]
    await desk.handle(candle(60_000), [(st, ok(a.id, limit=99.5, expire=3, stop_loss=0.01))])
    await desk.drain()
    (entry,) = v.placed
    assert (entry.type, entry.price, entry.expires_at) == ("limit", "99.5", 60_000 + 4 * 60_000)
    assert st.entry_open == entry.client_order_id and not st.pending
    await desk.handle(candle(120_000), [(st, ok(a.id, "long", limit=99.0))])  # one entry at a time
    assert len(v.placed) == 1
    # the venue lets it expire
    await desk.apply(
        [
            (
                entry.client_order_id,
                m.OrderAck(client_order_id=entry.client_order_id, status="canceled", reason="expired"),
                None,
            )
        ]
    )
    assert st.entry_open is None and st.protection is None
    # a "short" while an entry rests cancels it
    await desk.handle(candle(180_000), [(st, ok(a.id, limit=99.0))])
    await desk.drain()
    await desk.handle(candle(240_000), [(st, ok(a.id, "short"))])
    await desk.drain()
    assert v.cancelled == [v.placed[-1].client_order_id] and st.entry_open is None


async def test_protection_lost_on_the_venue_is_recreated(settings, nc, sf) -> None:  # type: ignore[no-untyped-def]
    v, a, desk, index = await setup(settings, nc, sf)
    st = index.by_id[a.id]
    await desk.handle(candle(60_000), [(st, ok(a.id, stop_loss=0.02))])
    await desk.drain()
    stop = v.placed[1]
    assert stop.type == "stop" and stop.stop_price == "98.00"
    # the kill switch (or an operator) cancels it; the position is still open and its assignment running
    await desk.apply(
        [(stop.client_order_id, m.OrderAck(client_order_id=stop.client_order_id, status="canceled"), None)]
    )
    assert await desk.orders.reprotect() == 1
    await desk.drain()
    again = v.placed[-1]
    assert again.client_order_id.endswith("-s1") and again.stop_price == "98.00"
    assert await desk.orders.reprotect() == 0  # it is open again: nothing more
    # a restart: a new index and desk on the same database know the open stop
    index2 = AssignmentIndex()
    await index2.load(sf)
    assert index2.by_id[a.id].resting == {again.client_order_id: "stop"}
    assert index2.by_id[a.id].protection["rev"] == 1 and Decimal(index2.by_id[a.id].position_qty) > 0


async def test_core_cancels_a_limit_entry_after_its_last_candle(settings, nc, sf) -> None:  # type: ignore[no-untyped-def]
    # for venues that cannot expire an order by themselves (ccxt has no good-till-date)
    v, a, desk, index = await setup(settings, nc, sf)
    st = index.by_id[a.id]
    await desk.handle(candle(60_000), [(st, ok(a.id, limit=99.5))])  # expire 1: good for the next candle
    await desk.drain()
    (entry,) = v.placed
    await desk.handle(candle(120_000), [(st, ok(a.id, "neutral"))])  # that candle closed unfilled
    await desk.drain()
    assert v.cancelled == [entry.client_order_id] and st.entry_open is None


async def test_exits_set_after_an_unprotected_entry_protect_it_from_the_high_since_entry(
    settings, nc, sf
) -> None:  # type: ignore[no-untyped-def]
    v, a, desk, index = await setup(settings, nc, sf)
    st = index.by_id[a.id]
    await desk.handle(candle(60_000), [(st, ok(a.id))])  # a plain "long": no exits
    await desk.drain()
    assert len(v.placed) == 1 and st.protection is not None and st.protection["entry"] == "100"
    await desk.handle(candle(120_000, close=101, high=103), [(st, ok(a.id, "neutral"))])
    await desk.handle(candle(180_000, close=102, high=102.5), [(st, ok(a.id, "neutral", trailing_stop=0.01))])
    await desk.drain()
    trail = v.placed[-1]
    # as in a backtest: the trailing stop starts from the highest high since the entry (103), not from 100
    assert (trail.type, trail.client_order_id[-2:], trail.price, trail.stop_price) == (
        "trailing_stop",
        "r1",
        "103",
        "101.97",
    )


async def test_a_candle_waits_for_the_order_updates_its_exchange_published_before_it(
    settings, nc, sf
) -> None:  # type: ignore[no-untyped-def]
    # The bus does not order the candle stream after plain messages: a resting order's fill on a candle can
    # reach core after the candle. The candle says how many updates came before it; core books them first.
    import asyncio
    import time

    import msgspec

    v, a, desk, index = await setup(settings, nc, sf)
    c = msgspec.structs.replace(candle(60_000), source="run-1", updates_seq=1)

    async def late() -> None:
        await asyncio.sleep(0.3)
        upd = m.OrderUpdated(
            exchange="sim",
            trader_id=a.trader_id,
            client_order_id="x",
            status="canceled",
            source="run-1",
            seq=1,
        )
        await desk.on_order_update(type("Msg", (), {"data": m.encode(upd)})())

    task = asyncio.create_task(late())
    started = time.monotonic()
    await desk.settle(candle=c)
    assert 0.25 < time.monotonic() - started < 1.5
    await task
    # one that never comes costs the timeout once, not on every candle after it
    lost = msgspec.structs.replace(c, updates_seq=4)
    started = time.monotonic()
    await desk.settle(timeout_s=0.3, candle=lost)
    assert time.monotonic() - started >= 0.3
    started = time.monotonic()
    await desk.settle(timeout_s=0.3, candle=lost)
    assert time.monotonic() - started < 0.1
