"""A strategy's own series: ``plot = {name = value, ...}`` in decide's table. Checked live and in backtests
with the same messages, carried by the eval executor and worker onto ``EvalOutcome``, and recorded per candle
by the backtest engine."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tradewind.backtest import engine
from tradewind.bus import messages as m
from tradewind.config import Settings
from tradewind.eval.executor import Executor, Job
from tradewind.eval.worker import EvalWorker
from tradewind.sandbox.runtime import Decision, Limits, Plots, StrategyError, StrategyRuntime
from tradewind.sandbox.window import CandleWindow

ROWS = [(60_000 * (i + 1), 100.0 + i % 7, 102.0 + i % 7, 99.0, 101.0 + i % 5, 10.0) for i in range(50)]
WINDOW = CandleWindow.from_rows(ROWS, "sim:BTC/USD:1m")
LIMITS = Limits(instructions=2_000_000, memory_mb=16, time_ms=300)
SMA = """function decide(c, params)
  local fast, slow = ta.sma(c.close, 3), ta.sma(c.close, 6)
  local f, s = fast[#fast], slow[#slow]
  return {position = f > s and "long" or "short", plot = {sma_fast = f, sma_slow = s}}
end"""


def live(body: str) -> Decision:
    return StrategyRuntime(f"function decide(c, params) {body} end", name="t", limits=LIMITS).decide(WINDOW)


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


def test_a_plot_comes_with_the_decision_as_floats() -> None:
    d = live('return {position = "long", note = "n", plot = {a = 1, b_2 = c.close[#c.close], _x = -0.5}}')
    assert d.position == "long" and d.note == "n"
    assert d.plot == {"a": 1.0, "b_2": ROWS[-1][4], "_x": -0.5} and all(
        type(v) is float for v in d.plot.values()
    )


def test_nan_is_no_point_and_an_empty_plot_is_none() -> None:
    assert live('return {position = "long", plot = {a = 0/0, b = 2}}').plot == {"b": 2.0}
    assert live('return {position = "long", plot = {a = NaN}}').plot is None
    assert live('return {position = "long", plot = {}}').plot is None
    assert live('return {position = "long"}').plot is None
    assert live('return "long"').plot is None


@pytest.mark.parametrize(
    ("plot", "says"),
    [
        ("3", "plot must be a table of series, {name = value, ...}, got a number"),
        ('"x"', "plot must be a table of series, {name = value, ...}, got a string"),
        ("{1, 2}", "plot: a series needs a name, not a number"),
        ('{["a b"] = 1}', "plot: 'a b' is not a series name (letters, digits and _, at most 32 characters)"),
        ('{["9lives"] = 1}', "'9lives' is not a series name"),
        ("{" + "x" * 33 + " = 1}", "is not a series name"),
        ('{a = "1"}', "plot.a must be a number, got a string"),
        ("{a = {}}", "plot.a must be a number, got a table"),
        ("{a = true}", "plot.a must be a number, got a boolean"),
        ("{a = 1/0}", "plot.a must be a finite number, got inf"),
        ("{a = -1/0}", "plot.a must be a finite number, got -inf"),
        ("{" + ", ".join(f"s{i} = {i}" for i in range(9)) + "}", "plot holds at most 8 series"),
    ],
)
def test_a_bad_plot_is_the_strategys_error_live_and_in_a_backtest(plot: str, says: str) -> None:
    with pytest.raises(StrategyError) as info:
        live(f'return {{position = "long", plot = {plot}}}')
    reason = info.value.reason
    assert reason.startswith("bad return value: ") and says in reason
    # a backtest fails at the same candle with the same message; the candles before it keep their plot
    arrays = history(10)
    code = (
        f'function decide(c) if #c.close == 6 then return {{position = "long", plot = {plot}}} end '
        'return {position = "short", plot = {ok = #c.close}} end'
    )
    rt = StrategyRuntime(code, name="t", limits=LIMITS)
    plots, out = Plots(10), []
    with pytest.raises(StrategyError) as info:
        rt.decide_series(arrays, 500, 0, 10, out, {}, plots)
    assert info.value.reason == reason and info.value.candle_time == int(arrays["time"][5])
    assert "".join(out) == "sssss"
    assert list(plots.values["ok"][:5]) == [1, 2, 3, 4, 5] and np.isnan(plots.values["ok"][5:]).all()


def test_a_plot_with_a_metatable_is_read_raw() -> None:
    d = live(
        'local p = setmetatable({a = 1}, {__index = function() error("no") end, __pairs = function() error("no") end}) '
        'return {position = "long", plot = p}'
    )
    assert d.plot == {"a": 1.0}


def test_a_backtest_records_the_plot_of_its_last_candles_as_live_decides_it() -> None:
    arrays = history(40)
    rt = StrategyRuntime(SMA, name="sma", limits=LIMITS)
    plots = Plots(40, 25)
    letters = rt.decide_series(arrays, 500, 0, 40, None, {}, plots)
    assert len(letters) == 40 and set(plots.values) == {"sma_fast", "sma_slow"}
    assert len(plots.values["sma_fast"]) == 15
    for i in (25, 31, 39):  # live, on the window ending at candle i, the same values
        rows = [
            (
                int(arrays["time"][k]),
                *(float(arrays[f][k]) for f in ("open", "high", "low", "close", "volume")),
            )
            for k in range(i + 1)
        ]
        d = StrategyRuntime(SMA, name="sma", limits=LIMITS).decide(CandleWindow.from_rows(rows, "w"))
        assert d.plot == {
            "sma_fast": plots.values["sma_fast"][i - 25],
            "sma_slow": plots.values["sma_slow"][i - 25],
        }


def test_a_backtest_keeps_the_first_eight_series_names() -> None:
    code = 'function decide(c) local n = #c.close return {position = "short", plot = {["s" .. n] = n}} end'
    plots = Plots(12)
    StrategyRuntime(code, name="t", limits=LIMITS).decide_series(history(12), 500, 0, 12, None, None, plots)
    assert list(plots.values) == [f"s{n}" for n in range(1, 9)]


def test_the_engine_puts_plot_series_and_their_times_in_the_result() -> None:
    arrays = history(60)
    r = engine.run(SMA, arrays, plot_candles=engine.PLOT_CANDLES)
    series = r.plot_series()
    assert set(series) == {"sma_fast", "sma_slow"}
    # the first value after the warm-up (NaN before)
    assert series["sma_slow"][0][0] == int(arrays["time"][5])
    assert [t for t, _ in series["sma_fast"]] == [int(t) for t in arrays["time"][2:]]
    plain = engine.run(SMA.replace(", plot = {sma_fast = f, sma_slow = s}", ""), arrays, plot_candles=5000)
    assert plain.plot_series() == {} and [t.pnl for t in plain.trades] == [t.pnl for t in r.trades]
    assert engine.run(SMA, arrays).plot_series() == {}  # a sweep's or an optimisation's run keeps none


def test_a_plot_through_a_long_run_in_its_own_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(engine, "STREAM_FROM", 50)  # the strategy decides in a thread alongside the fill
    r = engine.run(SMA, history(120), plot_candles=30)
    series = r.plot_series()
    assert [len(v) for v in series.values()] == [30, 30]
    assert series["sma_fast"][-1][0] == int(history(120)["time"][-1])


# -- executor and worker -----------------------------------------------------------------------------------
CODES = {
    (1, 1): SMA,
    (2, 1): 'function decide(c) return "short" end',
    (3, 1): 'function decide(c) return {position = "long", plot = {a = 1/0}} end',
}


async def test_the_executor_carries_a_plot_and_the_common_outcome_stays_as_it_was() -> None:
    ex = Executor(LIMITS)
    await ex.start()
    try:
        plotted, plain, bad = await ex.evaluate(
            WINDOW,
            WINDOW.last_time,
            [Job(10, 1, 1, "sma"), Job(11, 2, 1, "plain"), Job(12, 3, 1, "bad")],
            CODES,
        )
    finally:
        await ex.close()
    assert plotted.status == "ok" and set(plotted.plot) == {"sma_fast", "sma_slow"}
    assert plain[:4] == (11, "ok", "short", 1.0) and plain.plot is None
    assert bad.status == "error" and "plot.a must be a finite number" in bad.error and bad.plot is None


async def test_the_worker_puts_the_plot_on_the_eval_outcome(tmp_path: Path) -> None:
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
                for a, s in ((20, 1), (21, 2))
            ],
        )
        reply = m.decode(m.encode(await worker.run(req)), m.EvalReply)  # as it travels on the bus
    finally:
        await worker.executor.close()
    plotted, plain = reply.outcomes
    live_plot = StrategyRuntime(SMA, name="sma", limits=LIMITS).decide(WINDOW).plot
    assert plotted.plot == live_plot and plain.plot is None
