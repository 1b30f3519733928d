"""The assignments of one strategy version in one Lua state (the eval worker's executor): each with its own
globals and library tables, its own budgets and failures, evaluated in one call per candle."""

from __future__ import annotations

from typing import Any

import pytest

from tradewind.sandbox.runtime import Decision, Limits, LuaState, StrategyError, StrategyRuntime
from tradewind.sandbox.ta import ArrayStore
from tradewind.sandbox.window import CandleWindow


def window(shift: int = 0) -> CandleWindow:
    return CandleWindow.from_rows(
        [
            (60_000 * (i + 1), 100.0 + i % 7, 102.0 + i % 7, 99.0, 101.0 + i % 5, 10.0)
            for i in range(shift, shift + 100)
        ],
        "sim:BTC/USD:1m",
    )


def group(
    code: str, params: list[dict[str, Any]], limits: Limits | None = None, state: LuaState | None = None
) -> tuple[LuaState, list[StrategyRuntime]]:
    state = state or LuaState(limits or Limits(), ArrayStore())
    return state, [StrategyRuntime(code, name=f"a{i}", params=p, state=state) for i, p in enumerate(params)]


def decided(results: list[Decision | StrategyError]) -> list[Decision]:
    assert all(isinstance(r, Decision) for r in results), results
    return [r for r in results if isinstance(r, Decision)]


def test_assignments_of_one_version_do_not_see_each_others_globals() -> None:
    code = """
    function init(p) mine = p.tag end
    function decide(c, p)
      seen = (seen or 0) + 1
      if mine ~= p.tag then error("saw another assignment's init: " .. tostring(mine)) end
      return {position = "neutral", note = mine .. ":" .. seen}
    end"""
    state, rts = group(code, [{"tag": "a"}, {"tag": "b"}, {"tag": "c"}])
    assert [d.note for d in decided(state.decide_all(window(), rts))] == ["a:1", "b:1", "c:1"]
    assert [d.note for d in decided(state.decide_all(window(1), rts))] == ["a:2", "b:2", "c:2"]
    assert rts[1].decide(window(2)).note == "b:3", "one evaluated alone keeps its own globals too"


def test_writes_to_library_tables_and_ta_stay_with_the_assignment_that_made_them() -> None:
    code = """
    function decide(c, p)
      if p.evil then
        math.floor = function() return 666 end
        string.upper = nil
        table.insert = error
        os.clock = nil
        ta.sma = function() return {666} end
        pcall(function() getmetatable(ta).__index = function() return 666 end end)
        _G.decide = function() return "short" end
        setmetatable(_G, {__index = function() return 666 end})
        return "long"
      end
      local ok = math.floor(1.5) == 1 and string.upper("a") == "A" and table.insert ~= error
        and os.clock ~= nil and ta.sma(c.close, 3)[1] ~= 666 and not pcall(function() return ta.nonsense end)
        and undefined_global == nil
      return ok and "long" or "short"
    end"""
    state, rts = group(code, [{}, {"evil": True}, {}, {}])
    for shift in range(2):
        positions = [d.position for d in decided(state.decide_all(window(shift), rts))]
        assert positions == ["long", "long", "long", "long"]


HOSTILE = """
function init(p) secret = p.secret end
function decide(c, p)
  if p.secret then return "neutral" end
  local found = {}
  local function look(x, depth)
    if type(x) ~= "table" or depth > 3 then return end
    for k, v in pairs(x) do
      if v == 4242 or k == "secret" then found[#found + 1] = "pairs" end
      look(v, depth + 1)
    end
    local mt = getmetatable(x)
    if type(mt) == "table" then look(mt, depth + 1) end
  end
  look(c, 0)
  look(ta.rsi(c.close, 14), 0)
  look(_G, 0)
  for _, x in ipairs({c, c.close, ta.rsi(c.close, 14)}) do
    if pcall(function() x.stash = 1 end) then found[#found + 1] = "wrote a shared table" end
    if pcall(setmetatable, x, {}) then found[#found + 1] = "set a shared metatable" end
  end
  if secret ~= nil or rawget(_G, "secret") ~= nil then found[#found + 1] = "global" end
  local co = coroutine.running()
  if debug or load or require or collectgarbage or python then found[#found + 1] = "a door" end
  return #found == 0 and "long" or {position = "short", note = table.concat(found, ",")}
end"""


