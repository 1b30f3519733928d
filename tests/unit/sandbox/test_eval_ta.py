"""The ta library against TA-Lib itself on real candles, and the shared indicator cache."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import talib

from tests.shared_data import SHARED_DATA
from tradewind.backtest.importers import load
from tradewind.sandbox.runtime import StrategyRuntime
from tradewind.sandbox.ta import ArrayStore
from tradewind.sandbox.window import CandleWindow

DATA = SHARED_DATA / "ETH-BTC-5m.csv"


@pytest.fixture(scope="module")
def arrays() -> dict[str, np.ndarray]:
    return load(DATA).arrays()


@pytest.fixture(scope="module")
def window(arrays: dict[str, np.ndarray]) -> CandleWindow:
    return CandleWindow.view(arrays, 1999, 500, "binance:ETH/BTC:5m")


CASES = {
    "ta.sma(c.close, 20)": lambda w: talib.SMA(w.close, 20),
    "ta.ema(c.close, 12)": lambda w: talib.EMA(w.close, 12),
    "ta.wma(c.close, 9)": lambda w: talib.WMA(w.close, 9),
    "ta.dema(c.close, 10)": lambda w: talib.DEMA(w.close, 10),
    "ta.tema(c.close, 10)": lambda w: talib.TEMA(w.close, 10),
    "ta.rsi(c.close, 14)": lambda w: talib.RSI(w.close, 14),
    "ta.roc(c.close, 10)": lambda w: talib.ROC(w.close, 10),
    "ta.mom(c.close, 10)": lambda w: talib.MOM(w.close, 10),
    "ta.atr(c.high, c.low, c.close, 14)": lambda w: talib.ATR(w.high, w.low, w.close, 14),
    "ta.adx(c.high, c.low, c.close, 14)": lambda w: talib.ADX(w.high, w.low, w.close, 14),
    "ta.cci(c.high, c.low, c.close, 20)": lambda w: talib.CCI(w.high, w.low, w.close, 20),
    "ta.willr(c.high, c.low, c.close, 14)": lambda w: talib.WILLR(w.high, w.low, w.close, 14),
    "ta.mfi(c.high, c.low, c.close, c.volume, 14)": lambda w: talib.MFI(w.high, w.low, w.close, w.volume, 14),
    "ta.obv(c.close, c.volume)": lambda w: talib.OBV(w.close, w.volume),
    "ta.sar(c.high, c.low)": lambda w: talib.SAR(w.high, w.low, 0.02, 0.2),
    "ta.highest(c.high, 50)": lambda w: talib.MAX(w.high, 50),
    "ta.lowest(c.low, 50)": lambda w: talib.MIN(w.low, 50),
    "(ta.macd(c.close))": lambda w: talib.MACD(w.close, 12, 26, 9)[0],
    "select(2, ta.macd(c.close, 12, 26, 9))": lambda w: talib.MACD(w.close, 12, 26, 9)[1],
    "(ta.bbands(c.close, 20, 2))": lambda w: talib.BBANDS(w.close, 20, 2, 2)[0],
    "select(3, ta.bbands(c.close, 20, 2))": lambda w: talib.BBANDS(w.close, 20, 2, 2)[2],
    "(ta.stoch(c.high, c.low, c.close))": lambda w: talib.STOCH(w.high, w.low, w.close, 14, 3, 0, 3, 0)[0],
    "select(2, ta.stochrsi(c.close, 14))": lambda w: talib.STOCHRSI(w.close, 14, 5, 3)[1],
}


@pytest.mark.parametrize("expr", list(CASES))
def test_indicators_equal_talib_on_real_candles(expr: str, window: CandleWindow) -> None:
    code = f"""
    function decide(c)
      local x = {expr}
      local out = {{}}
      for i = 1, #x do out[i] = x[i] end
      print(#x, x[#x], x[1], x[#x - 5])
      return "neutral"
    end"""
    rt = StrategyRuntime(code, name="t")
    d = rt.decide(window)
    n, last, first, earlier = d.logs[0].split("\t")
    expected = CASES[expr](window)
    assert int(n) == len(window)
    assert float(last) == pytest.approx(expected[-1], rel=1e-12)
    assert float(earlier) == pytest.approx(expected[-6], rel=1e-12)
    assert (first == "nan" or first == "-nan") == bool(np.isnan(expected[0]))


def test_vwap_crossover_and_crossunder(window: CandleWindow) -> None:
    code = """function decide(c)
      local v = ta.vwap(c.high, c.low, c.close, c.volume, 20)
      print(v[#v], ta.crossover(c.close, v), ta.crossunder(c.close, 0))
      return "neutral" end"""
    d = StrategyRuntime(code, name="v").decide(window)
    value, over, under = d.logs[0].split("\t")
    tp = (window.high + window.low + window.close) / 3
    expected = (tp[-20:] * window.volume[-20:]).sum() / window.volume[-20:].sum()
    assert float(value) == pytest.approx(expected, rel=1e-9)
    assert over in ("true", "false") and under == "false"


def test_an_indicator_is_computed_once_for_every_strategy_on_the_window(window: CandleWindow) -> None:
    store = ArrayStore()
    code = "function decide(c) local a, b = ta.sma(c.close, 10), ta.rsi(c.close, 14) return a[#a] > 0 and 'long' or 'short' end"
    runtimes = [StrategyRuntime(code, name=f"s{i}", indicators=store) for i in range(50)]
    for rt in runtimes:
        rt.decide(window)
    assert store.computed == 2
    other = StrategyRuntime(
        "function decide(c) local a = ta.sma(c.close, 11) return 'long' end", name="o", indicators=store
    )
    other.decide(window)
    assert store.computed == 3


def test_ta_errors_are_clear() -> None:
    w = CandleWindow.from_rows([(60_000 * (i + 1), 1.0, 2.0, 0.5, 1.5, 1.0) for i in range(50)], "k")
    for call, says in (
        ("ta.sma(c.close, -3)", "period"),
        ("ta.nope(c.close)", "does not exist"),
        ("ta.sma(5, 3)", "expected an array"),
    ):
        with pytest.raises(Exception) as info:
            StrategyRuntime(f"function decide(c) local x = {call} return 'long' end", name="e").decide(w)
        assert says in str(info.value)


def test_plain_lua_tables_work_as_indicator_input() -> None:
    w = CandleWindow.from_rows([(60_000 * (i + 1), 1.0, 2.0, 0.5, 1.5, 1.0) for i in range(5)], "k")
    d = StrategyRuntime(
        "function decide(c) local s = ta.sma({1, 2, 3, 4}, 2) print(s[4]) return 'long' end", name="t"
    ).decide(w)
    assert d.logs == ["3.5"]


def test_every_example_in_the_strategy_guide_runs_on_real_candles(arrays: dict[str, np.ndarray]) -> None:
    guide = (Path(__file__).resolve().parents[3] / "docs" / "strategies.md").read_text()
    examples = re.findall(r"```lua\n(.*?)```", guide, re.S)
    complete = [code for code in examples if "function decide" in code]
    assert len(complete) >= 5
    store = ArrayStore()
    for code in complete:
        rt = StrategyRuntime(code, name="guide", params={"fast": 5, "slow": 20}, indicators=store)
        for end in (300, 301, 302):  # a few candles in a row, as live
            d = rt.decide(CandleWindow.view(arrays, end, 200, "binance:ETH/BTC:5m"))
            assert d.position in ("long", "short", "neutral"), code
