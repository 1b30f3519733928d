"""Tick-driven strategies in the sandbox: ``on_tick(t, c, params)`` and the quotes it returns.

What ``t`` holds, the return values (quotes, none, a position) and their validation, the limits and
hooks ``decide`` has, logs, validation of a strategy that defines only ``on_tick``, and the market maker
of docs/strategies.md run as written there."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from tradewind.bus import messages as m
from tradewind.sandbox.runtime import Decision, Limits, StrategyError, StrategyRuntime, validate
from tradewind.sandbox.ta import ArrayStore
from tradewind.sandbox.window import CandleWindow

ROWS = [(60_000 * (i + 1), 100.0 + i % 7, 102.0 + i % 7, 99.0, 101.0 + i % 5, 10.0) for i in range(60)]
WINDOW = CandleWindow.from_rows(ROWS, "sim:BTC/USD:1m")
LIMITS = Limits(instructions=2_000_000, memory_mb=16, time_ms=300)
TICK = m.Tick(
    exchange="sim",
    symbol="BTC/USD",
    bid=99.5,
    ask=100.5,
    bid_size=1.25,
    ask_size=2.5,
    last=100.25,
    time=1_700_000_000_123,
)
STATE = m.TickState(position=0.5, cash=1234.5, quotes=[m.Quote(side="sell", price=101.0, amount=0.2)])
DOCS = Path(__file__).resolve().parents[3] / "docs" / "strategies.md"


def runtime(code: str, limits: Limits = LIMITS, params: dict | None = None) -> StrategyRuntime:
    return StrategyRuntime(code, name="mm", limits=limits, params=params)


def tick(body: str, state: m.TickState | None = STATE) -> Decision:
    return runtime(f"function on_tick(t, c, params) {body} end").on_tick(WINDOW, TICK, state)


def tick_error(body: str) -> StrategyError:
    with pytest.raises(StrategyError) as info:
        tick(body)
    return info.value


# -- what on_tick gets ----------------------------------------------------------------------------------
def test_t_holds_the_tick_and_the_assignment_state_and_c_is_the_candle_window() -> None:
    d = tick("""
      local q = t.quotes[1]
      print(t.bid, t.ask, t.bid_size, t.ask_size, t.last, t.time)
      print(t.position, t.cash, #t.quotes, q.side, q.price, q.amount)
      local sma = ta.sma(c.close, 5)
      print(#c.close, c.close[#c.close], c.time[#c.time], sma[#sma], params.k)
      return {quotes = {}}""")
    assert d.logs == [
        "99.5\t100.5\t1.25\t2.5\t100.25\t1700000000123",
        "0.5\t1234.5\t1\tsell\t101.0\t0.2",
        f"60\t{ROWS[-1][4]}\t{ROWS[-1][0]}\t{sum(r[4] for r in ROWS[-5:]) / 5}\tnil",
    ]


def test_without_a_state_t_has_no_position_cash_or_quotes() -> None:
    d = tick("print(t.position, t.cash, #t.quotes) return {quotes = {}}", state=None)
    assert d.logs == ["0.0\t0.0\t0"]


def test_t_is_made_afresh_for_every_call() -> None:
    rt = runtime("""
      function on_tick(t)
        if kept then print(kept.bid, kept.quotes[1].price, t.bid, #t.quotes) end
        kept = t
        t.bid = -1
        if t.quotes[1] then t.quotes[1].price = -1 end
        return {quotes = {}}
      end""")
    rt.on_tick(WINDOW, TICK, STATE)
    later = m.Tick(exchange="sim", symbol="BTC/USD", bid=98.0, ask=99.0)
    d = rt.on_tick(WINDOW, later, m.TickState())
    # the table kept from the first call keeps what the strategy wrote into it; the new one is the new tick
    assert d.logs == ["-1\t-1\t98.0\t0"]
    assert TICK.bid == 99.5 and STATE.quotes[0].price == 101.0


def test_c_and_params_are_what_decide_gets() -> None:
    code = """
      function decide(c, p) return {position = "neutral", note = #c.close .. " " .. c.close[#c.close] .. " " .. p.k} end
      function on_tick(t, c, p) return {position = "neutral", note = #c.close .. " " .. c.close[#c.close] .. " " .. p.k} end"""
    rt = runtime(code, params={"k": 7})
    short = WINDOW.tail(20)
    assert rt.on_tick(short, TICK).note == rt.decide(short).note == f"20 {ROWS[-1][4]} 7"
    assert rt.on_tick(WINDOW, TICK).note == rt.decide(WINDOW).note == f"60 {ROWS[-1][4]} 7"


# -- what on_tick returns -------------------------------------------------------------------------------
def test_quotes_come_back_as_side_price_amount() -> None:
    d = tick("""local mid = (t.bid + t.ask) / 2
      return {quotes = {{side = "buy", price = mid - 1, amount = 0.01}, {side = "sell", price = mid + 1, amount = 2}}}""")
    assert d.quotes == [("buy", 99.0, 0.01), ("sell", 101.0, 2.0)]
    assert d.position is None and d.logs == []
    assert all(type(p) is float and type(a) is float for _, p, a in d.quotes)


def test_one_quote_and_a_sell_first_are_fine() -> None:
    assert tick('return {quotes = {{side = "sell", price = 101, amount = 1}}}').quotes == [
        ("sell", 101.0, 1.0)
    ]
    d = tick(
        'return {quotes = {{side = "sell", price = 101, amount = 1}, {side = "buy", price = 99, amount = 1}}}'
    )
    assert d.quotes == [("sell", 101.0, 1.0), ("buy", 99.0, 1.0)]


def test_an_empty_list_cancels_every_quote() -> None:
    d = tick("return {quotes = {}}")
    assert d.quotes == [] and d.position is None


@pytest.mark.parametrize("body", ["", "return", "return nil", "if t.bid > 0 then return end return 'long'"])
def test_nothing_keeps_the_quotes_as_they_are(body: str) -> None:
    d = tick(body)
    assert d.quotes is None and d.position is None and d == Decision(None, 1.0, None, [])


def test_a_position_is_the_decision_decide_would_give() -> None:
    table = '{position = "long", size = 0.5, note = "n", stop_loss = 0.02, limit = 99.5, expire = 3}'
    for body in ('return "long"', 'return "short"', 'return "neutral"', f"return {table}"):
        code = f"function decide(c, p) {body} end function on_tick(t, c, p) {body} end"
        rt = runtime(code)
        assert rt.on_tick(WINDOW, TICK, STATE) == rt.decide(WINDOW)
        assert rt.on_tick(WINDOW, TICK, STATE).quotes is None
    assert tick(f"return {table}") == Decision("long", 0.5, "n", [], 0.02, None, None, 99.5, 3)


BAD = {
    "a number": ("return 42", "on_tick returned 42; return {quotes = {...}}, nothing"),
    "an unknown word": ('return "buy"', "on_tick returned 'buy'"),
    "a function": ("return print", "on_tick returned a function"),
    "an empty table": ("return {}", "the table on_tick returned needs quotes = {...} or position"),
    "a position out of range": ('return {position = "long", size = 2}', "size must be a number from 0 to 1"),
    "quotes and a position": (
        'return {position = "long", quotes = {}}',
        "on_tick returned quotes and position: return either",
    ),
    "an unknown field beside quotes": (
        "return {quotes = {}, spread = 1}",
        "unknown field 'spread' in the table",
    ),
    "a non-string key beside quotes": ("return {quotes = {}, [true] = 1}", "unknown field a boolean key"),
    "quotes not a table": (
        'return {quotes = "buy"}',
        "quotes must be a list of {side =, price =, amount =} tables",
    ),
    "three quotes": (
        'local q = {side = "buy", price = 1, amount = 1} return {quotes = {q, q, q}}',
        "at most 2 quotes (one buy, one sell), got 3",
    ),
    "quotes by name": (
        'return {quotes = {bid = {side = "buy", price = 1, amount = 1}}}',
        "quotes must be a list {q1, q2}, not a table with the key 'bid'",
    ),
    "a hole in the list": (
        'return {quotes = {[2] = {side = "buy", price = 1, amount = 1}}}',
        "quotes must be a list",
    ),
    "a quote that is not a table": (
        'return {quotes = {"buy"}}',
        "quote 1 must be a table {side =, price =, amount =}",
    ),
    "two buys": (
        'return {quotes = {{side = "buy", price = 99, amount = 1}, {side = "buy", price = 98, amount = 1}}}',
        'two buy quotes: at most one quote per side (one "buy", one "sell")',
    ),
    "two sells": (
        'return {quotes = {{side = "sell", price = 101, amount = 1}, {side = "sell", price = 102, amount = 1}}}',
        "two sell quotes",
    ),
    "an unknown field in a quote": (
        'return {quotes = {{side = "buy", price = 99, amount = 1, size = 1}}}',
        "unknown field 'size' in quote 1 (a quote has side, price and amount)",
    ),
    "an unknown field in the second quote": (
        'return {quotes = {{side = "buy", price = 99, amount = 1}, {side = "sell", price = 101, amount = 1, ttl = 5}}}',
        "unknown field 'ttl' in quote 2",
    ),
    "no side": ("return {quotes = {{price = 99, amount = 1}}}", 'quote 1 needs side = "buy" or "sell"'),
    "a bad side": (
        'return {quotes = {{side = "bid", price = 99, amount = 1}}}',
        'quote 1: side must be "buy" or "sell", got \'bid\'',
    ),
    "a side that is not text": ("return {quotes = {{side = 1, price = 99, amount = 1}}}", "side must be"),
    "no price": ('return {quotes = {{side = "buy", amount = 1}}}', "quote 1 needs a price"),
    "a zero price": (
        'return {quotes = {{side = "buy", price = 0, amount = 1}}}',
        "price must be a positive number",
    ),
    "a negative price": (
        'return {quotes = {{side = "buy", price = -1, amount = 1}}}',
        "price must be a positive",
    ),
    "a NaN price": (
        'return {quotes = {{side = "buy", price = 0/0, amount = 1}}}',
        "price must be a positive",
    ),
    "an infinite price": (
        'return {quotes = {{side = "buy", price = math.huge, amount = 1}}}',
        "price must be a positive number, got inf",
    ),
    "a price as text": (
        'return {quotes = {{side = "buy", price = "99", amount = 1}}}',
        "price must be a positive",
    ),
    "a price as a boolean": (
        'return {quotes = {{side = "buy", price = true, amount = 1}}}',
        "price must be a positive",
    ),
    "no amount": ('return {quotes = {{side = "sell", price = 99}}}', "quote 1 needs an amount"),
    "a zero amount": (
        'return {quotes = {{side = "sell", price = 99, amount = 0}}}',
        "quote 1: amount must be a positive number",
    ),
    "an infinite amount": (
        'return {quotes = {{side = "sell", price = 99, amount = 1/0}}}',
        "amount must be a positive number",
    ),
    "a bad second quote": (
        'return {quotes = {{side = "buy", price = 99, amount = 1}, {side = "sell", price = 101, amount = -2}}}',
        "quote 2: amount must be a positive number",
    ),
    "text that is not UTF-8": ("return string.char(255)", "not valid UTF-8"),
    "a key that is not UTF-8": ("return {quotes = {}, [string.char(255) .. 'x'] = 1}", "unknown field '?x'"),
}


@pytest.mark.parametrize("name", list(BAD))
def test_bad_return_values_say_what_is_expected(name: str) -> None:
    body, says = BAD[name]
    err = tick_error(body)
    assert "bad return value" in err.reason and says in err.reason, err.reason
    assert err.strategy == "mm" and err.limit is None and err.candle_time == WINDOW.last_time


def test_returned_tables_are_read_raw_and_a_huge_one_costs_no_time() -> None:
    # metamethods never run outside the hook; a table of a million keys is judged by its first few
    d = tick("""local q = setmetatable({side = "buy", price = 99, amount = 1}, {__index = function() while true do end end})
      return setmetatable({quotes = {q}}, {__index = function() while true do end end, __pairs = error})""")
    assert d.quotes == [("buy", 99.0, 1.0)]
    rt = runtime(
        "big = {quotes = {}} for i = 1, 200000 do big[i + 0.5] = i end function on_tick(t) return big end",
        limits=Limits(),
    )
    started = time.perf_counter()
    with pytest.raises(StrategyError, match="unknown field "):
        rt.on_tick(WINDOW, TICK)
    assert time.perf_counter() - started < 0.05


# -- limits, hooks, logs --------------------------------------------------------------------------------
HOSTILE = {
    "a loop": ("while true do end", "instructions"),
    "a loop in a coroutine": ("coroutine.wrap(function() while true do end end)()", "instructions"),
    "a loop swallowed by pcall": (
        "for i = 1, 100 do pcall(function() while true do end end) end",
        "instructions",
    ),
    "a loop in an error handler": ("xpcall(error, function() while true do end end)", "instructions"),
    "a table bomb": ("local x = {} for i = 1, 1e9 do x[i] = i end", "memory"),
    "a string.rep bomb": ("return string.rep('x', 1e10)", None),
    "an error with a looping __tostring": (
        "error(setmetatable({}, {__tostring = function() while true do end end}))",
        None,
    ),
    "quotes with a looping __index": (
        "return {quotes = setmetatable({}, {__index = function() while true do end end, __len = function() while true do end end})}",
        None,
    ),
    "an escape": ("return io.open('/etc/passwd')", None),
}


@pytest.mark.parametrize("name", list(HOSTILE))
def test_hostile_on_tick_is_stopped_and_the_next_evaluation_works(name: str) -> None:
    body, limit = HOSTILE[name]
    code = f"""n = 0
      function on_tick(t, c)
        n = n + 1
        if n == 1 then {body} end
        return {{quotes = {{{{side = "buy", price = t.bid, amount = n}}}}}}
      end"""
    rt = runtime(code)
    started = time.monotonic()
    if name == "quotes with a looping __index":  # read raw: the metamethods never run, the list is empty
        assert rt.on_tick(WINDOW, TICK).quotes == []
    else:
        with pytest.raises(StrategyError) as info:
            rt.on_tick(WINDOW, TICK)
        assert info.value.strategy == "mm"
        if limit:
            assert info.value.limit == limit and "limit reached" in info.value.reason
    assert time.monotonic() - started < 5
    if not rt.broken:  # a memory limit breaks the runtime (the executor drops it); any other stop does not
        assert rt.on_tick(WINDOW, TICK).quotes == [("buy", TICK.bid, 2.0)]


def test_an_infinite_loop_hits_the_instruction_limit_and_the_next_tick_has_a_fresh_budget() -> None:
    rt = runtime("""
      function on_tick(t)
        if t.bid < 0 then while true do end end
        for i = 1, 100000 do end  -- uses a share of the budget, every time
        return {quotes = {{side = "sell", price = t.ask, amount = 1}}}
      end""")
    looping = m.Tick(exchange="sim", symbol="BTC/USD", bid=-1.0, ask=1.0)
    for _ in range(3):
        with pytest.raises(StrategyError) as info:
            rt.on_tick(WINDOW, looping)
        assert info.value.limit == "instructions"
        assert "instruction limit reached (2,000,000 instructions per evaluation)" in str(info.value)
        for _ in range(30):  # 30 x 100,000 instructions: more than one budget, fine one tick at a time
            assert rt.on_tick(WINDOW, TICK).quotes == [("sell", 100.5, 1.0)]
    assert not rt.broken


def test_the_time_limit_stops_a_slow_on_tick() -> None:
    rt = runtime(
        "function on_tick(t) local s = string.rep('x', 100000) while true do s:upper() end end",
        limits=Limits(instructions=10**12, memory_mb=16, time_ms=100),
    )
    started = time.monotonic()
    with pytest.raises(StrategyError) as info:
        rt.on_tick(WINDOW, TICK)
    assert info.value.limit == "time" and time.monotonic() - started < 2


def test_yielding_from_on_tick_is_an_error_and_the_next_tick_works() -> None:
    rt = runtime("""function on_tick(t)
      if t.bid < 0 then coroutine.yield({quotes = {}}) end
      return {quotes = {}}
    end""")
    with pytest.raises(StrategyError) as info:
        rt.on_tick(WINDOW, m.Tick(exchange="sim", symbol="BTC/USD", bid=-1.0, ask=1.0))
    assert "on_tick yielded" in info.value.reason and info.value.line == 2
    assert rt.on_tick(WINDOW, TICK).quotes == []


def test_a_runtime_error_names_the_line() -> None:
    err = tick_error("local x = nil\n return x.y")
    assert err.line == 2 and "attempt to index" in err.reason


def test_decide_and_on_tick_keep_their_own_state_of_the_call_but_share_globals() -> None:
    rt = runtime("""n = 0
      function decide(c) n = n + 1 return {position = "neutral", note = tostring(n)} end
      function on_tick(t) n = n + 1 if t.bid < 0 then error("boom") end return {position = "neutral", note = tostring(n)} end""")
    assert rt.decide(WINDOW).note == "1"
    assert rt.on_tick(WINDOW, TICK).note == "2"
    with pytest.raises(StrategyError, match="boom"):
        rt.on_tick(WINDOW, m.Tick(exchange="sim", symbol="BTC/USD", bid=-1.0, ask=1.0))
    assert rt.decide(WINDOW).note == "4"
    assert rt.on_tick(WINDOW, TICK).note == "5"


def test_print_is_collected_per_evaluation_and_bounded() -> None:
    rt = runtime("""function on_tick(t)
      print("bid", t.bid)
      if t.bid > 99 then for i = 1, 1000 do print("line", i) end end
      return {quotes = {}}
    end""")
    d = rt.on_tick(WINDOW, TICK)
    assert d.logs[:2] == ["bid\t99.5", "line\t1"] and len(d.logs) <= 51 and d.logs[-1].startswith("…")
    d = rt.on_tick(WINDOW, m.Tick(exchange="sim", symbol="BTC/USD", bid=50.0, ask=51.0))
    assert d.logs == ["bid\t50.0"]
    quiet = rt.on_tick(WINDOW, m.Tick(exchange="sim", symbol="BTC/USD", bid=50.0, ask=51.0))
    assert quiet.logs == ["bid\t50.0"]


def test_logs_come_with_quotes_nothing_and_positions() -> None:
    assert tick('print("q") return {quotes = {}}').logs == ["q"]
    assert tick('print("n")').logs == ["n"]
    assert tick('print("p") return "long"').logs == ["p"]


# -- strategies with one function or the other ------------------------------------------------------------
def test_a_strategy_without_on_tick_fails_a_tick_evaluation_and_still_decides() -> None:
    rt = runtime('function decide(c) return "long" end')
    assert not rt.has_on_tick and rt.has_decide
    with pytest.raises(StrategyError) as info:
        rt.on_tick(WINDOW, TICK, STATE)
    assert "defines no function on_tick(t, c, params)" in info.value.reason and info.value.limit is None
    assert rt.decide(WINDOW).position == "long"


def test_a_strategy_with_only_on_tick_cannot_decide_on_candles() -> None:
    rt = runtime("function on_tick(t) return {quotes = {}} end")
    assert rt.has_on_tick and not rt.has_decide
    with pytest.raises(StrategyError, match=r"defines no function decide\(c, params\)"):
        rt.decide(WINDOW)
    arrays = {k: getattr(WINDOW, k) for k in ("open", "high", "low", "close", "volume", "time")}
    with pytest.raises(StrategyError, match="defines no function decide"):
        rt.decide_series(arrays, 20, 0, len(WINDOW))
    assert rt.on_tick(WINDOW, TICK).quotes == []


def test_validate_accepts_decide_or_on_tick_and_keeps_its_diagnostics() -> None:
    assert validate("function on_tick(t, c, params) return {quotes = {}} end") == []
    assert validate("function decide(c) return 'long' end function on_tick(t) end") == []
    assert validate("function decide(c) return 'long' end") == []
    (d,) = validate("x = 1")
    assert "defines no function decide(c, params)" in d.message and "on_tick" in d.message
    (d,) = validate("decide = 5")
    assert "defines no function decide" in d.message
    (d,) = validate("function decide(c) return 'long' end on_tick = 3")
    assert d.message == "on_tick must be a function"
    (d,) = validate("function on_tick(t) end decide = {}")
    assert d.message == "decide must be a function"
    (d,) = validate("function on_tick(t)\n  return {quotes = {}\nend")
    assert d.line is not None and "syntax error" in d.message
    (d,) = validate("x = nil + 1\nfunction on_tick(t) end")
    assert d.line == 1 and "arithmetic" in d.message
    (d,) = validate("while true do end function on_tick(t) end")
    assert "limit reached" in d.message


def test_runtimes_on_ticks_share_the_indicator_cache_as_on_candles() -> None:
    store = ArrayStore()
    code = "function on_tick(t, c) local s = ta.sma(c.close, 10) return {position = 'neutral', note = tostring(s[#s])} end"
    a = StrategyRuntime(code, name="a", indicators=store)
    b = StrategyRuntime(code, name="b", indicators=store)
    assert (
        a.on_tick(WINDOW, TICK).note
        == b.on_tick(WINDOW, TICK).note
        == str(sum(r[4] for r in ROWS[-10:]) / 10)
    )


def test_decisions_keep_their_positional_shape() -> None:
    d = Decision("long")
    assert d == ("long", 1.0, None, [], None, None, None, None, None, None, None) and d.quotes is None
    assert Decision("long", 0.5, "n", [], 0.02)[:5] == ("long", 0.5, "n", [], 0.02)
    assert Decision(None, quotes=[("buy", 1.0, 2.0)])[-2:] == ([("buy", 1.0, 2.0)], None)  # quotes, plot


# -- the documented market maker ------------------------------------------------------------------------
def documented_market_maker() -> str:
    """The example strategy of docs/strategies.md's market-making section, as it is written there."""
    section = DOCS.read_text().split("## Market making: `on_tick` and quotes", 1)[1].split("\n## ", 1)[0]
    found = re.search(r"```lua\n(.*?)```", section, re.S)
    assert found, "the market-making section has a Lua example"
    return found.group(1)


# candles of a quiet market (an ATR far under the spread), and of a busy one
CALM = CandleWindow.from_rows(
    [(60_000 * (i + 1), 100.0, 100.01, 99.99, 100.0, 1.0) for i in range(50)], "sim:X/USD:1m"
)
BUSY = CandleWindow.from_rows(
    [(60_000 * (i + 1), 100.0, 101.0, 99.0, 100.0, 1.0) for i in range(50)], "sim:Y/USD:1m"
)
BOOK = m.Tick(exchange="sim", symbol="X/USD", bid=99.99, ask=100.01, time=1_700_000_000_000)


def mm(state: m.TickState, window: CandleWindow = CALM, tick_: m.Tick = BOOK) -> Decision:
    code = documented_market_maker()
    assert validate(code) == []
    return StrategyRuntime(code, name="market maker", limits=Limits()).on_tick(window, tick_, state)


def test_the_documented_market_maker_quotes_a_spread_around_the_mid() -> None:
    d = mm(m.TickState(position=0.0, cash=10_000.0))
    assert d.position is None and d.quotes == [("buy", pytest.approx(99.9), 0.01)]  # flat: nothing to sell
    d = mm(m.TickState(position=0.01, cash=10_000.0))
    (buy, sell) = d.quotes  # type: ignore[misc]
    assert buy[0] == "buy" and sell[0] == "sell" and sell[2] == 0.01
    assert buy[1] < 100 < sell[1]
    assert sell[1] - buy[1] == pytest.approx(0.2)  # the 0.2 % spread on a mid of 100


def test_the_documented_market_maker_leans_against_its_inventory() -> None:
    small = mm(m.TickState(position=0.01, cash=10_000.0)).quotes
    large = mm(m.TickState(position=0.04, cash=10_000.0)).quotes
    assert small and large
    assert large[0][1] < small[0][1] and large[1][1] < small[1][1], "the more it holds, the lower both quotes"
    full = mm(m.TickState(position=0.05, cash=10_000.0)).quotes
    assert full == [("sell", 100.01, 0.01)], "at its inventory cap it only sells, never under the ask"


def test_the_documented_market_maker_stops_buying_near_its_cash_reserve() -> None:
    assert mm(m.TickState(position=0.0, cash=101.5)).quotes == [("buy", pytest.approx(99.9), 0.01)]
    resting = [m.Quote(side="buy", price=99.9, amount=0.01)]
    d = mm(m.TickState(position=0.0, cash=100.5, quotes=resting))
    assert d.quotes == [], "a buy would spend the reserve: the resting buy is cancelled"
    d = mm(m.TickState(position=0.02, cash=100.5))
    assert d.quotes is not None and [q[0] for q in d.quotes] == ["sell"]


def test_the_documented_market_maker_keeps_quotes_that_are_still_good() -> None:
    resting = [m.Quote(side="buy", price=99.91, amount=0.01)]
    assert mm(m.TickState(position=0.0, cash=10_000.0, quotes=resting)).quotes is None
    moved = m.Tick(exchange="sim", symbol="X/USD", bid=100.49, ask=100.51)
    assert mm(m.TickState(position=0.0, cash=10_000.0, quotes=resting), tick_=moved).quotes == [
        ("buy", pytest.approx(100.5 - 0.1005), 0.01)
    ]


def test_the_documented_market_maker_widens_when_the_market_moves() -> None:
    calm = mm(m.TickState(position=0.01, cash=10_000.0)).quotes
    busy = mm(m.TickState(position=0.01, cash=10_000.0), window=BUSY).quotes
    assert calm and busy
    assert busy[1][1] - busy[0][1] > 1.5 > calm[1][1] - calm[0][1]  # half the ATR (2) each side
    no_book = m.Tick(exchange="sim", symbol="X/USD", bid=0.0, ask=0.0)
    assert mm(m.TickState(position=0.01, cash=10_000.0), tick_=no_book) == Decision(None, 1.0, None, [])
