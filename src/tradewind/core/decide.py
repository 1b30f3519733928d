"""core.decide: the index market+timeframe -> assignments, and one evaluation per assignment per candle.

Evaluations go to the eval workers in batches (one request per chunk of assignments, answered by any
worker of the queue group). A chunk that gets no answer is sent again: a worker killed mid-batch costs
a retry, never an evaluation.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, NamedTuple

from nats.aio.client import Client
from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeout
from sqlalchemy import func, select

from tradewind.bus import messages as m
from tradewind.bus import subjects
from tradewind.metrics import EVAL_BATCHES, EVAL_QUEUE_WAIT, EVAL_RETRIES, NATS_ROUND_TRIP
from tradewind.storage.db import SessionFactory
from tradewind.storage.models import Assignment, Market, Order, Strategy, Trader, User

log = logging.getLogger(__name__)
WORKER_SEEN_S = 120.0  # an eval worker that has not answered for this long no longer counts for chunking
MIN_CHUNK = 200  # evaluations: a smaller load is not split across workers (see Decider.chunk_size)
LINGER_SHARE = 1.0  # the first answer of a candle waits at most this share of its round trip for the others
LINGER_SHARE_QUEUED = 0.25  # the same when there are more chunks than workers (the later ones queue)
LINGER_MAX_S = 0.05


@dataclass
class AssignmentState:
    """What core keeps in memory about one active assignment (no database read on the hot path)."""

    id: int
    owner_id: int
    strategy_id: int
    version: int
    market_id: int
    exchange: str
    symbol: str
    timeframe: str
    params: dict[str, Any]
    lookback: int
    allocation: Decimal
    trader_id: int | None
    trader_exchange: str | None
    position_qty: Decimal
    failures: int
    trader_paper: bool = False  # a paper account: its balance is the exchange service's to tell, no venue's
    pending: set[str] = field(default_factory=set)  # client order ids in flight
    acted_through: int = 0  # the newest candle whose decision core acted on (older ones are not traded)
    realized_pnl: Decimal = Decimal(0)  # closed trades: the capital is allocation + realized P&L
    protection: dict[str, Any] | None = None  # the position's protection (core.positions), as stored
    entry_open: str | None = None  # the client order id of a resting limit entry
    entry_expires: int | None = None  # when it stops being good (epoch ms): core cancels it then
    resting: dict[str, str] = field(default_factory=dict)  # open protective orders: client id -> type
    # A quoting strategy (trigger "tick", core.quotes): evaluated on ticks at most every min_interval_ms,
    # its quotes by side, what its inventory cost (its cash is its capital less that), and when and on
    # which book it was last evaluated.
    trigger: str = "candle"
    min_interval_ms: int = 1000
    max_position: Decimal | None = None
    entry_cost: Decimal = Decimal(0)
    quotes: dict[str, QuoteSlot] = field(default_factory=dict)
    last_eval: float = 0.0  # monotonic s
    last_book: tuple[float, float] | None = None


@dataclass
class QuoteSlot:
    """A quote core sent: its order's client id, price and amount, and whether the venue holds it yet."""

    cid: str
    price: Decimal
    amount: Decimal
    status: str = "pending"  # pending (on its way) | open


MarketTf = tuple[str, str, str]  # exchange, symbol, timeframe


