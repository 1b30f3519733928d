"""Candle windows: the arrays a strategy sees, as cheap views over larger arrays."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SERIES = ("open", "high", "low", "close", "volume", "time")


@dataclass(frozen=True, slots=True)
class CandleWindow:
    """Candles oldest first; the last one is the candle just closed. ``key`` names the market and
    timeframe (e.g. 'sim:BTC/USD:1m'): with the last time it identifies the window for shared caches."""

    key: str
    time: np.ndarray  # int64 epoch ms (open times)
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray

    @property
    def last_time(self) -> int:
        return int(self.time[-1]) if len(self.time) else 0

    def __len__(self) -> int:
        return len(self.time)

    @classmethod
    def view(cls, arrays: dict[str, np.ndarray], end: int, lookback: int, key: str) -> CandleWindow:
        """The window of at most ``lookback`` candles ending at index ``end`` (inclusive); no copying."""
        start = max(0, end + 1 - lookback)
        return cls(
            key,
            *(arrays[name][start : end + 1] for name in ("time", "open", "high", "low", "close", "volume")),
        )

    @classmethod
    def from_rows(cls, rows: list[tuple[int, float, float, float, float, float]], key: str) -> CandleWindow:
        if not rows:
            e = np.empty(0)
            return cls(key, np.empty(0, dtype=np.int64), e, e, e, e, e)
        a = np.asarray(rows, dtype=np.float64)
        return cls(key, a[:, 0].astype(np.int64), *(np.ascontiguousarray(a[:, i]) for i in range(1, 6)))

    def tail(self, lookback: int) -> CandleWindow:
        if len(self) <= lookback:
            return self
        return CandleWindow(
            self.key,
            *(getattr(self, n)[-lookback:] for n in ("time", "open", "high", "low", "close", "volume")),
        )
