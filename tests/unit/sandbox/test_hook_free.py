"""``Limits(hooked=False)``: a strategy run without Lua's count hook (a backtest worker's optimisation trials,
whose process is killed from outside when it stalls). The decisions are the hooked run's; the memory limit and
the charges of library calls still hold; the hook's per-evaluation instruction and time limits do not."""

from __future__ import annotations

from dataclasses import replace

import pytest

from tests.unit.backtest.test_engine_parity import generated
from tradewind.sandbox.runtime import Limits, StrategyError, StrategyRuntime
from tradewind.sandbox.ta import ArrayStore

HOOKED = Limits(instructions=1_000_000, memory_mb=16, time_ms=5000)
FREE = replace(HOOKED, hooked=False)

SMA = """
function decide(c, params)
  local fast, slow = ta.sma(c.close, 5), ta.sma(c.close, 20)
  local f, s = fast[#fast], slow[#slow]
  if f ~= f or s ~= s then return "neutral" end
  if f > s then return {position = "long", stop_loss = 0.01} end
  return "short"
end
"""


def series(code: str, limits: Limits, n: int = 3000) -> tuple[str, dict[int, tuple[object, ...]]]:
    arrays = generated(n)
    rt = StrategyRuntime(code, name="s", limits=limits, indicators=ArrayStore())
    try:
        extras: dict[int, tuple[object, ...]] = {}
        return rt.decide_series(arrays, 500, 0, n, extras=extras), extras  # type: ignore[arg-type]
    finally:
        rt.close()


def test_the_live_limits_are_hooked() -> None:
    assert Limits().hooked is True


def test_decisions_without_the_hook_are_the_hooked_ones() -> None:
    assert series(SMA, FREE) == series(SMA, HOOKED)


BUSY = """
function decide(c, params)
  local x = 0
  for i = 1, 3000000 do x = x + i end  -- three times the instruction limit, on every candle
  return "neutral"
end
"""


def test_only_the_hooked_run_counts_instructions() -> None:
    with pytest.raises(StrategyError) as err:
        series(BUSY, HOOKED, 5)
    assert err.value.limit == "instructions", str(err.value)
    letters, _ = series(BUSY, FREE, 5)
    assert letters == "nnnnn"


BOMB = """
function decide(c, params)
  local t = {}
  for i = 1, 1e9 do t[i] = {i} end
  return "neutral"
end
"""


def test_a_memory_bomb_fails_cleanly_without_the_hook() -> None:
    with pytest.raises(StrategyError) as err:
        series(BOMB, FREE, 5)
    assert err.value.limit == "memory", str(err.value)


CHARGED = """
function decide(c, params)
  local s = string.rep("x", 1000000)  -- charged before it runs: more than the whole budget
  return "neutral"
end
"""


def test_library_calls_are_still_charged_without_the_hook() -> None:
    with pytest.raises(StrategyError) as err:
        series(CHARGED, replace(FREE, instructions=10_000), 5)
    assert err.value.limit == "instructions", str(err.value)
