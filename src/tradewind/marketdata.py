"""Pure helpers on candles shared by components: time buckets, aggregation, validation."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

from tradewind.bus.messages import Candle
from tradewind.domain import tf_ms

Row = tuple[int, float, float, float, float, float]


def bucket_start(time_ms: int, tf: str) -> int:
    """Open time of the ``tf`` candle containing ``time_ms`` (buckets aligned to the Unix epoch, UTC)."""
    size = tf_ms(tf)
    return time_ms - time_ms % size


def aggregate(rows: Sequence[Row]) -> tuple[float, float, float, float, float]:
    """(open, high, low, close, volume) of consecutive candles, oldest first."""
    return (
        rows[0][1],
        max(r[2] for r in rows),
        min(r[3] for r in rows),
        rows[-1][4],
        sum(r[5] for r in rows),
    )


def resample_rows(rows: Iterable[Row], tf: str) -> list[Row]:
    """Aggregate 1m rows (oldest first) into ``tf`` candles; the last bucket is included even if incomplete."""
    out: list[Row] = []
    bucket: list[Row] = []
    current = None
    for row in rows:
        b = bucket_start(row[0], tf)
        if current is not None and b != current:
            out.append((current, *aggregate(bucket)))
            bucket = []
        current = b
        bucket.append(row)
    if bucket and current is not None:
        out.append((current, *aggregate(bucket)))
    return out


def candle_problem(c: Candle) -> str | None:
    """Why a candle is invalid, or None: non-finite or non-positive prices, high/low inconsistent, bad volume."""
    prices = (c.open, c.high, c.low, c.close)
    if not all(math.isfinite(p) and p > 0 for p in prices):
        return "prices must be finite and positive"
    if not (math.isfinite(c.volume) and c.volume >= 0):
        return "volume must be finite and non-negative"
    if c.high < max(c.open, c.close, c.low) or c.low > min(c.open, c.close, c.high):
        return "high/low do not bound open/close"
    if c.time <= 0 or c.time % 60_000:
        return "time must be a positive whole minute in epoch ms"
    return None


def as_row(c: Candle) -> Row:
    return (c.time, c.open, c.high, c.low, c.close, c.volume)
