"""The backtest worker: runs backtests for the API and the points of parameter sweeps, in a NATS queue group.

It answers these subjects in the queue group ``backtest-workers``:

- ``backtest.run`` (RunBacktest -> BacktestResult): one sweep point, request/reply.
- ``backtest.start`` (StartBacktest -> BacktestAccepted): a stored ``Backtest`` row (POST
  /api/backtests). The worker replies at once, runs it, and stores status, result and error. A quoting
  strategy (``quotes.quoting``) runs ``on_tick`` (``backtest.quotes``): on the market's stored ticks when
  there are any in the range, else on its candles with a synthetic spread.
- ``backtest.study`` (StartStudy): drives a stored optimisation study (``backtest.studies``).
- ``backtest.walkforward`` (StartWalkForward): runs a stored walk-forward analysis in one child
  (``backtest.walkforwards``).

Lua runs in child processes (a pool of ``processes``), never on the event loop; the parent loads the
candles (from the store, or a file for local sweeps), keeps the last few in memory (a sweep reads the
same candles a hundred times) and ships them to a child once: a sweep point or a trial names them by their
key (``Candles``) and each child keeps the last few it was sent (``held``). A job that overruns
``job_timeout_s`` has its child killed and restarted.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import multiprocessing as mp
import os
import signal
import socket
import threading
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
from nats.aio.client import Client
from nats.aio.msg import Msg
from prometheus_client import Counter
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from tradewind.bus import messages as m
from tradewind.bus import subjects
from tradewind.bus.connection import unsubscribe_all
from tradewind.config import Settings
from tradewind.sandbox.runtime import Unverified
from tradewind.storage import candles as store
from tradewind.storage.db import SessionFactory
from tradewind.storage.models import Backtest, Strategy, StrategyVersion, Study, WalkForwardRun
from tradewind.storage.types import utcnow

log = logging.getLogger(__name__)
RUNS = Counter("tradewind_backtest_runs_total", "Backtests run by this worker", ["kind", "status"])
DATA_CACHE = 4
HELD = 2  # candle sets a pool child keeps for the next jobs (a study or a sweep reads one set)
# An optimisation trial run without the count hook is killed when no chunk of its decisions (about a
# fiftieth of the candles) ends for this long — the per-candle time limit of a backtest — and run again
# hooked.
STALL_S = 5.0
CURVE_POINTS = 1000
T = TypeVar("T")
Run = TypeVar("Run", Backtest, Study, WalkForwardRun)


@dataclass(frozen=True)
class Candles:
    """Candles as a job names them to a pool child: their key, and the arrays themselves when the child may
    not hold them yet (``held``)."""

    key: str
    arrays: dict[str, np.ndarray] | None = None


class NotHeld(LookupError):
    """The pool child has not been sent the candles a job names (``Candles`` without arrays): send them."""


_HELD: OrderedDict[str, dict[str, np.ndarray]] = OrderedDict()  # in a pool child: the candles it was sent


def held(candles: Candles | dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The arrays of a job's candles (in a pool child): those it carries, kept for the next jobs (the last
    ``HELD`` sets), or those kept under its key; raises ``NotHeld``."""
    if isinstance(candles, dict):
        return candles
    if candles.arrays is not None:
        _HELD[candles.key] = candles.arrays
        while len(_HELD) > HELD:
            _HELD.popitem(last=False)
        return candles.arrays
    found = _HELD.get(candles.key)
    if found is None:
        raise NotHeld(candles.key)
    _HELD.move_to_end(candles.key)
    return found


def execute(
    code: str,
    arrays: dict[str, np.ndarray] | Candles,
    name: str,
    params: dict[str, Any],
    cash: float,
    fee: float,
    slippage: float,
    lookback: int,
    detail: bool,
    maker_fee: float | None = None,
) -> dict[str, Any]:  # pragma: no cover - in the child
    """Run one backtest (in a pool child): the summary, and with ``detail`` the trades and the equity curve.
    ``fee`` is the taker fee, ``maker_fee`` the maker fee (None: the taker fee), ``slippage`` a fraction."""
    from tradewind.backtest import engine

    result = engine.run(
        code,
        held(arrays),
        params=params,
        cash=cash,
        fee=fee,
        maker_fee=maker_fee,
        slippage=slippage,
        lookback=lookback,
        name=name,
        plot_candles=engine.PLOT_CANDLES if detail else 0,
        unhooked_first=True,  # (a forked child of this one; killed when stuck)
    )
    out: dict[str, Any] = {"summary": result.metrics(trades=detail)}
    if detail:
        out["equity"] = result.curve(CURVE_POINTS)
        out["buy_and_hold"] = result.hold_curve(CURVE_POINTS)
        out["plot"] = result.plot_series()
    return out


