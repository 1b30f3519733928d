"""A child process that runs strategies, and the parent's handle that kills it on a wall-clock deadline.

Count hooks stop Lua loops, but not C functions (a pathological ``string.find``) or the GC. So the
runtimes live in a child process; while it works on a job it writes the job's index and start time to
shared memory, and the parent kills and restarts it when a job overruns its time limit. The job is
reported as having hit the time limit and the rest of the batch is run again in the new child. This
also keeps Lua off the event loop of the process that talks to NATS.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing as mp
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

import numpy as np

from tradewind.eval.sandbox import Limits, StrategyError, StrategyRuntime
from tradewind.eval.ta import ArrayStore
from tradewind.eval.window import CandleWindow

log = logging.getLogger(__name__)
MAX_RUNTIMES = 5000
KILL_GRACE_S = 0.5


@dataclass(frozen=True)
class Job:
    assignment_id: int
    strategy_id: int
    version: int
    name: str
    params: dict[str, Any] = field(default_factory=dict)
    lookback: int = 500


# (assignment_id, status, position, size, note, error, duration_us, logs)
Outcome = tuple[int, str, str | None, float, str | None, str | None, int, list[str]]


def _child(conn: Connection, progress: Any, limits: Limits) -> None:  # pragma: no cover - runs in the child
    runtimes: OrderedDict[int, tuple[tuple[Any, ...], StrategyRuntime]] = OrderedDict()
    codes: dict[tuple[int, int], str] = {}
    store = ArrayStore()
    clock, perf = time.monotonic, time.perf_counter
    while True:
        try:
            msg = conn.recv()
        except EOFError:
            return
        if msg is None:
            return
        window_parts, candle_time, jobs, new_codes = msg
        codes.update(new_codes)
        window = CandleWindow(window_parts[0], *(np.frombuffer(b, dtype=d) for b, d in window_parts[1:]))
        tails: dict[int, CandleWindow] = {}
        out: list[Outcome] = []
        for i, (aid, sid, version, name, params, lookback) in enumerate(jobs):
            progress[0] = i
            progress[1] = clock()
            started = perf()
            rt = None
            try:
                key = (sid, version, params)
                entry = runtimes.get(aid)
                if entry is None or entry[0] != key:
                    code = codes.get((sid, version))
                    if code is None:
                        raise StrategyError(name, "the strategy's code is not available to the worker")
                    if entry is not None:
                        entry[1].close()
                        del runtimes[aid]
                    rt = StrategyRuntime(code, name=name, params=params, limits=limits, indicators=store)
                    runtimes[aid] = (key, rt)
                    while len(runtimes) > MAX_RUNTIMES:
                        runtimes.popitem(last=False)[1][1].close()
                else:
                    rt = entry[1]
                    runtimes.move_to_end(aid)
                w = tails.get(lookback)
                if w is None:
                    w = tails[lookback] = window.tail(lookback)
                d = rt.decide(w, candle_time)
                out.append((aid, "ok", d.position, d.size, d.note, None, int((perf() - started) * 1e6), d.logs))
            except StrategyError as exc:
                if exc.candle_time is None:
                    exc.candle_time = candle_time
                    exc.args = (exc.message(),)
                if rt is None or rt.broken or exc.limit in ("memory", "time"):
                    dropped = runtimes.pop(aid, None)
                    if dropped:
                        dropped[1].close()
                logs = rt._log[:] if rt is not None else []
                out.append((aid, "error", None, 1.0, None, str(exc), int((perf() - started) * 1e6), logs))
            except Exception as exc:  # a bug of ours must not look like the strategy's fault
                log.exception("eval executor: internal error")
                out.append((aid, "error", None, 1.0, None, f"internal error in the eval worker: {type(exc).__name__}",
                            int((perf() - started) * 1e6), []))  # fmt: skip
        progress[1] = 0.0
        conn.send(out)


def _us(started: float) -> int:
    return int((time.perf_counter() - started) * 1e6)


class Executor:
    """The parent's handle on one child process. One batch at a time."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self._ctx = mp.get_context("spawn")
        self._proc: Any = None
        self._conn: Connection | None = None
        self._progress: Any = None
        self._known: set[tuple[int, int]] = set()
        self._lock = asyncio.Lock()
        self.restarts = 0

    async def start(self) -> None:
        await asyncio.to_thread(self._spawn)

    def _spawn(self) -> None:
        parent, child = self._ctx.Pipe()
        self._progress = self._ctx.Array("d", 2, lock=False)
        self._proc = self._ctx.Process(target=_child, args=(child, self._progress, self.limits), daemon=True,
                                       name="tradewind-eval-executor")  # fmt: skip
        self._proc.start()
        child.close()
        self._conn = parent
        self._known = set()

    def _kill(self) -> None:
        if self._proc is not None and self._proc.is_alive():
            self._proc.kill()
            self._proc.join(5)
        if self._conn is not None:
            self._conn.close()
        self.restarts += 1
        self._spawn()

    async def close(self) -> None:
        if self._proc is None:
            return
        try:
            if self._conn is not None:
                self._conn.send(None)
        except (BrokenPipeError, OSError):
            pass
        await asyncio.to_thread(self._proc.join, 5)
        if self._proc.is_alive():
            self._proc.kill()
        self._proc = None

    async def evaluate(self, window: CandleWindow, candle_time: int, jobs: list[Job], codes: dict[tuple[int, int], str]) -> list[Outcome]:
        """Run the jobs on the window; a job that overruns the deadline is reported as a time limit."""
        async with self._lock:
            return await asyncio.to_thread(self._evaluate, window, candle_time, jobs, codes)

    def _evaluate(self, window: CandleWindow, candle_time: int, jobs: list[Job], codes: dict[tuple[int, int], str]) -> list[Outcome]:
        parts = (window.key, *((a.tobytes(), a.dtype.str) for a in (window.time, window.open, window.high, window.low, window.close, window.volume)))
        results: dict[int, Outcome] = {}
        pending = list(jobs)
        deadline_s = self.limits.time_ms / 1000 + KILL_GRACE_S
        while pending:
            if self._proc is None or not self._proc.is_alive():
                self._kill()
            send_codes = {k: c for k, c in codes.items() if k not in self._known}
            assert self._conn is not None
            self._progress[1] = 0.0
            # plain tuples: they pickle several times faster than dataclasses
            self._conn.send((parts, candle_time, [(j.assignment_id, j.strategy_id, j.version, j.name, j.params, j.lookback)
                                                  for j in pending], send_codes))  # fmt: skip
            self._known.update(send_codes)
            overran: int | None = None
            while True:
                if self._conn.poll(0.02):
                    try:
                        for o in self._conn.recv():
                            results[o[0]] = o
                    except EOFError:  # the child died by itself (e.g. out of memory in C code)
                        overran = int(self._progress[0])
                        break
                    pending = []
                    break
                started = self._progress[1]
                if started and time.monotonic() - started > deadline_s:
                    overran = int(self._progress[0])
                    break
                if not self._proc.is_alive():
                    overran = int(self._progress[0])
                    break
            if overran is not None:
                job = pending[overran]
                log.warning("eval executor: strategy of assignment %s overran its time limit; restarting the executor", job.assignment_id)
                err = StrategyError(job.name, f"time limit reached ({self.limits.time_ms} ms per evaluation; "
                                              "stopped from outside the Lua state)", candle_time=candle_time, limit="time")  # fmt: skip
                results[job.assignment_id] = (job.assignment_id, "error", None, 1.0, None, str(err), int(deadline_s * 1e6), [])
                self._kill()
                pending = [j for j in pending if j.assignment_id not in results]
        return [results[j.assignment_id] for j in jobs]
