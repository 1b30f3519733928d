"""The latency bench with its eval workers outside (benchmarks/scale_out.py), and its event-loop runner."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from tradewind.bench import latency as lat
from tradewind.config import Settings
from tradewind.runtime import Stack, open_database, start_eval


class InOtherStack:
    """Eval workers the bench does not start: here one in a stack of its own, as a process would be."""

    def __init__(self) -> None:
        self.stack = Stack()
        self.calls: list[str] = []

    async def start(self, nats_url: str, settings: Settings) -> None:
        self.calls.append("start")
        sf = await open_database(settings, self.stack, migrate=False)
        await start_eval(settings, nats_url, sf, self.stack)

    async def measuring(self, assignments: int) -> None:
        self.calls.append(f"measuring {assignments}")

    async def measured(self, assignments: int) -> None:
        self.calls.append(f"measured {assignments}")

    async def stop(self) -> None:
        self.calls.append("stop")
        await self.stack.close()


async def test_with_no_worker_of_its_own_the_bench_measures_the_workers_outside(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key in ("TRADEWIND_NATS_URL", "TRADEWIND_DATABASE_URL"):
        monkeypatch.delenv(key, raising=False)
    outside = InOtherStack()
    (result,) = await lat.run_latency(
        [3], workers=0, candles=2, warmup=1, speed=120.0, data_dir=tmp_path, outside=outside
    )
    assert outside.calls == ["start", "measuring 3", "measured 3", "stop"]
    assert result.orders == 3 * 2  # every order of the measured candles, evaluated outside
    assert result.evaluations == result.expected_evaluations == 3 * 2


def test_a_task_that_ignores_its_cancellation_does_not_keep_the_bench_from_ending(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def stubborn() -> None:
        while True:
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                continue  # what a retry loop that catches everything does

    async def main() -> str:
        asyncio.create_task(stubborn(), name="stubborn")
        await asyncio.sleep(0)
        return "figures"

    with caplog.at_level(logging.WARNING):
        assert lat.run(main(), grace_s=0.2) == "figures"
    assert "left running after the bench stopped: stubborn" in caplog.text
