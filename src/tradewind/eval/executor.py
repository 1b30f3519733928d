"""Child processes that run strategies, and the parent's handles that kill them on a wall-clock deadline.

Count hooks stop Lua loops, but not C functions (a pathological ``string.find``) or the GC. So the
runtimes live in a child process; while it works on a job it writes the job's index and start time to
shared memory, and the parent kills and restarts it when a job overruns its time limit. The job is
reported as having hit the time limit and the rest of the batch is run again in the new child. This
also keeps Lua off the event loop of the process that talks to NATS.

In the child, the assignments of one strategy version share a Lua state (a version is one user's code;
two strategies never share one), each assignment with an environment of its own, and a batch's candle
jobs are evaluated a version at a time, in one call into Lua (``LuaState.decide_all``), which still
reports each job's start to the parent. An outcome's ``duration_us`` is then the version's time shared
out among its jobs. A state over its memory limit is started again (every assignment's ``init`` runs
again); an assignment stopped on its time limit starts again alone.

Validation (compiling code and running its top level, for the web app) runs the same way, in a small
pool of children of its own: ``eval.validation``.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import multiprocessing as mp
import signal
import sys
import time
from collections import OrderedDict
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any, Literal, NamedTuple, cast

import msgspec
import numpy as np

from tradewind.bus import messages as m
from tradewind.sandbox.runtime import (
    Decision,
    Limits,
    LuaState,
    StrategyError,
    StrategyRuntime,
)
from tradewind.sandbox.ta import ArrayStore
from tradewind.sandbox.window import CandleWindow

log = logging.getLogger(__name__)
# Assignments one executor child keeps started. NATS hands each chunk to any worker, so every worker comes to
# hold every assignment it is ever sent; at about 7 KB an assignment in its version's shared state, 50,000
# are ~350 MB (the memory budget below still applies). At 5,000, 10,000 assignments on ten workers had each
# worker dropping and restarting states on every candle (benchmarks/RESULTS.md, scale-out).
MAX_RUNTIMES = 50_000
MEMORY_BUDGET_MB = 2048  # all runtimes of one executor child together; least recently used go first
KILL_GRACE_S = 0.5
LUA_GC_GROWTH = 1.25  # see _Runtimes.collect_idle
GC_EVERY_S = 10.0  # the child's full collection waits for an idle moment at most this long
GC_IDLE_S = 1.0  # ... and happens at most this often when idle


class Job(NamedTuple):
    """One evaluation of a batch (a tuple: a thousand of them are made per candle, a frozen dataclass
    took a millisecond for that). With ``tick``, an ``on_tick`` evaluation on that tick with the
    assignment's ``state`` (None: no position, no cash, no quotes); ``decide`` otherwise."""

    assignment_id: int
    strategy_id: int
    version: int
    name: str
    params: dict[str, Any] = {}  # noqa: RUF012 - never mutated
    lookback: int = 500
    tick: m.Tick | None = None
    state: m.TickState | None = None


class Outcome(NamedTuple):
    """One job's result, as the child sends it and ``Executor.evaluate`` answers it (a tuple: index it or
    name its fields)."""

    assignment_id: int
    status: Literal["ok", "error"]
    position: m.Position | None
    size: float
    note: str | None
    error: str | None
    duration_us: int
    logs: list[str]
    # the exits and limit entry a table decide returned (sandbox.Decision)
    stop_loss: float | None = None
    take_profit: float | None = None
    trailing_stop: float | None = None
    limit: float | None = None
    expire: int | None = None
    # what on_tick returned as quotes, (side, price, amount) each ([]: cancel them all); None: no quotes
    quotes: list[tuple[m.Side, float, float]] | None = None
    # the strategy's own series at this candle (``plot = {...}``); None: it plotted nothing
    plot: dict[str, float] | None = None

    @classmethod
    def decided(cls, assignment_id: int, d: Decision, duration_us: int) -> Outcome:
        # (the sandbox checked the position and the quotes' sides; the parent's decoder checks them again)
        return cls(
            assignment_id,
            "ok",
            cast("m.Position | None", d.position),
            d.size,
            d.note,
            None,
            duration_us,
            d.logs,
            d.stop_loss,
            d.take_profit,
            d.trailing_stop,
            d.limit,
            d.expire,
            cast("list[tuple[m.Side, float, float]] | None", d.quotes),
            d.plot,
        )

    @classmethod
    def failed(
        cls, assignment_id: int, error: str, duration_us: int, logs: list[str] | None = None
    ) -> Outcome:
        return cls(assignment_id, "error", None, 1.0, None, error, duration_us, logs or [])


