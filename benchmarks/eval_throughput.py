"""Evaluations per second per worker core: 1,000 strategies on one market, a 20-line strategy with two
indicators over a 500-candle window (issue 3's benchmark). Two measurements:

- ``sandbox``: the runtimes called in this process (one runtime per strategy, the indicator cache
  shared), which is the work an eval worker's core does per evaluation;
- ``executor``: the whole path of the eval worker, batches of ``--batch`` jobs sent to the executor
  child process that owns the runtimes and back (pickling, the pipe, outcome tuples).

Prints the median over the candles (rounds) of each, per wall-clock second and per CPU second (the
CPU time of the processes doing the work: robust when other work shares the machine's cores).

    .venv/bin/python benchmarks/eval_throughput.py [--strategies 1000] [--candles 20] [--batch 250]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
from pathlib import Path

import numpy as np

from tradewind.eval.executor import Executor, Job
from tradewind.sandbox.runtime import Limits, StrategyRuntime
from tradewind.sandbox.ta import ArrayStore
from tradewind.sandbox.window import CandleWindow

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


def cpu_seconds(pid: int | None = None) -> float:
    """CPU time (user + system) of this process, or of another one from /proc."""
    if pid is None:
        return time.process_time()
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def sandbox(strategies: int, candles: int) -> tuple[list[float], list[float]]:
    store = ArrayStore()
    runtimes = [StrategyRuntime(STRATEGY, name=f"s{i}", params={"low": 25 + i % 10}, limits=Limits(), indicators=store)
                for i in range(strategies)]  # fmt: skip
    rates, cpu_rates = [], []
    for window in windows(candles):
        started, cpu = time.perf_counter(), cpu_seconds()
        for rt in runtimes:
            rt.decide(window)
        rates.append(strategies / (time.perf_counter() - started))
        cpu_rates.append(strategies / max(cpu_seconds() - cpu, 1e-9))
    return rates, cpu_rates


async def executor(strategies: int, candles: int, batch: int) -> tuple[list[float], list[float]]:
    ex = Executor(Limits())
    await ex.start()
    jobs = [Job(i, 1, 1, "bench", {"low": 25 + i % 10}, 500) for i in range(strategies)]
    codes = {(1, 1): STRATEGY}
    try:
        rates, cpu_rates = [], []
        child = ex._proc.pid
        for k, window in enumerate(windows(candles + 1)):
            started, cpu = time.perf_counter(), cpu_seconds() + cpu_seconds(child)
            for b in range(0, strategies, batch):
                out = await ex.evaluate(window, window.last_time, jobs[b : b + batch], codes)
                assert all(o[1] == "ok" for o in out), out[0]
            if k:  # the first candle loads 1,000 runtimes (init); the rest is the steady state
                rates.append(strategies / (time.perf_counter() - started))
                cpu_rates.append(strategies / max(cpu_seconds() + cpu_seconds(child) - cpu, 1e-9))
        return rates, cpu_rates
    finally:
        await ex.close()


def report(label: str, rates: tuple[list[float], list[float]]) -> None:
    wall, cpu = rates
    med, med_cpu = statistics.median(wall), statistics.median(cpu)
    print(f"{label}: median {med:,.0f} evaluations/s of wall clock (min {min(wall):,.0f}, max {max(wall):,.0f}); "
          f"{med_cpu:,.0f} per CPU second, {1e6 / med_cpu:.1f} us each")  # fmt: skip


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