def execute_stages(
    code: str,
    arrays: dict[str, np.ndarray] | Candles,
    name: str,
    params: dict[str, Any],
    settings: dict[str, Any],
    stages: list[int],
    key: str,
    maximize: bool,
    floors: list[float | None],
    hooked: bool = True,
    beat: str | None = None,
) -> list[dict[str, Any]]:  # pragma: no cover - in the child
    """An optimisation trial's stages in one pass (``engine.run_staged``): the summary of each stage run
    (without its trades), stopping after a stage whose objective so far is below its floor
    (``optimize.goes_on``). ``settings``: cash, fee, maker_fee, slippage, lookback. ``hooked`` False: the
    strategy runs without the count hook (``Limits.hooked``), the caller's watchdog its limit; ``beat``, a file
    whose modification time the run moves after each chunk of decisions (what the watchdog looks at)."""
    from dataclasses import replace

    from tradewind.backtest import engine
    from tradewind.backtest.optimize import goes_on_after

    summaries: list[dict[str, Any]] = []

    def go_on(upto: int, result: engine.Result) -> bool:
        progress(upto, upto)  # a stage filled: progress too
        summaries.append(result.metrics())
        return goes_on_after(summaries, key, maximize, floors)

    limits = engine.DEFAULT_LIMITS if hooked else replace(engine.DEFAULT_LIMITS, hooked=False)

    def progress(done: int, upto: int) -> None:
        if beat is not None:
            os.utime(beat)

    engine.run_staged(
        code,
        held(arrays),
        stages,
        go_on,
        params=params,
        name=name,
        limits=limits,
        progress=progress,
        **settings,
    )
    return summaries


def execute_quotes(
    code: str,
    candles: dict[str, np.ndarray],
    ticks: dict[str, np.ndarray] | None,
    name: str,
    params: dict[str, Any],
    *,
    cash: float,
    fee: float,
    maker_fee: float | None,
    slippage: float,
    lookback: int,
    tf_ms: int,
    spread_bps: float,
    max_position: float | None,
    min_interval_ms: int,
) -> dict[str, Any]:  # pragma: no cover - in the child
    """Run one quoting backtest (in a pool child): on ``ticks`` when given, else on the candles with a book
    of ``spread_bps`` around each close (``quotes.run``). The ``tradewind backtest --json`` document of a
    quoting strategy, with its fills and equity curve."""
    from tradewind.backtest import quotes

    result = quotes.run(
        code,
        candles,
        ticks,
        spread_bps=spread_bps,
        min_interval_ms=min_interval_ms,
        tf_ms=tf_ms,
        params=params,
        cash=cash,
        fee=fee,
        maker_fee=maker_fee,
        slippage=slippage,
        lookback=lookback,
        name=name,
        max_position=max_position,
    )
    return result.summary(CURVE_POINTS)


FIELDS = ("time", "open", "high", "low", "close", "volume")


def pack_candles(arrays: dict[str, np.ndarray]) -> list[bytes]:
    """Candle arrays as BacktestData.inline."""
    return [
        np.ascontiguousarray(arrays[k], dtype=np.int64 if k == "time" else np.float64).tobytes()
        for k in FIELDS
    ]


def unpack_candles(parts: list[bytes]) -> dict[str, np.ndarray]:
    n = len(parts[0]) // 8
    if any(len(b) != 8 * n for b in parts):
        raise ValueError("inline candle arrays differ in length")
    return {
        k: np.frombuffer(b, dtype=np.int64 if k == "time" else np.float64)
        for k, b in zip(FIELDS, parts, strict=True)
    }


def _mtime(path: str) -> int:
    try:
        return Path(path).stat().st_mtime_ns
    except OSError:
        return 0


