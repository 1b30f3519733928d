"""Walk-forward windows never show a run candles outside its window, and find the regime built into the data;
the recursive check flags an EMA seeded on the window and passes an SMA; the look-ahead check passes honest
strategies and the ways into later candles the sandbox offers; Monte Carlo of a known trade list."""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np
import pytest

from tradewind.backtest import checks, engine, montecarlo
from tradewind.backtest import optimize as opt
from tradewind.backtest import walkforward as wf
from tradewind.sandbox.runtime import StrategyRuntime

T0 = 1_700_000_400_000
MIN = 60_000
SIDE = """
params = {side = {choices = {"long", "flat"}, default = "flat"}}
function decide(c, params) if params.side == "long" then return "long" end return "short" end
"""


def regime(n: int = 1000, turn: int = 500) -> dict[str, np.ndarray]:
    """Rising 0.2 % a candle up to ``turn``, falling 0.2 % after."""
    close, opens, prev = np.empty(n), np.empty(n), 100.0
    for i in range(n):
        opens[i], close[i] = prev, prev * (1.002 if i < turn else 0.998)
        prev = close[i]
    return {
        "time": T0 + np.arange(n, dtype=np.int64) * MIN,
        "open": opens,
        "high": np.maximum(opens, close),
        "low": np.minimum(opens, close),
        "close": close,
        "volume": np.ones(n),
    }


def walk(
    arrays: dict[str, np.ndarray], wins: list[wf.Window], backtest: Any = engine.run, trials: int = 6
) -> wf.WalkForward:
    rt = StrategyRuntime(SIDE, name="side", run_init=False)
    space = rt.declared
    rt.close()
    config = opt.StudyConfig(objectives=("return",), prune=False, seed=1, fee=0.0)
    return asyncio.run(
        wf.analyse(
            SIDE, arrays, space, config, wins, mode="rolling", trials=trials, name="side", backtest=backtest
        )
    )


@pytest.mark.parametrize("anchored", [False, True])
def test_no_run_sees_candles_outside_its_window(anchored: bool) -> None:
    arrays = regime()
    wins = wf.windows(arrays["time"], train_ms=300 * MIN, test_ms=100 * MIN, anchored=anchored)
    seen: list[tuple[str, np.ndarray]] = []

    def recording(code: str, given: dict[str, np.ndarray], **kw: Any) -> engine.Result:
        seen.append((kw["name"], given["time"].copy()))
        return engine.run(code, given, **kw)

    walk(arrays, wins, recording)
    assert len(wins) == 7 and [w.test.first for w in wins] == [300, 400, 500, 600, 700, 800, 900]
    by_window = {w.index: w for w in wins}
    for name, times in seen:
        _, label, phase = name.split("/")
        w = by_window[int(label[1:])]
        span = w.train if phase == "train" else w.test
        assert span.start <= times.min() and times.max() < span.end, name
        if phase == "train":  # not one candle of its test window, nor after it
            assert times.max() < w.test.start
        else:  # not one candle of its train window
            assert times.min() >= w.train.end and not set(times.tolist()) & set(
                arrays["time"][w.train.first : w.train.stop].tolist()
            )
    test_runs = [t for n, t in seen if n.endswith("/test")]
    assert len(test_runs) == 7
    for a, b in zip(test_runs, test_runs[1:], strict=False):  # test windows follow each other, apart
        assert a.max() < b.min()
    # six trials of the two points of the space: each point runs once (a repeated point takes the results of
    # the trial that ran it, see optimize.Optimizer), and the best's run again
    assert sum(n.endswith("/train") for n, _ in seen) == 7 * (2 + 1)


def test_walkforward_follows_the_regime_built_into_the_data() -> None:
    arrays = regime()
    result = walk(arrays, wf.windows(arrays["time"], train_ms=300 * MIN, test_ms=100 * MIN))
    doc = result.as_dict()
    # trains wholly rising (0-2) or rising more than falling (3) go long; mostly falling (4-6) stay flat
    assert [w["params"]["side"] for w in doc["windows"]] == ["long"] * 4 + ["flat"] * 3
    oos = [w["out_of_sample"]["return_pct"] for w in doc["windows"]]
    assert oos[0] > 0 and oos[1] > 0 and oos[2] < 0 and oos[3] < 0 and oos[4:] == [0.0, 0.0, 0.0]
    # a test window's run is exactly a backtest of its candles alone
    w2 = result.windows[2].window
    alone = engine.run(SIDE, wf.cut(arrays, w2.test), params={"side": "long"}, fee=0.0)
    assert oos[2] == pytest.approx(alone.summary()["return_pct"], abs=1e-12)
    # the stitched curve chains the windows' returns; the efficiency is by its definition
    growth = np.prod([1 + r / 100 for r in oos])
    assert doc["oos_equity"][-1][1] == pytest.approx(10_000 * growth, rel=1e-6)
    assert doc["oos_return_pct"] == pytest.approx((growth - 1) * 100, rel=1e-6)
    year = 365 * 24 * 60
    ann_is = np.mean([w["in_sample"]["return_pct"] * year / 300 for w in doc["windows"]])
    assert doc["wfe"] == pytest.approx(doc["oos_return_pct"] * year / 700 / ann_is, rel=1e-9)


def test_split_is_one_window_at_the_share() -> None:
    arrays = regime(100)
    [w] = wf.windows(arrays["time"], split=0.7)
    assert (w.train.first, w.train.stop, w.test.first, w.test.stop) == (0, 70, 70, 100)
    with pytest.raises(wf.WalkForwardError, match="shorter than one train window"):
        wf.windows(arrays["time"], train_ms=90 * MIN, test_ms=20 * MIN)
    assert wf.parse_span("30d") == 30 * 86_400_000
    with pytest.raises(wf.WalkForwardError):
        wf.parse_span("30x")


