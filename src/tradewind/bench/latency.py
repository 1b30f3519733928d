"""Tick -> order-call latency against the number of active assignments.

Starts the platform (embedded unless TRADEWIND_NATS_URL / TRADEWIND_DATABASE_URL say otherwise), adds
assignments of a strategy that changes position on every candle, lets the sim exchange publish one
candle per market per second, and reads the latency core stamped on every order it placed.

With ``outside`` (benchmarks/scale_out.py), the eval workers run elsewhere: the bench starts NATS, the
database, core and the sim exchange, and hands the NATS URL and the settings to ``outside``, which starts
workers as processes of their own (``tradewind run eval``) and may act while a load is measured.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import statistics
import tempfile
import time
from collections.abc import Callable, Coroutine
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, Protocol, TypeVar

from nats.js.errors import NotFoundError
from sqlalchemy import func, select, update

from tradewind.bus import messages as m
from tradewind.bus import subjects
from tradewind.bus.connection import connect
from tradewind.config import Settings, load_settings
from tradewind.core.leader import BUCKET as LEADER_BUCKET
from tradewind.runtime import (
    Stack,
    open_database,
    open_nats,
    settle_heap,
    start_core,
    start_eval,
    start_exchange,
)
from tradewind.storage import models
from tradewind.storage.db import SessionFactory

FLIP = """
-- changes position on every candle: long on even minutes, short on odd ones
function decide(c, params)
  local t = c.time[#c.time] // 60000
  if t % 2 == 0 then return "long" end
  return "short"
end
"""
QUOTER = """
-- quotes one bid 1 % under the mid: a new price on every tick, so every evaluation replaces its quote
function on_tick(t, c, params)
  local mid = (t.bid + t.ask) / 2
  return {quotes = {{side = "buy", price = mid * 0.99, amount = params.amount or 0.0001}}}
end
"""
log = logging.getLogger(__name__)
T = TypeVar("T")
SYMBOLS = ["BTC/USD", "ETH/USD", "SOL/USD", "XRP/USD", "ADA/USD", "DOGE/USD", "LTC/USD", "DOT/USD"]
PER_ACCOUNT = 50


@dataclass
class LoadResult:
    assignments: int
    p50_ms: float
    p99_ms: float
    max_ms: float
    evaluations_per_s: float
    orders: int
    candles: int
    # with ``window``: (first candle of the window, counted from 1, p50 ms, p99 ms) for each window of candles
    windows: list[tuple[int, float, float]] = field(default_factory=list)
    # evaluations stored for the measured candles, and how many there should be (assignments x candles
    # measured; candle trigger only): fewer means evaluations were lost
    evaluations: int = 0
    expected_evaluations: int = 0


class Outside(Protocol):
    """Components the bench does not run in its own process (eval workers, benchmarks/scale_out.py)."""

    async def start(self, nats_url: str, settings: Settings) -> None:
        """Start them against this NATS server and ``settings.db_url``; return once they serve."""

    async def measuring(self, assignments: int) -> None:
        """The warm-up of this load is over: its measured candles start now (candle trigger only)."""

    async def measured(self, assignments: int) -> None:
        """Its last measured candle has been handled."""

    async def stop(self) -> None:
        """Stop them (before the bench stops NATS and the database)."""


def run(main: Coroutine[Any, Any, T], grace_s: float = 10.0) -> T:
    """``asyncio.run(main)``, except that tasks still running once ``main`` has stopped the platform get
    ``grace_s`` to end on cancellation and are then left behind, named in a warning. asyncio.run waits for
    them for ever: at 10,000 assignments embedded, after core lost its lease under load, one such task
    kept `tradewind bench latency` from exiting after it had its figures."""
    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(main)
    finally:
        try:
            left = asyncio.all_tasks(loop)
            for task in left:
                task.cancel()
            if left:
                _, pending = loop.run_until_complete(asyncio.wait(left, timeout=grace_s))
                for task in pending:
                    log.warning(
                        "left running after the bench stopped: %s %r", task.get_name(), task.get_coro()
                    )
            loop.run_until_complete(asyncio.wait_for(loop.shutdown_asyncgens(), grace_s))
            loop.run_until_complete(asyncio.wait_for(loop.shutdown_default_executor(), grace_s))
        except (TimeoutError, RuntimeError):
            log.warning("the bench's event loop did not shut down cleanly", exc_info=True)
        finally:
            loop.close()


def _windows(timed: list[tuple[int, float]], first: int, size: int) -> list[tuple[int, float, float]]:
    """p50 and p99 of the order latencies of each ``size`` candles after ``first`` (candle times, 1m)."""
    groups: dict[int, list[float]] = {}
    for candle_time, ms in timed:
        groups.setdefault((candle_time - first - 60_000) // 60_000 // size, []).append(ms)
    return [
        (k * size + 1, round(statistics.median(v), 2), round(percentile(v, 0.99), 2))
        for k, v in sorted(groups.items())
    ]


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, round(q * (len(ordered) - 1))))
    return ordered[k]


async def populate(
    sf: SessionFactory, n: int, markets: list[int], tag: str, trigger: str = "candle"
) -> list[int]:
    tick = trigger == "tick"
    async with sf() as s:
        user = models.User(email=f"bench-{tag}@example.com", password_hash="!")
        s.add(user)
        await s.flush()
        strategy = models.Strategy(owner_id=user.id, name="quoter" if tick else "flip", latest_version=1)
        s.add(strategy)
        await s.flush()
        s.add(models.StrategyVersion(strategy_id=strategy.id, version=1, code=QUOTER if tick else FLIP))
        traders = []
        for _ in range((n + PER_ACCOUNT - 1) // PER_ACCOUNT):
            t = models.Trader(owner_id=user.id, name="bench paper", exchange="sim", paper=True)
            s.add(t)
            traders.append(t)
        await s.flush()
        ids: list[int] = []
        # Flushed 500 at a time: one flush of 10,000 objects holds the event loop this process shares with
        # core for seconds (core lost its leader lease while 10,000 were set up before; not since).
        for start in range(0, n, 500):
            rows = [
                models.Assignment(
                    owner_id=user.id,
                    strategy_id=strategy.id,
                    market_id=markets[i % len(markets)],
                    timeframe="1m",
                    trader_id=traders[i // PER_ACCOUNT].id,
                    allocation=Decimal("100"),
                    params={},
                    lookback=50,
                    trigger=trigger,
                    min_interval_ms=100,
                )
                for i in range(start, min(n, start + 500))
            ]
            s.add_all(rows)
            await s.flush()
            ids += [a.id for a in rows]
            await asyncio.sleep(0)
        await s.commit()
        return ids


async def run_latency(
    loads: list[int],
    markets: int = 1,
    workers: int = 1,
    candles: int = 20,
    warmup: int = 3,
    speed: float = 60.0,
    data_dir: Path | None = None,
    progress: Callable[[str], None] | None = None,
    trigger: str = "candle",
    window: int = 0,
    database_url: str | None = None,
    outside: Outside | None = None,
) -> list[LoadResult]:
    """``trigger`` "tick": quoting assignments on the sim's ticks (one a second per market, each moving the
    book, so every evaluation replaces a quote); ``candles`` is then the number of seconds measured, and
    the latency is from a tick's receipt to the order call of the quote it caused. ``workers`` eval workers
    run in this process (0 with ``outside`` running them); ``database_url`` overrides
    TRADEWIND_DATABASE_URL."""
    tick = trigger == "tick"
    tmp = None
    if data_dir is None:
        tmp = tempfile.TemporaryDirectory(prefix="tradewind-bench-")
        data_dir = Path(tmp.name)
    # Explicit overrides; TRADEWIND_NATS_URL / TRADEWIND_DATABASE_URL still come from the environment.
    overrides = dict(sim_speed=speed, history_days=0)
    if tick:  # real time, a tick a second; a day of history, so the strategies have a window at once
        overrides = dict(
            sim_speed=1.0, history_days=1, sim_tick_ms=1000, quote_rate_per_s=10_000, quote_burst=100_000
        )
    if database_url:
        overrides["database_url"] = database_url  # type: ignore[assignment]
    settings = load_settings(
        data_dir=data_dir,
        sim_symbols=SYMBOLS[:markets],
        eval_workers=workers,
        sim_paper_cash="1000000000",
        exchanges=["sim"],
        **overrides,
    )
    stack = Stack()
    results: list[LoadResult] = []
    if settings.nats_url:
        await _refuse_a_stream_in_use(settings.nats_url)
    started = False
    outside_started = False
    try:
        url = await open_nats(settings, stack)
        sf = await open_database(settings, stack, migrate=True)
        await _refuse_a_database_in_use(sf)
        started = True
        for i in range(workers):
            await start_eval(settings, url, sf, stack, i)
        if outside is not None:
            outside_started = True
            await outside.start(url, settings)
        await start_core(settings, url, sf, stack)
        await start_exchange(settings, "sim", url, sf, stack)
        nc = await connect(url, "bench")
        stack.stoppers.append(nc.drain)
        settle_heap()
        async with sf() as s:
            market_ids = list(
                (await s.execute(select(models.Market.id).where(models.Market.exchange == "sim"))).scalars()
            )
        for n in loads:
            if progress:
                progress(f"{n} assignments: setting up")
            ids = await populate(sf, n, market_ids, f"{n}-{time.time_ns()}", trigger)
            await nc.publish(subjects.ASSIGNMENTS_CHANGED, m.encode(m.AssignmentsChanged()))
            windows: list[tuple[int, float, float]] = []
            expected = 0
            if tick:
                lat, evals, elapsed = await _measure_ticks(sf, ids, warmup, candles)
            else:
                await evaluated(sf, ids[0])  # core has them: their Lua states are made on their first candle
                measured = await measure_orders(
                    sf, ids, market_ids, warmup, candles, speed, outside=outside, assignments=n
                )
                lat, evals, elapsed = measured.latencies, measured.evaluations, measured.elapsed_s
                windows = _windows(measured.timed, measured.first, window) if window else []
                expected = n * ((measured.last - measured.first) // 60_000)
            async with sf() as s:
                await s.execute(
                    update(models.Assignment).where(models.Assignment.id.in_(ids)).values(enabled=False)
                )
                await s.commit()
            await nc.publish(subjects.ASSIGNMENTS_CHANGED, m.encode(m.AssignmentsChanged()))
            result = LoadResult(
                assignments=n,
                p50_ms=round(statistics.median(lat), 2) if lat else float("nan"),
                p99_ms=round(percentile(lat, 0.99), 2),
                max_ms=round(max(lat), 2) if lat else float("nan"),
                evaluations_per_s=round(evals / elapsed, 1),
                orders=len(lat),
                candles=candles,
                windows=windows,
                evaluations=evals,
                expected_evaluations=expected,
            )
            results.append(result)
            if progress:
                progress(
                    f"{n} assignments: p50 {result.p50_ms} ms, p99 {result.p99_ms} ms, max {result.max_ms} ms"
                )
            await asyncio.sleep(2)
    finally:
        if outside is not None and outside_started:
            await outside.stop()
        await stack.close()
        if settings.nats_url and started:
            await _remove_what_the_bench_left(settings.nats_url)
        if tmp is not None:
            tmp.cleanup()
    return results


async def _measure_ticks(
    sf: SessionFactory, ids: list[int], warmup: int, seconds: int
) -> tuple[list[float], int, float]:
    """Quotes placed by the assignments after ``warmup`` seconds, for ``seconds``: their latencies, how many,
    and the seconds measured."""
    first_quote = (
        select(func.count())
        .select_from(models.Order)
        .where(models.Order.assignment_id == ids[-1], models.Order.type == "quote")
    )
    while True:  # every assignment is in core's index once the last one has quoted
        async with sf() as s:
            if (await s.execute(first_quote)).scalar_one():
                break
        await asyncio.sleep(0.2)
    await asyncio.sleep(warmup)
    async with sf() as s:
        start_id = (await s.execute(select(func.max(models.Order.id)))).scalar_one() or 0
    t0 = time.monotonic()
    await asyncio.sleep(seconds)
    async with sf() as s:
        end_id = (await s.execute(select(func.max(models.Order.id)))).scalar_one() or 0
    elapsed = time.monotonic() - t0
    await asyncio.sleep(1.5)  # the last quotes' calls are stamped
    async with sf() as s:
        lat = list(
            (
                await s.execute(
                    select(models.Order.latency_ms).where(
                        models.Order.assignment_id.in_(ids),
                        models.Order.id > start_id,
                        models.Order.id <= end_id,
                        models.Order.type == "quote",
                        models.Order.latency_ms.is_not(None),
                    )
                )
            ).scalars()
        )
    return [float(ms) for ms in lat if ms is not None], len(lat), elapsed


class BenchRefused(Exception):
    """The bench was pointed at a NATS server or a database that something else uses."""


async def _refuse_a_stream_in_use(url: str) -> None:
    """The bench's simulated candles would reach any core consuming this stream, and its core would take
    that core's candles: it runs only on a NATS server whose market-data stream is empty or absent."""
    nc = await connect(url, "bench-check")
    try:
        info = await nc.jetstream().stream_info(subjects.MD_STREAM)
    except NotFoundError:
        return
    finally:
        await nc.close()
    if info.state.messages:
        raise BenchRefused(
            f"the NATS server at {url} already holds {info.state.messages} candle{'s' * (info.state.messages != 1)} "
            "on the market-data stream: "
            "run the bench against a NATS server (and a database) of its own"
        )


