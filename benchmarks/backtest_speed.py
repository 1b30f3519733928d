"""tradewind backtest vs backtrader: the same SMA 10/30 crossover on the same 120,000 one-minute candles,
each timed as a whole process (start-up included), several runs; prints medians and the ratio.

    .venv/bin/python benchmarks/backtest_speed.py [--candles 120000] [--runs 3]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

STRATEGY = """
function decide(c, params)
  local fast, slow = ta.sma(c.close, 10), ta.sma(c.close, 30)
  local f, s = fast[#fast], slow[#slow]
  if f ~= f or s ~= s then return "neutral" end
  if f > s then return "long" end
  return "short"
end
"""

BACKTRADER = """
import sys, backtrader as bt
from decimal import ROUND_DOWN, Decimal
Q = Decimal("0.00000001")
class Model(bt.Sizer):
    # tradewind's sizing: floor_1e-8(cash / (the decision candle's close x 1.0025)); the market order
    # fills at the next bar's open (backtrader's default; data is preloaded: peek at it), and a buy the
    # cash cannot pay there is not made, as in tradewind
    def _getsizing(self, comminfo, cash, data, isbuy):
        if not isbuy:
            return self.broker.getposition(data).size
        q = (Decimal(repr(cash)) / (Decimal(repr(data.close[0])) * Decimal("1.0025"))).quantize(Q, ROUND_DOWN)
        return float(q) if float(q) * data.open[1] * 1.001 <= cash else 0
class Sma(bt.Strategy):
    def __init__(self):
        self.fast, self.slow = bt.ind.SMA(period=10), bt.ind.SMA(period=30)
    def next(self):
        if len(self.data) == self.data.buflen():
            return  # the last bar: no next open to fill at
        if self.fast[0] > self.slow[0]:
            if not self.position:
                self.buy()
        elif self.position:
            self.close()
cerebro = bt.Cerebro(stdstats=False)
cerebro.broker.set_checksubmit(False)
cerebro.broker.setcash(10000.0)
cerebro.broker.setcommission(commission=0.001)
cerebro.addsizer(Model)
cerebro.adddata(bt.feeds.GenericCSVData(
    dataname=sys.argv[1], dtformat="%Y-%m-%dT%H:%M:%SZ", timeframe=bt.TimeFrame.Minutes, compression=1,
    datetime=0, open=1, high=2, low=3, close=4, volume=5, openinterest=-1))
cerebro.addstrategy(Sma)
cerebro.run()
print(cerebro.broker.getvalue())
"""


def make_candles(path: Path, n: int) -> None:
    rng = np.random.default_rng(42)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.001, n)))
    open_ = np.concatenate([[100.0], close[:-1]])
    high = np.maximum(open_, close) * (1 + rng.uniform(0, 0.0005, n))
    low = np.minimum(open_, close) * (1 - rng.uniform(0, 0.0005, n))
    vol = rng.uniform(1, 10, n)
    t0 = np.datetime64("2024-01-01T00:00:00")
    times = t0 + np.arange(n) * np.timedelta64(1, "m")
    with path.open("w") as fh:
        fh.write("time,open,high,low,close,volume\n")
        for i in range(n):
            fh.write(
                f"{times[i]}Z,{float(open_[i])!r},{float(high[i])!r},{float(low[i])!r},{float(close[i])!r},{float(vol[i])!r}\n"
            )


def timed(cmd: list[str]) -> tuple[float, float, str]:
    """Wall-clock and CPU (user + system of the child) seconds of one whole process, and its stdout."""
    before = os.times()
    started = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    wall = time.perf_counter() - started
    after = os.times()
    return (
        wall,
        (after.children_user - before.children_user) + (after.children_system - before.children_system),
        out,
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--candles", type=int, default=120_000)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    bindir = Path(sys.executable).parent
    with tempfile.TemporaryDirectory() as tmp:
        data, strat, bt_script = Path(tmp) / "c.csv", Path(tmp) / "sma.lua", Path(tmp) / "bt.py"
        make_candles(data, args.candles)
        strat.write_text(STRATEGY)
        bt_script.write_text(BACKTRADER)
        tw, bt, start, mod = [], [], [], []
        for _ in range(args.runs):
            start.append(timed([str(bindir / "tradewind"), "--version"]))
            tw.append(
                timed([str(bindir / "tradewind"), "backtest", str(strat), "--data", str(data), "--json"])
            )
            # the same command without the start-up of the whole CLI (which imports every command's module)
            mod.append(
                timed([sys.executable, "-m", "tradewind.backtest", str(strat), "--data", str(data), "--json"])
            )
            bt.append(timed([sys.executable, str(bt_script), str(data)]))
        ours = json.loads(tw[-1][2])["final_equity"]
        theirs = float(bt[-1][2].strip())

    def med(xs: list[tuple[float, float, str]], k: int) -> float:
        return statistics.median(x[k] for x in xs)

    n = args.candles
    print(
        f"candles: {n:,}; runs: {args.runs}; {platform.machine()}, {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}"
    )
    print(f"{'':30}{'wall s':>9}{'cpu s':>9}{'candles/s (wall)':>18}")
    rows = (
        ("tradewind backtest", tw),
        ("backtrader", bt),
        ("tradewind --version", start),
        ("python -m tradewind.backtest", mod),
    )
    for label, xs in rows:
        print(f"{label:30}{med(xs, 0):9.2f}{med(xs, 1):9.2f}{n / med(xs, 0):18,.0f}")
    print(
        f"ratio (backtrader / tradewind backtest): wall {med(bt, 0) / med(tw, 0):.1f}x, cpu {med(bt, 1) / med(tw, 1):.1f}x"
    )
    print(
        f"ratio (backtrader / python -m tradewind.backtest): wall {med(bt, 0) / med(mod, 0):.1f}x, cpu {med(bt, 1) / med(mod, 1):.1f}x"
    )
    print(
        f"final equity: tradewind {ours:.6f}, backtrader {theirs:.6f} (relative difference {abs(ours - theirs) / theirs:.2e})"
    )


if __name__ == "__main__":
    main()
