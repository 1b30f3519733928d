"""Evaluations per second per worker core: 1,000 strategies on one market, a 20-line strategy with two
indicators over a 500-candle window, as the eval executor runs them (one runtime per strategy, the
indicator cache shared). Prints the median of several rounds.

    .venv/bin/python benchmarks/eval_throughput.py [--strategies 1000] [--candles 20]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from tradewind.eval.sandbox import StrategyRuntime
from tradewind.eval.ta import ArrayStore
from tradewind.eval.window import CandleWindow

STRATEGY = """
-- RSI mean reversion filtered by a moving average (20 lines)
function init(params)
  threshold_low = params.low or 30
  threshold_high = params.high or 70
end

function decide(c, params)
  local rsi = ta.rsi(c.close, params.rsi or 14)
  local trend = ta.ema(c.close, params.trend or 50)
  local r, t = rsi[#rsi], trend[#trend]
  local price = c.close[#c.close]
  if r ~= r or t ~= t then
    return "neutral"
  end
  if r < threshold_low and price > t then
    return "long"
  elseif r > threshold_high then
    return "short"
  end
  return "neutral"
end
"""


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--strategies", type=int, default=1000)
    ap.add_argument("--candles", type=int, default=20, help="candles (rounds) to evaluate")
    args = ap.parse_args()
    rng = np.random.default_rng(1)
    n = 500 + args.candles
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.002, n)))
    rows = [(60_000 * (i + 1), c, c * 1.001, c * 0.999, c, 1.0) for i, c in enumerate(close)]
    store = ArrayStore()
    runtimes = [StrategyRuntime(STRATEGY, name=f"s{i}", params={"low": 25 + i % 10}, indicators=store) for i in range(args.strategies)]
    rates = []
    for k in range(args.candles):
        window = CandleWindow.from_rows(rows[k : k + 500], "sim:BTC/USD:1m")  # a new candle: a new window
        started = time.perf_counter()
        for rt in runtimes:
            rt.decide(window)
        rates.append(args.strategies / (time.perf_counter() - started))
    print(f"strategies: {args.strategies}, window: 500 candles, rounds: {args.candles}")
    print(f"evaluations/s on one core: median {statistics.median(rates):,.0f} (min {min(rates):,.0f}, max {max(rates):,.0f})")
    print(f"per evaluation: median {1e6 / statistics.median(rates):.1f} us; indicator computations: {store.computed}")


if __name__ == "__main__":
    main()
