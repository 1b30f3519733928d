"""The executor child collects its Lua states' garbage between batches, not in the middle of one."""

from __future__ import annotations

from tradewind.eval.executor import _Runtimes
from tradewind.sandbox.window import CandleWindow

GARBAGE = """
function decide(c, params)
  local t = {}
  for i = 1, 1000 do t[i] = {i} end  -- garbage: gone after the call
  return "neutral"
end
"""


def window(i: int) -> CandleWindow:
    return CandleWindow.from_rows(
        [(60_000 * (k + 1), 1.0, 1.0, 1.0, 1.0, 1.0) for k in range(i, i + 20)], "t"
    )


def runtimes(n: int) -> _Runtimes:
    """n strategy versions (a Lua state each), one assignment each."""
    rts = _Runtimes(1 << 30)
    for aid in range(n):
        rts.start(aid, (aid, 1), {}, "g", GARBAGE)
        rts.measure((aid, 1))
    return rts


def test_states_that_grew_are_collected_when_idle_and_the_rest_are_left() -> None:
    rts = runtimes(3)
    grown = rts.groups[(0, 1)]
    for i in range(3):
        rts.by_aid[0].rt.decide(window(i))
        rts.measure((0, 1))
    before = grown.used
    assert before > grown.base * 1.25  # it made garbage
    rts.collect_idle(lambda: False)
    assert grown.used < before and grown.base == grown.used
    rest = [g for key, g in rts.groups.items() if key != (0, 1)]
    assert [g.used for g in rest] == [g.base for g in rest]
    assert rts.total == sum(g.used for g in rts.groups.values())


def test_idle_collection_stops_as_soon_as_work_arrives() -> None:
    rts = runtimes(4)
    for entry in rts.by_aid.values():
        for i in range(3):
            entry.rt.decide(window(i))
        rts.measure(entry.group)
    calls = []
    rts.collect_idle(lambda: calls.append(1) or len(calls) >= 2)  # busy after the second collection
    collected = [g.used == g.base for g in rts.groups.values()]
    assert collected == [True, True, False, False]


def test_an_assignment_dropped_from_a_shared_state_is_counted_freed_and_collected() -> None:
    rts = _Runtimes(1 << 30)
    for aid in range(4):
        rts.start(aid, (1, 1), {}, "g", GARBAGE)
    rts.measure((1, 1))
    group = rts.groups[(1, 1)]
    before = rts.total
    rts.drop(0)
    assert rts.total < before and group.stale, "its share counts as freed at once"
    rts.collect_idle(lambda: False)
    assert not group.stale and rts.total == group.used == group.state.memory_used()
    rts.drop(1)
    rts.drop(2)
    rts.drop(3)
    assert (1, 1) not in rts.groups and rts.total == 0, "the last one out closes the state"
