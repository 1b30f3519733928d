"""Random-walk trades and candles for the simulated markets.

Each minute is a path of trades, one every ``tick_ms`` of sim time (the first at the minute's open time):
log prices follow a Gaussian random walk with the same variance per minute whatever the number of trades.
A minute's candle is exactly the aggregate of its trades: it opens at the previous close (so "fills at
the next candle's open" is the last close), its high and low are those of the open and the trades, and it
closes at the last trade. Prices and volumes come from two generators of their own, so a minute's trades
do not depend on how the minutes were asked for (one at a time, or a year at once).
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np

from tradewind.marketdata import Row

MINUTE = 60_000
TICK_MS = 1_000  # sim time between two trades (``sim_tick_ms``)

# Rough starting prices and per-minute volatility (about 75% a year, lively enough for a demo).
START_PRICES = {"BTC": 60_000.0, "ETH": 3_000.0, "SOL": 150.0, "XRP": 0.6, "ADA": 0.45, "DOGE": 0.12}
MINUTE_SIGMA = 0.001


@dataclass(frozen=True, slots=True)
class Paths:
    """Consecutive minutes of trades: ``prices[i, k]`` is the k-th trade of the minute opening at
    ``rows[i][0]``, made at ``rows[i][0] + k * tick_ms``; ``rows`` are their candles."""

    rows: list[Row]
    prices: np.ndarray  # (minutes, trades per minute), float64
    tick_ms: int

    def times(self, i: int) -> list[int]:
        """The sim times (epoch ms) of the trades of the i-th minute."""
        t = self.rows[i][0]
        return list(range(t, t + self.tick_ms * self.prices.shape[1], self.tick_ms))


class RandomWalk:
    """Stateful generator of consecutive minutes of trades (and their 1m candles) for one symbol,
    continuing from the last close."""

    def __init__(
        self,
        symbol: str,
        seed: int,
        last_time: int | None = None,
        last_close: float | None = None,
        *,
        tick_ms: int = TICK_MS,
    ):
        self.symbol = symbol
        base = symbol.split("/")[0]
        key = zlib.crc32(symbol.encode())
        self.rng = np.random.default_rng([seed, key])  # the trades
        self.volume_rng = np.random.default_rng([seed, key, 1])  # the minutes' volumes
        self.last_close = last_close if last_close is not None else START_PRICES.get(base, 100.0)
        self.last_time = last_time  # open time of the last generated minute
        self.sigma = MINUTE_SIGMA
        self.mean_volume = 5_000_000.0 / self.last_close  # about 5M quote a minute
        self.tick_ms = tick_ms
        self.trades_per_minute = -(-MINUTE // tick_ms)  # the last trade comes before the next minute

    def generate(self, start: int, count: int) -> list[Row]:
        """``count`` candles with open times start, start+1m, ...; continues the walk from the last close."""
        return self.paths(start, count).rows

    def paths(self, start: int, count: int) -> Paths:
        """The trades of ``count`` minutes opening at start, start+1m, ..., and their candles; continues
        the walk from the last close. Vectorised: a year of minutes is a few numpy passes."""
        n = self.trades_per_minute
        if count <= 0:
            return Paths([], np.empty((0, n)), self.tick_ms)
        path = self.rng.standard_normal(size=(count, n))  # steps, then in place: log prices, then prices
        path *= self.sigma / np.sqrt(n)
        flat = path.reshape(-1)
        np.cumsum(flat, out=flat)
        flat += np.log(self.last_close)
        np.exp(flat, out=flat)
        closes = path[:, -1]
        opens = np.empty(count)
        opens[0] = self.last_close
        opens[1:] = closes[:-1]
        highs = np.maximum(path.max(axis=1), opens)
        lows = np.minimum(path.min(axis=1), opens)
        volumes = self.volume_rng.lognormal(np.log(self.mean_volume), 0.5, size=count)
        times = range(start, start + MINUTE * count, MINUTE)
        self.last_close = float(closes[-1])
        self.last_time = start + MINUTE * (count - 1)
        rows: list[Row] = list(
            zip(
                times,
                opens.tolist(),
                highs.tolist(),
                lows.tolist(),
                closes.tolist(),
                volumes.tolist(),
                strict=True,
            )
        )
        return Paths(rows, path, self.tick_ms)
