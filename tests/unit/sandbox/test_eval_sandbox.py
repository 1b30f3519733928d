"""The Lua sandbox against hostile strategies: each is stopped with a clear error, nothing escapes."""

from __future__ import annotations

import gc
import resource
import time
from pathlib import Path

import numpy as np
import pytest

from tradewind.sandbox.runtime import Limits, StrategyError, StrategyRuntime, validate
from tradewind.sandbox.ta import ArrayStore
from tradewind.sandbox.window import CandleWindow

ROWS = [(60_000 * (i + 1), 100.0 + i % 7, 102.0 + i % 7, 99.0, 101.0 + i % 5, 10.0) for i in range(300)]
WINDOW = CandleWindow.from_rows(ROWS, "sim:BTC/USD:1m")
LIMITS = Limits(instructions=2_000_000, memory_mb=16, time_ms=300)


def fail(code: str, limits: Limits = LIMITS) -> StrategyError:
    started = time.monotonic()
    with pytest.raises(StrategyError) as info:
        StrategyRuntime(code, name="hostile", limits=limits).decide(WINDOW)
    assert time.monotonic() - started < 5, "a hostile strategy must be stopped within seconds"
    return info.value


HOSTILE = {
    "top-level loop": ("while true do end", "instructions"),
    "loop in decide": ("function decide(c) while true do end end", "instructions"),
    "loop in a coroutine": (
        "function decide(c) coroutine.wrap(function() while true do end end)() end",
        "instructions",
    ),
    "loop swallowed by pcall": (
        "function decide(c) for i = 1, 100 do pcall(function() while true do end end) end return 'long' end",
        "instructions",
    ),
    "recursion": ("local function f() return f() + 1 end function decide(c) return f() end", None),
    "table bomb": ("function decide(c) local t = {} for i = 1, 1e9 do t[i] = i end end", "memory"),
    "string.rep bomb": ("function decide(c) return string.rep('x', 1e10) end", None),
    "method rep bomb": ("function decide(c) return ('x'):rep(1e10) end", None),
    "concatenation bomb": ("function decide(c) local s = 'x' for i = 1, 64 do s = s .. s end end", "memory"),
    "table.concat bomb": (
        "function decide(c) local t = {} for i = 1, 2e6 do t[i] = 'xxxxxxxxxx' end return table.concat(t) end",
        "memory",
    ),
    "string.rep with a separator": (
        "function decide(c) return string.rep('x', 1e6, string.rep('y', 1e6)) end",
        None,
    ),
    "coroutine bomb": (
        "function decide(c) local t = {} for i = 1, 1e9 do t[i] = coroutine.create(print) end end",
        "memory",
    ),
    "loop in init": (
        "function init(p) while true do end end function decide(c) return 'long' end",
        "instructions",
    ),
    "loop in an error handler": (
        "function decide(c) xpcall(error, function() while true do end end) end",
        "instructions",
    ),
    "loop in a to-be-closed variable": (
        "function decide(c) local x <close> = setmetatable({}, {__close = function() while true do end end}) end",
        "instructions",
    ),
    "sorting in a loop": (
        "function decide(c) local t = {} for i = 1, 2e5 do t[i] = -i end while true do table.sort(t) end end",
        "instructions",
    ),
    "table.concat in a loop": (
        "function decide(c) local t = {} for i = 1, 1e5 do t[i] = 'x' end while true do table.concat(t) end end",
        "instructions",
    ),
    "ta on a big plain table in a loop": (
        "function decide(c) local t = {} for i = 1, 1e5 do t[i] = i end while true do ta.sma(t, 2) end end",
        "instructions",
    ),
    "string.upper in a loop": (
        "function decide(c) local s = string.rep('x', 1e6) while true do s:upper() end end",
        "instructions",
    ),
    "error object with a looping __tostring": (
        "function decide(c) error(setmetatable({}, {__tostring = function() while true do end end})) end",
        None,
    ),
    "returned table with a looping __index": (
        "function decide(c) return setmetatable({}, {__index = function() while true do end end}) end",
        None,
    ),
}
# Lua patterns backtrack in C, where no hook runs: a 300-character subject would take minutes.
PATTERNS = {
    "nested repetitions": "string.find(string.rep('a', 300), string.rep('a*', 20) .. 'b')",
    "two repetitions": "string.find(string.rep('a', 5000), 'a*a*b')",
    "one repetition, long subject": "string.match(string.rep('a', 50000), '.-b')",
    "a back-reference": "string.find(string.rep('a', 4000), '(a*)%1b')",
    "a method call": "(string.rep('a', 300)):gsub(string.rep('a-', 10) .. 'b', '')",
    "optional items": "string.find(string.rep('a', 40), string.rep('a?', 40) .. string.rep('a', 40))",
}