def test_a_hostile_assignment_finds_nothing_of_another_assignments_environment() -> None:
    state, rts = group(HOSTILE, [{"secret": 4242}, {}, {"secret": 4242}])
    results = decided(state.decide_all(window(), rts))
    assert [(d.position, d.note) for d in results] == [("neutral", None), ("long", None), ("neutral", None)]


def test_one_assignments_loop_error_or_bad_return_fails_it_alone() -> None:
    code = """
    function decide(c, p)
      if p.bad == "loop" then while true do end end
      if p.bad == "error" then error("boom") end
      if p.bad == "value" then return 42 end
      if p.bad == "bytes" then return "\\255\\254" end
      if p.bad == "yield" then coroutine.yield("x") end
      print("fine " .. p.n)
      return "long"
    end"""
    bad = ["loop", "error", "value", "bytes", "yield"]
    params: list[dict[str, Any]] = []
    for i, b in enumerate(bad):
        params += [{"n": 2 * i}, {"n": 2 * i + 1, "bad": b}]
    state, rts = group(code, params, Limits(instructions=200_000))
    results = state.decide_all(window(), rts, 1_700_000_000_000)
    fine = results[0::2]
    assert [r.position for r in fine if isinstance(r, Decision)] == ["long"] * len(bad)
    assert [r.logs for r in fine if isinstance(r, Decision)] == [[f"fine {2 * i}"] for i in range(len(bad))]
    failed = results[1::2]
    assert all(isinstance(r, StrategyError) for r in failed), failed
    messages = [str(r) for r in failed]
    assert "instruction limit reached" in messages[0] and messages[0].startswith("strategy 'a1' (candle ")
    assert "boom" in messages[1] and "line 4" in messages[1] and "'a3'" in messages[1]
    assert "decide returned 42" in messages[2] and "'a5'" in messages[2]
    assert "not valid UTF-8" in messages[3] and "'a7'" in messages[3]
    assert "yielded" in messages[4] and "'a9'" in messages[4]
    assert not state.broken
    again = state.decide_all(window(1), rts)  # and next candle the same: nothing carried over
    assert [r.position for r in again[0::2] if isinstance(r, Decision)] == ["long"] * len(bad)


def test_each_assignment_has_its_own_instruction_budget() -> None:
    code = """
    function decide(c, p)
      local x = 0
      for i = 1, 60000 do x = x + i end  -- most of the budget, each
      return "long"
    end"""
    state, rts = group(code, [{}] * 5, Limits(instructions=400_000))
    assert [d.position for d in decided(state.decide_all(window(), rts))] == ["long"] * 5


def test_a_memory_blowup_fails_that_evaluation_and_breaks_only_its_own_state() -> None:
    code = """
    function decide(c, p)
      if p.bomb then
        local t, s = {}, string.rep("x", 100000)
        for i = 1, 1e9 do t[i] = s .. i end
      end
      return "long"
    end"""
    store = ArrayStore()
    state, rts = group(
        code, [{}, {"bomb": True}, {}], Limits(memory_mb=16), LuaState(Limits(memory_mb=16), store)
    )
    other, others = group(code, [{}, {}], state=LuaState(Limits(memory_mb=16), store))
    results = state.decide_all(window(), rts)
    assert isinstance(results[1], StrategyError) and results[1].limit == "memory"
    assert "'a1'" in str(results[1])
    assert isinstance(results[0], Decision)
    assert state.broken, "the executor starts the state again"
    assert not other.broken
    assert [d.position for d in decided(other.decide_all(window(), others))] == ["long", "long"]


