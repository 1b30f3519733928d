"""The eval worker: answers evaluation batches in a NATS queue group.

It keeps a candle window per market and timeframe, fed by core's accepted candles (and read from the
store when it is missing or behind), and the code of each strategy version it has seen. Lua runs in
an ``Executor`` child process that it kills when a strategy overruns its wall-clock limit.

A request with a tick is a batch of ``on_tick`` evaluations on that tick, each with its assignment's state;
its window ends at the candle it names, or at the newest closed candle the worker has (``candle_time`` 0).
"""

from __future__ import annotations

import asyncio
import bisect
import logging
import time
from typing import Any

from nats.aio.client import Client
from nats.aio.msg import Msg
from prometheus_client import Counter
from sqlalchemy import select, tuple_

from tradewind.bus import messages as m
from tradewind.bus import subjects
from tradewind.bus.connection import unsubscribe_all
from tradewind.config import Settings
from tradewind.domain import market_key, tf_ms
from tradewind.eval.executor import Executor, Job
from tradewind.sandbox.runtime import Limits
from tradewind.sandbox.window import CandleWindow
from tradewind.storage import candles as store
from tradewind.storage.db import SessionFactory
from tradewind.storage.models import Market, Strategy, StrategyVersion

log = logging.getLogger(__name__)
MAX_LOOKBACK = 5000
EVALS = Counter("tradewind_eval_evaluations_total", "Evaluations run by this worker", ["status"])
BATCHES = Counter("tradewind_eval_batches_total", "Evaluation batches answered by this worker")

Row = tuple[int, float, float, float, float, float]


class _Series:
    """The newest candles of one market and timeframe, oldest first."""

    def __init__(self, rows: list[Row], exhaustive: bool) -> None:
        self.rows = rows
        self.exhaustive = exhaustive  # the store has no older candles than these
        self.windows: dict[int, CandleWindow] = {}  # by last candle time


class WindowCache:
    def __init__(self, sf: SessionFactory) -> None:
        self.sf = sf
        self._series: dict[tuple[str, str, str], _Series] = {}
        self._markets: dict[tuple[str, str], int] = {}
        self._arrived = asyncio.Condition()

    async def on_candle(self, c: m.Candle) -> None:
        key = (c.exchange, c.symbol, c.tf)
        s = self._series.get(key)
        if s is None or not c.closed:
            return
        row = (c.time, c.open, c.high, c.low, c.close, c.volume)
        last = s.rows[-1][0] if s.rows else None
        if last is not None and c.time <= last:
            i = bisect.bisect_left(s.rows, (c.time,))
            if i < len(s.rows) and s.rows[i] == row:
                return  # seen already
            # A late or corrected candle (given back by the stream after a failover, or a derived candle closed
            # again whole): the rows here would miss it, so the next window is read from the store.
            del self._series[key]
        elif last is not None and c.time != last + tf_ms(c.tf):
            # A hole (this worker missed candles, or the exchange skipped some): start again from the store.
            del self._series[key]
        else:
            s.rows.append(row)
            if len(s.rows) > 2 * MAX_LOOKBACK:
                del s.rows[:MAX_LOOKBACK]
                s.exhaustive = False
        async with self._arrived:
            self._arrived.notify_all()

    async def window(
        self, exchange: str, symbol: str, tf: str, candle_time: int, lookback: int
    ) -> CandleWindow:
        """The candles up to and including ``candle_time``, at most ``lookback`` of them."""
        key = (exchange, symbol, tf)
        s = self._series.get(key)
        if s is not None and s.rows and s.rows[-1][0] < candle_time:
            # core publishes the candle before it asks: it is on its way to us.
            try:
                async with self._arrived:
                    await asyncio.wait_for(
                        self._arrived.wait_for(lambda: self._last(key) >= candle_time), 0.2
                    )
            except TimeoutError:
                pass
            s = self._series.get(key)
        name = f"{market_key(exchange, symbol)}:{tf}"
        if (
            s is not None
            and s.rows
            and s.rows[-1][0] == candle_time
            and (len(s.rows) >= lookback or s.exhaustive)
        ):
            w = s.windows.get(candle_time)
            if w is None:
                w = CandleWindow.from_rows(s.rows[-MAX_LOOKBACK:], name)
                s.windows = {candle_time: w}
            return w.tail(lookback)
        limit = max(lookback, 500)
        rows = await self._load(exchange, symbol, tf, candle_time, limit)
        if rows and rows[-1][0] == candle_time and self._last(key) <= candle_time:
            self._series[key] = _Series(rows, exhaustive=len(rows) < limit)
        return CandleWindow.from_rows(rows[-lookback:], name)

    async def latest(self, exchange: str, symbol: str, tf: str, lookback: int, now: int = 0) -> CandleWindow:
        """The candles up to the newest closed one this cache has of the market, at most ``lookback`` of
        them (a tick evaluation's window). Without any, the newest in the store: those whose period has not
        ended by ``now`` (the venue's time, epoch ms; 0: unknown) are left out, since the store keeps the
        partial last bucket of a derived timeframe. Empty when the store has none."""
        last = self._last((exchange, symbol, tf))
        if not last:
            rows = await self._load(exchange, symbol, tf, None, 2)
            if now:
                rows = [r for r in rows if r[0] + tf_ms(tf) <= now]
            if not rows:
                return CandleWindow.from_rows([], f"{market_key(exchange, symbol)}:{tf}")
            last = rows[-1][0]
        return await self.window(exchange, symbol, tf, last, lookback)

    def _last(self, key: tuple[str, str, str]) -> int:
        s = self._series.get(key)
        return s.rows[-1][0] if s and s.rows else 0

    async def _load(
        self, exchange: str, symbol: str, tf: str, candle_time: int | None, lookback: int
    ) -> list[Row]:
        """The newest ``lookback`` candles up to ``candle_time`` (None: the newest stored), oldest first."""
        async with self.sf() as session:
            mid = self._markets.get((exchange, symbol))
            if mid is None:
                mid = (
                    await session.execute(
                        select(Market.id).where(Market.exchange == exchange, Market.symbol == symbol)
                    )
                ).scalar_one_or_none()
                if mid is None:
                    return []
                self._markets[(exchange, symbol)] = mid
            return await store.last_candles(
                session,
                mid,
                tf,
                min(lookback, MAX_LOOKBACK),
                before=None if candle_time is None else candle_time + 1,
            )


