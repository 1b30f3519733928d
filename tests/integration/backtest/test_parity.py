"""The backtester against backtrader (trades) and an independent few-line reference (final equity)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.shared_data import SHARED_DATA as DATA
from tradewind.backtest import engine
from tradewind.backtest.importers import load

SMA = """
function decide(c, params)
  local fast, slow = ta.sma(c.close, params.fast), ta.sma(c.close, params.slow)
  local f, s = fast[#fast], slow[#slow]
  if f ~= f or s ~= s then return "neutral" end
  -- Equal averages (flat prices are common in real data) are a tie, not a cross: implementations
  -- that sum in a different order must not disagree on them.
  if f > s * (1 + 1e-12) then return "long" end
  if f < s * (1 - 1e-12) then return "short" end
  return "neutral"
end
"""


def reference(
    arrays: dict[str, np.ndarray], fast: int, slow: int, cash: float = 10_000.0, fee: float = 0.001
) -> tuple[float, list[tuple[int, int]]]:
    """The fill model in a few lines, with its own SMA (a plain mean of the last n closes): a buy is
    sized floor_1e-8(cash / (the decision candle's close × 1.0025)) and made at the next open if the
    cash pays for it."""
    close, open_, times = arrays["close"], arrays["open"], arrays["time"]
    qty, trades, entry, want = 0.0, [], None, None
    for i in range(len(close)):
        if want == "long" and qty == 0:
            size = math.floor(cash / (close[i - 1] * 1.0025) * 1e8) / 1e8
            if size * open_[i] * (1 + fee) <= cash:
                qty, cash, entry = size, cash - size * open_[i] * (1 + fee), times[i]
        elif want == "short" and qty > 0:
            cash, qty = cash + qty * open_[i] * (1 - fee), 0.0
            trades.append((int(entry), int(times[i])))
        want = None
        if i + 1 >= slow and i < len(close) - 1:
            f, s = close[i + 1 - fast : i + 1].mean(), close[i + 1 - slow : i + 1].mean()
            want = "long" if f > s * (1 + 1e-12) else "short" if f < s * (1 - 1e-12) else None
    return cash + qty * close[-1], trades


BACKTRADER = """
import json, sys, backtrader as bt
from decimal import ROUND_DOWN, Decimal
Q = Decimal("0.00000001")
fast, slow, path = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
ISO = "%Y-%m-%dT%H:%M:%SZ"
class Model(bt.Sizer):
    # tradewind's sizing: floor_1e-8(cash / (the decision candle's close x 1.0025)); the market order
    # fills at the next bar's open (data is preloaded: peek at it), and a buy the cash cannot pay there
    # is not made (tradewind's rule, as a venue refuses it)
    def _getsizing(self, comminfo, cash, data, isbuy):
        if not isbuy:
            return self.broker.getposition(data).size
        q = (Decimal(repr(cash)) / (Decimal(repr(data.close[0])) * Decimal("1.0025"))).quantize(Q, ROUND_DOWN)
        return float(q) if float(q) * data.open[1] * 1.001 <= cash else 0
class Sma(bt.Strategy):
    def __init__(self):
        self.f, self.s = bt.ind.SMA(period=fast), bt.ind.SMA(period=slow)
        self.trades, self.entry = [], None
    def next(self):
        if len(self.data) == self.data.buflen():
            return  # the last bar: no next open to fill at
        f, s = self.f[0], self.s[0]
        if f > s * (1 + 1e-12) and not self.position:
            self.buy()
        elif f < s * (1 - 1e-12) and self.position:
            self.close()
    def notify_order(self, order):
        if order.status == order.Completed:
            when = bt.num2date(order.executed.dt).strftime(ISO)
            if order.isbuy():
                self.entry = when
            else:
                self.trades.append([self.entry, when])
cerebro = bt.Cerebro(stdstats=False)  # cheat-on-open and cheat-on-close off: backtrader's defaults
cerebro.broker.set_checksubmit(False)
cerebro.broker.setcash(10000.0)
cerebro.broker.setcommission(commission=0.001)
cerebro.addsizer(Model)
cerebro.adddata(bt.feeds.GenericCSVData(dataname=path, dtformat=ISO, timeframe=bt.TimeFrame.Minutes,
    datetime=0, open=1, high=2, low=3, close=4, volume=5, openinterest=-1))
cerebro.addstrategy(Sma)
s = cerebro.run()[0]
print(json.dumps({"trades": s.trades, "value": cerebro.broker.getvalue()}))
"""


def generated(path: Path, n: int = 3000) -> Path:
    rng = np.random.default_rng(3)
    close = 50 * np.exp(np.cumsum(rng.normal(0, 0.002, n)))
    open_ = np.concatenate([[50.0], close[:-1]]) * (1 + rng.normal(0, 0.0005, n))
    with path.open("w") as fh:
        fh.write("time,open,high,low,close,volume\n")
        for i in range(n):
            t = np.datetime64("2024-03-01T00:00:00") + np.timedelta64(i, "m")
            hi, lo = max(open_[i], close[i]) * 1.001, min(open_[i], close[i]) * 0.999
            fh.write(f"{t}Z,{float(open_[i])!r},{float(hi)!r},{float(lo)!r},{float(close[i])!r},1.0\n")
    return path


@pytest.mark.parametrize("source", ["UNITTEST-BTC-1m.csv", "ETH-BTC-5m.csv", "generated"])
def test_sma_crossover_matches_backtrader_and_the_reference(source: str, tmp_path: Path) -> None:
    path = generated(tmp_path / "gen.csv") if source == "generated" else DATA / source
    if not path.exists():
        pytest.skip(f"{path} is not here")
    arrays = load(path).arrays()
    if source != "generated":  # keep backtrader's share of the suite short
        arrays = {k: v[:3000] for k, v in arrays.items()}
        path = tmp_path / "cut.csv"
        with path.open("w") as fh:
            fh.write("time,open,high,low,close,volume\n")
            for i in range(len(arrays["time"])):
                row = [float(arrays[k][i]) for k in ("open", "high", "low", "close", "volume")]
                fh.write(engine.iso(int(arrays["time"][i])) + "," + ",".join(repr(x) for x in row) + "\n")
    fast, slow = 5, 20
    result = engine.run(SMA, arrays, params={"fast": fast, "slow": slow})
    assert result.error is None
    s = result.summary()
    ours = [(t["entry_time"], t["exit_time"]) for t in s["trades"] if t["exit_reason"] != "end"]
    assert len(ours) > 10

    script = tmp_path / "bt.py"
    script.write_text(BACKTRADER)
    out = subprocess.run(
        [sys.executable, str(script), str(fast), str(slow), str(path)],
        capture_output=True,
        text=True,
        check=True,
    )
    bt = json.loads(out.stdout)
    assert ours == [tuple(t) for t in bt["trades"]], "entry and exit times differ from backtrader's"
    assert s["final_equity"] == pytest.approx(bt["value"], abs=0.005)  # to the cent

    ref_equity, ref_trades = reference(arrays, fast, slow)
    assert [(engine.iso(a), engine.iso(b)) for a, b in ref_trades] == ours
    assert s["final_equity"] == pytest.approx(ref_equity, abs=0.005)


def test_a_strategy_error_stops_the_run_with_the_candle_time(tmp_path: Path) -> None:
    arrays = load(DATA / "XRP-ETH-5m.csv").arrays()
    code = 'function decide(c) if #c.close > 100 then error("boom") end return "long" end'
    result = engine.run(code, arrays)
    assert result.error is not None and "boom" in result.error and "line 1" in result.error
    assert result.candles == 101
    assert "2019-10-11 08:20 UTC" in result.error  # the 101st candle


def test_the_cli_prints_one_json_object_and_fails_on_a_strategy_error(tmp_path: Path) -> None:
    strat = tmp_path / "s.lua"
    strat.write_text(SMA)
    exe = Path(sys.executable).parent / "tradewind"
    out = subprocess.run(
        [
            str(exe),
            "backtest",
            str(strat),
            "--data",
            str(DATA / "XRP-ETH-5m.csv"),
            "--param",
            "fast=5",
            "--param",
            "slow=20",
            "--json",
        ],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert set(doc) >= {
        "trades",
        "final_equity",
        "return_pct",
        "max_drawdown_pct",
        "sharpe",
        "win_rate",
        "candles",
        "duration_s",
        "error",
    }
    assert doc["candles"] == 706 and doc["error"] is None
    strat.write_text('function decide(c) return "sideways" end')
    bad = subprocess.run(
        [str(exe), "backtest", str(strat), "--data", str(DATA / "XRP-ETH-5m.csv"), "--json"],
        capture_output=True,
        text=True,
    )
    assert bad.returncode == 1 and "bad return value" in json.loads(bad.stdout)["error"]