# -- the pipe between the parent and its child ------------------------------------------------------------
# Both ways the messages are msgpack (msgspec), decoded into the types below: a tuple of the wrong shape is a
# decode error, not a field read in the wrong place. A NamedTuple travels as a msgpack array and decodes in C,
# cheaper than pickle and the Python-level construction of a thousand outcomes a batch. An empty message
# stops the child.


class _Column(NamedTuple):
    """One array of the candle window (time, open, high, low, close, volume)."""

    data: bytes
    dtype: str


class _Task(NamedTuple):
    """A job as it travels: its name, params and lookback go once per assignment (``_Details``)."""

    assignment_id: int
    strategy_id: int
    version: int


class _Details(NamedTuple):
    name: str
    params: dict[str, Any]
    lookback: int


class _Batch(NamedTuple):
    """What the parent sends the child: the window, the jobs, and the code and details it has not seen."""

    key: str  # the window's
    columns: list[_Column]
    candle_time: int
    tasks: list[_Task]
    codes: dict[tuple[int, int], str]
    details: dict[int, _Details]
    # None for a batch of candle evaluations; else per job, (tick, state) or None (decide)
    ticks: list[tuple[m.Tick, m.TickState | None] | None] | None


_encode = msgspec.msgpack.Encoder().encode


def _receive(conn: Connection) -> bytes | None:  # pragma: no cover - runs in the child
    """The parent's next message, or None when it said stop (an empty message) or closed the pipe."""
    try:
        return conn.recv_bytes() or None
    except EOFError:
        return None


_batch = msgspec.msgpack.Decoder(_Batch)
_outcomes = msgspec.msgpack.Decoder(list[Outcome])


class _Entry:
    """An assignment's runtime: a slot in the Lua state of its strategy version (``group``)."""

    __slots__ = ("group", "params", "rt")

    def __init__(self, group: tuple[int, int], params: dict[str, Any], rt: StrategyRuntime) -> None:
        self.group, self.params, self.rt = group, params, rt


class _Group:
    """The Lua state that holds the assignments of one strategy version (one owner's code: see LuaState)."""

    __slots__ = ("state", "used", "base", "stale")

    def __init__(self, state: LuaState) -> None:
        self.state = state
        self.used = self.base = 0  # base: its size after its last collection
        self.stale = False  # assignments were dropped from it: its garbage is worth a collection


class _Runtimes:
    """The child's runtimes by assignment, least recently used first, within a count and a memory budget:
    a thousand strategies may each keep up to their memory cap in globals, the process cannot. The
    assignments of one strategy version share a Lua state (``_Group``): it is measured as a whole, and an
    assignment dropped from it counts as its share of the state until the state's next collection."""

    def __init__(
        self, budget_bytes: int, limits: Limits | None = None, store: ArrayStore | None = None
    ) -> None:
        self.budget = budget_bytes
        self.limits = limits or Limits()
        self.store = store or ArrayStore()
        self.by_aid: OrderedDict[int, _Entry] = OrderedDict()
        self.groups: dict[tuple[int, int], _Group] = {}
        self.total = 0

    def get(self, aid: int, group: tuple[int, int], params: dict[str, Any]) -> StrategyRuntime | None:
        entry = self.by_aid.get(aid)
        if entry is None:
            return None
        if entry.group != group or entry.params != params:  # a new version or new params: init runs again
            self.drop(aid)
            return None
        self.by_aid.move_to_end(aid)
        return entry.rt

    def start(
        self, aid: int, group: tuple[int, int], params: dict[str, Any], name: str, code: str
    ) -> StrategyRuntime:
        """A new runtime for the assignment, in its strategy version's state; raises StrategyError."""
        g = self.groups.get(group)
        if g is None:
            g = self.groups[group] = _Group(LuaState(self.limits, self.store))
        try:
            rt = StrategyRuntime(code, name=name, params=params, state=g.state)
        except StrategyError:
            if not g.state.slots:  # (a broken state with assignments goes when the batch is done)
                self.drop_group(group)
            raise
        self.by_aid[aid] = _Entry(group, params, rt)
        return rt

    def measure(self, group: tuple[int, int], evict: bool = True) -> None:
        """Take the state's size again, and (with ``evict``) drop the least recently used assignments while
        over budget: not in the middle of a batch, whose runtimes are in hand."""
        g = self.groups.get(group)
        if g is not None:
            used = g.state.memory_used()
            self.total += used - g.used
            g.used = used
            if not g.base:
                g.base = used
        if evict:
            self.evict()

    def evict(self) -> None:
        while len(self.by_aid) > 1 and (len(self.by_aid) > MAX_RUNTIMES or self.total > self.budget):
            self.drop(next(iter(self.by_aid)))

    def drop(self, aid: int) -> None:
        entry = self.by_aid.pop(aid, None)
        if entry is None:
            return
        g = self.groups.get(entry.group)
        if g is None:
            return
        share = g.used // max(1, len(g.state.slots))
        entry.rt.close()
        if not g.state.slots:
            self.drop_group(entry.group)
        else:  # counted as freed now; the state's next collection (collect_idle) frees it
            g.used -= share
            self.total -= share
            g.stale = True

    def drop_group(self, group: tuple[int, int]) -> None:
        """Close a strategy version's state (a broken one: over its memory limit); its assignments start
        again (their ``init`` runs) when next evaluated."""
        g = self.groups.pop(group, None)
        if g is None:
            return
        for aid in [a for a, e in self.by_aid.items() if e.group == group]:
            del self.by_aid[aid]
        self.total -= g.used
        g.state.close()

    def collect_idle(self, busy: Callable[[], bool]) -> None:
        """Collect the garbage of states that grew by a quarter since their last collection (or lost
        assignments), until ``busy()``. Lua starts a state's cycle when it has doubled; a thousand states
        double on the same candle, and their cycles then added 40 ms to that candle's batch (every ~20th
        candle, in the latency benchmark). Collected here, between batches, they never get there."""
        for group, g in list(self.groups.items()):
            if g.stale or g.used > g.base * LUA_GC_GROWTH:
                g.state.collect_garbage()
                g.base, g.stale = 0, False
                self.measure(group)
                if busy():
                    return


