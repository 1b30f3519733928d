"""Pure helpers on candle rows shared by components: time buckets, aggregation, the row check."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from math import isfinite
from operator import index

from tradewind.bus.messages import Candle
from tradewind.domain import tf_ms

Row = tuple[int, float, float, float, float, float]

# Rejection reasons (also the keys of ``Accepted.rejected``).
PRICE = "prices must be finite and positive"
VOLUME = "volume must be finite and non-negative"
BOUNDS = "high/low do not bound open/close"
TIME = "time must be a positive whole minute in epoch ms"
STALE = "stale (at or before the newest accepted candle)"
OPEN = "not closed yet"
NOT_NUMBER = "a price or the volume is not a number"
MINUTE = 60_000


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


def _problem(t: int, o: float, h: float, lo: float, c: float, v: float, tf: str) -> str | None:
    # Written for core's hot path: comparisons first, a TypeError (not a number at all) caught once.
    try:
        if not (o > 0 and h > 0 and lo > 0 and c > 0 and isfinite(o + h + lo + c)):
            return PRICE
        if not (v >= 0 and isfinite(v)):
            return VOLUME
        if h < o or h < c or h < lo or lo > o or lo > c:
            return BOUNDS
    except TypeError:
        return NOT_NUMBER
    if not isinstance(t, int) or isinstance(t, bool):
        try:
            t = index(t)  # numpy integers pass; floats and anything else do not
        except TypeError:
            t = 0
    if t <= 0 or t % (MINUTE if tf == "1m" else tf_ms(tf)):
        return TIME if tf == "1m" else f"time must be a positive multiple of {tf} in epoch ms"
    return None


def row_problem(row: Row, tf: str = "1m") -> str | None:
    """Why a ``tf`` row is invalid, or None: non-finite or non-positive prices, high/low not bounding
    open/close, non-finite or negative volume, open time not a positive multiple of the timeframe."""
    return _problem(*row, tf)


def candle_problem(c: Candle) -> str | None:
    """Why a candle is invalid, or None (the rules of ``row_problem`` for the candle's timeframe)."""
    return _problem(c.time, c.open, c.high, c.low, c.close, c.volume, c.tf)


def as_row(c: Candle) -> Row:
    return (c.time, c.open, c.high, c.low, c.close, c.volume)
