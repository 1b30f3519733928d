"""core.collector: the cyclic collector is off while a candle's orders are on their way, and never left off."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Iterator

import pytest

from tradewind.core import collector


@pytest.fixture(autouse=True)
def _enabled() -> Iterator[None]:
    was = gc.isenabled()
    gc.enable()
    yield
    if was:
        gc.enable()
    else:
        gc.disable()


def test_off_inside_and_on_after() -> None:
    with collector.held_off():
        assert not gc.isenabled()
    assert gc.isenabled()


def test_on_after_an_error() -> None:
    with pytest.raises(RuntimeError), collector.held_off():
        raise RuntimeError("boom")
    assert gc.isenabled()


async def test_overlapping_windows_of_two_candles_never_leave_it_off() -> None:
    # two markets' candles handled at once, ending in either order, one of them cancelled
    async def candle(start: asyncio.Event, end: asyncio.Event) -> None:
        await start.wait()
        with collector.held_off():
            await end.wait()

    for first_ends_first in (True, False):
        s1, e1, s2, e2 = (asyncio.Event() for _ in range(4))
        a, b = asyncio.create_task(candle(s1, e1)), asyncio.create_task(candle(s2, e2))
        s1.set()
        await asyncio.sleep(0)
        s2.set()
        await asyncio.sleep(0)
        assert not gc.isenabled()
        (e1 if first_ends_first else e2).set()
        await asyncio.sleep(0)
        (b if first_ends_first else a).cancel()
        await asyncio.gather(a, b, return_exceptions=True)
        assert gc.isenabled()


def test_leaves_a_callers_choice_alone() -> None:
    gc.disable()
    with collector.held_off():
        assert not gc.isenabled()
    assert not gc.isenabled()  # someone else turned it off: not ours to turn on
