"""The backtest engine gives the same trades and equity as before it was made fast (issue 16).

``REFERENCE`` holds fingerprints of what the engine computed before the change (commit bd8fa59, before the
history store and the speed work): the trades (every field, floats exactly), the equity at every candle,
the final equity, on real candles of ``../shared/data`` and on generated ones, for strategies that reach
every path of the fast engine (whole-history indicators read in blocks, indicators on the window, candle
loops, table decisions with exits and limit entries, state kept between candles, entries the cash cannot
pay, an error). Further checks run the engine deciding alongside the fill against one pass after the
other, and hostile strategies in a long run. The generated cases were fingerprinted again (same engine) when
their prices moved to a 1e-6 tick: numpy's exp differs by an ulp between releases and CPUs."""

from __future__ import annotations

import hashlib
import json
import threading
from typing import Any

import numpy as np
import pytest

from tests.shared_data import SHARED_DATA as DATA
from tradewind.backtest import engine
from tradewind.backtest.importers import load

# The benchmark's strategy (benchmarks/backtest_speed.py).
SMA = """
function decide(c, params)
  local fast, slow = ta.sma(c.close, 10), ta.sma(c.close, 30)
  local f, s = fast[#fast], slow[#slow]
  if f ~= f or s ~= s then return "neutral" end
  if f > s then return "long" end
  return "short"
end
"""

# Whole-history indicators (sma, highest, lowest), the candle arrays read a few candles back, state kept
# in a global, and table decisions with a size, exits and limit entries.
EXITS = """
local n = 0
function decide(c, params)
  n = n + 1
  local hi, lo = ta.highest(c.high, 20), ta.lowest(c.low, 20)
  local fast, slow = ta.sma(c.close, 8), ta.sma(c.close, 21)
  local k = #c.close
  if k < 25 then return "neutral" end
  local f, s, f1, s1 = fast[#fast], slow[#slow], fast[#fast - 1], slow[#slow - 1]
  if f > s and f1 <= s1 then
    if n % 3 == 0 then
      return {position = "long", limit = c.close[k] * 0.999, expire = 3, stop_loss = 0.01, take_profit = 0.02}
    end
    return {position = "long", size = 0.5 + (n % 2) * 0.25, trailing_stop = 0.006, stop_loss = 0.004}
  end
  if c.close[k] >= hi[#hi - 1] and n % 5 == 0 then
    return {position = "long", take_profit = 0.01}
  end
  if f < s and c.low[k] < lo[#lo - 1] then return "short" end
  if f < s and f1 >= s1 then return "short" end
  return "neutral"
end
"""

# Indicators computed on each window (EMA, RSI, MACD: recursive, they depend on where the window starts),
# a crossover, a loop over the window, and a plain Lua table handed to ta.
WINDOWED = """
function decide(c, params)
  local ema, rsi = ta.ema(c.close, 12), ta.rsi(c.close, 14)
  local macd, signal = ta.macd(c.close)
  local k = #c.close
  if k < 40 then return "neutral" end
  local sum = 0
  for i = k - 9, k do sum = sum + c.close[i] - c.open[i] end
  local mine = {}
  for i = 1, 12 do mine[i] = c.high[k - 12 + i] - c.low[k - 12 + i] end
  local range = ta.sma(mine, 6)
  if ta.crossover(macd, signal) and rsi[#rsi] < 70 then
    return {position = "long", stop_loss = 0.02, take_profit = 0.03 + range[#range] / c.close[k]}
  end
  if c.close[k] < ema[#ema] and sum < 0 then return "short" end
  return "neutral"
end
"""


