"""The core component: consumes the durable market-data stream and runs ingest -> resample -> decide -> trade.

Candles of one market are processed in order by one task; markets run concurrently. A candle's stream
message is acknowledged only when its evaluations and order intents are stored, so a core killed at
any point gets the candle again and finishes the work (``resume``) without doing any of it twice.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import NotFoundError
from sqlalchemy import select, update

from tradewind.bus import messages as m
from tradewind.bus import subjects
from tradewind.bus.connection import ensure_md_stream, unsubscribe_all
from tradewind.config import Settings
from tradewind.core import collector
from tradewind.core.close import Closer
from tradewind.core.decide import AssignmentIndex, AssignmentState, Decider
from tradewind.core.quotes import QuoteDesk
from tradewind.core.record import Handled
from tradewind.core.resample import Resampler
from tradewind.core.trade import TradeDesk
from tradewind.marketdata import as_row, candle_problem
from tradewind.marketdata.accept import store_live
from tradewind.metrics import CANDLES
from tradewind.storage import candles as store
from tradewind.storage import retention
from tradewind.storage.db import SessionFactory, write_gate
from tradewind.storage.models import Evaluation, Market

log = logging.getLogger(__name__)


class CoreService:
    def __init__(self, settings: Settings, nc: Client, js: JetStreamContext, sf: SessionFactory) -> None:
        self.settings = settings
        self.nc = nc
        self.js = js
        self.sf = sf
        self.index = AssignmentIndex()
        self.resampler = Resampler()
        self.decider = Decider(nc, settings.eval_batch_size, settings.eval_timeout_s)
        self.desk = TradeDesk(settings, nc, sf, self.index)
        self.quotes = QuoteDesk(settings, nc, sf, self.index, self.desk, self.decider, self._market_id)
        self.closer = Closer(self.desk)
        self._markets: dict[tuple[str, str], int] = {}
        self._last: dict[int, int] = {}  # market id -> last accepted 1m open time
        self._queues: dict[int, asyncio.Queue[tuple[m.Candle, Msg]]] = {}
        self._workers: dict[int, asyncio.Task[None]] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._subs: list[Any] = []
        self._reload = asyncio.Event()
        self.processed = 0

    async def start(self) -> None:
        await ensure_md_stream(self.js)
        await self.index.load(self.sf)
        # Whatever the index keeps of assignments and their accounts is reloaded on every change to either.
        for subject in (subjects.ASSIGNMENTS_CHANGED, subjects.TRADERS_CHANGED):
            self._subs.append(await self.nc.subscribe(subject, cb=self._on_assignments_changed))
        updates = await self.nc.subscribe(subjects.ORDER_UPDATES_ALL, cb=self.desk.on_order_update)
        self.desk.orders.updates = updates  # ``settle`` waits for what it holds
        self._subs.append(updates)
        # a person closing positions (web): answered by the leading core only, the one that places orders
        self._subs.append(
            await self.nc.subscribe(subjects.CORE_CLOSE, queue=subjects.CORE_QUEUE, cb=self.closer.on_request)
        )
        self._tasks.append(asyncio.create_task(self._reloader(), name="core-reload"))
        self._tasks.append(asyncio.create_task(self._reconciler(), name="core-reconcile"))
        policy = retention.Policy(self.settings.keep_evaluations_days, self.settings.keep_ticks_days)
        self._tasks.append(
            asyncio.create_task(
                retention.prune_forever(self.sf, policy, self.settings.prune_every_s), name="core-retention"
            )
        )
        # after the order updates are subscribed to: its start-up cancels are booked
        await self.quotes.start()
        await self._keep_ack_wait()
        config = ConsumerConfig(
            durable_name=subjects.CORE_CONSUMER,
            ack_policy=AckPolicy.EXPLICIT,
            deliver_policy=DeliverPolicy.ALL,
            ack_wait=self.settings.core_ack_wait_s,
            max_ack_pending=1000,
        )
        self._subs.append(
            await self.js.subscribe(
                subjects.MD_SUBJECTS,
                durable=subjects.CORE_CONSUMER,
                cb=self._on_candle,
                manual_ack=True,
                config=config,
                pending_msgs_limit=100_000,
            )
        )

    async def stop(self) -> None:
        await self.quotes.stop()  # the quotes come down while the order updates are still heard
        subs, self._subs = self._subs, []
        await unsubscribe_all(subs)
        tasks = [*self._tasks, *self._workers.values()]
        self._tasks, self._workers, self._queues = [], {}, {}
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        try:
            await asyncio.wait_for(self.desk.drain(), 10)
        except TimeoutError:
            log.warning("core: order calls still in flight at shutdown; the reconciler will settle them")

    async def _keep_ack_wait(self) -> None:
        """The durable consumer outlives core and keeps the ack wait it was made with (``subscribe`` does not
        compare configurations): a changed ``core_ack_wait_s`` is written to it here."""
        try:
            info = await self.js.consumer_info(subjects.MD_STREAM, subjects.CORE_CONSUMER)
        except NotFoundError:
            return
        if (
            info.config.ack_wait is not None
            and abs(info.config.ack_wait - self.settings.core_ack_wait_s) > 1e-3
        ):
            await self.js.add_consumer(
                subjects.MD_STREAM, info.config.evolve(ack_wait=self.settings.core_ack_wait_s)
            )
            log.info(
                "core: the market-data consumer now redelivers after %g s", self.settings.core_ack_wait_s
            )

    # -- assignments ----------------------------------------------------------------------------------
    async def _on_assignments_changed(self, _msg: Msg) -> None:
        self._reload.set()

    async def _reloader(self) -> None:
        while True:
            await self._reload.wait()
            await asyncio.sleep(0.05)  # a burst of changes makes one reload
            self._reload.clear()
            try:
                await self.index.load(self.sf)
            except Exception:
                log.exception("core: reloading assignments failed")
                self._reload.set()
                await asyncio.sleep(1)

    async def _reconciler(self) -> None:
        # First every open order, whatever its age: a venue reports fills once, and those reported while no
        # core listened (this one starting, or taking over from a dead leader) are learnt only by asking.
        # The order updates are subscribed to already, so a fill after this question is heard as it happens.
        everything = True
        while True:
            try:
                await self.desk.reconcile(
                    min_age_s=0 if everything else None, limit=10_000 if everything else 500
                )
                everything = self.desk.orders.unanswered > 0  # an exchange not up yet: ask again in 5 s
            except Exception:
                log.exception("core: reconcile failed")
            await asyncio.sleep(5)

    # -- candles --------------------------------------------------------------------------------------
    async def _on_candle(self, msg: Msg) -> None:
        try:
            candle = m.decode(msg.data, m.Candle)
        except Exception:
            CANDLES.labels("malformed").inc()
            await msg.term()
            return
        problem = candle_problem(candle) if candle.tf == "1m" else "only 1m candles are ingested"
        if problem or not candle.closed:
            CANDLES.labels("invalid").inc()
            log.warning(
                "core: dropped candle %s %s %s: %s",
                candle.exchange,
                candle.symbol,
                candle.time,
                problem or "not closed",
            )
            await msg.ack()
            return
        market_id = await self._market_id(candle.exchange, candle.symbol)
        queue = self._queues.get(market_id)
        if queue is None:
            queue = self._queues[market_id] = asyncio.Queue()
            self._workers[market_id] = asyncio.create_task(self._market_worker(market_id, queue))
        queue.put_nowait((candle, msg))

    async def _market_id(self, exchange: str, symbol: str) -> int:
        key = (exchange, symbol)
        mid = self._markets.get(key)
        if mid is None:
            async with self.sf() as s:
                market = await store.get_or_create_market(s, exchange, symbol)
                await s.commit()
            mid = self._markets[key] = market.id
            await self.resampler.warm(self.sf, mid)
            async with self.sf() as s:
                self._last[mid] = await store.last_time(s, mid, "1m") or 0
        return mid

    async def _market_worker(self, market_id: int, queue: asyncio.Queue[tuple[m.Candle, Msg]]) -> None:
        while True:
            candle, msg = await queue.get()
            redelivered = msg.metadata.num_delivered > 1
            keepalive = asyncio.create_task(self._in_progress(msg))
            try:
                while True:
                    try:
                        await self.process(market_id, candle, redelivered=redelivered)
                        break
                    except asyncio.CancelledError:
                        raise
                    except Exception:  # the database or the bus is away: keep the candle, try again
                        log.exception(
                            "core: processing %s %s %s failed; retrying",
                            candle.exchange,
                            candle.symbol,
                            candle.time,
                        )
                        redelivered = True
                        await asyncio.sleep(1)
            finally:
                keepalive.cancel()
            await msg.ack()

    async def _in_progress(self, msg: Msg) -> None:
        """Tell JetStream a slow candle is still being worked on, so it is not redelivered meanwhile."""
        while True:
            await asyncio.sleep(self.settings.core_ack_wait_s / 3)
            try:
                await msg.in_progress()
            except Exception:
                return

    async def process(self, market_id: int, candle: m.Candle, redelivered: bool = False) -> None:
        # Python's cyclic collector waits while the candle goes to its orders and their records: its pauses
        # (a full collection about every second candle at 1,000 assignments) then land after, not between the
        # tick and the order calls (core.collector).
        with collector.held_off():
            await self._process(market_id, candle, redelivered)

    async def _process(self, market_id: int, candle: m.Candle, redelivered: bool) -> None:
        last = self._last.get(market_id, 0)
        if candle.time <= last and not redelivered:
            CANDLES.labels("duplicate" if candle.time == last else "stale").inc()
            return
        resume = candle.time <= last  # seen before a crash or a failed attempt: finish what is missing
        row = as_row(candle)
        closed = self.resampler.add(market_id, row)
        async with write_gate(self.sf), self.sf() as s:
            await store_live(s, market_id, row, closed)
            await s.execute(update(Market).where(Market.id == market_id).values(last_price=candle.close))
            await s.commit()
        self._last[market_id] = max(last, candle.time)
        CANDLES.labels("accepted").inc()
        derived = [
            m.Candle(
                exchange=candle.exchange,
                symbol=candle.symbol,
                tf=tf,
                time=r[0],
                open=r[1],
                high=r[2],
                low=r[3],
                close=r[4],
                volume=r[5],
                trace_id=candle.trace_id,
                recv_ns=candle.recv_ns,
                source=candle.source,
                updates_seq=candle.updates_seq,
            )
            for tf, r in closed
        ]
        for c in (candle, *derived):
            await self.nc.publish(subjects.core_candle(c.exchange, c.symbol, c.tf), m.encode(c))
        await asyncio.gather(*(self.decide(c, resume) for c in (candle, *derived)))
        self.processed += 1

    async def decide(self, candle: m.Candle, resume: bool) -> None:
        states = self.index.for_candle(candle.exchange, candle.symbol, candle.tf)
        if resume and states:
            states = await self._not_evaluated(states, candle.time)
        if not states:
            return
        # A venue reports the fills of resting orders before the candle that made them: they are booked before
        # this candle's decisions (market orders' own answers are waited for by ``pending``). Not only for
        # assignments that look like they have resting orders: one whose entry is being booked right now
        # has none yet (its protective orders are being placed), and must be waited for all the same.
        await self.desk.settle(candle=candle)
        later: list[Handled] = []  # the candle's evaluation rows, stored together once its orders are out
        trading = any(st.trader_id is not None for st in states)
        accounts = self.desk.prefetch(candle, states) if trading else None
        balances = self.desk.prefetch_balances(candle, states) if trading else None
        held: list[tuple[AssignmentState, m.EvalOutcome]] = []
        try:
            async for results in self.decider.evaluate(candle, states):
                ready, waiting = self.desk.in_flight(candle, results)
                held += waiting
                if ready:
                    await self.desk.handle(candle, ready, later, accounts, balances)
            if held:  # decisions of assignments whose previous order is still on its way: after its answer
                await self.desk.answered([st for st, _ in held])
                await self.desk.handle(candle, held, later, accounts, balances)
        finally:
            if accounts is not None:
                accounts.cancel()  # a candle that traded nothing never needed it
                await asyncio.gather(accounts, return_exceptions=True)
            if balances is not None:
                balances.cancel()
                await asyncio.gather(balances.read, return_exceptions=True)
        await self.desk.record(candle, later)

    async def _not_evaluated(self, states: list[AssignmentState], candle_time: int) -> list[AssignmentState]:
        ids = [s.id for s in states]
        async with self.sf() as s:
            done = set(
                (
                    await s.execute(
                        select(Evaluation.assignment_id).where(
                            Evaluation.candle_time == candle_time, Evaluation.assignment_id.in_(ids)
                        )
                    )
                ).scalars()
            )
        return [st for st in states if st.id not in done]
