"""Library functions written in C run without the count hook: each one a strategy can reach is bounded
by a cap on its input or charges the instruction budget for its work, so a loop of heavy calls meets
the instruction limit in milliseconds instead of running for seconds past the time limit."""

from __future__ import annotations

import time

import pytest

from tradewind.sandbox.runtime import Limits, StrategyError, StrategyRuntime
from tradewind.sandbox.window import CandleWindow

WINDOW = CandleWindow.from_rows(
    [(60_000 * (i + 1), 100.0 + i % 7, 102.0 + i % 7, 99.0, 101.0 + i % 5, 10.0) for i in range(300)],
    "sim:BTC/USD:1m",
)
# A generous time limit: what stops these loops must be the budget (or a cap), not the clock.
LIMITS = Limits(instructions=10_000_000, memory_mb=64, time_ms=5000)
BIG = "local big = string.rep('x', 1e6) "
NUMBERS = "local t = {} for i = 1, 1e5 do t[i] = 65 end "

CHARGED = {
    "os.date": "local f = string.rep('%c', 128) while true do os.date(f) end",
    "os.time": "while true do os.time({year = 2024, month = 1, day = 1}) end",
    "string.format %s": BIG + "while true do string.format('%s', big) end",
    "string.format %.5s": BIG + "while true do string.format('%.5s', big) end",
    "string.format %q": "local z = string.rep('\\0', 1e5) while true do string.format('%q', z) end",
    "table.concat": "local t = {} for i = 1, 1e5 do t[i] = 'xx' end while true do table.concat(t, ',') end",
    "table.unpack": NUMBERS + "while true do table.unpack(t) end",
    "table.sort": "local t = {} for i = 1, 1e5 do t[i] = -i end while true do table.sort(t) end",
    "string.rep": "while true do string.rep('x', 1e6) end",
    "string.find backtracking": "local s = string.rep('a', 4400) while true do string.find(s, 'a*b') end",
    "string.find plain": "local s, p = string.rep('a', 1e5), string.rep('a', 255) .. 'b' "
    "while true do string.find(s, p, 1, true) end",
    "string.match": "local s = string.rep('a', 1e5) while true do string.match(s, '[%w_]b') end",
    "string.gsub": "local s = string.rep('a', 1e5) while true do string.gsub(s, 'a', 'bb') end",
    "string.byte": "local s = string.rep('a', 1e5) while true do string.byte(s, 1, -1) end",
    "string.char": NUMBERS + "while true do string.char(table.unpack(t)) end",
    "string.upper": BIG + "while true do string.upper(big) end",
    "string.reverse": BIG + "while true do big:reverse() end",
    "string.sub": BIG + "while true do big:sub(2) end",
    "string.pack": BIG + "while true do string.pack('s', big) end",
    "string.unpack": BIG + "while true do string.unpack('c1000000', big) end",
    "arithmetic on a string": "local s = string.rep('1', 1e6) while true do local x = s + 0 end",
    "tostring of a long __name": "local o = setmetatable({}, {__name = string.rep('n', 1e6)}) while true do tostring(o) end",
    "tonumber": "local s = string.rep('1', 1e6) while true do tonumber(s) end",
    "select": NUMBERS
    + "local function f(...) for i = 1, select('#', ...) do local x = select(i, ...) end end "
    "f(table.unpack(t))",
    "utf8.len": BIG + "while true do utf8.len(big) end",
    "utf8.codepoint": "local s = string.rep('a', 1e5) while true do utf8.codepoint(s, 1, -1) end",
    "utf8.char": NUMBERS + "while true do utf8.char(table.unpack(t)) end",
    "print": BIG + "while true do print(big) end",
    "ta on a plain table": NUMBERS + "while true do ta.sma(t, 2) end",
    "ta computations (cache misses)": "local p = 2 while true do ta.sma(c.close, p) p = p + 1 end",
}

REFUSED = {
    "os.date format": ("os.date(string.rep('%c', 250000))", "os.date: format longer than 256"),
    "string.rep result": ("string.rep('x', 1e7)", "string.rep result too large"),
    "pattern subject": ("string.find(string.rep('x', 1e6), 'x')", "subject longer than 100000"),
    "pattern": ("string.find('x', string.rep('x', 300))", "pattern longer than 256"),
    "string.pack format": ("string.pack(string.rep('i', 300), 1)", "format longer than 256"),
    "string.unpack format": ("string.unpack(string.rep('b', 300), 'x')", "format longer than 256"),
    "ta table": ("local t = {} for i = 1, 100001 do t[i] = i end ta.sma(t, 2)", "at most 100,000 values"),
    "ta table of strings": ("local s = string.rep('1', 1e6) ta.sma({s, s, s}, 2)", "numbers only"),
}


def run(body: str) -> tuple[StrategyError, float]:
    started = time.monotonic()
    with pytest.raises(StrategyError) as info:
        StrategyRuntime(f"function decide(c) {body} return 'long' end", name="heavy", limits=LIMITS).decide(
            WINDOW
        )
    return info.value, time.monotonic() - started


@pytest.mark.parametrize("name", list(CHARGED))
def test_a_loop_of_heavy_calls_meets_the_instruction_limit_quickly(name: str) -> None:
    err, took = run(CHARGED[name])
    assert err.limit == "instructions", str(err)
    assert took < 1.5, f"{name}: {took:.2f} s of C work for a budget of about 0.05 s"


@pytest.mark.parametrize("name", list(REFUSED))
def test_an_oversize_input_is_refused_before_any_work(name: str) -> None:
    body, says = REFUSED[name]
    err, took = run(body)
    assert says in err.reason and err.limit is None, str(err)
    assert took < 0.5


def test_ordinary_uses_stay_well_inside_the_budget() -> None:
    code = """function decide(c)
      local parts = {}
      for i = 1, 200 do
        parts[#parts + 1] = string.format("%d:%.2f", i, c.close[#c.close] / i) .. os.date("!%Y-%m-%d", c.time[#c.time] // 1000)
      end
      local s = table.concat(parts, ",")
      local n = 0
      for w in s:gmatch("%d+:") do n = n + tonumber(w:sub(1, -2)) end
      table.sort(parts)
      print(#s, n, utf8.len(s), s:upper():len())
      return {position = "long", note = tostring(n)}
    end"""
    d = StrategyRuntime(code, name="ordinary", limits=Limits(instructions=2_000_000)).decide(WINDOW)
    assert d.note == str(sum(range(1, 201)))


def test_print_hands_the_log_at_most_4_kib_cut_on_a_character_boundary() -> None:
    d = StrategyRuntime(
        "function decide(c) print(string.rep('é', 3000), 'tail') print('next') return 'long' end", name="p"
    ).decide(WINDOW)
    first = d.logs[0]
    assert set(first) == {"é"} and len(first.encode()) <= 4096 < len(first.encode()) + 2
