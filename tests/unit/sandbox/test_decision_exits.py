"""decide's protective exits and limit entry: stop_loss, take_profit, trailing_stop, limit, expire.

Live (``StrategyRuntime.decide``), in backtests (``decide_series`` and its ``extras``), and through the
eval executor and worker onto ``EvalOutcome``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tradewind.bus import messages as m
from tradewind.config import Settings
from tradewind.eval.executor import Executor, Job
from tradewind.eval.worker import EvalWorker
from tradewind.sandbox.runtime import Decision, Limits, StrategyError, StrategyRuntime
from tradewind.sandbox.window import CandleWindow

ROWS = [(60_000 * (i + 1), 100.0 + i % 7, 102.0 + i % 7, 99.0, 101.0 + i % 5, 10.0) for i in range(50)]
WINDOW = CandleWindow.from_rows(ROWS, "sim:BTC/USD:1m")
LIMITS = Limits(instructions=2_000_000, memory_mb=16, time_ms=300)
EXITS = "stop_loss = 0.02, take_profit = 0.05, trailing_stop = 0.03, limit = 99.5, expire = 3"


def live(body: str) -> Decision:
    return StrategyRuntime(f"function decide(c, params) {body} end", name="t", limits=LIMITS).decide(WINDOW)


def live_error(body: str) -> StrategyError:
    with pytest.raises(StrategyError) as info:
        live(body)
    return info.value


def history(n: int) -> dict[str, np.ndarray]:
    close = 100.0 + np.arange(n) % 7
    return {
        "open": close.copy(),
        "high": close + 1,
        "low": close - 1,
        "close": close,
        "volume": np.full(n, 10.0),
        "time": 60_000 * (np.arange(n, dtype=np.int64) + 1),
    }


# -- live ------------------------------------------------------------------------------------------------
def test_strings_are_unchanged_and_decisions_index_as_before() -> None:
    d = live('return "short"')
    assert d == Decision("short", 1.0, None, [])
    assert (d[0], d[1], d[2], d[3]) == ("short", 1.0, None, [])
    assert (d.stop_loss, d.take_profit, d.trailing_stop, d.limit, d.expire) == (None,) * 5
    d = live('return {position = "long", size = 0.5, note = "n"}')
    assert d[:4] == ("long", 0.5, "n", []) and d[4:] == (None,) * 7  # exits, limit, quotes, plot


def test_a_table_with_every_field_is_accepted() -> None:
    d = live(f'return {{position = "long", size = 0.25, note = "x", {EXITS}}}')
    assert d == Decision("long", 0.25, "x", [], 0.02, 0.05, 0.03, 99.5, 3)
    assert isinstance(d.expire, int) and isinstance(d.limit, float)


@pytest.mark.parametrize(
    ("fields", "expect"),
    [
        ("stop_loss = 0.02", {"stop_loss": 0.02}),
        ("stop_loss = 0.999", {"stop_loss": 0.999}),
        ("take_profit = 0.05", {"take_profit": 0.05}),
        ("take_profit = 100", {"take_profit": 100.0}),
        ("trailing_stop = 0.03", {"trailing_stop": 0.03}),
        ("limit = 101", {"limit": 101.0}),
        ("limit = 0.0001", {"limit": 0.0001}),
        ("limit = 101, expire = 1", {"limit": 101.0, "expire": 1}),
        ("limit = 101, expire = 10000", {"limit": 101.0, "expire": 10000}),
        ("limit = 101, expire = 4.0", {"limit": 101.0, "expire": 4}),
        ("limit = c.close[#c.close] * 0.99", {"limit": ROWS[-1][4] * 0.99}),
    ],
)
def test_each_field_is_accepted(fields: str, expect: dict[str, Any]) -> None:
    d = live(f'return {{position = "long", {fields}}}')
    got = {k: getattr(d, k) for k in ("stop_loss", "take_profit", "trailing_stop", "limit", "expire")}
    assert (
        got
        == {"stop_loss": None, "take_profit": None, "trailing_stop": None, "limit": None, "expire": None}
        | expect
    )
    assert d.position == "long" and d.size == 1.0


BAD = [
    ("stop_loss = 0", "stop_loss must be a fraction between 0 and 1 (0.02 = 2 %), got 0"),
    ("stop_loss = 1", "stop_loss must be a fraction between 0 and 1 (0.02 = 2 %), got 1"),
    ("stop_loss = -0.1", "stop_loss must be a fraction between 0 and 1 (0.02 = 2 %), got -0.1"),
    ("stop_loss = 0/0", "stop_loss must be a fraction between 0 and 1"),
    ("stop_loss = '0.02'", "stop_loss must be a fraction between 0 and 1 (0.02 = 2 %), got '0.02'"),
    ("stop_loss = true", "stop_loss must be a fraction between 0 and 1"),
    ("stop_loss = {}", "stop_loss must be a fraction between 0 and 1 (0.02 = 2 %), got a table"),
    ("take_profit = 0", "take_profit must be a fraction above 0, at most 100 (0.05 = 5 %), got 0"),
    ("take_profit = 100.5", "take_profit must be a fraction above 0, at most 100"),
    ("take_profit = math.huge", "take_profit must be a fraction above 0, at most 100"),
    ("trailing_stop = 1", "trailing_stop must be a fraction between 0 and 1 (0.03 = 3 %), got 1"),
    ("trailing_stop = 0", "trailing_stop must be a fraction between 0 and 1"),
    ("limit = 0", "limit must be a positive price, got 0"),
    ("limit = -5", "limit must be a positive price, got -5"),
    ("limit = math.huge", "limit must be a positive price, got inf"),
    ("limit = 0/0", "limit must be a positive price, got nan"),
    ("limit = 'market'", "limit must be a positive price, got 'market'"),
    ("expire = 3", "expire needs limit"),
    ("limit = 100, expire = 0", "expire must be a whole number of candles from 1 to 10000, got 0"),
    ("limit = 100, expire = 10001", "expire must be a whole number of candles from 1 to 10000, got 10001"),
    ("limit = 100, expire = 2.5", "expire must be a whole number of candles from 1 to 10000, got 2.5"),
    ("limit = 100, expire = '3'", "expire must be a whole number of candles"),
]


@pytest.mark.parametrize(("fields", "says"), BAD)
def test_each_bad_value_is_refused_with_a_clear_message(fields: str, says: str) -> None:
    err = live_error(f'return {{position = "long", {fields}}}')
    assert err.reason.startswith("bad return value: ") and says in err.reason, err.reason
    assert err.candle_time == WINDOW.last_time and "candle" in str(err)


def test_fields_are_read_raw_as_position_size_and_note() -> None:
    d = live('return setmetatable({position = "long"}, {__index = {stop_loss = 5, limit = -1}})')
    assert d.stop_loss is None and d.limit is None


def test_bad_values_leave_the_runtime_usable() -> None:
    rt = StrategyRuntime(
        "n = 0 function decide(c) n = n + 1 if n == 1 then return {position = 'long', stop_loss = 2} end "
        "return {position = 'long', stop_loss = 0.1} end",
        name="t",
        limits=LIMITS,
    )
    with pytest.raises(StrategyError, match="stop_loss must be"):
        rt.decide(WINDOW)
    assert rt.decide(WINDOW).stop_loss == 0.1


# -- backtests -------------------------------------------------------------------------------------------
SERIES = """
function decide(c)
  local n = #c.close  -- the candle's 1-based index while the window is shorter than the lookback
  if n == 3 then return {position = "long", stop_loss = 0.02, take_profit = 0.05} end
  if n == 5 then return {position = "short", size = 0.5} end
  if n == 6 then return {position = "short", size = 1, note = "plain"} end
  if n == 7 then return {position = "neutral"} end
  if n == 9 then return {position = "long", limit = 99.5, expire = 4, trailing_stop = 0.03} end
  if n == 10 then return {position = "long", size = 0, limit = 100} end
  if n == 12 then return {position = "long", size = 1, stop_loss = 0.1} end
  return "neutral"
