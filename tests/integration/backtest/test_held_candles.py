"""A backtest worker sends a job's candles to a pool child once: later jobs name them by their key, and a
child that does not hold them (a new pool, another child) is sent them again; the results are those of the
candles sent with the job."""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any

import pytest

from tests.integration.backtest.test_trial_watchdog import SETTINGS, SMA
from tests.unit.backtest.test_engine_parity import generated
from tradewind.backtest.worker import BacktestWorker, Candles, NotHeld, execute_stages, held
from tradewind.config import Settings


def without_duration(summaries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in s.items() if k != "duration_s"} for s in summaries]


async def test_the_candles_go_to_a_child_once(tmp_path: Path) -> None:
    w = BacktestWorker(Settings(data_dir=tmp_path), nc=None, session_factory=None, stall_s=30.0)  # type: ignore[arg-type]
    w._pool = w._new_pool()
    arrays = generated(6_000)
    sent: list[bool] = []

    async def trial(candles: Candles) -> list[dict[str, Any]]:
        sent.append(candles.arrays is not None)
        job = partial(
            execute_stages, SMA, candles, "s", {"fast": 10}, SETTINGS, [3_000, 6_000], "sharpe", True, [None]
        )
        return await w._trial(job)

    try:
        first = await w._with_candles("year", arrays, trial)
        second = await w._with_candles("year", arrays, trial)
        assert sent == [True, False]  # the second job named them only
        pool = w._pool
        w._kill_pool(pool)  # (a child killed: the worker starts a new pool, whose child holds nothing)
        w._pool = w._new_pool()
        third = await w._with_candles("year", arrays, trial)
        assert sent == [True, False, False, True]
    finally:
        await w.stop()
    alone = execute_stages(SMA, arrays, "s", {"fast": 10}, SETTINGS, [3_000, 6_000], "sharpe", True, [None])
    assert without_duration(first) == without_duration(second) == without_duration(third)
    assert without_duration(first) == without_duration(alone)


def test_a_child_keeps_the_last_candles_it_was_sent() -> None:
    arrays = generated(100)
    with pytest.raises(NotHeld):
        held(Candles("test-kept"))
    assert held(Candles("test-kept", arrays)) is arrays
    assert held(Candles("test-kept")) is arrays
    for i in range(8):  # others push it out
        held(Candles(f"test-other-{i}", arrays))
    with pytest.raises(NotHeld):
        held(Candles("test-kept"))