def test_a_shared_state_may_hold_the_memory_limit_per_assignment() -> None:
    code = """
    function init(p) blob = string.rep("x", 1000000) .. string.rep("y", 1000000) .. string.rep("z", 1000000) .. p.n end
    function decide(c, p) return #blob > 0 and "long" or "short" end"""
    state, rts = group(code, [{"n": i} for i in range(8)], Limits(memory_mb=8))
    assert state.memory_used() > 8 * 3_000_000  # more than one assignment's limit, within eight's
    assert [d.position for d in decided(state.decide_all(window(), rts))] == ["long"] * 8


class CountingState(LuaState):
    def __init__(self, *args: Any) -> None:
        self.calls: list[int] = []
        super().__init__(*args)

    def _ta(self, k: int, *args: Any) -> Any:
        self.calls.append(k)
        return super()._ta(k, *args)


def test_the_indicators_a_candles_assignments_share_cross_to_the_host_once() -> None:
    code = """
    function decide(c, p)
      local r, e = ta.rsi(c.close, 14), ta.ema(c.close, p.n)
      local again = ta.rsi(c.close, 14)
      local m, s, h = ta.macd(c.close, 12, 26, 9)
      return (r[#r] == again[#again] and e[#e] == e[#e] and #m == #c.close) and "long" or "short"
    end"""
    state = CountingState(Limits(), ArrayStore())
    _, rts = group(code, [{"n": 10}, {"n": 20}, {"n": 10}, {"n": 20}], state=state)
    assert [d.position for d in decided(state.decide_all(window(), rts))] == ["long"] * 4
    assert len(state.calls) == 4, "rsi, macd, and ema for each of the two periods"
    state.decide_all(window(1), rts)
    assert len(state.calls) == 8, "a new candle asks again"


def test_a_plain_table_passed_to_ta_is_never_answered_from_the_memo() -> None:
    code = """
    function decide(c, p)
      local t = {1, 2, 3, 4, p.n}
      local a = ta.sma(t, 2)
      t[5] = p.n * 10
      local b = ta.sma(t, 2)
      return {position = "neutral", note = a[5] .. "," .. b[5]}
    end"""
    state, rts = group(code, [{"n": 6}, {"n": 8}])
    assert [d.note for d in decided(state.decide_all(window(), rts))] == ["5.0,32.0", "6.0,42.0"]


def test_the_watchdog_hears_each_assignment_start() -> None:
    state, rts = group('function decide(c) return "long" end', [{}, {}, {}])
    heard: list[tuple[int, int]] = []
    state.decide_all(window(), rts, marks=[7, 3, 9], progress=lambda i, v: heard.append((i, v)))
    assert heard == [(0, 7), (0, 3), (0, 9)]


def test_a_dropped_assignment_leaves_the_others_deciding() -> None:
    code = 'function init(p) n = p.n end function decide(c) return {position = "neutral", note = tostring(n)} end'
    state, rts = group(code, [{"n": 1}, {"n": 2}, {"n": 3}])
    rts[1].close()
    assert 2 not in state.slots.values() and len(state.slots) == 2
    assert [d.note for d in decided(state.decide_all(window(), [rts[0], rts[2]]))] == ["1", "3"]


def test_a_strategy_that_only_ticks_is_told_so_among_the_others() -> None:
    state = LuaState(Limits(), ArrayStore())
    rt = StrategyRuntime("function on_tick(t, c) end", name="ticker", state=state)
    results = state.decide_all(window(), [rt])
    assert isinstance(results[0], StrategyError) and "on ticks only" in str(results[0])


@pytest.mark.parametrize("n", [1, 300])
def test_groups_larger_than_one_call_are_evaluated_whole(n: int) -> None:
    state, rts = group(
        'function decide(c, p) return p.i % 2 == 0 and "long" or "short" end', [{"i": i} for i in range(n)]
    )
    positions = [d.position for d in decided(state.decide_all(window(), rts))]
    assert positions == ["long" if i % 2 == 0 else "short" for i in range(n)]
