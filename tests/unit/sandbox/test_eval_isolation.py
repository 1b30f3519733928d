"""Strategies on one worker share the indicator store, never each other's arrays.

Every runtime of an executor child (and of a benchmark, a backtest sweep...) uses one ``ArrayStore``.
A strategy must not be able to name an array another strategy was handed: not with a number shaped
like a descriptor, not with a descriptor the store has since given to someone else, not through the
private keys of a view.
"""

from __future__ import annotations

import numpy as np
import pytest

from tradewind.sandbox import ta
from tradewind.sandbox.runtime import Limits, StrategyError, StrategyRuntime
from tradewind.sandbox.ta import TAG, ArrayStore
from tradewind.sandbox.window import CandleWindow

WINDOW = CandleWindow.from_rows(
    [(60_000 * (i + 1), 100.0 + i % 7, 102.0 + i % 7, 99.0, 101.0 + i % 5, 10.0) for i in range(300)],
    "sim:BTC/USD:1m",
)
SECRETS = (31337.0, 271828.0, 4242.0)
# The victim keeps arrays of its own (from a plain table) and an indicator with a parameter nobody else
# uses; ta.highest(x, 2) of {31337, 271828, 4242, 4242} is {nan, 271828, 271828, 4242}.
VICTIM = """
kept = {}
function decide(c)
  kept[#kept + 1] = ta.highest({31337, 271828, 4242, 4242}, 2)
  kept[#kept + 1] = ta.sma(c.close, 37)
  return "long"
end"""
LIMITS = Limits(instructions=50_000_000, time_ms=5000)


def values_in(logs: list[str]) -> set[float]:
    found = set()
    for line in logs:
        for word in line.replace("\t", " ").split():
            try:
                found.add(float(word))
            except ValueError:
                pass
    return found


def test_numbers_shaped_like_descriptors_read_nothing_of_another_strategy() -> None:
    store = ArrayStore()
    victim = StrategyRuntime(VICTIM, name="victim", indicators=store, limits=LIMITS)
    victim.decide(WINDOW)
    # Every id the store can have handed out so far, in the old layout (TAG | id << 38 | length), in the
    # layout without the tag, as floats of the same value and as text; passed to functions that echo an
    # array back (highest, sma) or read its last values (crossover).
    thief = StrategyRuntime(
        """function decide(c)
          local read, leaked, refused, sample = 0, 0, 0, nil
          local secret = {[31337] = true, [271828] = true, [4242] = true}
          local function try(h)
            for _, f in ipairs({function() return ta.highest(h, 2) end, function() return ta.sma(h, 2) end,
                                function() return ta.crossover(h, 0) end}) do
              local ok, r = pcall(f)
              if ok then
                read = read + 1
                if type(r) == "table" then
                  for i = 1, #r do if secret[r[i]] then leaked = leaked + 1 end end
                end
              else
                refused = refused + 1
                sample = sample or tostring(r)
              end
            end
          end
          for id = 1, 64 do
            for _, len in ipairs({4, 300, #c.close}) do
              local old = (1 << 62) | (id << 38) | len
              try(old)
              try(old + 0.0)
              try((id << 38) | len)
              try(tostring(old))
            end
          end
          print("read", read, "leaked", leaked, "refused", refused, sample)
          return "long"
        end""",
        name="thief",
        indicators=store,
        limits=LIMITS,
    )
    (summary,) = thief.decide(WINDOW).logs
    _, read, _, leaked, _, refused, sample = summary.split("\t", 6)
    assert int(leaked) == 0, f"the thief read the victim's arrays: {summary}"
    assert int(read) == 0 and int(refused) == 64 * 3 * 4 * 3, summary
    assert "expected an array" in sample or "take arrays and numbers" in sample, sample


def test_the_host_refuses_a_descriptor_the_runtime_was_not_handed() -> None:
    # As if the sandbox's own checks were bypassed: the exact descriptor of the victim's array, in the
    # store right now, sent to the host functions Lua calls (ta, element reads, bytes).
    store = ArrayStore()
    victim = StrategyRuntime(VICTIM, name="victim", indicators=store)
    victim.decide(WINDOW)
    secret_ids = [i for i, entry in store._arrays.items() if entry.arr is not None and 271828.0 in entry.arr]
    assert secret_ids
    thief = StrategyRuntime("function decide(c) return 'long' end", name="thief", indicators=store)
    thief.decide(WINDOW)  # bound to the same window: handed its candle arrays, nothing else
    highest = ta.NAMES.index("highest") + 1
    for i in secret_ids:
        desc = TAG | (i << 38) | 4
        with pytest.raises(RuntimeError, match="no array this strategy was given"):
            thief.state._ta(highest, desc, 2)
        with pytest.raises(RuntimeError, match="no array this strategy was given"):
            thief.state._data(i)
        with pytest.raises(RuntimeError, match="no array this strategy was given"):
            thief.state._get(i, 2)
        # ... while the strategy that was handed it still reads it
        assert victim.state._get(i, 2) == 271828.0