def _touched(path: Path) -> float:
    """When ``path`` was last modified (0 when it is gone)."""
    try:
        return os.stat(path).st_mtime
    except OSError:
        return 0.0


def _remove(path: Path) -> None:
    with contextlib.suppress(OSError):
        os.unlink(path)


def _exit_with_parent(parent: int) -> None:  # pragma: no cover - in the child
    """A pool process holds both ends of its job queue, so it never sees its parent die: it would wait for
    work forever after a SIGKILL of the eval process. It watches the parent instead, and goes with it.
    Ctrl-C in a terminal reaches the whole process group: the parent stops the pool, so SIGINT is ignored."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(0)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def _warm() -> None:  # pragma: no cover - in the child
    import tradewind.backtest.engine  # noqa: F401  # imports once, before the first job's clock starts
    import tradewind.backtest.quotes  # noqa: F401


async def claim(
    s: AsyncSession, kind: type[Run], run_id: int, ready: tuple[str, ...] = ("queued",)
) -> tuple[Run, tuple[str, str] | None] | None:
    """The stored run ``run_id`` (a backtest, study or walk-forward) when its status is one of ``ready``
    (else None), with the code of its strategy version and the strategy's name (None: that version is gone)."""
    run = await s.get(kind, run_id)
    if run is None or run.status not in ready:
        return None
    row = (
        await s.execute(
            select(StrategyVersion.code, Strategy.name)
            .join(Strategy, Strategy.id == StrategyVersion.strategy_id)
            .where(StrategyVersion.strategy_id == run.strategy_id, StrategyVersion.version == run.version)
        )
    ).first()
    return run, None if row is None else (row[0], row[1])


def stored_data(run: Backtest | Study | WalkForwardRun) -> m.BacktestData:
    """The candles a stored run runs on: its market's, of its timeframe, in the range its config names."""
    cfg = run.config or {}
    return m.BacktestData(market_id=run.market_id, tf=run.timeframe, start=cfg.get("from"), end=cfg.get("to"))


def _request(msg: Msg, kind: type[T], what: str) -> T | None:
    """The request ``msg`` carries, or None when it is malformed (logged: there is nobody to answer)."""
    try:
        return m.decode(msg.data, kind)
    except Exception:
        log.warning("backtest: malformed %s", what)
        return None


class WorkerLost(RuntimeError):
    """The job's child process died under it: not the strategy's doing, so the job may be run again."""


class Stalled(RuntimeError):
    """A job run without the count hook made no progress for the worker's ``stall_s``: its child was killed."""