def _child(
    conn: Connection, progress: Any, limits: Limits, budget_mb: int
) -> None:  # pragma: no cover - runs in the child
    # Ctrl-C in a terminal reaches the whole process group; the parent stops its children in order.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    store = ArrayStore()
    runtimes = _Runtimes(budget_mb * 1024 * 1024, limits, store)
    codes: dict[tuple[int, int], str] = {}
    details: dict[int, _Details] = {}
    # The garbage collector runs between batches, not when allocations happen to trigger it in the middle
    # of one: a full collection over a thousand runtimes' objects takes 5-15 ms, on the tick-to-order path.
    # What the imports made stays for good (frozen: never traversed again), and an idle moment collects at
    # most every GC_IDLE_S: a batch's own objects go by their reference counts, a collection per batch
    # cost more than evaluating it.
    gc.disable()
    gc.freeze()
    collected = time.monotonic()
    while True:
        idle = not conn.poll(0)
        since = time.monotonic() - collected
        if (idle and since > GC_IDLE_S) or since > GC_EVERY_S:  # idle, or busy for a long time
            gc.collect()
            collected = time.monotonic()
        if idle:
            runtimes.collect_idle(lambda: conn.poll(0))
        msg = _receive(conn)
        if msg is None:
            return
        batch = _batch.decode(msg)
        codes.update(batch.codes)
        details.update(batch.details)
        window = CandleWindow(batch.key, *(np.frombuffer(c.data, dtype=c.dtype) for c in batch.columns))
        conn.send_bytes(_encode(_run_batch(batch, window, runtimes, codes, details, progress)))