def random_walk(n: int = 400, seed: int = 3) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    opens = np.concatenate(([100.0], close[:-1]))
    return {
        "time": T0 + np.arange(n, dtype=np.int64) * MIN,
        "open": opens,
        "high": np.maximum(opens, close) * 1.001,
        "low": np.minimum(opens, close) * 0.999,
        "close": close,
        "volume": np.ones(n),
    }


EMA = """function decide(c) local e = ta.ema(c.close, 20)
  if c.close[#c.close] > e[#e] then return "long" end return "short" end"""
SMA = """function decide(c) local s = ta.sma(c.close, 10)
  if c.close[#c.close] > s[#s] then return "long" end return "short" end"""


def test_recursive_check_flags_an_ema_seeded_on_the_window() -> None:
    report = checks.recursive_check(EMA, random_walk(), lookback=40)
    assert not report.passed
    doubled = next(v for v in report.variants if v.lookback == 80)
    assert doubled.changed and doubled.changed[0] >= 40  # the windows are the same up to candle 40
    assert report.as_dict()["variants"][1]["examples"]


def test_recursive_check_passes_an_sma_shorter_than_the_window() -> None:
    report = checks.recursive_check(SMA, random_walk(), lookback=40)
    assert report.passed
    assert [(v.lookback, v.changed, v.agree_from) for v in report.variants] == [(20, [], 0), (80, [], 0)]


# Every way a strategy could try to reach later candles: past the end of a window or an indicator, the raw
# contents of the views (next, rawget), a global it keeps between candles, and init.
PROBING = """
seen = {}
function init(params) seen.init = params end
local function count(t, depth)  -- the numbers reachable from t by raw traversal
  if depth > 3 then return 0 end
  local found = 0
  for _, v in next, t do
    if type(v) == "number" then found = found + 1 elseif type(v) == "table" then found = found + count(v, depth + 1) end
  end
  return found
end
function decide(c, params)
  local n = #c.close
  seen[#seen + 1] = c.close[n]
  local s = ta.sma(c.close, 5)
  if c.close[n + 1] ~= nil or s[#s + 1] ~= nil or rawget(c.close, n + 1) ~= nil or count(c.close, 0) > n then
    return "long"  -- it reached a candle after its own
  end
  if n > 1 and c.close[n] > c.close[n - 1] and #seen % 2 == 0 then return "long" end
  return "short"
end
"""


@pytest.mark.parametrize("code", [SMA, EMA, PROBING], ids=["sma", "ema", "probing"])
def test_lookahead_check_passes_what_cannot_see_later_candles(code: str) -> None:
    arrays = random_walk(300)
    report = checks.lookahead_check(code, arrays, lookback=40, points=12, seed=5)
    assert report.passed, report.as_dict()
    assert len(report.cuts) == 12
    # the check does compare: the changed candles really differ, and a changed decision would be found
    t = report.cuts[0].candle
    moved = checks.changed_future(arrays, t)
    assert not np.array_equal(moved["close"][t + 1 :], arrays["close"][t + 1 :])
    assert np.array_equal(moved["close"][: t + 1], arrays["close"][: t + 1])
    other = checks.Decisions(report.full.codes.copy(), dict(report.full.extras))
    other.codes[t] = ord("n")
    assert report.full.differing(other, t + 1).tolist() == [t]


def test_monte_carlo_of_a_known_trade_list() -> None:
    # +10 % then -5 % of the capital: 1,000 then -550 on 10,000
    mc = montecarlo.simulate([1000.0, -550.0], 10_000, runs=1000, seed=7)
    assert mc["actual"] == {"final_equity": pytest.approx(10_450), "max_drawdown_pct": pytest.approx(5.0)}
    # shuffled, the product is the same in every run, and both orders fall 5 % from a peak
    sh = mc["shuffle"]
    assert sh["final_equity"] == {k: pytest.approx(10_450) for k in ("p5", "p50", "p95")}
    assert sh["max_drawdown_pct"] == {k: pytest.approx(5.0) for k in ("p5", "p50", "p95")}
    # drawn with replacement: ++ (1/4), +- or -+ (1/2), -- (1/4)
    bs = mc["bootstrap"]
    assert bs["final_equity"] == {
        "p5": pytest.approx(10_000 * 0.95**2),
        "p50": pytest.approx(10_450),
        "p95": pytest.approx(10_000 * 1.1**2),
    }
    assert bs["max_drawdown_pct"] == {
        "p5": pytest.approx(0.0),
        "p50": pytest.approx(5.0),
        "p95": pytest.approx((1 - 0.95**2) * 100),
    }
    assert 0.2 < bs["loss_probability"] < 0.3
    assert montecarlo.simulate([1000.0, -550.0], 10_000, runs=1000, seed=7) == mc


def test_monte_carlo_returns_compound_on_the_capital_before_each_trade() -> None:
    r = montecarlo.trade_returns([1000.0, -1100.0, 500.0], 10_000)
    assert r.tolist() == pytest.approx([0.1, -0.1, 500 / 9900])
    eq = montecarlo.paths(np.array([0.1, 0.2]), 100.0, 3, "bootstrap", np.random.default_rng(0))
    assert eq.shape == (3, 3) and (eq[:, 0] == 100).all()
    assert not montecarlo.simulate([], 10_000, runs=10)["bootstrap"]
