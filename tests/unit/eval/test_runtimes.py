"""The executor child's runtimes: the assignments of one strategy version share a Lua state, nothing else does."""

from __future__ import annotations

from tradewind.eval.executor import _Runtimes
from tradewind.sandbox.runtime import Limits
from tradewind.sandbox.window import CandleWindow

WINDOW = CandleWindow.from_rows([(60_000 * (i + 1), 1.0, 2.0, 0.5, 1.5, 1.0) for i in range(50)], "t")
KEEPER = 'function init(p) secret = p.secret end function decide(c) return "long" end'
PEEKER = 'function decide(c) return secret == nil and "long" or "short" end'


def test_two_strategies_never_share_a_state_and_one_versions_assignments_do() -> None:
    rts = _Runtimes(1 << 30, Limits())
    a = rts.start(1, (1, 1), {"secret": 42}, "user a", KEEPER)
    b = rts.start(2, (2, 1), {}, "user b", PEEKER)  # another strategy: another owner, maybe
    a2 = rts.start(3, (1, 2), {"secret": 42}, "user a, v2", KEEPER)  # another version of a's
    a3 = rts.start(4, (1, 1), {"secret": 7}, "user a again", KEEPER)
    assert a.state is a3.state
    assert len({id(a.state), id(b.state), id(a2.state)}) == 3
    assert b.decide(WINDOW).position == "long"


def test_new_params_start_the_assignment_again_in_the_same_state() -> None:
    rts = _Runtimes(1 << 30, Limits())
    first = rts.start(1, (1, 1), {"secret": 1}, "a", KEEPER)
    assert rts.get(1, (1, 1), {"secret": 1}) is first
    assert rts.get(1, (1, 1), {"secret": 2}) is None, "its params changed: init runs again"
    assert first.rt is None and (1, 1) not in rts.groups, "the last assignment out closed the state"
    assert rts.get(2, (1, 1), {}) is None


def test_a_broken_state_is_dropped_whole() -> None:
    rts = _Runtimes(1 << 30, Limits())
    for aid in range(3):
        rts.start(aid, (1, 1), {}, "a", KEEPER)
    other = rts.start(9, (2, 1), {}, "b", PEEKER)
    rts.drop_group((1, 1))
    assert list(rts.by_aid) == [9] and list(rts.groups) == [(2, 1)]
    assert other.decide(WINDOW).position == "long"