def _run_batch(
    batch: _Batch,
    window: CandleWindow,
    runtimes: _Runtimes,
    codes: dict[tuple[int, int], str],
    details: dict[int, _Details],
    progress: Any,
) -> list[Outcome]:
    """The outcomes of a batch's jobs, in no particular order. The runtimes are found (or started: their
    ``init`` runs) job by job; candle jobs are then evaluated a strategy version at a time, each version's
    assignments in one call into its Lua state (``LuaState.decide_all``), which reports each job's start
    in ``progress`` as this loop does."""
    perf = time.perf_counter
    candle_time, ticks, tasks = batch.candle_time, batch.ticks, batch.tasks
    tails: dict[int, CandleWindow] = {}

    def tail(lookback: int) -> CandleWindow:
        w = tails.get(lookback)
        if w is None:
            w = tails[lookback] = window.tail(lookback)
        return w

    out: list[Outcome] = []
    timed_out: list[int] = []  # assignments dropped once the batch is done (their state may be busy)

    def fail(aid: int, rt: StrategyRuntime | None, exc: StrategyError, duration_us: int) -> None:
        if exc.candle_time is None:
            exc.candle_time = candle_time
            exc.args = (exc.message(),)
        if exc.limit == "time":
            timed_out.append(aid)
        out.append(Outcome.failed(aid, str(exc), duration_us, rt._log[:] if rt is not None else []))

    def internal(aid: int, duration_us: int) -> None:  # a bug of ours must not look like the strategy's fault
        log.exception("eval executor: internal error")
        exc_type = sys.exc_info()[0]
        what = exc_type.__name__ if exc_type is not None else "error"
        out.append(Outcome.failed(aid, f"internal error in the eval worker: {what}", duration_us))

    # candle jobs by strategy version and lookback: their runtimes, assignments and indices in the batch
    versions: dict[tuple[int, int, int], tuple[list[StrategyRuntime], list[int], list[int]]] = {}
    for i, (aid, sid, version) in enumerate(tasks):
        progress[0] = i  # the parent times each job from when it sees its index here
        started = perf()
        name, params, lookback = details[aid]
        rt = None
        try:
            group = (sid, version)
            rt = runtimes.get(aid, group, params)
            if rt is None:
                code = codes.get(group)
                if code is None:
                    raise StrategyError(name, "the strategy's code is not available to the worker")
                rt = runtimes.start(aid, group, params, name, code)
            tick = None if ticks is None else ticks[i]
            if tick is None:
                members = versions.get((sid, version, lookback))
                if members is None:
                    members = versions[(sid, version, lookback)] = ([], [], [])
                members[0].append(rt)
                members[1].append(aid)
                members[2].append(i)
                continue
            d = rt.on_tick(tail(lookback), *tick, candle_time)
            runtimes.measure(group, evict=False)
            out.append(Outcome.decided(aid, d, int((perf() - started) * 1e6)))
        except StrategyError as exc:
            fail(aid, rt, exc, int((perf() - started) * 1e6))
        except Exception:
            internal(aid, int((perf() - started) * 1e6))
    for (sid, version, lookback), (rts, aids, marks) in versions.items():
        started = perf()
        try:
            results = rts[0].state.decide_all(tail(lookback), rts, candle_time, marks, progress.__setitem__)
        except Exception:
            each = int((perf() - started) * 1e6 / len(rts))
            for aid in aids:
                internal(aid, each)
            continue
        each = int((perf() - started) * 1e6 / len(rts))  # the version's time, shared out
        for aid, rt, r in zip(aids, rts, results, strict=True):
            if isinstance(r, Decision):
                out.append(Outcome.decided(aid, r, each))
            else:
                fail(aid, rt, r, each)
        runtimes.measure((sid, version), evict=False)
    progress[0] = -1
    # A state over its memory limit starts again, every assignment's init with it (the host cannot tell
    # whose globals hold the memory); an assignment stopped on its time limit starts again alone.
    for group in [g for g, entry in runtimes.groups.items() if entry.state.broken]:
        runtimes.drop_group(group)
    for aid in timed_out:
        runtimes.drop(aid)
    runtimes.evict()
    return out


