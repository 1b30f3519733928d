"""core.quotes' decisions without a bus: what changed between the quotes wanted and the ones resting,
what the venue's answers do to them, and an account's budget of quote calls."""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

from tradewind.bus import messages as m
from tradewind.config import Settings
from tradewind.core import orders, quotes
from tradewind.core.decide import AssignmentState, Frame, QuoteSlot
from tradewind.domain import quote_order_id
from tradewind.trading import model

D = Decimal


def state() -> AssignmentState:
    return AssignmentState(
        id=1,
        owner_id=1,
        strategy_id=1,
        version=1,
        market_id=1,
        exchange="sim",
        symbol="BTC/USD",
        timeframe="1m",
        params={},
        lookback=50,
        allocation=D(1000),
        trader_id=1,
        trader_exchange="sim",
        position_qty=D(0),
        failures=0,
        trigger="tick",
    )


def changes(st: AssignmentState, wanted: list[model.Quote]) -> list[tuple[str, object, object]]:
    desk = quotes.QuoteDesk.__new__(quotes.QuoteDesk)  # _changes reads nothing of the desk
    return [(side, want, have.cid if have else None) for side, want, have in desk._changes(st, wanted)]


def test_only_what_changed_is_sent() -> None:
    st = state()
    buy, sell = model.Quote("buy", D(99), D(1)), model.Quote("sell", D(101), D(1))
    assert changes(st, [buy, sell]) == [("buy", buy, None), ("sell", sell, None)]
    st.quotes = {"buy": QuoteSlot("b1", D(99), D(1), "open"), "sell": QuoteSlot("s1", D(101), D(1), "open")}
    assert changes(st, [buy, sell]) == []  # unchanged: nothing goes out
    moved = model.Quote("buy", D("99.5"), D(1))
    assert changes(st, [moved, sell]) == [("buy", moved, "b1")]  # replaced: the old one is named
    smaller = model.Quote("sell", D(101), D("0.5"))
    assert changes(st, [buy, smaller]) == [("sell", smaller, "s1")]
    assert changes(st, [buy]) == [("sell", None, "s1")]  # dropped: cancelled
    assert changes(st, []) == [("buy", None, "b1"), ("sell", None, "s1")]


def test_the_venue_answers_settle_only_the_current_quote_of_a_side() -> None:
    st = state()
    st.quotes = {"buy": QuoteSlot("b2", D(99), D(1))}
    orders.settled(st, "buy", "b1", "canceled")  # the replaced one: nothing changes
    assert st.quotes["buy"].cid == "b2" and st.quotes["buy"].status == "pending"
    orders.settled(st, "buy", "b2", "open")
    assert st.quotes["buy"].status == "open"
    orders.settled(st, "buy", "b2", "filled")
    assert st.quotes == {}
    st.quotes = {"sell": QuoteSlot("s1", D(101), D(1))}
    orders.settled(st, "sell", "s1", "rejected")  # post-only refused: the side is empty again
    assert st.quotes == {}


def test_an_account_budget_refills_at_its_rate_up_to_its_burst() -> None:
    b = quotes.Budget(rate=100.0, burst=4)
    assert b.take(3) and not b.take(2) and b.take(1)
    assert not b.take(1)
    assert 0 < b.wait_s(2) <= 0.02
    time.sleep(0.03)
    assert b.take(2)
    time.sleep(0.1)
    assert b.wait_s(4) == 0 and b.take(6)  # more than the burst: from a full budget, leaving a debt
    assert not b.take(1) and b.wait_s(1) > 0.02


