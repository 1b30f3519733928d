"""core.quotes' decisions without a bus: what changed between the quotes wanted and the ones resting,
what the venue's answers do to them, and an account's budget of quote calls."""

from __future__ import annotations

import time
from decimal import Decimal

from tradewind.core import orders, quotes
from tradewind.core.decide import AssignmentState, QuoteSlot
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