class Executor:
    """The parent's handle on one child process. One batch at a time."""

    def __init__(self, limits: Limits, memory_budget_mb: int = MEMORY_BUDGET_MB) -> None:
        self.limits = limits
        self.memory_budget_mb = memory_budget_mb
        self._ctx = mp.get_context("spawn")
        self._proc: Any = None
        self._conn: Connection | None = None
        self._progress: Any = None
        self._known: set[tuple[int, int]] = set()  # strategy versions whose code the child has
        self._details: dict[int, _Details] = {}  # what the child knows of each assignment
        self._lock = asyncio.Lock()
        self._closed = False
        self.restarts = 0

    async def start(self) -> None:
        await asyncio.to_thread(self._spawn)

    def _spawn(self) -> None:
        parent, child = self._ctx.Pipe()
        self._progress = self._ctx.Array("q", 1, lock=False)
        self._progress[0] = -1
        self._proc = self._ctx.Process(
            target=_child,
            args=(child, self._progress, self.limits, self.memory_budget_mb),
            daemon=True,
            name="tradewind-eval-executor",
        )
        self._proc.start()
        child.close()
        self._conn = parent
        self._known = set()
        self._details = {}

    def _kill(self) -> None:
        if self._proc is not None and self._proc.is_alive():
            self._proc.kill()
            self._proc.join(5)
        if self._conn is not None:
            self._conn.close()
        self.restarts += 1
        self._spawn()

    async def close(self) -> None:
        """Stop the child: after the batch in flight, if it ends within a few seconds; killed otherwise."""
        try:
            await asyncio.wait_for(self._lock.acquire(), 5)
            locked = True
        except TimeoutError:
            locked = False
        try:
            proc, self._closed = self._proc, True
            if proc is None:
                return
            if locked:
                try:
                    if self._conn is not None:
                        self._conn.send_bytes(b"")
                except OSError:
                    pass
                await asyncio.to_thread(proc.join, 5)
            if proc.is_alive():
                proc.kill()
                await asyncio.to_thread(proc.join, 5)
        finally:
            if locked:
                self._lock.release()

    async def evaluate(
        self, window: CandleWindow, candle_time: int, jobs: list[Job], codes: dict[tuple[int, int], str]
    ) -> list[Outcome]:
        """Run the jobs on the window; a job that overruns the deadline is reported as a time limit."""
        async with self._lock:
            if self._closed:
                raise RuntimeError("the eval executor is closed")
            return await asyncio.to_thread(self._evaluate, window, candle_time, jobs, codes)

    def _evaluate(
        self, window: CandleWindow, candle_time: int, jobs: list[Job], codes: dict[tuple[int, int], str]
    ) -> list[Outcome]:
        arrays = (window.time, window.open, window.high, window.low, window.close, window.volume)
        columns = [_Column(a.tobytes(), a.dtype.str) for a in arrays]
        results: dict[int, Outcome] = {}
        pending = list(jobs)
        deadline_s = self.limits.time_ms / 1000 + KILL_GRACE_S
        broken = 0  # children that died before they took the batch (a broken install, not a strategy)
        while pending:
            if self._closed:  # closed while this batch waited on a stuck child: no new child
                raise RuntimeError("the eval executor was closed during the batch")
            if self._proc is None or not self._proc.is_alive():
                self._kill()
            assert self._conn is not None
            send_codes = {k: c for k, c in codes.items() if k not in self._known}
            # name, params and lookback go only when the child has not seen them: small tasks encode faster
            send_details = {}
            on_ticks = False
            for j in pending:
                d = _Details(j.name, j.params, j.lookback)
                if self._details.get(j.assignment_id) != d:
                    send_details[j.assignment_id] = self._details[j.assignment_id] = d
                if j.tick is not None:
                    on_ticks = True
            ticks = [None if j.tick is None else (j.tick, j.state) for j in pending] if on_ticks else None
            self._progress[0] = -1
            try:
                self._conn.send_bytes(
                    _encode(
                        _Batch(
                            window.key,
                            columns,
                            candle_time,
                            [_Task(j.assignment_id, j.strategy_id, j.version) for j in pending],
                            send_codes,
                            send_details,
                            ticks,
                        )
                    )
                )
            except OSError:  # the child is gone: start another and send the batch again
                broken += 1
                if broken > 3:
                    raise RuntimeError(
                        "the eval executor process keeps dying before it takes any work"
                    ) from None
                self._kill()
                continue
            self._known.update(send_codes)
            overran, died = self._wait(results, deadline_s)
            if overran is None:
                break
            if overran < 0:  # died before it started on the batch: not a strategy's doing
                broken += 1
                if broken > 3:
                    raise RuntimeError("the eval executor process keeps dying before it takes any work")
                self._kill()
                continue
            job = pending[overran]
            if died:
                log.warning(
                    "eval executor: the child died running assignment %s; restarting it", job.assignment_id
                )
                reason, limit = "the evaluation process died running this strategy (out of memory?)", "memory"
            else:
                log.warning(
                    "eval executor: assignment %s overran its time limit; restarting the child",
                    job.assignment_id,
                )
                reason = f"time limit reached ({self.limits.time_ms} ms per evaluation; stopped from outside the Lua state)"
                limit = "time"
            err = StrategyError(job.name, reason, candle_time=candle_time, limit=limit)
            results[job.assignment_id] = Outcome.failed(job.assignment_id, str(err), int(deadline_s * 1e6))
            self._kill()
            pending = [j for j in pending if j.assignment_id not in results]
        return [results[j.assignment_id] for j in jobs]

    def _wait(self, results: dict[int, Outcome], deadline_s: float) -> tuple[int | None, bool]:
        """Collect the child's outcomes; or (index of the job, died) of a job that overran or killed it."""
        assert self._conn is not None
        last, seen = -1, time.monotonic()
        while True:
            if self._conn.poll(0.02):
                try:
                    out = self._conn.recv_bytes()
                except (EOFError, OSError):  # the child died by itself (e.g. out of memory in C code)
                    return int(self._progress[0]), True
                for o in _outcomes.decode(out):
                    results[o.assignment_id] = o
                return None, False
            i, now = int(self._progress[0]), time.monotonic()
            if i != last:
                last, seen = i, now
            elif i >= 0 and now - seen > deadline_s:
                return i, False
            if not self._proc.is_alive():
                return i, True
