"""Ticks through the market-data door: checked, and stored sampled (the last tick of each interval of a
market), so that a quoting strategy can be backtested on the book it would have seen. Ticks themselves
travel on the bus and are never stored one by one: a busy market sends many a second."""

from __future__ import annotations

import math
from typing import Any

from tradewind.bus import messages as m
from tradewind.storage.db import insert_for
from tradewind.storage.models import TickRow

_TICKS = TickRow.__table__


def tick_problem(t: m.Tick) -> str | None:
    """What is wrong with a tick, or None: prices finite and positive, the bid below the ask."""
    for name in ("bid", "ask"):
        v = getattr(t, name)
        if not (isinstance(v, int | float) and math.isfinite(v) and v > 0):
            return f"{name} is not a positive number"
    if t.bid >= t.ask:
        return f"crossed book: bid {t.bid} >= ask {t.ask}"
    for name in ("bid_size", "ask_size", "last"):
        v = getattr(t, name)
        if not (isinstance(v, int | float) and math.isfinite(v) and v >= 0):
            return f"{name} is not a number >= 0"
    if t.time < 0:
        return "time is negative"
    return None


class TickSampler:
    """The last tick of each ``sample_ms`` of each market; ``take`` hands over the finished intervals."""

    def __init__(self, sample_ms: int) -> None:
        self.sample_ms = sample_ms
        self._open: dict[int, tuple[int, m.Tick]] = {}  # market -> (interval start, its latest tick)
        self._done: list[dict[str, Any]] = []

    def add(self, market_id: int, t: m.Tick) -> None:
        start = t.time - t.time % self.sample_ms
        held = self._open.get(market_id)
        if held is not None and held[0] != start:
            if start < held[0]:  # late: its interval is written already
                return
            self._done.append(_row(market_id, *held))
        self._open[market_id] = (start, t)

    def take(self, now_ms: int | None = None) -> list[dict[str, Any]]:
        """The rows of the intervals that ended; with ``now_ms``, also those open intervals it has passed
        (a market whose ticks stopped)."""
        if now_ms is not None:
            for mid, (start, t) in list(self._open.items()):
                if start + self.sample_ms <= now_ms:
                    self._done.append(_row(mid, start, t))
                    del self._open[mid]
        rows, self._done = self._done, []
        return rows


def _row(market_id: int, start: int, t: m.Tick) -> dict[str, Any]:
    return {
        "market_id": market_id,
        "time": start,
        "bid": t.bid,
        "ask": t.ask,
        "bid_size": t.bid_size,
        "ask_size": t.ask_size,
        "last": t.last or (t.bid + t.ask) / 2,
    }


async def store_ticks(session: Any, dialect: str, rows: list[dict[str, Any]]) -> None:
    """Insert sampled ticks; an interval stored already (a second core, a restart) is kept as it is."""
    if rows:
        ins = insert_for(dialect)(_TICKS).on_conflict_do_nothing(index_elements=["market_id", "time"])
        await session.execute(ins, rows)