end
"""


def test_backtest_extras_are_filled_at_the_right_candles() -> None:
    arrays = history(15)
    rt = StrategyRuntime(SERIES, name="s", limits=LIMITS)
    out: list[str] = []
    extras: dict[int, Any] = {}
    letters = rt.decide_series(arrays, 500, 0, 15, out, extras)
    assert letters == "nnlnssnnllnlnnn" == "".join(out)
    assert extras == {
        2: (None, 0.02, 0.05, None, None, None),
        4: (0.5, None, None, None, None, None),
        8: (None, None, None, 0.03, 99.5, 4),
        9: (0.0, None, None, None, 100.0, None),
        11: (None, 0.1, None, None, None, None),
    }
    assert isinstance(extras[8][5], int) and all(isinstance(x, float) for x in extras[2][1:3])


def test_backtest_extras_in_chunks_use_absolute_indices_and_are_optional() -> None:
    arrays = history(15)
    rt = StrategyRuntime(SERIES, name="s", limits=LIMITS)
    out: list[str] = []
    extras: dict[int, Any] = {}
    for start in range(0, 15, 4):
        rt.decide_series(arrays, 500, start, min(15, start + 4), out, extras)
    assert "".join(out) == "nnlnssnnllnlnnn" and sorted(extras) == [2, 4, 8, 9, 11]
    # without extras: the same letters, nothing else asked for
    again = StrategyRuntime(SERIES, name="s", limits=LIMITS)
    assert again.decide_series(arrays, 500, 0, 15) == "nnlnssnnllnlnnn"


def test_backtest_extras_of_a_long_history_come_back_whole() -> None:
    n = 25_000  # more records than one unpack of the host takes
    arrays = history(n)
    code = "function decide(c) return {position = 'long', stop_loss = 0.01, limit = c.close[#c.close]} end"
    rt = StrategyRuntime(code, name="s", limits=Limits(time_ms=5000))
    extras: dict[int, Any] = {}
    assert rt.decide_series(arrays, 50, 0, n, None, extras) == "l" * n
    assert len(extras) == n
    assert all(
        extras[i] == (None, 0.01, None, None, float(arrays["close"][i]), None) for i in (0, 9_999, n - 1)
    )


@pytest.mark.parametrize(("fields", "says"), BAD)
def test_a_bad_value_in_a_backtest_raises_the_live_error_at_its_candle(fields: str, says: str) -> None:
    arrays = history(12)
    code = (
        "function decide(c) local n = #c.close "
        "if n == 2 then return {position = 'long', trailing_stop = 0.05} end "
        f"if n == 8 then return {{position = 'long', {fields}}} end return 'short' end"
    )
    rt = StrategyRuntime(code, name="t", limits=LIMITS)
    out: list[str] = []
    extras: dict[int, Any] = {}
    with pytest.raises(StrategyError) as info:
        rt.decide_series(arrays, 500, 0, 12, out, extras)
    err = info.value
    assert err.reason == live_error(f'return {{position = "long", {fields}}}').reason
    assert err.reason.startswith("bad return value: ") and says in err.reason
    assert err.candle_time == int(arrays["time"][7]) and "".join(out) == "slsssss"
    assert extras == {1: (None, None, None, 0.05, None, None)}, "the extras before the failing candle"


def test_a_table_decide_yields_in_a_backtest_is_judged_with_its_extras() -> None:
    arrays = history(6)
    code = (
        "function decide(c) if #c.close == 4 then coroutine.yield({position = 'long', stop_loss = 0.1}) end "
        "return 'short' end"
    )
    extras: dict[int, Any] = {}
    rt = StrategyRuntime(code, name="y", limits=LIMITS)
    assert rt.decide_series(arrays, 500, 0, 6, None, extras) == "ssslss"
    assert extras == {3: (None, 0.1, None, None, None, None)}


# -- executor and worker -----------------------------------------------------------------------------------
EXITING = f'function decide(c) return {{position = "long", size = 0.5, {EXITS}}} end'
PLAIN = 'function decide(c) return "short" end'
NOTED = 'function decide(c) return {position = "neutral", note = "hi"} end'
BAD_EXIT = 'function decide(c) return {position = "long", stop_loss = 3} end'
CODES = {(1, 1): EXITING, (2, 1): PLAIN, (3, 1): NOTED, (4, 1): BAD_EXIT}


async def test_the_executor_carries_the_exits_in_named_outcomes() -> None:
    ex = Executor(LIMITS)
    await ex.start()
    try:
        jobs = [
            Job(10, 1, 1, "exiting"),
            Job(11, 2, 1, "plain"),
            Job(12, 3, 1, "noted"),
            Job(13, 4, 1, "bad"),
        ]
        exiting, plain, noted, bad = await ex.evaluate(WINDOW, WINDOW.last_time, jobs, CODES)
    finally:
        await ex.close()
    assert (exiting.assignment_id, exiting.status, exiting.position, exiting.size) == (10, "ok", "long", 0.5)
    assert (exiting.stop_loss, exiting.take_profit, exiting.trailing_stop, exiting.limit, exiting.expire) == (
        0.02,
        0.05,
        0.03,
        99.5,
        3,
    )
    assert exiting[:8] == (10, "ok", "long", 0.5, None, None, exiting.duration_us, [])
    # exits, limit, quotes and plot: none
    assert plain[:4] == (11, "ok", "short", 1.0) and plain[8:] == (None,) * 7
    assert noted.note == "hi" and noted[8:] == (None,) * 7
    assert (
        bad.status == "error"
        and "bad return value: stop_loss must be" in bad.error
        and bad[8:] == (None,) * 7
    )


async def test_the_worker_puts_the_exits_on_the_eval_outcome(tmp_path: Path) -> None:
    settings = Settings(
        data_dir=tmp_path,
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'unused.db'}",
        eval_time_limit_ms=300,
        eval_memory_mb=16,
    )
    worker = EvalWorker(settings, None, None, name="w")  # type: ignore[arg-type]

    async def window(*args: Any) -> CandleWindow:
        return WINDOW

    async def codes(jobs: list[m.EvalJob]) -> dict[tuple[int, int], str]:
        return {(j.strategy_id, j.version): CODES[(j.strategy_id, j.version)] for j in jobs}

    worker.windows.window = window  # type: ignore[method-assign]
    worker._codes_for = codes  # type: ignore[method-assign]
    await worker.executor.start()
    try:
        req = m.EvalRequest(
            exchange="sim",
            symbol="BTC/USD",
            tf="1m",
            candle_time=WINDOW.last_time,
            jobs=[
                m.EvalJob(assignment_id=a, strategy_id=s, version=1, owner_id=1)
                for a, s in ((20, 1), (21, 2), (22, 4))
            ],
        )
        reply = m.decode(m.encode(await worker.run(req)), m.EvalReply)  # as it travels on the bus
    finally:
        await worker.executor.close()
    exiting, plain, bad = reply.outcomes
    assert exiting.status == "ok" and exiting.position == "long" and exiting.size == 0.5
    assert (exiting.stop_loss, exiting.take_profit, exiting.trailing_stop, exiting.limit, exiting.expire) == (
        0.02,
        0.05,
        0.03,
        99.5,
        3,
    )
    assert plain.status == "ok" and plain.position == "short"
    assert (plain.stop_loss, plain.take_profit, plain.trailing_stop, plain.limit, plain.expire) == (None,) * 5
    assert bad.status == "error" and "stop_loss must be a fraction between 0 and 1" in bad.error
