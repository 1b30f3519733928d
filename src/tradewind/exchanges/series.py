"""Turn a venue's candle updates into closed candles, each minute exactly once, in order, gaps filled.

Streaming venues (Bitfinex's websocket, ccxt's ``watch_ohlcv``, a REST poller) all send the open candle
many times as it grows, resend old candles after a reconnect, and skip minutes while disconnected or
when nobody traded. ``CandleSeries`` is the one place that turns that into the adapter protocol's promise.
Shared by the adapters in this package; it knows nothing about any venue.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Awaitable, Callable, Coroutine, Iterable
from typing import Any, TypeVar

from tradewind.bus.messages import Candle

T = TypeVar("T")
Row = tuple[int, float, float, float, float, float]  # open time ms, open, high, low, close, volume
Backfill = Callable[[int, int], Awaitable[list[Row]]]  # closed rows with open time in [start, end)


async def fan_in(runs: list[Coroutine[Any, Any, None]], queue: asyncio.Queue[T]) -> AsyncGenerator[T, None]:
    """What ``runs`` (one task each) put on ``queue``, as it comes; the tasks are cancelled, and waited for,
    when the reader stops. A stream that yields from it should close it at once when it is itself closed
    (``contextlib.aclosing``), so the tasks stop then, not when the generator is collected."""
    tasks = [asyncio.create_task(run) for run in runs]
    try:
        while True:
            yield await queue.get()
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def closed_candle(exchange: str, symbol: str, tf: str, row: Row, recv_ns: int, trace_id: str = "") -> Candle:
    """``row`` as the closed candle an adapter hands out; ``recv_ns``: when the venue's update arrived."""
    t, o, h, lo, c, v = row
    return Candle(
        exchange=exchange,
        symbol=symbol,
        tf=tf,
        time=t,
        open=o,
        high=h,
        low=lo,
        close=c,
        volume=v,
        closed=True,
        trace_id=trace_id,
        recv_ns=recv_ns,
    )


def fill_gaps(
    rows: Iterable[Row], tf_ms: int, prev_close: float | None = None, start: int | None = None
) -> list[Row]:
    """Rows (oldest first, distinct times) with every missing interval filled by a flat candle.

    A missing interval is one in which nobody traded (venues such as Bitfinex send no candle for it):
    it opens, closes, and stays at the previous close with zero volume. Before the first row nothing is
    filled unless ``start`` and ``prev_close`` say where the series stood.
    """
    out: list[Row] = []
    expect = start
    last_close = prev_close
    for row in rows:
        t = row[0]
        if expect is not None and last_close is not None:
            while expect < t:
                out.append((expect, last_close, last_close, last_close, last_close, 0.0))
                expect += tf_ms
        out.append(row)
        expect = t + tf_ms
        last_close = row[4]
    return out


class CandleSeries:
    """One market's candle stream state: the open (pending) candle and the last closed one emitted.

    ``update`` takes any candle the venue sends (open or closed, old or new) and returns the candles that
    are now closed and not yet emitted, oldest first. Everything is atomic: if the backfill of a gap
    fails, the state is unchanged and the caller can reconnect and try again, so no minute is skipped.
    """

    def __init__(self, tf_ms: int, backfill: Backfill, last_emitted: int | None = None) -> None:
        self.tf_ms = tf_ms
        self.backfill = backfill
        self.last_emitted = last_emitted
        self.last_close: float | None = None
        self.pending: Row | None = None
        self._undelivered: list[Row] = []
        self.lock = asyncio.Lock()  # updates and the close timer must not interleave around a backfill

    async def update(self, row: Row, *, closed: bool = False) -> list[Row]:
        async with self.lock:
            t = row[0]
            if self.last_emitted is not None and t <= self.last_emitted:
                return self._take([])  # already emitted: a resend after a reconnect, or a late update
            pending = self.pending
            if pending is not None and t < pending[0]:
                return self._take(await self._close(row))  # older than the open minute: necessarily closed
            if pending is not None and t > pending[0]:
                self._undelivered += await self._close(pending)
                self.pending = None
            elif pending is not None and closed:
                self.pending = None  # the open minute itself, now known to be closed
            if closed:
                return self._take(await self._close(row))
            self.pending = row
            return self._take([])

    def _take(self, rows: list[Row]) -> list[Row]:
        # Rows closed by an earlier step of a call that then failed (a backfill) still go out, first.
        out, self._undelivered = self._undelivered + rows, []
        return out

    def forget_open(self) -> None:
        """Drop the open candle: after a reconnect its last state may be stale, and the venue's snapshot
        (or the backfill of the gap it leaves) brings its final values."""
        self.pending = None

    async def expire(self, now_ms: int, grace_ms: int) -> list[Row]:
        """Close the open candle once its interval ended ``grace_ms`` ago and no later one arrived.

        Without this a quiet market would hold its last candle back until the next trade.
        """
        async with self.lock:
            pending = self.pending
            if pending is None or pending[0] + self.tf_ms + grace_ms > now_ms:
                return []
            out = await self._close(pending)
            self.pending = None
            return self._take(out)

    async def _close(self, row: Row) -> list[Row]:
        t = row[0]
        rows: list[Row] = []
        last = self.last_emitted
        if last is not None and t > last + self.tf_ms:
            fetched = await self.backfill(last + self.tf_ms, t)
            by_time = {r[0]: r for r in fetched if last < r[0] < t and (r[0] - last) % self.tf_ms == 0}
            rows = fill_gaps(
                [*sorted(by_time.values()), row], self.tf_ms, self.last_close, last + self.tf_ms
            )[:-1]
        rows.append(row)
        self.last_emitted = t
        self.last_close = row[4]
        return rows