async def _refuse_a_database_in_use(sf: SessionFactory) -> None:
    """Core evaluates every enabled assignment it finds: other users' would run on the bench's candles."""
    async with sf() as s:
        found = (
            await s.execute(
                select(func.count()).select_from(models.Assignment).where(models.Assignment.enabled.is_(True))
            )
        ).scalar_one()
    if found:
        raise BenchRefused(
            f"the database already has {found} active assignments: run the bench on a database of its own"
        )


async def _remove_what_the_bench_left(url: str) -> None:
    """The stream of simulated candles and the leader lease, so the server is left as the bench found it."""
    nc = await connect(url, "bench-cleanup")
    js = nc.jetstream()
    for name in (subjects.MD_STREAM, f"KV_{LEADER_BUCKET}"):
        with contextlib.suppress(NotFoundError):
            await js.delete_stream(name)
    await nc.close()


@dataclass
class Measured:
    """The orders of some candles: each (candle time, latency ms), and the evaluations they came from."""

    timed: list[tuple[int, float]]
    first: int  # the candle before the first one measured
    last: int
    elapsed_s: float
    evaluations: int

    @property
    def latencies(self) -> list[float]:
        return [ms for _, ms in self.timed]


async def measure_orders(
    sf: SessionFactory,
    ids: list[int],
    market_ids: list[int],
    warmup: int,
    candles: int,
    speed: float,
    outside: Outside | None = None,
    assignments: int = 0,
) -> Measured:
    """Skip ``warmup`` candles, then read the tick -> order latency core stamped on each order of the
    assignments ``ids`` over the next ``candles`` candles, and count their evaluations."""
    first = await _next_candle_time(sf, market_ids, warmup)
    if outside is not None:
        await outside.measuring(assignments)
    t0 = time.monotonic()
    last = await _next_candle_time(sf, market_ids, candles)
    elapsed = time.monotonic() - t0
    await asyncio.sleep(max(1.5, 60.0 / speed))  # let the last candle's orders be stamped
    if outside is not None:
        await outside.measured(assignments)
    async with sf() as s:
        timed = (
            await s.execute(
                select(models.Order.candle_time, models.Order.latency_ms).where(
                    models.Order.assignment_id.in_(ids),
                    models.Order.candle_time > first,
                    models.Order.candle_time <= last,
                    models.Order.latency_ms.is_not(None),
                )
            )
        ).all()
        evals = (
            await s.execute(
                select(func.count())
                .select_from(models.Evaluation)
                .where(
                    models.Evaluation.assignment_id.in_(ids),
                    models.Evaluation.candle_time > first,
                    models.Evaluation.candle_time <= last,
                )
            )
        ).scalar_one()
    pairs = [(int(t), float(ms)) for t, ms in timed if t is not None and ms is not None]
    return Measured(pairs, first, last, elapsed, int(evals))


