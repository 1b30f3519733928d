"""The executor child process on its own: a memory budget across runtimes, kills that keep the batch."""

from __future__ import annotations

import msgspec
import pytest

from tradewind.eval.executor import Executor, Job, Outcome, _encode, _outcomes
from tradewind.sandbox.runtime import Limits
from tradewind.sandbox.window import CandleWindow

WINDOW = CandleWindow.from_rows(
    [(60_000 * (i + 1), 1.0, 2.0, 0.5, 1.5, 1.0) for i in range(100)], "sim:BTC/USD:1m"
)
# about 4 MB of globals per assignment
HEAVY = """
function init(p) blob = string.rep("x", 1000000) .. string.rep("y", 1000000) .. string.rep("z", 1000000) n = 0 end
function decide(c) n = n + 1 return {position = "neutral", note = tostring(n)} end
"""


async def test_runtimes_beyond_the_memory_budget_are_dropped_least_recently_used_first() -> None:
    ex = Executor(Limits(memory_mb=16), memory_budget_mb=24)
    await ex.start()
    try:
        jobs = [Job(i, 1, 1, "heavy") for i in range(10)]
        first = await ex.evaluate(WINDOW, WINDOW.last_time, jobs, {(1, 1): HEAVY})
        assert [o.note for o in first] == ["1"] * 10
        again = await ex.evaluate(WINDOW, WINDOW.last_time, jobs[-3:], {(1, 1): HEAVY})
        assert [o.note for o in again] == ["2", "2", "2"], "the most recent runtimes are kept"
        oldest = await ex.evaluate(WINDOW, WINDOW.last_time, jobs[:1], {(1, 1): HEAVY})
        assert oldest[0].note == "1", (
            "the oldest runtime was dropped to stay within the budget; init ran again"
        )
        assert ex.restarts == 0
    finally:
        await ex.close()


async def test_a_job_that_overruns_is_killed_and_the_jobs_after_it_still_run() -> None:
    ex = Executor(Limits(time_ms=100, memory_mb=64))
    await ex.start()
    stall = """function decide(c)
      local s = string.rep("x", 1000000) s = s .. s .. s .. s .. s .. s .. s .. s s = s .. s
      while true do local t = s .. "x" end
    end"""
    good = 'function decide(c) return "long" end'
    try:
        jobs = [Job(1, 1, 1, "good"), Job(2, 2, 1, "stall"), Job(3, 1, 1, "good")]
        out = await ex.evaluate(WINDOW, WINDOW.last_time, jobs, {(1, 1): good, (2, 1): stall})
        assert [(o.assignment_id, o.status) for o in out] == [(1, "ok"), (2, "error"), (3, "ok")]
        error = out[1].error or ""
        assert "stopped from outside the Lua state" in error and "'stall'" in error
        assert ex.restarts == 1
    finally:
        await ex.close()


def test_an_outcome_crosses_the_pipe_whole_and_one_of_another_shape_is_refused() -> None:
    sent = Outcome(7, "ok", None, 1.0, None, None, 42, ["hi"], quotes=[("buy", 9.5, 0.5)], plot={"fast": 1.5})
    assert _outcomes.decode(_encode([sent])) == [sent]
    with pytest.raises(msgspec.ValidationError):  # the short tuple the child once sent for the common case
        _outcomes.decode(_encode([(7, "long", 1.0, 42)]))
    with pytest.raises(msgspec.ValidationError):  # a field out of its place: not read as another one
        _outcomes.decode(_encode([sent._replace(position="sideways")]))  # type: ignore[arg-type]


COUNTER = """
function init(p) n = p.start or 0 end
function decide(c, p)
  if p.bomb and n >= p.start + 1 then
    local t, s = {}, string.rep("x", 100000)
    for i = 1, 1e9 do t[i] = s .. i end
  end
  n = n + 1
  return {position = "neutral", note = tostring(n)}
end
"""


async def test_a_stall_among_one_versions_assignments_is_blamed_on_the_one_that_stalled() -> None:
    ex = Executor(Limits(time_ms=100, memory_mb=64))
    await ex.start()
    code = """function decide(c, p)
      if p.stall then
        local s = string.rep("x", 1000000) s = s .. s .. s .. s .. s .. s .. s .. s s = s .. s
        while true do local t = s .. "x" end
      end
      return "long"
    end"""
    try:
        jobs = [Job(1, 1, 1, "first"), Job(2, 1, 1, "stall", {"stall": True}), Job(3, 1, 1, "third")]
        out = await ex.evaluate(WINDOW, WINDOW.last_time, jobs, {(1, 1): code})
        assert [(o.assignment_id, o.status) for o in out] == [(1, "ok"), (2, "error"), (3, "ok")]
        assert "stopped from outside the Lua state" in (out[1].error or "") and "'stall'" in (
            out[1].error or ""
        )
        assert ex.restarts == 1
    finally:
        await ex.close()


async def test_one_versions_assignments_keep_their_own_state_and_a_memory_bomb_restarts_only_that_version() -> (
    None
):
    ex = Executor(Limits(memory_mb=16))
    await ex.start()
    codes = {(1, 1): COUNTER, (2, 1): COUNTER}
    jobs = [
        Job(1, 1, 1, "a", {"start": 0}),
        Job(2, 1, 1, "bomb", {"start": 100, "bomb": True}),
        Job(3, 1, 1, "c", {"start": 10}),
        Job(4, 2, 1, "another strategy", {"start": 1000}),
    ]
    try:
        first = await ex.evaluate(WINDOW, WINDOW.last_time, jobs, codes)
        assert [o.note for o in first] == ["1", "101", "11", "1001"], "each assignment its own n"
        second = await ex.evaluate(WINDOW, WINDOW.last_time, jobs, codes)
        assert [o.status for o in second] == ["ok", "error", "ok", "ok"]
        assert "memory limit reached" in (second[1].error or "") and "'bomb'" in (second[1].error or "")
        assert [o.note for o in second if o.status == "ok"] == ["2", "12", "1002"]
        third = await ex.evaluate(WINDOW, WINDOW.last_time, jobs, codes)
        assert [o.note for o in third] == ["1", "101", "11", "1003"], (
            "the bomb's state started again, init of every assignment in it; the other strategy's went on"
        )
        assert ex.restarts == 0
    finally:
        await ex.close()


async def test_one_users_globals_never_reach_another_strategy_in_the_same_batch() -> None:
    ex = Executor(Limits())
    await ex.start()
    keeper = 'function init(p) secret = 42 math.secret = 42 end function decide(c) return "long" end'
    peeker = """function decide(c, p)
      local seen = secret or math.secret or rawget(_G, "secret") or string.secret
      return seen == nil and "long" or "short"
    end"""
    try:
        jobs = [Job(1, 1, 1, "keeper"), Job(2, 2, 1, "peeker"), Job(3, 1, 1, "keeper 2")]
        out = await ex.evaluate(WINDOW, WINDOW.last_time, jobs, {(1, 1): keeper, (2, 1): peeker})
        assert [o.position for o in out] == ["long", "long", "long"]
    finally:
        await ex.close()
