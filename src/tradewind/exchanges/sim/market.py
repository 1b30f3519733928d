"""Random-walk candles for the simulated markets.

Log prices follow a Gaussian random walk sampled ten times a minute (high and low come from the path);
each candle opens at the previous close, so "fills at the next candle's open" is the last close.
"""

from __future__ import annotations

import zlib

import numpy as np

from tradewind.marketdata import Row

MINUTE = 60_000
SUBSTEPS = 10

# Rough starting prices and per-minute volatility (about 75% a year, lively enough for a demo).
START_PRICES = {"BTC": 60_000.0, "ETH": 3_000.0, "SOL": 150.0, "XRP": 0.6, "ADA": 0.45, "DOGE": 0.12}
MINUTE_SIGMA = 0.001


class RandomWalk:
    """Stateful generator of consecutive 1m candles for one symbol, continuing from the last close."""

    def __init__(self, symbol: str, seed: int, last_time: int | None = None, last_close: float | None = None):
        self.symbol = symbol
        base = symbol.split("/")[0]
        self.rng = np.random.default_rng([seed, zlib.crc32(symbol.encode())])
        self.last_close = last_close if last_close is not None else START_PRICES.get(base, 100.0)
        self.last_time = last_time  # open time of the last generated candle
        self.sigma = MINUTE_SIGMA
        self.mean_volume = 5_000_000.0 / self.last_close  # about 5M quote a minute

    def generate(self, start: int, count: int) -> list[Row]:
        """``count`` candles with open times start, start+1m, ...; continues the walk from the last close."""
        if count <= 0:
            return []
        steps = self.rng.normal(0.0, self.sigma / np.sqrt(SUBSTEPS), size=(count, SUBSTEPS))
        log_path = np.log(self.last_close) + np.cumsum(steps.ravel()).reshape(count, SUBSTEPS)
        path = np.exp(log_path)
        closes = path[:, -1]
        opens = np.empty(count)
        opens[0] = self.last_close
        opens[1:] = closes[:-1]
        highs = np.maximum(path.max(axis=1), opens)
        lows = np.minimum(path.min(axis=1), opens)
        volumes = self.rng.lognormal(np.log(self.mean_volume), 0.5, size=count)
        times = start + MINUTE * np.arange(count, dtype=np.int64)
        self.last_close = float(closes[-1])
        self.last_time = int(times[-1])
        return [
            (int(t), float(o), float(h), float(lo), float(c), float(v))
            for t, o, h, lo, c, v in zip(times, opens, highs, lows, closes, volumes, strict=True)
        ]
