"""Evaluations per second per worker core: 1,000 strategies on one market, a 20-line strategy with two
indicators over a 500-candle window (issue 3's benchmark). Two measurements:

- ``sandbox``: the runtimes called in this process (one runtime per strategy, the indicator cache
  shared), which is the work an eval worker's core does per evaluation;
- ``executor``: the whole path of the eval worker, batches of ``--batch`` jobs sent to the executor
  child process that owns the runtimes and back (pickling, the pipe, outcome tuples).

Prints the median over the candles (rounds) of each.

    .venv/bin/python benchmarks/eval_throughput.py [--strategies 1000] [--candles 20] [--batch 250]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

import numpy as np

from tradewind.eval.executor import Executor, Job
from tradewind.eval.sandbox import Limits, StrategyRuntime
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


def windows(candles: int) -> list[CandleWindow]:
    rng = np.random.default_rng(1)
    n = 500 + candles
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.002, n)))
    rows = [(60_000 * (i + 1), c, c * 1.001, c * 0.999, c, 1.0) for i, c in enumerate(close)]
    # a new candle: a new window, as the worker's cache builds it
    return [CandleWindow.from_rows(rows[k : k + 500], "sim:BTC/USD:1m") for k in range(candles)]


def sandbox(strategies: int, candles: int) -> list[float]:
    store = ArrayStore()
    runtimes = [StrategyRuntime(STRATEGY, name=f"s{i}", params={"low": 25 + i % 10}, limits=Limits(), indicators=store)
                for i in range(strategies)]  # fmt: skip
    rates = []
    for window in windows(candles):
        started = time.perf_counter()
        for rt in runtimes:
            rt.decide(window)
        rates.append(strategies / (time.perf_counter() - started))
    return rates


async def executor(strategies: int, candles: int, batch: int) -> list[float]:
    ex = Executor(Limits())
    await ex.start()
    jobs = [Job(i, 1, 1, "bench", {"low": 25 + i % 10}, 500) for i in range(strategies)]
    codes = {(1, 1): STRATEGY}
    try:
        rates = []
        for k, window in enumerate(windows(candles + 1)):
            started = time.perf_counter()
            for b in range(0, strategies, batch):
                out = await ex.evaluate(window, window.last_time, jobs[b : b + batch], codes)
                assert all(o[1] == "ok" for o in out), out[0]
            if k:  # the first candle loads 1,000 runtimes (init); the rest is the steady state
                rates.append(strategies / (time.perf_counter() - started))
        return rates
    finally:
        await ex.close()


def report(label: str, rates: list[float]) -> None:
    med = statistics.median(rates)
    print(f"{label}: median {med:,.0f} evaluations/s (min {min(rates):,.0f}, max {max(rates):,.0f}), {1e6 / med:.1f} us each")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--strategies", type=int, default=1000)
    ap.add_argument("--candles", type=int, default=20, help="candles (rounds) to evaluate")
    ap.add_argument("--batch", type=int, default=250, help="jobs per request in the executor measurement")
    args = ap.parse_args()
    print(f"strategies: {args.strategies}, window: 500 candles, rounds: {args.candles}")
    report("sandbox, one core ", sandbox(args.strategies, args.candles))
    report("executor, one core", asyncio.run(executor(args.strategies, args.candles, args.batch)))


if __name__ == "__main__":
    main()