def generated(n: int, seed: int = 11) -> dict[str, np.ndarray]:
    """One-minute candles of a random walk, from 2024-01-01."""
    rng = np.random.default_rng(seed)
    # Prices on a 1e-6 tick, as an exchange's are: numpy's exp differs by an ulp between releases and CPUs
    # (its SIMD paths), and the fingerprints below must depend on the engine alone.
    close = np.round(100 * np.exp(np.cumsum(rng.normal(0, 0.001, n))), 6)
    open_ = np.concatenate([[100.0], close[:-1]])
    high = np.round(np.maximum(open_, close) * (1 + rng.uniform(0, 0.0008, n)), 6)
    low = np.round(np.minimum(open_, close) * (1 - rng.uniform(0, 0.0008, n)), 6)
    times = 1_704_067_200_000 + 60_000 * np.arange(n, dtype=np.int64)
    return {
        "time": times,
        "open": open_,
        "high": high,
        "low": low,
        "close": close,
        "volume": rng.uniform(1, 10, n),
    }


def candles(source: str) -> dict[str, np.ndarray]:
    if source.startswith("generated"):
        return generated(int(source.split(":")[1]))
    path = DATA / source
    if not path.exists():
        pytest.skip(f"{path} is not here")
    return load(path).arrays()


def fingerprint(result: engine.Result) -> dict[str, Any]:
    """What must not change: every trade field (floats by repr), the equity of every candle, the end."""
    trades = [
        [
            t.entry_time,
            repr(t.entry_price),
            repr(t.qty),
            t.exit_time,
            repr(t.exit_price),
            repr(t.pnl),
            t.entry_type,
            t.exit_reason,
        ]
        for t in result.trades
    ]
    return {
        "trades": len(result.trades),
        "trades_sha": hashlib.sha256(json.dumps(trades).encode()).hexdigest()[:16],
        "equity_sha": hashlib.sha256(np.ascontiguousarray(result.equity).tobytes()).hexdigest()[:16],
        "final": repr(result.final_equity),
        "candles": result.candles,
        "error": result.error,
    }


# The benchmark's strategy failing at its 123,457th candle.
FAILING = SMA.replace(
    "function decide(c, params)",
    """local n = 0
function decide(c, params)
  n = n + 1
  if n == 123457 then error("boom") end""",
)

