"""``Limits(hooked=False)``: a backtest's decisions without Lua's count hook, at about two thirds of the cost.
They are the hooked run's or they raise ``Unverified``: the runner proves from the CPU clock that no candle can
have gone past the instruction or time limit, and anything it cannot prove (a slow candle, any error, a limit)
ends the run so that the caller runs it hooked. The memory limit and the charges of library calls still hold.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from tests.unit.backtest.test_engine_parity import generated
from tradewind.sandbox.runtime import Limits, StrategyError, StrategyRuntime, Unverified
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
    # at a backtest's instruction limit: the proof's budget per batch is the limit's (a tenth of it would be
    # tight on a busy machine, and the run would only be left to the hooked one, as the tests below check)
    hooked = replace(HOOKED, instructions=10_000_000)
    assert series(SMA, replace(hooked, hooked=False)) == series(SMA, hooked)


BUSY = """
function decide(c, params)
  local x = 0
  for i = 1, 3000000 do x = x + i end  -- three times the instruction limit, on every candle
  return "neutral"
end
"""


def test_a_candle_past_the_instruction_limit_is_never_taken_without_the_hook() -> None:
    with pytest.raises(StrategyError) as err:
        series(BUSY, HOOKED, 5)
    assert err.value.limit == "instructions", str(err.value)
    with pytest.raises(Unverified):
        series(BUSY, FREE, 5)


ONE_BUSY = """
function decide(c, params)
  if c.time[#c.time] == params.at then
    local x = 0
    for i = 1, 1200000 do x = x + i end  -- on one candle of thousands: just past the limit
  end
  return "neutral"
end
"""


def test_one_candle_past_the_limit_among_thousands_is_caught() -> None:
    arrays = generated(3000)
    at = int(arrays["time"][2500])
    code = ONE_BUSY.replace("params.at", str(at))
    with pytest.raises(StrategyError) as err:
        series(code, HOOKED)
    assert err.value.limit == "instructions" and err.value.candle_time == at
    with pytest.raises(Unverified):
        series(code, FREE)


SLOW = """
function decide(c, params)
  local x = 0
  for i = 1, 300000 do x = x + i end  -- within the limit, but too slow a candle to prove so by the clock
  return "neutral"
end
"""


def test_a_candle_the_clock_cannot_prove_within_the_limit_is_not_taken() -> None:
    assert series(SLOW, HOOKED, 3)[0] == "nnn"
    with pytest.raises(Unverified):
        series(SLOW, FREE, 3)


FAILS = """
function decide(c, params)
  if #c.close == 450 then error("boom") end
  return "long"
end
"""


def test_an_error_in_lua_without_the_hook_is_left_to_the_hooked_run() -> None:
    with pytest.raises(StrategyError):
        series(FAILS, HOOKED)
    with pytest.raises(Unverified):
        series(FAILS, FREE)


def test_a_bad_return_value_is_judged_after_the_candles_before_it_are_proved() -> None:
    code = "function decide(c, params) if #c.close == 450 then return 7 end return 'long' end"
    with pytest.raises(StrategyError) as hooked:
        series(code, HOOKED)
    with pytest.raises(StrategyError) as free:
        series(code, FREE)
    assert str(free.value) == str(hooked.value)


BOMB = """
function decide(c, params)
  local t = {}
  for i = 1, 1e9 do t[i] = {i} end
  return "neutral"
end
"""


def test_a_memory_bomb_ends_cleanly_without_the_hook() -> None:
    with pytest.raises(StrategyError) as err:
        series(BOMB, HOOKED, 5)
    assert err.value.limit == "memory", str(err.value)
    with pytest.raises(Unverified):
        series(BOMB, FREE, 5)


CHARGED = """
function decide(c, params)
  local s = string.rep("x", 1000000)  -- charged before it runs: more than the whole budget
  return "neutral"
end
"""


def test_library_calls_are_still_charged_without_the_hook() -> None:
    with pytest.raises(Unverified):
        series(CHARGED, replace(FREE, instructions=10_000), 5)