class AssignmentIndex:
    def __init__(self) -> None:
        self.by_market: dict[MarketTf, list[AssignmentState]] = {}  # candle-driven assignments
        self.by_ticks: dict[tuple[str, str], list[AssignmentState]] = {}  # quoting ones, by market
        self.by_id: dict[int, AssignmentState] = {}
        # assignments that left the index (paused, deleted, killed) and may have quotes resting: core.quotes
        # cancels them
        self.dropped: list[AssignmentState] = []

    async def load(self, sf: SessionFactory) -> None:
        """Reload every enabled assignment of every user whose kill switch is off, keeping in-flight state.
        Each runs its pinned strategy version, or the latest."""
        runs = func.coalesce(Assignment.pinned_version, Strategy.latest_version)
        q = (
            select(Assignment, runs, Market.exchange, Market.symbol, Trader)
            .join(Strategy, Strategy.id == Assignment.strategy_id)
            .join(Market, Market.id == Assignment.market_id)
            .join(User, User.id == Assignment.owner_id)
            .outerjoin(Trader, Trader.id == Assignment.trader_id)
            .where(Assignment.enabled.is_(True), User.killed.is_(False))
        )
        async with sf() as s:
            rows = (await s.execute(q)).all()
        by_market: dict[MarketTf, list[AssignmentState]] = {}
        by_ticks: dict[tuple[str, str], list[AssignmentState]] = {}
        by_id: dict[int, AssignmentState] = {}
        for a, version, exchange, symbol, trader in rows:
            old = self.by_id.get(a.id)
            st = AssignmentState(
                id=a.id,
                owner_id=a.owner_id,
                strategy_id=a.strategy_id,
                version=version,
                market_id=a.market_id,
                exchange=exchange,
                symbol=symbol,
                timeframe=a.timeframe,
                params=dict(a.params or {}),
                lookback=a.lookback,
                allocation=a.allocation,
                trader_id=a.trader_id,
                trader_exchange=trader.exchange if trader else None,
                trader_paper=bool(trader.paper) if trader else False,
                position_qty=old.position_qty if old else a.position_qty,
                failures=a.consecutive_failures,
                pending=old.pending if old else set(),
                acted_through=old.acted_through if old else 0,
                realized_pnl=a.realized_pnl or Decimal(0),
                protection=a.protection,
                entry_open=old.entry_open if old else None,
                resting=old.resting if old else {},
                entry_expires=old.entry_expires if old else None,
                trigger=a.trigger or "candle",
                min_interval_ms=a.min_interval_ms or 1000,
                max_position=a.max_position,
                entry_cost=old.entry_cost if old else a.entry_cost or Decimal(0),
                quotes=old.quotes if old else {},
                last_eval=old.last_eval if old else 0.0,
                last_book=old.last_book if old else None,
            )
            if st.trigger == "tick":
                by_ticks.setdefault((exchange, symbol), []).append(st)
            else:
                by_market.setdefault((exchange, symbol, a.timeframe), []).append(st)
            by_id[a.id] = st
        if by_id:  # resting orders of assignments new to the index (a restart): limit entries, protection
            fresh = [aid for aid in by_id if aid not in self.by_id]
            if fresh:
                await self._load_resting(sf, fresh, by_id)
        self.dropped.extend(st for aid, st in self.by_id.items() if aid not in by_id and st.quotes)
        self.by_market, self.by_ticks, self.by_id = by_market, by_ticks, by_id

    @staticmethod
    async def _load_resting(sf: SessionFactory, ids: list[int], by_id: dict[int, AssignmentState]) -> None:
        async with sf() as s:
            for i in range(0, len(ids), 500):
                rows = await s.execute(
                    select(
                        Order.assignment_id,
                        Order.client_order_id,
                        Order.type,
                        Order.expires_at,
                        Order.side,
                        Order.limit_price,
                        Order.amount,
                        Order.status,
                    ).where(
                        Order.assignment_id.in_(ids[i : i + 500]),
                        Order.status.in_(("pending", "open")),
                        Order.type != "market",
                    )
                )
                for aid, cid, kind, expires, side, price, amount, status in rows.all():
                    assert aid is not None  # the query asks for these assignments' orders
                    st = by_id[aid]
                    if kind == "quote":
                        st.quotes[side] = QuoteSlot(cid, price or Decimal(0), amount, status)
                    elif kind == "limit":
                        st.entry_open, st.entry_expires = cid, expires
                    else:
                        st.resting[cid] = kind

    def for_candle(self, exchange: str, symbol: str, tf: str) -> list[AssignmentState]:
        return self.by_market.get((exchange, symbol, tf), [])

    def for_ticks(self, exchange: str, symbol: str) -> list[AssignmentState]:
        return self.by_ticks.get((exchange, symbol), [])

    def remove(self, assignment_id: int) -> None:
        st = self.by_id.pop(assignment_id, None)
        if st is not None:
            key = (st.exchange, st.symbol, st.timeframe)
            self.by_market[key] = [x for x in self.by_market.get(key, []) if x.id != assignment_id]
            market = (st.exchange, st.symbol)
            self.by_ticks[market] = [x for x in self.by_ticks.get(market, []) if x.id != assignment_id]
            if st.quotes:
                self.dropped.append(st)


class Frame(NamedTuple):
    """What an evaluation request is for (a candle has these fields too): a tick's market and timeframe,
    time 0 (the window ends at the newest closed candle), its trace and receive time."""

    exchange: str
    symbol: str
    tf: str
    time: int
    trace_id: str
    recv_ns: int


StateOf = Callable[[AssignmentState], m.TickState]


