"""tradewind backtest vs backtrader: the same SMA 10/30 crossover on the same one-minute candles, each
timed as a whole process from the command line (start-up and loading included), several runs; prints the
medians (wall and CPU seconds, candles per second, peak RSS of the process: GNU time measures it) and the
ratio.

tradewind reads the candles from its history store (``--market``, Parquet files under a data folder of
the benchmark's own), from one Parquet file (``--data c.parquet``) and from CSV (``--data c.csv``, the
parse that the Parquet store saves); backtrader reads the CSV.

    .venv/bin/python benchmarks/backtest_speed.py [--candles 1051200] [--runs 5] [--backtrader-runs 1]
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
import pyarrow as pa
import pyarrow.csv as pcsv

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


def make_candles(n: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(42)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.001, n)))
    open_ = np.concatenate([[100.0], close[:-1]])
    high = np.maximum(open_, close) * (1 + rng.uniform(0, 0.0005, n))
    low = np.minimum(open_, close) * (1 - rng.uniform(0, 0.0005, n))
    vol = rng.uniform(1, 10, n)
    times = 1_704_067_200_000 + 60_000 * np.arange(n, dtype=np.int64)  # from 2024-01-01 00:00 UTC
    return {"time": times, "open": open_, "high": high, "low": low, "close": close, "volume": vol}


def write_csv(path: Path, a: dict[str, np.ndarray]) -> None:
    """ISO times and every float as repr() writes it (what a Python loop writes, an order faster)."""
    iso = np.char.add(np.datetime_as_string(a["time"].astype("datetime64[ms]").astype("datetime64[s]")), "Z")
    cols = {
        "time": iso,
        **{k: np.array([repr(x) for x in a[k].tolist()]) for k in ("open", "high", "low", "close", "volume")},
    }
    pcsv.write_csv(pa.table(cols), path, pcsv.WriteOptions(quoting_style="none"))


def timed(cmd: list[str], env: dict[str, str] | None = None) -> tuple[float, float, str, float]:
    """Wall-clock and CPU (user + system) seconds of one whole process, its stdout, and its peak RSS (MB),
    measured by GNU time (a child forked from this process would count this process's memory too)."""
    with tempfile.NamedTemporaryFile("r") as stats:
        started = time.perf_counter()
        proc = subprocess.run(["/usr/bin/time", "-o", stats.name, "-f", "%U %S %M", *cmd], capture_output=True,
                              text=True, env=env)  # fmt: skip
        wall = time.perf_counter() - started
        if proc.returncode:
            raise SystemExit(f"{' '.join(cmd)} failed: {proc.stderr[-2000:]}")
        user, system, rss_kb = stats.read().split()[-3:]
    return wall, float(user) + float(system), proc.stdout, int(rss_kb) / 1024


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--candles", type=int, default=120_000)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument(
        "--backtrader-runs", type=int, default=None, help="default: --runs (it takes ~2 min a run on 1M)"
    )
    args = ap.parse_args()
    from tradewind.marketdata.history import HistoryStore, write_file

    bindir = Path(sys.executable).parent
    tw_exe = str(bindir / "tradewind")
    with tempfile.TemporaryDirectory() as tmp:
        csv, parquet = Path(tmp) / "c.csv", Path(tmp) / "c.parquet"
        strat, bt_script, home = Path(tmp) / "sma.lua", Path(tmp) / "bt.py", Path(tmp) / "home"
        candles = make_candles(args.candles)
        write_csv(csv, candles)
        write_file(parquet, candles)  # one file, written as the history store writes its months
        HistoryStore(home / "history").write("bench", "BTC/USD", "1m", candles)
        strat.write_text(STRATEGY)
        bt_script.write_text(BACKTRADER)
        env = {k: v for k, v in os.environ.items() if not k.startswith("TRADEWIND_")}
        env["TRADEWIND_DATA_DIR"] = str(home)
        runs: dict[str, list[tuple[float, float, str, float]]] = {}
        commands = {
            "tradewind --market (store)": [
                tw_exe,
                "backtest",
                str(strat),
                "--market",
                "bench:BTC/USD",
                "--json",
            ],
            "tradewind --data c.parquet": [tw_exe, "backtest", str(strat), "--data", str(parquet), "--json"],
            "tradewind --data c.csv": [tw_exe, "backtest", str(strat), "--data", str(csv), "--json"],
            "tradewind --version": [tw_exe, "--version"],
        }
        for _ in range(args.runs):  # interleaved: the machine's load falls on every command alike
            for label, cmd in commands.items():
                runs.setdefault(label, []).append(timed(cmd, env))
        for _ in range(args.runs if args.backtrader_runs is None else args.backtrader_runs):
            runs.setdefault("backtrader (csv)", []).append(timed([sys.executable, str(bt_script), str(csv)]))
        finals = {json.loads(runs[k][-1][2])["final_equity"] for k in commands if k != "tradewind --version"}
        theirs = float(runs["backtrader (csv)"][-1][2].strip()) if "backtrader (csv)" in runs else None

    def med(xs: list[tuple[float, float, str, float]], k: int) -> float:
        return statistics.median(x[k] for x in xs)

    n = args.candles
    print(f"candles: {n:,}; tradewind runs: {args.runs}, backtrader runs: {len(runs.get('backtrader (csv)', []))}; "
          f"{platform.machine()}, {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}")  # fmt: skip
    print(f"{'':30}{'wall s':>9}{'cpu s':>9}{'candles/s (wall)':>18}{'peak RSS MB':>13}   wall s of each run")
    for label, xs in runs.items():
        each = " ".join(f"{x[0]:.2f}" for x in xs)
        print(
            f"{label:30}{med(xs, 0):9.2f}{med(xs, 1):9.2f}{n / med(xs, 0):18,.0f}{med(xs, 3):13.0f}   {each}"
        )
    ours = runs["tradewind --market (store)"]
    if theirs is not None:  # (--backtrader-runs 0: tradewind alone)
        bt = runs["backtrader (csv)"]
        print(f"ratio (backtrader / tradewind --market): wall {med(bt, 0) / med(ours, 0):.1f}x, cpu {med(bt, 1) / med(ours, 1):.1f}x")  # fmt: skip
    (mine,) = finals  # every input gives the same run
    print(f"final equity: tradewind {mine!r}, backtrader {theirs!r}")


if __name__ == "__main__":
    main()