class EvalWorker:
    def __init__(
        self, settings: Settings, nc: Client, session_factory: SessionFactory, name: str = "eval"
    ) -> None:
        self.settings = settings
        self.nc = nc
        self.sf = session_factory
        self.name = name
        self.limits = Limits.from_settings(settings)
        self.executor = Executor(self.limits)
        self.windows = WindowCache(session_factory)
        self._codes: dict[tuple[int, int], str] = {}
        self._names: dict[int, str] = {}
        self._owners: dict[int, int] = {}  # strategy -> its owner
        self._subs: list[Any] = []

    async def start(self) -> None:
        await self.executor.start()
        self._subs.append(await self.nc.subscribe(subjects.CORE_CANDLES_ALL, cb=self._on_candle))
        self._subs.append(
            await self.nc.subscribe(subjects.EVAL_RUN, queue=subjects.EVAL_QUEUE, cb=self._on_request)
        )

    async def stop(self) -> None:
        subs, self._subs = self._subs, []
        await unsubscribe_all(subs)
        await self.executor.close()

    async def _on_candle(self, msg: Msg) -> None:
        try:
            await self.windows.on_candle(m.decode(msg.data, m.Candle))
        except Exception:
            log.exception("eval: bad candle message")

    async def _codes_for(self, jobs: list[m.EvalJob]) -> dict[tuple[int, int], str]:
        missing = {(j.strategy_id, j.version) for j in jobs} - self._codes.keys()
        if missing:
            async with self.sf() as s:
                rows = (
                    await s.execute(
                        select(
                            StrategyVersion.strategy_id,
                            StrategyVersion.version,
                            StrategyVersion.code,
                            Strategy.name,
                            Strategy.owner_id,
                        )
                        .join(Strategy, Strategy.id == StrategyVersion.strategy_id)
                        .where(
                            tuple_(StrategyVersion.strategy_id, StrategyVersion.version).in_(list(missing))
                        )
                    )
                ).all()
            for sid, ver, code, name, owner in rows:
                self._codes[(sid, ver)] = code
                self._names[sid] = name
                self._owners[sid] = owner  # a strategy never changes hands
        return {
            (j.strategy_id, j.version): self._codes[(j.strategy_id, j.version)]
            for j in jobs
            if (j.strategy_id, j.version) in self._codes
        }

    async def _on_request(self, msg: Msg) -> None:
        received = time.time_ns()
        try:
            req = m.decode(msg.data, m.EvalRequest)
        except Exception:
            log.warning("eval: malformed request")
            return
        try:
            reply = await self.run(req)
        except Exception:
            log.exception("eval: batch for %s %s %s failed", req.exchange, req.symbol, req.candle_time)
            return  # no answer: core retries on another worker
        reply = m.EvalReply(
            outcomes=reply.outcomes,
            worker=self.name,
            queue_wait_us=max(0, (received - req.sent_ns) // 1000) if req.sent_ns else 0,
        )
        if msg.reply:
            await msg.respond(m.encode(reply))
        BATCHES.inc()

    async def run(self, req: m.EvalRequest) -> m.EvalReply:
        lookback = min(MAX_LOOKBACK, max((j.lookback for j in req.jobs), default=500))
        tick, candle_time = req.tick, req.candle_time
        if tick is not None and not candle_time:  # on the newest closed candle this worker has
            window = await self.windows.latest(req.exchange, req.symbol, req.tf, lookback, now=tick.time)
            candle_time = window.last_time
        else:
            window = await self.windows.window(req.exchange, req.symbol, req.tf, candle_time, lookback)
        codes = await self._codes_for(req.jobs)
        # A worker runs a strategy only for its owner, whatever core asked: another user's code (and what
        # it prints) never runs for an assignment that is not theirs.
        foreign = [
            j
            for j in req.jobs
            if j.owner_id is None or self._owners.get(j.strategy_id) not in (None, j.owner_id)
        ]
        refused = {j.assignment_id for j in foreign}
        if refused:
            log.error("eval: refused %d jobs whose strategy is not their assignment owner's", len(refused))
        refused_outcomes = [
            m.EvalOutcome(
                assignment_id=j.assignment_id,
                status="error",
                error="this strategy does not belong to the assignment's owner",
            )
            for j in foreign
        ]
        # a tick request: every job is an on_tick evaluation on its tick, with its assignment's state
        jobs = [
            Job(
                j.assignment_id,
                j.strategy_id,
                j.version,
                self._names.get(j.strategy_id, f"#{j.strategy_id}"),
                dict(j.params),
                max(1, min(j.lookback, MAX_LOOKBACK)),
                tick,
                None if tick is None else j.state,
            )
            for j in req.jobs
            if j.assignment_id not in refused
        ]
        if not len(window) or window.last_time != candle_time:
            missing = (
                f"no closed candle of {req.symbol} {req.tf} yet"
                if not candle_time
                else f"no candle at {candle_time} for {req.symbol} {req.tf}"
            )
            outcomes = [
                m.EvalOutcome(assignment_id=j.assignment_id, status="error", error=missing) for j in jobs
            ]
            return m.EvalReply(outcomes=refused_outcomes + outcomes, worker=self.name)
        results = await self.executor.evaluate(window, candle_time, jobs, codes)
        outcomes = refused_outcomes
        by_status: dict[str, int] = {}  # counted once per status, not once per outcome (a lock each)
        for o in results:
            by_status[o.status] = by_status.get(o.status, 0) + 1
            outcomes.append(
                m.EvalOutcome(
                    assignment_id=o.assignment_id,
                    status=o.status,
                    position=o.position,
                    size=o.size,
                    note=o.note,
                    error=o.error,
                    duration_us=o.duration_us,
                    logs=o.logs,
                    stop_loss=o.stop_loss,
                    take_profit=o.take_profit,
                    trailing_stop=o.trailing_stop,
                    limit=o.limit,
                    expire=o.expire,
                    quotes=None
                    if o.quotes is None
                    else [m.Quote(side=s, price=p, amount=a) for s, p, a in o.quotes],
                    plot=o.plot,
                )
            )
        for status, n in by_status.items():
            EVALS.labels(status).inc(n)
        return m.EvalReply(outcomes=outcomes, worker=self.name)
