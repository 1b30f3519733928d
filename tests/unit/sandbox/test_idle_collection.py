"""The executor child collects its Lua states' garbage between batches, not in the middle of one."""

from __future__ import annotations

from tradewind.eval.executor import _Runtimes
from tradewind.sandbox.runtime import StrategyRuntime
from tradewind.sandbox.window import CandleWindow

GARBAGE = """
function decide(c, params)
  local t = {}
  for i = 1, 200 do t[i] = {i} end  -- garbage: gone after the call
  return "neutral"
end
"""


def window(i: int) -> CandleWindow:
    return CandleWindow.from_rows(
        [(60_000 * (k + 1), 1.0, 1.0, 1.0, 1.0, 1.0) for k in range(i, i + 20)], "t"
    )


def runtimes(n: int) -> _Runtimes:
    rts = _Runtimes(1 << 30)
    for aid in range(n):
        rts.add(aid, (1, 1, {}), StrategyRuntime(GARBAGE, name="g"))
    return rts


def test_runtimes_that_grew_are_collected_when_idle_and_the_rest_are_left() -> None:
    rts = runtimes(3)
    grown = rts.by_aid[0]
    for i in range(3):
        grown.rt.decide(window(i))
        rts.measure(0)
    before = grown.used
    assert before > grown.base * 1.25  # it made garbage
    rts.collect_idle(lambda: False)
    assert grown.used < before and grown.base == grown.used
    assert [e.used for e in list(rts.by_aid.values())[1:]] == [e.base for e in list(rts.by_aid.values())[1:]]
    assert rts.total == sum(e.used for e in rts.by_aid.values())


def test_idle_collection_stops_as_soon_as_work_arrives() -> None:
    rts = runtimes(4)
    for aid, entry in rts.by_aid.items():
        for i in range(3):
            entry.rt.decide(window(i))
        rts.measure(aid)
    calls = []
    rts.collect_idle(lambda: calls.append(1) or len(calls) >= 2)  # busy after the second collection
    collected = [e.used == e.base for e in rts.by_aid.values()]
    assert collected == [True, True, False, False]