@pytest.mark.parametrize("name", list(PATTERNS))
def test_pathological_patterns_are_refused_before_they_run(name: str) -> None:
    err = fail(f"function decide(c) {PATTERNS[name]} return 'long' end")
    assert "pattern too complex" in err.reason and err.line == 1


def test_ordinary_patterns_still_work() -> None:
    code = """function decide(c)
      local k, v = ("fast=12"):match("^(%w+)=(%d+)$")
      local words = 0
      for w in string.gmatch(string.rep("ab cd ", 2000), "%a+") do words = words + 1 end
      local s = string.rep("x", 50000) .. "7"
      return {position = "long", note = k .. v .. " " .. words .. " " .. s:find("%d+") .. " " .. s:gsub("x", "")}
    end"""
    assert StrategyRuntime(code, name="p").decide(WINDOW).note == "fast12 4000 50001 7"


@pytest.mark.parametrize("name", list(HOSTILE))
def test_hostile_strategies_are_stopped_with_a_clear_error(name: str) -> None:
    code, limit = HOSTILE[name]
    err = fail(code)
    assert err.strategy == "hostile"
    if limit:
        assert err.limit == limit, str(err)
        assert "limit reached" in str(err)


ESCAPES = {
    "io": "return io.open('/etc/passwd')",
    "os.execute": "return os.execute('touch /tmp/pwned')",
    "os.remove": "return os.remove('/tmp/x')",
    "require": "return require('os')",
    "package": "return package.loadlib('x', 'y')",
    "debug": "return debug.getinfo(1)",
    "load": "return load('return 1')",
    "dofile": "return dofile('/etc/passwd')",
    "string.dump": "return string.dump(print)",
    "collectgarbage": "return collectgarbage('count')",
    "python bridge": "return python.eval('1')",
    "rawset on candles": "rawset(c.close, 1, 5)",
    "loadstring and setfenv": "return setfenv(1, {}) or loadstring('x')",
    "a Python object's attributes": "local ok, e = pcall(ta.sma, c.close, -3) return tostring(e.__class__)",
    "the host functions": "host_ta(1, c.close)",
    "debug through the coroutine": "return coroutine.running().sethook",
    "io through _G": "return _G.io.open('x', 'w')",
    "io through _ENV": "return _ENV.io.open('x', 'w')",
    "os.exit": "os.exit(1)",
    "os.getenv": "return os.getenv('HOME')",
}


