"""Ticks through the market-data door: checked, and sampled (the last tick of each interval)."""

from __future__ import annotations

import math

from tradewind.bus import messages as m
from tradewind.marketdata.ticks import TickSampler, tick_problem


def tick(t: int, bid: float = 99.0, ask: float = 101.0, last: float = 100.0) -> m.Tick:
    return m.Tick(exchange="sim", symbol="BTC/USD", bid=bid, ask=ask, last=last, time=t)


def test_bad_ticks_are_named() -> None:
    assert tick_problem(tick(1)) is None
    assert "crossed" in (tick_problem(tick(1, bid=101, ask=100)) or "")
    assert "bid" in (tick_problem(tick(1, bid=0)) or "")
    assert "ask" in (tick_problem(tick(1, ask=math.nan)) or "")
    assert "last" in (tick_problem(tick(1, last=-1)) or "")


def test_the_last_tick_of_each_interval_is_kept_once() -> None:
    s = TickSampler(1000)
    for t, last in ((100, 1.0), (900, 2.0), (1000, 3.0), (1500, 4.0), (2100, 5.0)):
        s.add(7, tick(t, last=last))
    rows = s.take()
    assert [(r["time"], r["last"]) for r in rows] == [(0, 2.0), (1000, 4.0)]
    assert s.take() == []  # handed over once
    s.add(7, tick(500, last=9.0))  # late: its interval is written already
    assert s.take(now_ms=3000) == [
        {
            "market_id": 7,
            "time": 2000,
            "bid": 99.0,
            "ask": 101.0,
            "bid_size": 0.0,
            "ask_size": 0.0,
            "last": 5.0,
        }
    ]


def test_markets_are_sampled_apart() -> None:
    s = TickSampler(1000)
    s.add(1, tick(10))
    s.add(2, tick(20))
    s.add(1, tick(1010))
    assert [(r["market_id"], r["time"]) for r in s.take(now_ms=5000)] == [(1, 0), (1, 1000), (2, 0)]
