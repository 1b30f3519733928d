"""Python's cyclic garbage collector held off while core handles a candle: from its arrival to its orders
and their records.

At 1,000 assignments a candle allocates enough objects (outcomes, order rows, requests) for several young
collections and, about every second candle, a full one (4-7 ms, measured with ``gc.callbacks``; see
benchmarks/RESULTS.md, issue 17). Landing between the tick and the order calls, they add to the latency of
every order of that candle. Held off over the candle's handling, they run after it: the same work, off the
path. Nothing else changes: reference counting frees what it frees, and a window never lasts longer than
its candle's handling.

Windows may overlap (candles of several markets): each one that turned the collector off turns it on again
when it ends, so it is never left off once the last ends, and a window that found it off (another window's,
or a caller's ``gc.disable``) leaves it as it is."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def held_off() -> Iterator[None]:
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()