class Book:
    """The part of core's order book a quote change uses: intents under a unique client id, and calls
    (answered once ``answer`` is set: the quotes they place are then open)."""

    def __init__(self, stored: set[str], st: AssignmentState) -> None:
        self.stored = stored  # the client ids of the orders table
        self.st = st
        self.extra: dict[str, orders.Extra] = {}
        self.sent: list[tuple[str, list[str]]] = []  # (client id, the quotes it cancels), as requested
        self.cancelled: list[str] = []
        self.answer = asyncio.Event()
        self.answer.set()

    async def store_intents(self, rows: list[dict[str, Any]]) -> set[str]:
        new = {r["client_order_id"] for r in rows} - self.stored
        self.stored |= new
        return new

    def start_orders(self, _t: Any, placed: list[dict[str, Any]]) -> asyncio.Task[None]:
        for r in placed:
            x = self.extra.pop(r["client_order_id"], None)
            self.sent.append((r["client_order_id"], x.cancels if x else []))

        async def answered() -> None:
            await self.answer.wait()
            for r in placed:
                orders.settled(self.st, r["side"], r["client_order_id"], "open")

        return asyncio.create_task(answered())

    async def cancel_all(self, cancels: list[tuple[Any, ...]]) -> None:
        self.cancelled += [c[3] for c in cancels]


class Accounts:
    async def accounts(
        self, _frame: Any, states: list[AssignmentState]
    ) -> tuple[dict[int, Any], dict[int, Any]]:
        return {st.id: (st.owner_id, st.trader_id, "sim") for st in states}, {}


def quote_desk(book: Book) -> quotes.QuoteDesk:
    desk = quotes.QuoteDesk.__new__(
        quotes.QuoteDesk
    )  # what _send and stop read of the desk, and nothing else
    desk.settings = Settings(quote_rate_per_s=1000, quote_burst=1000)
    desk.orders = book  # type: ignore[assignment]
    desk.desk = Accounts()  # type: ignore[assignment]
    desk.index = SimpleNamespace(by_id={book.st.id: book.st}, dropped=[])  # type: ignore[assignment]
    desk._budgets, desk._waiting, desk._busy, desk._calls = {}, {}, set(), set()
    desk._subs, desk._tasks, desk._loops = [], [], {}
    return desk


async def quote_buy(desk: quotes.QuoteDesk, st: AssignmentState, at: int, price: str) -> None:
    t = m.Tick(exchange="sim", symbol="BTC/USD", bid=100.0, ask=100.1, time=at)
    frame = Frame("sim", "BTC/USD", "1m", 0, "", 0)
    await desk._send(t, frame, [(st, [model.Quote("buy", D(price), D("0.001"))])])
    await asyncio.sleep(0)


async def test_a_quote_whose_id_exists_already_leaves_what_rests_on_its_side_known() -> None:
    """A restarted sim replays the unfinished minute's ticks: a replacement's client id (tick, assignment,
    side) can be a quote of the previous run. It is not sent, and the quote resting on that side stays the
    one the desk knows, so the next replacement cancels it (and a pause or a shutdown takes it down)."""
    st = state()
    resting = quote_order_id(st.id, 1_000, "buy")
    st.quotes = {"buy": QuoteSlot(resting, D(99), D("0.001"), "open")}
    replayed = quote_order_id(st.id, 2_000, "buy")  # the previous run quoted on this tick
    book = Book({resting, replayed}, st)
    desk = quote_desk(book)
    await quote_buy(desk, st, 2_000, "98")
    assert book.sent == [] and book.extra == {}  # never sent twice
    assert st.quotes["buy"].cid == resting  # what rests there still does
    await quote_buy(desk, st, 3_000, "97")
    new = quote_order_id(st.id, 3_000, "buy")
    assert book.sent == [(new, [resting])]  # the replacement takes the resting quote down on the venue
    assert st.quotes["buy"].cid == new and st.quotes["buy"].price == D(97)
    assert book.cancelled == []


async def test_shutdown_cancels_a_quote_once_its_placement_is_answered() -> None:
    """A cancel sent while its quote's placement is on its way finds nothing on the venue, which then
    places the quote: it would rest there after shutdown, nobody watching it."""
    st = state()
    book = Book(set(), st)
    desk = quote_desk(book)
    book.answer.clear()
    await quote_buy(desk, st, 1_000, "99")
    cid = quote_order_id(st.id, 1_000, "buy")
    assert book.sent == [(cid, [])] and st.quotes["buy"].status == "pending"
    stopping = asyncio.create_task(desk.stop())
    await asyncio.sleep(0.05)
    assert book.cancelled == []  # not while the venue has not answered the placement
    book.answer.set()
    await asyncio.wait_for(stopping, 2)
    assert book.cancelled == [cid]