# name -> (strategy, candles, engine.run's keywords)
CASES: dict[str, tuple[str, str, dict[str, Any]]] = {
    "sma-unittest": (SMA, "UNITTEST-BTC-1m.csv", {}),
    "sma-eth": (SMA, "ETH-BTC-5m.csv", {}),
    "sma-generated": (SMA, "generated:200000", {}),
    "sma-eth-trade-from": (SMA, "ETH-BTC-5m.csv", {"trade_from": 1_516_500_000_000, "lookback": 50}),
    "exits-unittest": (EXITS, "UNITTEST-BTC-1m.csv", {}),
    "exits-ada": (EXITS, "ADA-BTC-5m.csv", {"lookback": 300, "slippage": 0.0005, "maker_fee": 0.0002}),
    "exits-generated": (EXITS, "generated:150000", {}),
    "windowed-eth": (WINDOWED, "ETH-BTC-5m.csv", {"lookback": 120}),
    "failing-generated": (FAILING, "generated:150000", {}),
}
REFERENCE: dict[str, dict[str, Any]] = {
    "exits-ada": {
        "trades": 166,
        "trades_sha": "82d6178881185663",
        "equity_sha": "cf224ff5e155d9ab",
        "final": "5194.303673454174",
        "candles": 5720,
        "error": None,
    },
    "exits-generated": {
        "trades": 3841,
        "trades_sha": "8d9eedc0a0314632",
        "equity_sha": "d1ff01e143ad064a",
        "final": "22.30011351938429",
        "candles": 150000,
        "error": None,
    },
    "exits-unittest": {
        "trades": 500,
        "trades_sha": "974213b13b91fd6d",
        "equity_sha": "bd3beeb96a1634d7",
        "final": "7067.768058394224",
        "candles": 13681,
        "error": None,
    },
    "failing-generated": {
        "trades": 2510,
        "trades_sha": "81edcce33bea8414",
        "equity_sha": "99cbaaa9b212e16c",
        "final": "47.416942494177086",
        "candles": 123457,
        "error": "strategy 'failing-generated' (candle 2024-03-26 17:36 UTC, line 5): boom",
    },
    "sma-eth": {
        "trades": 137,
        "trades_sha": "4931d255bf1e74ae",
        "equity_sha": "47084abff1a397c4",
        "final": "7608.259382233573",
        "candles": 5760,
        "error": None,
    },
    "sma-eth-trade-from": {
        "trades": 69,
        "trades_sha": "0c9d532b75bbe14e",
        "equity_sha": "f686d4475a66a269",
        "final": "8919.126194355198",
        "candles": 5760,
        "error": None,
    },
    "sma-generated": {
        "trades": 4018,
        "trades_sha": "6a77bd05ea0fd35a",
        "equity_sha": "68a4e54772e2824c",
        "final": "1.6750472924308237",
        "candles": 200000,
        "error": None,
    },
    "sma-unittest": {
        "trades": 280,
        "trades_sha": "b2e660c221b7f650",
        "equity_sha": "1fca36e1843e69d7",
        "final": "9508.489773441906",
        "candles": 13681,
        "error": None,
    },
    "windowed-eth": {
        "trades": 241,
        "trades_sha": "b909e7f9320957be",
        "equity_sha": "2c5c5098a39e0c2d",
        "final": "5266.684454321661",
        "candles": 5760,
        "error": None,
    },
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_the_engine_gives_the_trades_and_equity_it_gave_before(case: str) -> None:
    code, source, kw = CASES[case]
    result = engine.run(code, candles(source), name=case, **kw)
    assert fingerprint(result) == REFERENCE[case]


@pytest.mark.parametrize("code", [SMA, EXITS], ids=["sma", "exits"])
def test_deciding_alongside_the_fill_gives_what_deciding_first_gives(
    code: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    arrays = generated(60_000, seed=4)
    seen: list[tuple[int, str]] = []
    streamed = engine.run(
        code, arrays, progress=lambda i, n: seen.append((i, threading.current_thread().name))
    )
    assert seen[-1] == (60_000, threading.current_thread().name)  # reported in the caller's thread
    assert [i for i, _ in seen] == sorted(i for i, _ in seen) and len(seen) > 5
    monkeypatch.setattr(engine, "STREAM_FROM", 10**9)  # one pass after the other
    assert fingerprint(streamed) == fingerprint(engine.run(code, arrays))


@pytest.mark.parametrize(
    ("trap", "limit"),
    [
        ("while true do end", "instruction limit"),
        ("local t, i = {}, 0 while true do i = i + 1 t[i] = {} end", "memory limit"),
    ],
    ids=["infinite-loop", "memory-bomb"],
)
def test_a_hostile_strategy_is_stopped_at_its_candle_in_a_long_run(trap: str, limit: str) -> None:
    code = SMA.replace(
        "function decide(c, params)",
        f"""local n = 0
function decide(c, params)
  n = n + 1
  if n == 25000 then {trap} end""",
    )
    result = engine.run(code, generated(40_000))
    assert result.error is not None and limit in result.error
    # (a memory error leaves the Lua state unusable: the run ends where the last chunk of decisions did)
    assert result.candles == 25_000 if limit == "instruction limit" else 20_000 < result.candles <= 25_000
    assert len(result.equity) == result.candles
    assert result.trades and all(
        t.exit_time is None or t.exit_time <= result.times[-1] for t in result.trades
    )


def test_an_error_in_the_progress_callback_stops_the_run_and_reaches_the_caller() -> None:
    def stop(i: int, n: int) -> None:
        if i > 30_000:
            raise KeyboardInterrupt

    before = threading.active_count()
    with pytest.raises(KeyboardInterrupt):
        engine.run(SMA, generated(100_000), progress=stop)
    assert threading.active_count() == before  # the strategy's thread is gone too


def test_times_formatted_at_once_are_those_formatted_one_by_one() -> None:
    ms = [0, 1, 999, 1000, 1_704_067_199_999, 1_704_067_200_000, 4_102_444_799_999]
    ms += np.random.default_rng(1).integers(0, 4_102_444_800_000, 1000).tolist()
    assert engine.isos(ms) == [engine.iso(t) for t in ms]
