"""One fill pass carried from stage to stage (``engine.Filling``, ``engine.run_staged``): each stage's result
is exactly ``engine.run``'s over that prefix — every trade field, the equity of every candle, buying and
holding, the metrics — whatever the fill holds at the cut: a position with its guard, a limit entry
resting, exits set after the entry, a decision on the prefix's last candle, an error."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest

from tests.unit.backtest.test_engine_parity import EXITS, FAILING, SMA, generated
from tradewind.backtest import engine
from tradewind.backtest.decided import Decided, Extras
from tradewind.sandbox.runtime import StrategyRuntime
from tradewind.sandbox.ta import ArrayStore

# A limit entry every 40 candles that rests up to 15 of them (some fill, some expire, some are taken down
# by a short), exits set on a position already held (a stop and a trailing stop from the highs since its
# entry), market entries of half the cash, and a take-profit.
RESTING = """
local n = 0
function decide(c, params)
  n = n + 1
  local k = #c.close
  if k < 5 then return "neutral" end
  local m = n % 40
  if m == 0 then
    return {position = "long", limit = c.close[k] * 0.998, expire = 15, take_profit = 0.004}
  end
  if m == 10 then return {position = "neutral", stop_loss = 0.003, trailing_stop = 0.002} end
  if m == 12 then return "short" end
  if m == 25 then return {position = "long", size = 0.5} end
  if m == 33 then return "short" end
  return "neutral"
end
"""

STRATEGIES = {"sma": SMA, "exits": EXITS, "resting": RESTING}


def metrics(result: engine.Result) -> str:
    """The metrics as a worker reports them, trades included (NaN equal to NaN), without the time taken."""
    out = result.metrics(trades=True)
    out.pop("duration_s")
    return json.dumps(out, sort_keys=True)


def assert_same(staged: engine.Result, alone: engine.Result) -> None:
    assert staged.candles == alone.candles
    assert (staged.error, staged.error_time) == (alone.error, alone.error_time)
    assert staged.trades == alone.trades  # every field of every round trip, floats exactly
    assert staged.equity.tobytes() == alone.equity.tobytes()
    assert staged.times.tobytes() == alone.times.tobytes()
    assert staged.hold is not None and alone.hold is not None
    assert staged.hold.tobytes() == alone.hold.tobytes()
    assert staged.bar_minutes == alone.bar_minutes
    assert metrics(staged) == metrics(alone)


def check(code: str, arrays: dict[str, np.ndarray], stages: list[int], **kw: Any) -> list[engine.Result]:
    staged = engine.run_staged(code, arrays, stages, lambda upto, r: True, **kw)
    for upto, got in zip(stages, staged, strict=False):
        alone = engine.run(code, {k: v[:upto] for k, v in arrays.items()}, **kw)
        assert_same(got, alone)
    return staged


@pytest.mark.parametrize("strategy", sorted(STRATEGIES))
@pytest.mark.parametrize(
    "fractions",
    [(0.25, 0.5, 1.0), (0.1, 0.11, 0.37, 0.6, 0.61, 0.99, 1.0), (0.5, 1.0), (1.0,)],
    ids=["quarters", "uneven", "halves", "whole"],
)
def test_each_stage_is_the_run_of_its_prefix(strategy: str, fractions: tuple[float, ...]) -> None:
    arrays = generated(30_000, seed=5)  # (over STREAM_FROM: the whole run decides alongside its fill)
    n = len(arrays["time"])
    stages = sorted({max(1, int(n * f)) for f in fractions})
    staged = check(STRATEGIES[strategy], arrays, stages, slippage=0.0003, maker_fee=0.0002)
    assert len(staged) == len(stages)


@pytest.mark.parametrize("strategy", ["exits", "resting"])
def test_a_stage_may_end_on_any_candle(strategy: str) -> None:
    """Every candle of a stretch as a stage's end: the cuts fall on resting orders, guards, entries, exits."""
    arrays = generated(1_600, seed=9)
    stages = [600, *range(1_400, 1_520), 1_600]
    check(STRATEGIES[strategy], arrays, stages, lookback=300)


def test_the_cuts_fall_where_the_fill_holds_orders() -> None:
    """The stretch of the test above holds every state the fill carries across a cut."""
    arrays = generated(1_600, seed=9)
    rt = StrategyRuntime(RESTING, name="resting", indicators=ArrayStore())
    parts: list[str] = []
    extras: Extras = {}
    try:
        rt.decide_series(arrays, 300, 0, 1_600, parts, extras)
    finally:
        rt.close()
    decided = Decided(1_600)
    decided.add(np.frombuffer("".join(parts).encode(), dtype=np.uint8), extras)
    filling = engine.Filling(decided, arrays, 10_000.0, 0.001, 0.0, None, 60_000)
    seen = set()
    for upto in range(1_400, 1_520):
        filling.to(upto)
        seen.add(("resting", filling.resting is not None))
        seen.add(("guard", filling.guard is not None))
        seen.add(("holding", filling.qty > 0))
    assert seen == {(k, v) for k in ("resting", "guard", "holding") for v in (True, False)}


def test_a_failing_stage_ends_at_its_failing_candle() -> None:
    arrays = generated(150_000)
    stages = [50_000, 123_000, 123_456, 140_000, 150_000]
    staged = check(FAILING, arrays, stages)
    assert [r.candles for r in staged] == [50_000, 123_000, 123_456, 123_457]
    assert staged[-1].error is not None


def test_stages_past_the_candles_are_the_whole_run() -> None:
    arrays = generated(5_000, seed=3)
    staged = check(RESTING, arrays, [2_500, 5_000, 6_000, 9_000])
    assert [r.candles for r in staged] == [2_500, 5_000, 5_000, 5_000]


def test_a_prefix_that_measures_another_bar_is_filled_from_the_start() -> None:
    """The bar of a short prefix is the median of its own candles' spacing: when a longer one measures
    another, a limit entry's expiry differs, and that stage's fill starts again at candle 0."""
    arrays = generated(3_000, seed=2)
    gaps = np.where(np.arange(2_999) < 300, 60_000, 120_000)
    arrays["time"] = arrays["time"][0] + np.concatenate(([0], np.cumsum(gaps))).astype(np.int64)
    staged = check(RESTING, arrays, [200, 1_500, 3_000], lookback=100)
    assert [r.bar_minutes for r in staged] == [1.0, 2.0, 2.0]


def test_the_fill_does_not_go_back() -> None:
    arrays = generated(1_000)
    filling = engine.Filling(Decided(1_000), arrays, 10_000.0, 0.001, 0.0, None, 60_000)
    filling.to(500)
    with pytest.raises(ValueError, match="cannot go back"):
        filling.to(400)
