"""Evaluations per second per worker core: 1,000 assignments of one strategy version on one market (each
with its own params), a 20-line strategy with two indicators over a 500-candle window (issues 3 and 17).
Three measurements:

- ``sandbox``: a runtime of its own per assignment (a Lua state each, the indicator cache shared), called
  in this process: how backtests and validation run strategies;
- ``shared``: the assignments in one Lua state (``LuaState``), all evaluated in one call per candle
  (``LuaState.decide_all``), in this process: the work of the eval worker's executor child;
- ``executor``: the whole path of the eval worker, batches of ``--batch`` jobs sent to the executor
  child process that owns the runtimes and back (msgpack, the pipe, outcome tuples), the child's idle
  garbage collection included.

Prints the median over the candles (rounds) of each per wall-clock second, and the evaluations of all
rounds per CPU second of all rounds (the CPU time of the processes doing the work: robust when other
work shares the machine's cores; a process's CPU time is read in 10 ms ticks, too coarse for one round).

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
from tradewind.sandbox.runtime import Limits, LuaState, StrategyRuntime
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


Rates = tuple[list[float], float]  # per round, per wall-clock second; all rounds per CPU second


def sandbox(strategies: int, candles: int) -> Rates:
    store = ArrayStore()
    runtimes = [StrategyRuntime(STRATEGY, name=f"s{i}", params={"low": 25 + i % 10}, limits=Limits(), indicators=store)
                for i in range(strategies)]  # fmt: skip
    rates = []
    cpu = cpu_seconds()
    for window in windows(candles):
        started = time.perf_counter()
        for rt in runtimes:
            rt.decide(window)
        rates.append(strategies / (time.perf_counter() - started))
    return rates, strategies * candles / max(cpu_seconds() - cpu, 1e-9)


def shared(strategies: int, candles: int) -> Rates:
    state = LuaState(Limits(), ArrayStore())
    runtimes = [StrategyRuntime(STRATEGY, name=f"s{i}", params={"low": 25 + i % 10}, state=state)
                for i in range(strategies)]  # fmt: skip
    rates = []
    cpu = cpu_seconds()
    for window in windows(candles):
        started = time.perf_counter()
        out = state.decide_all(window, runtimes)
        assert all(d.__class__.__name__ == "Decision" for d in out), out[0]
        rates.append(strategies / (time.perf_counter() - started))
    return rates, strategies * candles / max(cpu_seconds() - cpu, 1e-9)


async def executor(strategies: int, candles: int, batch: int) -> Rates:
    ex = Executor(Limits())
    await ex.start()
    jobs = [Job(i, 1, 1, "bench", {"low": 25 + i % 10}, 500) for i in range(strategies)]
    codes = {(1, 1): STRATEGY}
    try:
        rates = []
        child = ex._proc.pid
        cpu = 0.0
        for k, window in enumerate(windows(candles + 1)):
            if k == 1:  # the first candle loads 1,000 runtimes (init); the rest is the steady state
                cpu = cpu_seconds() + cpu_seconds(child)
            started = time.perf_counter()
            for b in range(0, strategies, batch):
                out = await ex.evaluate(window, window.last_time, jobs[b : b + batch], codes)
                assert all(o[1] == "ok" for o in out), out[0]
            if k:
                rates.append(strategies / (time.perf_counter() - started))
        return rates, strategies * candles / max(cpu_seconds() + cpu_seconds(child) - cpu, 1e-9)
    finally:
        await ex.close()


def report(label: str, rates: Rates) -> None:
    wall, per_cpu = rates
    med = statistics.median(wall)
    print(f"{label}: median {med:,.0f} evaluations/s of wall clock (min {min(wall):,.0f}, max {max(wall):,.0f}); "
          f"{per_cpu:,.0f} per CPU second, {1e6 / per_cpu:.1f} us each")  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--strategies", type=int, default=1000)
    ap.add_argument("--candles", type=int, default=20, help="candles (rounds) to evaluate")
    ap.add_argument("--batch", type=int, default=250, help="jobs per request in the executor measurement")
    args = ap.parse_args()
    print(f"strategies: {args.strategies}, window: 500 candles, rounds: {args.candles}")
    report("sandbox, one core ", sandbox(args.strategies, args.candles))
    report("shared, one core  ", shared(args.strategies, args.candles))
    report("executor, one core", asyncio.run(executor(args.strategies, args.candles, args.batch)))


if __name__ == "__main__":
    main()