def test_the_shared_cache_still_serves_both_but_hands_out_only_what_was_asked_for() -> None:
    store = ArrayStore()
    victim = StrategyRuntime(VICTIM, name="victim", indicators=store)
    victim.decide(WINDOW)
    computed = store.computed
    sma37 = next(
        i
        for i, e in store._arrays.items()
        if e.arr is not None and len(e.arr) == 300 and np.isnan(e.arr[35]) and not np.isnan(e.arr[36])
    )
    other = StrategyRuntime(
        "function decide(c) local s = ta.sma(c.close, 37) return {position = 'long', note = tostring(s[#s])} end",
        name="other",
        indicators=store,
    )
    with pytest.raises(RuntimeError):  # not before it asked for it ...
        other.state._data(sma37)
    note = other.decide(WINDOW).note
    assert store.computed == computed, "computed once, for both strategies"
    assert float(note) == pytest.approx(WINDOW.close[-37:].mean())
    assert other.state._data(sma37)  # ... and then, the very array the victim got


def test_a_view_kept_after_its_array_was_recycled_names_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    # Few ids, few scratch arrays: ids come round again within the test as they would after 16 million.
    monkeypatch.setattr(ta, "MAX_ID", 63)  # a mask, as the real one
    monkeypatch.setattr(ta, "SCRATCH", 4)
    store = ArrayStore()
    thief = StrategyRuntime(
        """kept = {}
        function decide(c)
          if #kept == 0 then  -- first: views of arrays of its own, on every id, never read
            for i = 1, 64 do kept[i] = ta.highest({1, 2, 3, 4}, 2) end
            return "long"
          end
          local read, refused, sample = 0, 0, nil
          for i = 1, #kept do
            local ok, v = pcall(function() return kept[i][2] end)
            if ok then read = read + 1 print(v) else refused = refused + 1 sample = sample or v end
          end
          print("read", read, "refused", refused, sample)
          return "long"
        end""",
        name="thief",
        indicators=store,
        limits=LIMITS,
    )
    thief.decide(WINDOW)
    victim = StrategyRuntime(
        "function decide(c) for i = 1, 80 do ta.highest({31337, 271828, 4242, 4242}, 2) end return 'long' end",
        name="victim",
        indicators=store,
    )
    victim.decide(WINDOW)  # its arrays now hold the ids the thief's views still carry
    logs = thief.decide(WINDOW).logs
    assert not values_in(logs[:-1]) & set(SECRETS), "a recycled id read the victim's array"
    assert "refused" in logs[-1] and "old candle" in logs[-1], logs[-1]


def test_pairs_hands_out_no_raw_next_that_would_walk_a_views_private_keys() -> None:
    code = """function decide(c)
      local rawnext = pairs({})
      local kinds = {}
      for k, v in rawnext, c.close do kinds[type(k)] = true end
      local n = 0
      for k in rawnext, c do n = n + 1 end
      return {position = "long", note = (kinds.table and "table keys" or "numbers only") .. " " .. n}
    end"""
    assert StrategyRuntime(code, name="p").decide(WINDOW).note == "numbers only 6"


def test_ta_takes_arrays_and_numbers_only() -> None:
    for arg, says in (
        ("'12'", "take arrays and numbers, not a string"),
        ("{1, 2, '3'}", "numbers only"),
        ("{1, 2, {}}", "numbers only"),
        ("print", "not a function"),
    ):
        with pytest.raises(StrategyError, match=says):
            StrategyRuntime(f"function decide(c) ta.sma({arg}, 2) return 'long' end", name="t").decide(WINDOW)
    # a plain table of numbers is still fine, and read raw (no metamethod runs)
    d = StrategyRuntime(
        "function decide(c) local s = ta.sma(setmetatable({1, 2, 3, 4}, {__index = error}), 2) print(s[4]) "
        "return 'long' end",
        name="t",
    ).decide(WINDOW)
    assert d.logs == ["3.5"]