@pytest.mark.parametrize("name", list(ESCAPES))
def test_escape_routes_are_closed(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    err = fail(f"function decide(c) {ESCAPES[name]} end")
    assert err.line == 1 and err.limit is None, str(err)
    assert list(tmp_path.iterdir()) == [], "no file is touched"
    assert not Path("/tmp/pwned").exists()


def test_next_and_rawget_reveal_no_private_state_of_the_arrays() -> None:
    code = """function decide(c)
      local k, v = next(c.close)
      local k2 = next(c)
      local raw = 0
      for key in next, c.close do raw = raw + 1 end
      return {position = "neutral", note = table.concat({tostring(k), tostring(v), k2, raw, rawlen(c.close),
                                                           tostring(rawget(c, "close"))}, " ")}
    end"""
    note = StrategyRuntime(code, name="n").decide(WINDOW).note
    assert note == f"1 {ROWS[0][4]} open {len(ROWS)} 0 nil"


def test_binary_chunks_and_gc_finalizers_are_refused() -> None:
    assert validate("\x1bLua" + "x" * 20)
    err = fail(
        "function decide(c) setmetatable({}, {__gc = function() while true do end end}) return 'long' end"
    )
    assert "__gc" in err.reason
    assert (
        StrategyRuntime(
            "function decide(c) return getmetatable('') == nil and 'long' or 'short' end", name="s"
        )
        .decide(WINDOW)
        .position
        == "long"
    )


def test_candle_arrays_are_read_only_and_shared_state_is_impossible() -> None:
    err = fail("function decide(c) c.close[1] = 0 end")
    assert "read-only" in err.reason
    err = fail("function decide(c) c.close = {} end")
    assert "read-only" in err.reason
    store = ArrayStore()
    a = StrategyRuntime(
        "x = 1 function decide(c) x = x + 1 string.upper = nil return 'long' end", name="a", indicators=store
    )
    b = StrategyRuntime(
        "function decide(c) return (x == nil and string.upper('a') == 'A') and 'long' or 'short' end",
        name="b",
        indicators=store,
    )
    a.decide(WINDOW)
    assert b.decide(WINDOW).position == "long"


BAD_RETURNS = [
    ("return 42", "decide returned 42"),
    ("return 'up'", "'up'"),
    ("return nil", "nothing"),
    ("return {position='long', size=1.5}", "size must be"),
    ("return {size=1}", "position"),
    ("return {position='long', size=0/0}", "size must be"),
    ("return {position='long', note={}}", "note"),
    ("return print", "a function"),
    ("return {position={}}", "position"),
    ("return setmetatable({}, {__index = function() return 'long' end})", "position"),
]


@pytest.mark.parametrize(("body", "says"), BAD_RETURNS)
def test_bad_return_values_say_what_is_expected(body: str, says: str) -> None:
    err = fail(f"function decide(c) {body} end")
    assert "bad return value" in err.reason and says in err.reason


def test_errors_name_the_line_and_the_candle_and_huge_messages_are_cut() -> None:
    err = fail("function decide(c)\n  local x = nil\n  return x.field\nend")
    assert err.line == 3 and err.candle_time == WINDOW.last_time and "line 3" in str(err)
    err = fail("function decide(c) error(string.rep('e', 100000)) end")
    assert len(str(err)) < 1200


def test_print_goes_to_a_bounded_log() -> None:
    d = StrategyRuntime(
        "function decide(c) for i = 1, 10000 do print('line', i) end return 'long' end", name="p"
    ).decide(WINDOW)
    assert d.logs[0] == "line\t1" and len(d.logs) <= 51 and d.logs[-1].startswith("…")


def test_syntax_errors_and_a_missing_decide_are_reported_by_validate() -> None:
    (d,) = validate("function decide(c)\n  return 'long'\n x = = 1\nend")
    assert d.line == 3 and "syntax error" in d.message
    assert "decide" in validate("x = 1")[0].message
    assert validate("function decide(c) return 'long' end") == []
    # init may need an assignment's parameters: validation does not run it
    assert validate("function init(p) n = p.start + 1 end function decide(c) return 'long' end") == []
    (d,) = validate("x = nil + 1\nfunction decide(c) return 'long' end")
    assert d.line == 1 and "arithmetic" in d.message


def test_init_runs_once_with_params_and_state_persists() -> None:
    code = "n = 0 function init(p) n = p.start end function decide(c, p) n = n + 1 return {position='neutral', note=tostring(n)} end"
    rt = StrategyRuntime(code, name="s", params={"start": 10})
    assert [rt.decide(WINDOW).note for _ in range(3)] == ["11", "12", "13"]


def test_memory_returns_to_its_baseline_after_memory_bombs() -> None:
    def rss_kib() -> int:
        gc.collect()
        return int(Path("/proc/self/statm").read_text().split()[1]) * resource.getpagesize() // 1024

    for _ in range(3):
        fail("function decide(c) local t = {} for i = 1, 1e9 do t[i] = i end end")
    baseline = rss_kib()
    for _ in range(20):  # 20 x 16 MB caps: without reclaiming, this would add 320 MB
        fail("function decide(c) local t = {} for i = 1, 1e9 do t[i] = i end end")
    assert rss_kib() - baseline < 48 * 1024, "memory did not return to its baseline (KiB)"


def test_a_well_behaved_strategy_still_works_next_to_hostile_ones() -> None:
    store = ArrayStore()
    good = StrategyRuntime(
        "function decide(c) return c.close[#c.close] > 100 and 'long' or 'short' end",
        name="g",
        indicators=store,
    )
    for code, _ in HOSTILE.values():
        with pytest.raises(StrategyError):
            StrategyRuntime(code, name="h", limits=LIMITS, indicators=store).decide(WINDOW)
        assert good.decide(WINDOW).position in ("long", "short")
    assert np.isfinite(WINDOW.close).all()
