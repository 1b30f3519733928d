"""Derived timeframes (5m … 1d) built from accepted 1m candles, with a warm window loaded at start."""

from __future__ import annotations

from dataclasses import dataclass, field

from tradewind.domain import DERIVED_TIMEFRAMES, tf_ms
from tradewind.marketdata import Row, aggregate, bucket_start
from tradewind.storage import candles as store
from tradewind.storage.db import SessionFactory

MINUTE = 60_000


@dataclass
class _Bucket:
    start: int
    rows: dict[int, Row] = field(default_factory=dict)  # by time: adding the same minute twice is harmless

    def candle(self) -> Row:
        return (self.start, *aggregate([self.rows[t] for t in sorted(self.rows)]))


class Resampler:
    """Per market: the open bucket of each derived timeframe. ``add`` returns the candles it closes."""

    def __init__(self, timeframes: tuple[str, ...] = DERIVED_TIMEFRAMES) -> None:
        self.timeframes = timeframes
        self._open: dict[tuple[int, str], _Bucket] = {}
        self._done: dict[tuple[int, str], _Bucket] = {}  # the bucket each timeframe closed last

    async def warm(self, sf: SessionFactory, market_id: int) -> None:
        """Load the 1m candles of each open bucket from the store, so a restart does not lose them."""
        async with sf() as s:
            last = await store.last_time(s, market_id, "1m")
            if last is None:
                return
            for tf in self.timeframes:
                start = bucket_start(last, tf)
                if last + MINUTE == start + tf_ms(tf):
                    continue  # that bucket closed with its last minute
                rows = await store.candle_range(s, market_id, "1m", start, last + MINUTE)
                self._open[(market_id, tf)] = _Bucket(start, {r[0]: r for r in rows})

    def add(self, market_id: int, row: Row) -> list[tuple[str, Row]]:
        closed: list[tuple[str, Row]] = []
        t = row[0]
        for tf in self.timeframes:
            start = bucket_start(t, tf)
            key = (market_id, tf)
            bucket = self._open.get(key)
            if bucket is not None and bucket.start < start:
                closed.append((tf, bucket.candle()))  # a gap ended the bucket early
                self._done[key] = self._open.pop(key)
                bucket = None
            if bucket is None or bucket.start > start:
                done = self._done.get(key)
                if done is not None and done.start == start:
                    # A late minute of the bucket closed last (a candle the stream gave back after a failover,
                    # behind newer ones): close that bucket again, whole, so its stored candle is corrected.
                    if t not in done.rows:
                        done.rows[t] = row
                        closed.append((tf, done.candle()))
                    continue
                if bucket is not None or (done is not None and done.start > start):
                    continue  # an older minute still: its bucket is long gone
                bucket = self._open[key] = _Bucket(start)
            bucket.rows[t] = row
            if t + MINUTE == start + tf_ms(tf):
                closed.append((tf, bucket.candle()))
                self._done[key] = self._open.pop(key)
        return closed