class BacktestWorker:
    """Answers backtest jobs on the bus; start it next to each EvalWorker so backtests scale with them."""

    def __init__(
        self,
        settings: Settings,
        nc: Client,
        session_factory: SessionFactory | None,
        *,
        name: str | None = None,
        processes: int = 1,
        job_timeout_s: float = 3600.0,
        study_worker_timeout_s: float = 30.0,
        stall_s: float | None = STALL_S,
    ) -> None:
        self.settings = settings
        self.nc = nc
        self.sf = session_factory
        self.name = name or f"backtest-{socket.gethostname()}-{os.getpid()}"
        self.processes = max(1, processes)
        self.job_timeout_s = job_timeout_s
        self.study_worker_timeout_s = (
            study_worker_timeout_s  # a study's trial job silent this long is sent again
        )
        self.jobs_done = 0
        # optimisation trials run without Lua's count hook, their child killed when no chunk of decisions
        # ends for this long, and then run again hooked (see _trial); None: always hooked
        self.stall_s = stall_s
        self.stalled = 0  # trials run again hooked after a stall
        self.unverified = 0  # trials run again hooked because the run without the hook was not proved
        self._pool: ProcessPoolExecutor | None = None
        self._slots = asyncio.Semaphore(self.processes)
        self._subs: list[Any] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._data: OrderedDict[tuple[Any, ...], dict[str, np.ndarray]] = OrderedDict()
        self._data_lock = asyncio.Lock()
        # the keys of the candles a pool child has been sent, newest last (``_with_candles``; a child keeps the
        # last ``HELD``, so older keys only cost a NotHeld and a send)
        self._sent: OrderedDict[str, None] = OrderedDict()
        self._loaded: dict[tuple[Any, ...], int] = {}  # a cached key -> which load it is (``_keyed_candles``)
        self._loads = itertools.count()

    async def start(self) -> None:
        self._pool = self._new_pool()
        # the child imports the engine in the background: an eval process starts no slower for it
        self._spawn(asyncio.wrap_future(self._pool.submit(_warm)))
        self._subs.append(
            await self.nc.subscribe(subjects.BACKTEST_RUN, queue=subjects.BACKTEST_QUEUE, cb=self._on_run)
        )
        self._subs.append(
            await self.nc.subscribe(subjects.BACKTEST_START, queue=subjects.BACKTEST_QUEUE, cb=self._on_start)
        )
        self._subs.append(
            await self.nc.subscribe(subjects.STUDY_START, queue=subjects.BACKTEST_QUEUE, cb=self._on_study)
        )
        self._subs.append(
            await self.nc.subscribe(
                subjects.WALKFORWARD_START, queue=subjects.BACKTEST_QUEUE, cb=self._on_walkforward
            )
        )
        self._subs.append(await self.nc.subscribe(subjects.BACKTEST_CAPACITY, cb=self._on_capacity))

    async def stop(self) -> None:
        subs, self._subs = self._subs, []
        await unsubscribe_all(subs)
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._pool is not None:
            self._kill_pool(self._pool)
            self._pool = None

    # -- the pool ----------------------------------------------------------------------------------------
    def _new_pool(self) -> ProcessPoolExecutor:
        # spawn: a fork of a process running an event loop and NATS threads is not safe
        return ProcessPoolExecutor(
            max_workers=self.processes,
            mp_context=mp.get_context("spawn"),
            initializer=_exit_with_parent,
            initargs=(os.getpid(),),
        )

    @staticmethod
    def _kill_pool(pool: ProcessPoolExecutor) -> None:
        # The executor has no kill: a job stuck in C (never in Lua's hooks) is ended by killing its process.
        for proc in list(getattr(pool, "_processes", {}).values()):
            proc.kill()
        pool.shutdown(wait=False, cancel_futures=True)

    async def _execute(self, job: Callable[[], T], beat: Path | None = None) -> T:
        """``job`` (a picklable call: a module function or a partial of one) in a pool child. With ``beat``,
        a file the job touches as it progresses: the child is killed (``Stalled``) when it has not been
        touched for ``stall_s``."""
        assert self._pool is not None, "start() the worker first"
        pool = self._pool
        try:
            run = asyncio.get_running_loop().run_in_executor(pool, job)
            if beat is None or not self.stall_s:
                return await asyncio.wait_for(run, self.job_timeout_s)
            return await self._watched(run, beat, self.stall_s)
        except (TimeoutError, BrokenProcessPool, Stalled) as exc:
            if self._pool is pool:
                self._kill_pool(pool)
                self._pool = self._new_pool()
            if isinstance(exc, Stalled):
                raise
            if isinstance(exc, TimeoutError):
                raise RuntimeError(
                    f"the backtest ran longer than {self.job_timeout_s:.0f} s and was stopped"
                ) from None
            raise WorkerLost("the backtest process died (out of memory?)") from None

    async def _watched(self, run: asyncio.Future[T], beat: Path, stall_s: float) -> T:
        """``run``'s result, or Stalled when ``beat`` goes ``stall_s`` without being touched (TimeoutError
        past ``job_timeout_s``)."""
        ends = time.monotonic() + self.job_timeout_s
        every = min(1.0, stall_s / 4)
        while True:
            done, _ = await asyncio.wait({run}, timeout=every)
            if done:
                return run.result()
            if time.monotonic() > ends:
                run.cancel()
                raise TimeoutError
            if time.time() - _touched(beat) > stall_s:
                run.cancel()
                raise Stalled(f"no progress for {stall_s:g} s")

    async def _trial(self, call: partial[list[dict[str, Any]]]) -> list[dict[str, Any]]:
        """An optimisation trial (``execute_stages``): without the count hook under the stall watchdog, and run
        again hooked (with the limits a backtest has) when it stalled or was not proved to be the hooked run
        (``Unverified``): an endless loop, a candle past the instruction limit, or any error, gets the hooked
        run's result and error."""
        if self.stall_s:
            import tempfile

            fd, name = tempfile.mkstemp(prefix="tradewind-trial-")
            os.close(fd)
            beat = Path(name)
            try:
                return await self._execute(partial(call, hooked=False, beat=name), beat=beat)
            except Stalled:
                self.stalled += 1
                log.info(
                    "backtest: a trial stalled for %s s without the hook; running it again hooked",
                    self.stall_s,
                )
            except Unverified:  # (a candle not proved within the limits, or an error: the hooked run tells)
                self.unverified += 1
            finally:
                _remove(beat)
        return await self._execute(call)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- candles ---------------------------------------------------------------------------------------------
    async def _stored(self, data: m.BacktestData) -> tuple[int, int | None]:
        """How many candles the range holds now, and the newest one's time: one indexed query."""
        if self.sf is None or data.market_id is None:
            return 0, None
        async with self.sf() as s:
            return await store.range_extent(s, data.market_id, data.tf, data.start, data.end)

    async def candles(self, data: m.BacktestData) -> dict[str, np.ndarray]:
        """The candles a job names, from the store (market, tf, [start, end)) or a file (path)."""
        return (await self._keyed_candles(data))[1]

    async def _keyed_candles(self, data: m.BacktestData) -> tuple[tuple[Any, ...], dict[str, np.ndarray]]:
        """``candles``, and a key naming them (the key they are cached under, and which load of it)."""
        if data.inline is not None:
            if len(data.inline) != 6 or not data.key:
                raise ValueError("inline candles are six arrays with a key")
            key: tuple[Any, ...] = ("inline", data.key)
        elif data.path is not None:
            key = ("file", data.path, await asyncio.to_thread(_mtime, data.path), data.tf)
        else:
            # Stored candles keep arriving (an open-ended range, or one ending in the future, grows): the key
            # holds what the range holds now, so a run never answers with candles cached before the newest.
            key = ("market", data.market_id, data.tf, data.start, data.end, *await self._stored(data))
        async with self._data_lock:  # one load per key even when jobs arrive together
            found = self._data.get(key)
            if found is not None:
                self._data.move_to_end(key)
                return (*key, self._loaded[key]), found
            if data.inline is not None:
                arrays = unpack_candles(data.inline)
            elif data.path is not None:
                from tradewind.backtest.importers import load

                arrays = (await asyncio.to_thread(load, data.path, data.tf)).arrays()
            else:
                arrays = await self._market_candles(data)
            self._data[key] = arrays
            # Which load of the key: a pool child keeps candles longer than this cache does, and must never
            # take the arrays of an earlier load for those of a later one (the same key, loaded again).
            self._loaded[key] = next(self._loads)
            while len(self._data) > DATA_CACHE:
                self._loaded.pop(self._data.popitem(last=False)[0], None)
            return (*key, self._loaded[key]), arrays

    async def _with_candles(
        self, key: str, arrays: dict[str, np.ndarray], run: Callable[[Candles], Awaitable[T]]
    ) -> T:
        """``run`` given the candles ``arrays``: named by ``key`` alone once a pool child has been sent them,
        and sent again with them when the child that takes the job does not hold them (another child, or a
        pool started again)."""
        if key in self._sent:
            self._sent.move_to_end(key)
            try:
                return await run(Candles(key))
            except NotHeld:
                pass
        self._sent[key] = None
        while len(self._sent) > 4 * HELD:
            self._sent.popitem(last=False)
        return await run(Candles(key, arrays))

    async def _market_candles(self, data: m.BacktestData) -> dict[str, np.ndarray]:
        """A market's candles in [start, end): from the history store (Parquet) where it holds them whole
        (``HistoryStore.whole``), from the database before and after (the candles stored live since the
        last download, a bucket the history only begins)."""
        from tradewind.marketdata.history import HistoryStore
        from tradewind.storage.models import Market

        if self.sf is None or data.market_id is None:
            raise ValueError("a backtest needs a market or a candle file")
        start, end, tf = data.start, data.end, data.tf
        history = HistoryStore.of(self.settings)
        parts: list[dict[str, np.ndarray]] = []
        async with self.sf() as s:
            market = await s.get(Market, data.market_id)
            span = None
            if market is not None:
                span = await asyncio.to_thread(history.whole, market.exchange, market.symbol, tf)
            if market is not None and span is not None:  # the history store's, and the database's around it
                lo, hi = max(span[0], start or span[0]), min(span[1], end or span[1])
                if lo < hi:
                    before = (
                        await store.candle_range(s, data.market_id, tf, start, lo)
                        if start is None or start < lo
                        else []
                    )
                    after = (
                        await store.candle_range(s, data.market_id, tf, hi, end)
                        if end is None or end > hi
                        else []
                    )
                    kept = await asyncio.to_thread(history.read, market.exchange, market.symbol, tf, lo, hi)
                    parts = [store.to_arrays(before), kept or {}, store.to_arrays(after)]
            if not parts:
                parts = [store.to_arrays(await store.candle_range(s, data.market_id, tf, start, end))]
        parts = [p for p in parts if p and len(p["time"])]
        if not parts:
            raise ValueError(f"no {tf} candles stored for market {data.market_id} in that range")
        if len(parts) == 1:
            return parts[0]
        return {k: np.concatenate([p[k] for p in parts]) for k in FIELDS}

    # -- sweep points ------------------------------------------------------------------------------------------
    async def _on_run(self, msg: Msg) -> None:
        job = _request(msg, m.RunBacktest, "job")
        if job is None:
            return
        beat = self._heartbeat(job, msg) if job.heartbeat_s > 0 and msg.reply else None
        try:
            await self._slots.acquire()  # a free child before the next job is taken off the subscription
        except BaseException:
            if beat is not None:
                beat.cancel()
            raise
        self._spawn(self._run_point(job, msg, beat))

    def _heartbeat(self, job: m.RunBacktest, msg: Msg) -> asyncio.Task[None]:
        """Tell the sender every ``job.heartbeat_s`` that the job is held here (waiting or running)."""

        async def beat() -> None:
            alive = m.encode(m.BacktestResult(job_id=job.job_id, worker=self.name, running=True))
            while True:
                try:
                    await self.nc.publish(msg.reply, alive)
                except Exception:  # the bus is reconnecting: the next beat may get through
                    log.debug("backtest: heartbeat of job %s not sent", job.job_id)
                await asyncio.sleep(job.heartbeat_s)

        task = asyncio.ensure_future(beat())
        self._tasks.add(task)  # stop() cancels it with the jobs
        task.add_done_callback(self._tasks.discard)
        return task

    async def _run_point(self, job: m.RunBacktest, msg: Msg, beat: asyncio.Task[None] | None = None) -> None:
        try:
            try:
                key, arrays = await self._keyed_candles(job.data)
                if job.upto is not None:
                    arrays = {k: v[: max(0, job.upto)] for k, v in arrays.items()}
                    key = (*key, "upto", job.upto)
                stages: list[dict[str, Any]] = []
                if job.stages:
                    settings = {
                        "cash": job.cash,
                        "fee": job.fee,
                        "maker_fee": job.maker_fee,
                        "slippage": job.slippage,
                        "lookback": job.lookback,
                    }

                    def trial(candles: Candles) -> Awaitable[list[dict[str, Any]]]:
                        return self._trial(
                            partial(
                                execute_stages,
                                job.code,
                                candles,
                                job.name,
                                dict(job.params),
                                settings,
                                list(job.stages),
                                job.key,
                                job.maximize,
                                list(job.floors),
                            )
                        )

                    stages = await self._with_candles(repr(key), arrays, trial)
                    summary = stages[-1]
                else:

                    def point(candles: Candles) -> Awaitable[dict[str, Any]]:
                        return self._execute(
                            partial(
                                execute,
                                job.code,
                                candles,
                                job.name,
                                dict(job.params),
                                job.cash,
                                job.fee,
                                job.slippage,
                                job.lookback,
                                job.trades,
                                job.maker_fee,
                            )
                        )

                    out = await self._with_candles(repr(key), arrays, point)
                    summary = out["summary"]
                reply = m.BacktestResult(
                    job_id=job.job_id,
                    worker=self.name,
                    summary=summary,
                    error=summary.get("error"),
                    stages=stages,
                )
                RUNS.labels("sweep", "error" if reply.error else "done").inc()
            except (OSError, ValueError, RuntimeError) as exc:
                reply = m.BacktestResult(
                    job_id=job.job_id, worker=self.name, error=str(exc), retry=isinstance(exc, WorkerLost)
                )
                RUNS.labels("sweep", "failed").inc()
            self.jobs_done += 1
            if beat is not None:
                beat.cancel()
            if msg.reply:
                await msg.respond(m.encode(reply))
        except Exception:
            log.exception("backtest: job %s failed", job.job_id)
        finally:
            if beat is not None:
                beat.cancel()
            self._slots.release()

    # -- optimisation studies (the API) ------------------------------------------------------------------------
    async def _on_study(self, msg: Msg) -> None:
        req = _request(msg, m.StartStudy, "study request")
        if req is None:
            return
        if msg.reply:
            await msg.respond(m.encode(m.StudyAccepted(study_id=req.study_id, worker=self.name)))
        # no slot: the driver only asks and tells; its trials take slots here and on the other workers
        self._spawn(
            self._logged(f"study {req.study_id}", partial(self._drive_study, req.study_id), slot=False)
        )

    async def _drive_study(self, study_id: int) -> None:
        from tradewind.backtest import studies

        await studies.drive(self, study_id)

    # -- walk-forward analyses (the API) ------------------------------------------------------------------------
    async def _on_walkforward(self, msg: Msg) -> None:
        req = _request(msg, m.StartWalkForward, "walk-forward request")
        if req is None:
            return
        if msg.reply:
            await msg.respond(
                m.encode(m.WalkForwardAccepted(walkforward_id=req.walkforward_id, worker=self.name))
            )
        await self._slots.acquire()  # the whole analysis runs in one child
        wf_id = req.walkforward_id
        self._spawn(self._logged(f"walk-forward {wf_id}", partial(self._run_walkforward, wf_id), slot=True))

    async def _run_walkforward(self, walkforward_id: int) -> None:
        from tradewind.backtest import walkforwards

        await walkforwards.drive(self, walkforward_id)

    async def _logged(self, what: str, job: Callable[[], Awaitable[None]], *, slot: bool) -> None:
        """Run ``job`` (a stored run's), logging its failure as ``what`` failed; with ``slot``, the slot
        taken for it is released when it ends."""
        try:
            await job()
        except Exception:
            log.exception("%s failed", what)
        finally:
            if slot:
                self._slots.release()

    async def _on_capacity(self, msg: Msg) -> None:
        if msg.reply:
            await msg.respond(m.encode(m.WorkerCapacity(worker=self.name, processes=self.processes)))

    # -- stored backtests (the API) -------------------------------------------------------------------------
    async def _on_start(self, msg: Msg) -> None:
        req = _request(msg, m.StartBacktest, "start request")
        if req is None:
            return
        if msg.reply:
            await msg.respond(m.encode(m.BacktestAccepted(backtest_id=req.backtest_id, worker=self.name)))
        await self._slots.acquire()
        bt_id = req.backtest_id
        self._spawn(self._logged(f"backtest {bt_id}", partial(self.run_stored, bt_id), slot=True))

    async def run_stored(self, backtest_id: int) -> None:
        """Run the stored backtest ``backtest_id``: status running, then done (or error) with its result."""
        assert self.sf is not None
        async with self.sf() as s:
            claimed = await claim(s, Backtest, backtest_id, ("queued", "running"))
            if claimed is None:
                return
            bt, row = claimed
            if row is not None and bt.code is not None:  # the editor's code, not saved as a version
                row = (bt.code, row[1])
            bt.status = "running"
            await s.commit()
            cfg = dict(bt.config or {})
            data = stored_data(bt)
            params = dict(bt.params or {})
        status, result, error = "error", None, None
        try:
            if row is None:
                raise ValueError("the strategy version no longer exists")
            code, name = row
            from tradewind.backtest import quotes  # (the parent loads the sandbox only once it is needed)

            # whether it quotes is asked of the strategy's code: in a child, as every Lua call
            if await self._execute(partial(quotes.quoting, code, name, cfg.get("trigger"))):
                result = await self._quote_run(code, name, params, cfg, data)
            else:
                result = await self._decide_run(code, name, params, cfg, data)
            error = result["metrics"].get("error")
            status = "error" if error else "done"
        except (OSError, ValueError, RuntimeError) as exc:
            error = str(exc)
        RUNS.labels("api", status).inc()
        self.jobs_done += 1
        async with self.sf() as s:
            ended = await s.get(Backtest, backtest_id)
            if ended is not None:
                ended.status, ended.result, ended.error, ended.finished_at = status, result, error, utcnow()
                await s.commit()

    async def _decide_run(
        self, code: str, name: str, params: dict[str, Any], cfg: dict[str, Any], data: m.BacktestData
    ) -> dict[str, Any]:
        """A stored backtest of ``decide``: its metrics, trades and equity curve."""
        arrays = await self.candles(data)
        maker = cfg.get("maker_fee")
        out = await self._execute(
            partial(
                execute,
                code,
                arrays,
                name,
                params,
                float(cfg.get("cash", 10_000.0)),
                float(cfg.get("fee", 0.001)),
                float(cfg.get("slippage", 0.0)),
                int(cfg.get("lookback", 500)),
                True,
                None if maker is None else float(maker),
            )
        )
        summary = out["summary"]
        trades = summary.pop("trades")
        return {
            "metrics": summary,
            "trades": trades,
            "equity": out["equity"],
            "buy_and_hold": out["buy_and_hold"],
            "plot": out["plot"],
        }

    async def _quote_run(
        self, code: str, name: str, params: dict[str, Any], cfg: dict[str, Any], data: m.BacktestData
    ) -> dict[str, Any]:
        """A stored backtest of ``on_tick``: on the market's ticks in the range when any are stored, else on its
        candles with a synthetic spread. Its metrics (the settings it ran with among them), fills, mode and
        equity curve."""
        from tradewind.backtest import quotes
        from tradewind.domain import tf_ms

        lookback = int(cfg.get("lookback", 500))
        ticks: dict[str, np.ndarray] | None = None
        stored = await self.tick_data(data, lookback)
        if stored is None:
            candles = await self.candles(data)
        else:
            candles, ticks = stored
        spread = cfg.get("spread_bps")
        spread_bps = quotes.DEFAULT_SPREAD_BPS if spread is None else float(spread)
        interval = cfg.get("min_interval_ms")
        min_interval_ms = quotes.DEFAULT_MIN_INTERVAL_MS if interval is None else int(interval)
        maker, most = cfg.get("maker_fee"), cfg.get("max_position")
        summary = await self._execute(
            partial(
                execute_quotes,
                code,
                candles,
                ticks,
                name,
                params,
                cash=float(cfg.get("cash", 10_000.0)),
                fee=float(cfg.get("fee", 0.001)),
                maker_fee=None if maker is None else float(maker),
                slippage=float(cfg.get("slippage", 0.0)),
                lookback=lookback,
                tf_ms=tf_ms(data.tf),
                spread_bps=spread_bps,
                max_position=None if most is None else float(most),
                min_interval_ms=min_interval_ms,
            )
        )
        fills, equity = summary.pop("trades"), summary.pop("equity")
        if summary["mode"] == quotes.CANDLES:
            summary["spread_bps"] = spread_bps
        else:
            summary["min_interval_ms"] = min_interval_ms
        summary["max_position"] = None if most is None else float(most)
        return {"mode": summary["mode"], "metrics": summary, "fills": fills, "equity": equity}

    async def tick_data(
        self, data: m.BacktestData, lookback: int
    ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]] | None:
        """The candles the windows of the job's stored ticks need and those ticks, of its market in its
        range (``quotes.stored_tick_data``); None when no tick is stored there."""
        from tradewind.backtest import quotes

        if self.sf is None or data.market_id is None:
            raise ValueError("a backtest needs a market or a candle file")
        async with self.sf() as s:
            candles, ticks = await quotes.stored_tick_data(
                s, data.market_id, data.tf, data.start, data.end, lookback
            )
        if not len(ticks["time"]):
            return None
        if candles is None:
            raise ValueError(
                f"no {data.tf} candles stored for market {data.market_id} around its ticks: on_tick's "
                "window needs them"
            )
        return candles, ticks