class Decider:
    def __init__(self, nc: Client, batch_size: int, timeout_s: float, give_up_s: float = 120.0) -> None:
        self.nc = nc
        self.batch_size = batch_size  # the largest chunk
        self.timeout_s = timeout_s
        self.give_up_s = give_up_s
        self._seen: dict[str, float] = {}  # eval worker -> when it last answered (monotonic)

    def chunk_size(self, n: int) -> int:
        """One chunk per eval worker that answered lately, at most ``batch_size`` and, unless ``n`` is
        smaller, at least ``MIN_CHUNK``: the workers evaluate in parallel, and core handles a few large
        chunks rather than many small ones (each chunk's orders go out while the next is stored; with
        1,000 assignments on one worker, 4 chunks of 250 put the last orders out ~250 ms after the tick,
        one chunk ~130 ms, see benchmarks/RESULTS.md). Below ``MIN_CHUNK`` a split costs more in messages
        and handling than the evaluations it spreads (10 assignments on 2 workers: p50 18 ms split, 11 not)."""
        now = time.monotonic()
        for name, t in list(self._seen.items()):
            if now - t > WORKER_SEEN_S:
                del self._seen[name]
        chunks = max(1, min(len(self._seen), n // MIN_CHUNK))
        return max(1, min(self.batch_size, -(-n // chunks)))

    async def evaluate(
        self,
        candle: m.Candle | Frame,
        states: list[AssignmentState],
        tick: m.Tick | None = None,
        state_of: StateOf | None = None,
    ) -> AsyncIterator[list[tuple[AssignmentState, m.EvalOutcome]]]:
        """Yield the outcomes as workers answer (so trading starts with the first chunk). Chunks that
        answer together are yielded together: the chunks go out at once, in equal parts, to workers that
        are usually equally fast, and one batch of order intents costs less than two. How long the first
        answer waits for the others is bounded by its own round trip (``LINGER_SHARE``; a quarter of it when
        the chunks outnumber the workers) and ``LINGER_MAX_S``, so a slow or dead worker holds up the others'
        orders by little; its chunk is yielded when it comes.
        (A quarter of the round trip before issue 17's per-order work: embedded, at 1,000 assignments on two
        workers, the second chunk often came 30-70 ms after the first, and then waited behind the first
        chunk's intents and the exchange's placing of its orders, all on one event loop: the candles whose
        chunks were handled apart made the p99.)"""
        size = self.chunk_size(len(states))
        chunks = [states[i : i + size] for i in range(0, len(states), size)]
        # chunks evaluated side by side (no more than the workers) come back together unless one is held
        # up; more chunks than workers come back one after the other, and waiting for the next only delays
        share = LINGER_SHARE if len(chunks) <= max(1, len(self._seen)) else LINGER_SHARE_QUEUED
        started = time.monotonic()
        tasks = [asyncio.create_task(self._run_chunk(candle, chunk, tick, state_of)) for chunk in chunks]
        pending: set[asyncio.Task[list[tuple[AssignmentState, m.EvalOutcome]]]] = set(tasks)
        try:
            while pending:
                done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                if pending:
                    linger = min(LINGER_MAX_S, share * (time.monotonic() - started))
                    more, pending = await asyncio.wait(pending, timeout=linger)
                    done |= more
                yield [r for t in tasks if t in done for r in t.result()]
        finally:
            for t in tasks:
                t.cancel()

    async def _run_chunk(
        self,
        candle: m.Candle | Frame,
        chunk: list[AssignmentState],
        tick: m.Tick | None = None,
        state_of: StateOf | None = None,
    ) -> list[tuple[AssignmentState, m.EvalOutcome]]:
        jobs = [
            m.EvalJob(
                assignment_id=s.id,
                strategy_id=s.strategy_id,
                version=s.version,
                params=s.params,
                lookback=s.lookback,
                owner_id=s.owner_id,
                state=state_of(s) if state_of is not None else None,
            )
            for s in chunk
        ]
        deadline = time.monotonic() + self.give_up_s
        attempt = 0
        while True:
            req = m.EvalRequest(
                exchange=candle.exchange,
                symbol=candle.symbol,
                tf=candle.tf,
                candle_time=candle.time,
                jobs=jobs,
                trace_id=candle.trace_id,
                recv_ns=candle.recv_ns,
                sent_ns=time.time_ns(),
                tick=tick,
            )
            started = time.perf_counter()
            try:
                msg = await self.nc.request(subjects.EVAL_RUN, m.encode(req), timeout=self.timeout_s)
            except (NatsTimeout, NoRespondersError, TimeoutError) as exc:
                attempt += 1
                EVAL_RETRIES.inc()
                if time.monotonic() > deadline:
                    raise TimeoutError(
                        f"no eval worker answered for {candle.symbol} {candle.tf} {candle.time}"
                    ) from exc
                log.warning(
                    "eval batch of %d for %s %s: %s, retry %d",
                    len(jobs),
                    candle.symbol,
                    candle.tf,
                    type(exc).__name__,
                    attempt,
                )
                await asyncio.sleep(min(0.1 * attempt, 2.0))
                continue
            NATS_ROUND_TRIP.observe((time.perf_counter() - started) * 1000)
            reply = m.decode(msg.data, m.EvalReply)
            EVAL_BATCHES.labels(reply.worker or "?").inc()
            if reply.worker:
                self._seen[reply.worker] = time.monotonic()
            EVAL_QUEUE_WAIT.observe(reply.queue_wait_us / 1000)
            by_id = {o.assignment_id: o for o in reply.outcomes}
            return [(s, by_id.get(s.id) or _missing(s.id)) for s in chunk]


def _missing(assignment_id: int) -> m.EvalOutcome:
    return m.EvalOutcome(
        assignment_id=assignment_id, status="error", error="the eval worker returned no outcome"
    )