async def evaluated(sf: SessionFactory, assignment_id: int) -> None:
    """Wait for the assignment's first evaluation."""
    q = (
        select(func.count())
        .select_from(models.Evaluation)
        .where(models.Evaluation.assignment_id == assignment_id)
    )
    while True:
        async with sf() as s:
            if (await s.execute(q)).scalar_one():
                return
        await asyncio.sleep(0.2)


async def _next_candle_time(sf: SessionFactory, market_ids: list[int], count: int) -> int:
    """Wait until ``count`` more 1m candles are stored for the first market; return the last one's time."""

    async def latest() -> int:
        async with sf() as s:
            q = select(func.max(models.CandleRow.time)).where(
                models.CandleRow.market_id == market_ids[0], models.CandleRow.tf == "1m"
            )
            return (await s.execute(q)).scalar_one_or_none() or 0

    start = await latest()
    target = start + count * 60_000
    while (now := await latest()) < target:
        await asyncio.sleep(0.2)
    return now


def as_json(results: list[LoadResult]) -> dict[str, list[dict[str, float]]]:
    return {"results": [asdict(r) for r in results]}


def plot(results: list[LoadResult], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    xs = [r.assignments for r in results]
    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=110)
    ax.plot(xs, [r.p50_ms for r in results], "o-", label="p50")
    ax.plot(xs, [r.p99_ms for r in results], "s-", label="p99")
    ax.plot(xs, [r.max_ms for r in results], "^--", label="max", alpha=0.6)
    ax.axhline(100, color="grey", lw=0.8, ls=":", label="p99 target (100 ms)")
    if min(xs) > 0 and len(set(xs)) > 1:
        ax.set_xscale("log")
    ax.set_xlabel("active assignments")
    ax.set_ylabel("tick → order call (ms)")
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
