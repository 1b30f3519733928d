"""A backtest worker's optimisation trials run without Lua's count hook under a stall watchdog: a trial whose
decisions stop progressing has its child killed and is run again hooked, so an endless loop ends with the
hooked run's error at its candle; a memory bomb fails cleanly without the watchdog (an error without the hook
is left to the hooked run, ``Unverified``); a good strategy gets the hooked run's summaries."""

from __future__ import annotations

import time
from functools import partial
from pathlib import Path

from tests.unit.backtest.test_engine_parity import generated
from tradewind.backtest.worker import BacktestWorker, execute_stages
from tradewind.config import Settings

SETTINGS = {"cash": 10_000.0, "fee": 0.001, "maker_fee": None, "slippage": 0.0, "lookback": 500}
SMA = """
function decide(c, params)
  local fast, slow = ta.sma(c.close, params.fast), ta.sma(c.close, 30)
  local f, s = fast[#fast], slow[#slow]
  if f ~= f or s ~= s then return "neutral" end
  if f > s then return "long" end
  return "short"
end
"""
ENDLESS = """
function decide(c, params)
  if #c.close >= 300 then while true do end end  -- from its 300th candle on
  return "long"
end
"""
BOMB = """
function decide(c, params)
  if #c.close >= 300 then local t = {} for i = 1, 1e9 do t[i] = {i} end end
  return "long"
end
"""


def trial(code: str, n: int = 8000) -> partial[list[dict[str, object]]]:
    arrays = generated(n)
    return partial(
        execute_stages,
        code,
        arrays,
        "s",
        {"fast": 10},
        SETTINGS,
        [n // 4, n // 2, n],
        "sharpe",
        True,
        [None, None],
    )


async def _worker(tmp_path: Path, stall_s: float) -> BacktestWorker:
    w = BacktestWorker(Settings(data_dir=tmp_path), nc=None, session_factory=None, stall_s=stall_s)  # type: ignore[arg-type]
    w._pool = w._new_pool()
    return w


async def test_an_endless_loop_stalls_and_ends_with_the_hooked_error(tmp_path: Path) -> None:
    w = await _worker(tmp_path, stall_s=1.0)
    try:
        started = time.monotonic()
        summaries = await w._trial(trial(ENDLESS))
        took = time.monotonic() - started
    finally:
        await w.stop()
    assert w.stalled == 1
    error = str(summaries[-1]["error"])
    assert "instruction limit reached" in error and "candle" in error, error
    assert summaries[-1]["candles"] == 300  # the run ends at the failing candle, as a hooked backtest's
    assert took < 30


async def test_a_memory_bomb_fails_without_a_stall(tmp_path: Path) -> None:
    w = await _worker(tmp_path, stall_s=30.0)
    try:
        summaries = await w._trial(trial(BOMB))
    finally:
        await w.stop()
    assert (w.stalled, w.unverified) == (0, 1)  # an error without the hook: run again hooked, which tells it
    assert "memory limit reached" in str(summaries[-1]["error"])


async def test_a_good_trial_is_the_hooked_run(tmp_path: Path) -> None:
    job = trial(SMA)
    hooked = job()  # in this process, with the hook
    w = await _worker(tmp_path, stall_s=30.0)
    try:
        free = await w._trial(job)
    finally:
        await w.stop()
    assert (w.stalled, w.unverified) == (0, 0)
    for a, b in zip(free, hooked, strict=True):
        a.pop("duration_s")
        b.pop("duration_s")
        assert a == b
