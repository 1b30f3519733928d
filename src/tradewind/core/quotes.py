"""core.quotes: quoting strategies (trigger "tick"): ticks in, post-only quotes out, kept alive.

Each market's ticks wake one loop, which evaluates the market's quoting assignments on the newest tick
(``on_tick`` on the eval workers, batched like candle evaluations): an assignment at most once per its
``min_interval_ms`` and only when bid or ask moved since its last evaluation; ticks that arrive meanwhile
are coalesced, the newest wins. What a strategy asks for goes through the trading model
(``model.quote_takes``, ``model.clip_quotes``: the inventory limit and the cash) and is compared with what
rests: a side whose price and amount did not change is left alone, a changed side is replaced (the new
order cancels the old one first, in the same call), a dropped side is cancelled. Every placement and
cancel spends the account's budget (``quote_rate_per_s``, ``quote_burst``, lowered to what its venue
allows: ``exchanges.limits``); a change that finds it empty waits, and a newer one replaces it, so nothing
queues without bound.

Quotes come down when the assignment is paused (by its owner, the kill switch, the daily loss limit or
its failures), when its strategy fails, when core shuts down, and, after a crash, when core starts (a
quote of a dead core is a price nobody is watching; the strategy quotes again on the next tick).
Whether an assignment may trade through its account is read from the database before any placement
(``TradeDesk.accounts``), as for candle decisions.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import TYPE_CHECKING, Any, cast

from nats.aio.client import Client
from nats.aio.msg import Msg
from sqlalchemy import select, update

from tradewind.bus import messages as m
from tradewind.bus import subjects
from tradewind.bus.connection import unsubscribe_all
from tradewind.config import Settings
from tradewind.core import notices
from tradewind.core.decide import AssignmentIndex, AssignmentState, Decider, Frame, QuoteSlot
from tradewind.core.orders import Extra, OrderBook, new_order
from tradewind.domain import quote_order_id
from tradewind.exchanges import limits
from tradewind.marketdata.ticks import TickSampler, store_ticks, tick_problem
from tradewind.storage.db import SessionFactory, dialect_of, write_gate
from tradewind.storage.models import Assignment, Order
from tradewind.storage.types import utcnow
from tradewind.trading import model, risk

if TYPE_CHECKING:
    from tradewind.core.trade import TradeDesk

log = logging.getLogger(__name__)
STOP_TIMEOUT_S = 5.0
Key = tuple[str, str]  # exchange, symbol


class Budget:
    """A token bucket: an account's quote calls a second, with a burst."""

    def __init__(self, rate: float, burst: int) -> None:
        self.rate, self.burst = rate, float(burst)
        self.tokens, self.at = float(burst), time.monotonic()

    def _refill(self) -> None:
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.at) * self.rate)
        self.at = now

    def take(self, n: int) -> bool:
        """Spend ``n`` calls if the budget has them; a change larger than the burst goes out from a full
        budget and leaves it in debt (else it would wait for ever)."""
        self._refill()
        if self.tokens >= min(n, self.burst):
            self.tokens -= n
            return True
        return False

    def wait_s(self, n: int) -> float:
        self._refill()
        return max(0.0, (min(n, self.burst) - self.tokens) / self.rate)


class QuoteDesk:
    def __init__(
        self,
        settings: Settings,
        nc: Client,
        sf: SessionFactory,
        index: AssignmentIndex,
        desk: TradeDesk,
        decider: Decider,
        market_id: Callable[[str, str], Awaitable[int]],
    ) -> None:
        self.settings = settings
        self.nc = nc
        self.sf = sf
        self.index = index
        self.desk = desk
        self.orders: OrderBook = desk.orders
        self.decider = decider
        self.market_id = market_id
        self.costs = model.Costs()  # the cash a buy quote may use keeps room for a 0.1 % maker fee
        self.sampler = TickSampler(settings.tick_sample_ms)
        self._dialect = dialect_of(sf)
        self._latest: dict[Key, m.Tick] = {}
        self._wake: dict[Key, asyncio.Event] = {}
        self._loops: dict[Key, asyncio.Task[None]] = {}
        self._budgets: dict[int, Budget] = {}
        # assignment -> the quotes it wants and could not send yet (the account's budget was spent): the newest
        self._waiting: dict[int, tuple[AssignmentState, list[model.Quote], m.Tick]] = {}
        self._busy: set[int] = set()  # assignments whose quote calls are on their way
        self._calls: set[asyncio.Task[Any]] = set()  # those calls (placements, cancels), until answered
        self._tasks: list[asyncio.Task[None]] = []
        self._subs: list[Any] = []
        self._stale: list[str] | None = None  # the quotes of a previous run still to cancel (None: not read)
        self.evaluated = 0  # evaluations asked for (tests, benchmarks)
        self.dropped_ticks = 0

    # -- life cycle -----------------------------------------------------------------------------------------
    async def start(self) -> None:
        await self.sweep()
        self._subs.append(await self.nc.subscribe(subjects.MD_TICKS_ALL, cb=self._on_tick))
        self._tasks.append(asyncio.create_task(self._housekeeping(), name="core-quotes"))

    async def stop(self) -> None:
        """Stop evaluating and take every quote down (the venue would otherwise keep them while nobody
        watches the market for them)."""
        subs, self._subs = self._subs, []
        await unsubscribe_all(subs)
        tasks = [*self._tasks, *self._loops.values()]
        self._tasks, self._loops = [], {}
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        # The calls on their way are answered first: a cancel that overtook its quote's placement found
        # nothing on the venue, and the quote then rested there, open in the database, with nobody
        # watching it (and the exchange service, stopped next, left the placement unanswered: core's
        # shutdown waited for it until it was killed).
        if self._calls:
            await asyncio.wait(set(self._calls), timeout=STOP_TIMEOUT_S / 2)
        states = [st for st in self.index.by_id.values() if st.quotes] + self._take_dropped()
        try:
            await asyncio.wait_for(self._withdraw(states), STOP_TIMEOUT_S)
        except TimeoutError:
            log.warning("core: quotes still resting at shutdown; the next start cancels them")

    async def sweep(self) -> int:
        """Cancel the quotes of a previous run (a crash leaves them resting); returns how many are left.
        Called at start and then every second until none is left: the exchange service may start after
        core (embedded, it does), and a cancel it did not answer is asked again."""
        q = select(
            Order.owner_id, Order.trader_id, Order.exchange, Order.client_order_id, Order.symbol
        ).where(Order.type == "quote", Order.status.in_(("pending", "open")))
        if self._stale is not None:
            q = q.where(Order.client_order_id.in_(self._stale))
        async with self.sf() as s:
            rows = (await s.execute(q)).all()
        if self._stale is None and rows:
            log.info("core: cancelling %d quote(s) left resting by a previous run", len(rows))
        self._stale = [r.client_order_id for r in rows]
        if rows:
            await self.orders.cancel_all([r.tuple() for r in rows])
        return len(rows)

    async def _housekeeping(self) -> None:
        """Store the sampled ticks, take down the quotes of assignments that left the index, retry the
        changes that waited for an account's budget."""
        every = min(0.2, self.settings.tick_sample_ms / 1000)
        flushed = swept = time.monotonic()
        while True:
            await asyncio.sleep(every)
            try:
                if self._stale and time.monotonic() - swept >= 1.0:
                    swept = time.monotonic()
                    await self.sweep()
                dropped = self._take_dropped()
                if dropped:
                    await self._withdraw(dropped)
                if self._waiting:
                    await self._retry()
                if time.monotonic() - flushed >= self.settings.tick_sample_ms / 1000:
                    flushed = time.monotonic()
                    rows = self.sampler.take()
                    if rows:
                        async with write_gate(self.sf), self.sf() as s:
                            await store_ticks(s, self._dialect, rows)
                            await s.commit()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("core: quote housekeeping failed")

    def _take_dropped(self) -> list[AssignmentState]:
        dropped, self.index.dropped = self.index.dropped, []
        return [st for st in dropped if st.id not in self.index.by_id]

    # -- ticks ----------------------------------------------------------------------------------------------
    async def _on_tick(self, msg: Msg) -> None:
        try:
            t = m.decode(msg.data, m.Tick)
        except Exception:
            self.dropped_ticks += 1
            return
        problem = tick_problem(t)
        if problem:
            self.dropped_ticks += 1
            log.debug("core: dropped tick of %s %s: %s", t.exchange, t.symbol, problem)
            return
        key = (t.exchange, t.symbol)
        self._latest[key] = t
        try:
            self.sampler.add(await self.market_id(*key), t)
        except Exception:
            log.exception("core: sampling a tick of %s %s failed", *key)
        if self.index.for_ticks(*key):
            ev = self._wake.get(key)
            if ev is None:
                ev = self._wake[key] = asyncio.Event()
            if key not in self._loops:
                self._loops[key] = asyncio.create_task(self._loop(key, ev), name=f"quotes-{key}")
            ev.set()

    async def _loop(self, key: Key, ev: asyncio.Event) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await ev.wait()
            ev.clear()
            try:
                later = await self.round(key)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("core: quoting round of %s %s failed", *key)
                later = 0.5
            if later is not None:
                loop.call_later(later, ev.set)

    async def round(self, key: Key) -> float | None:
        """Evaluate the market's quoting assignments that are due on its newest tick and act on what they
        return; returns in how many seconds the next one is due (None: when a tick comes)."""
        t = self._latest.get(key)
        states = self.index.for_ticks(*key)
        if t is None or not states:
            return None
        now = time.monotonic()
        book = (t.bid, t.ask)
        due: list[AssignmentState] = []
        soonest: float | None = None
        for st in states:
            if st.id in self._busy or st.id in self._waiting or st.last_book == book:
                continue
            wait = st.last_eval + st.min_interval_ms / 1000 - now
            if wait > 0:
                soonest = wait if soonest is None else min(soonest, wait)
                continue
            due.append(st)
        if not due:
            return soonest
        by_tf: dict[str, list[AssignmentState]] = {}
        for st in due:
            st.last_eval, st.last_book = now, book
            by_tf.setdefault(st.timeframe, []).append(st)
        self.evaluated += len(due)
        for tf, group in by_tf.items():
            frame = Frame(t.exchange, t.symbol, tf, 0, t.trace_id, t.recv_ns)
            # whether they may trade is read while they are evaluated: off the path from the tick to the calls
            facts = (
                asyncio.create_task(self.desk.accounts(frame, group))
                if any(st.trader_id for st in group)
                else None
            )
            try:
                async for results in self.decider.evaluate(frame, group, tick=t, state_of=self.state_of):
                    await self.handle(t, frame, results, facts)
            finally:
                if facts is not None and not facts.done():
                    facts.cancel()
                await asyncio.gather(*([facts] if facts is not None else []), return_exceptions=True)
        return soonest

    def cash(self, st: AssignmentState) -> Decimal:
        return model.quote_cash(model.capital(st.allocation, st.realized_pnl), st.entry_cost)

    def state_of(self, st: AssignmentState) -> m.TickState:
        return m.TickState(
            position=float(st.position_qty),
            cash=float(self.cash(st)),
            quotes=[
                # st.quotes is keyed by model.QUOTE_SIDES: "buy" and "sell"
                m.Quote(side=cast("m.Side", side), price=float(q.price), amount=float(q.amount))
                for side, q in st.quotes.items()
            ],
        )

    # -- outcomes -------------------------------------------------------------------------------------------
    async def handle(
        self,
        t: m.Tick,
        frame: Frame,
        results: list[tuple[AssignmentState, m.EvalOutcome]],
        facts: asyncio.Task[Any] | None = None,
    ) -> None:
        bid, ask = model.dec(t.bid), model.dec(t.ask)
        wants: list[tuple[AssignmentState, list[model.Quote]]] = []
        positions_: list[tuple[AssignmentState, m.EvalOutcome]] = []
        failed: list[tuple[AssignmentState, m.EvalOutcome]] = []
        events: list[tuple[AssignmentState, m.EvalOutcome, str | None]] = []
        for st, out in results:
            if out.status != "ok":
                failed.append((st, out))
                events.append((st, out, None))
                continue
            if st.failures:
                st.failures = 0
                self.orders.spawn(self._reset_failures(st.id))
            if out.quotes is not None:
                asked = [model.Quote(q.side, model.dec(q.price), model.dec(q.amount)) for q in out.quotes]
                taking = [q for q in asked if model.quote_takes(q.side, q.price, bid, ask)]
                note = (
                    "; ".join(
                        f"{q.side} quote at {q.price} would take (bid {bid}, ask {ask}): not sent"
                        for q in taking
                    )
                    or None
                )
                kept = model.clip_quotes(
                    [q for q in asked if q not in taking],
                    st.position_qty,
                    self.cash(st),
                    self.costs,
                    st.max_position,
                )
                wants.append((st, kept))
                if note or out.logs or out.note:
                    events.append((st, out, note))
            elif out.position is not None:
                positions_.append((st, out))
                events.append((st, out, None))
        if failed:
            await self._failed(failed)
        if wants:
            await self._send(t, frame, wants, facts)
        if positions_:
            await self._positions(t, frame, positions_)
        for st, out, note in events:
            said = " · ".join(x for x in (out.note, note) if x) or None
            await notices.evaluated(self.nc, st, out, t.time, said, tick=True)

    def _changes(
        self, st: AssignmentState, wanted: list[model.Quote]
    ) -> list[tuple[str, model.Quote | None, QuoteSlot | None]]:
        by_side = {q.side: q for q in wanted}
        out = []
        for side in model.QUOTE_SIDES:
            want, have = by_side.get(side), st.quotes.get(side)
            if want is None and have is None:
                continue
            if (
                want is not None
                and have is not None
                and (want.price, want.amount) == (have.price, have.amount)
            ):
                continue
            out.append((side, want, have))
        return out

    async def _send(
        self,
        t: m.Tick,
        frame: Frame,
        wants: list[tuple[AssignmentState, list[model.Quote]]],
        facts: asyncio.Task[Any] | None = None,
    ) -> None:
        plans = [(st, q, ch) for st, q in wants if (ch := self._changes(st, q))]
        if not plans:
            return
        if (
            facts is not None
        ):  # read when the evaluations started: anything committed before the tick is in it
            allowed, books = await asyncio.shield(facts)
        else:
            allowed, books = await self.desk.accounts(frame, [st for st, _, _ in plans])
        now = utcnow()
        rows: list[dict[str, Any]] = []
        # a row's client id -> the new slot of its side, taken up once the row is stored (below)
        slots: dict[str, tuple[AssignmentState, str, QuoteSlot]] = {}
        cancels: list[tuple[Any, ...]] = []
        for st, wanted, changes in plans:
            fresh = allowed.get(st.id)
            if not isinstance(fresh, tuple):
                if st.quotes:  # it may not trade any more: what rests comes down
                    cancels.extend(self._cancels(st, list(st.quotes.values())))
                continue
            owner_id, trader_id, exchange = fresh
            book = books.get(trader_id)
            budget = self._budgets.get(trader_id)
            if budget is None:
                budget = self._budgets[trader_id] = Budget(
                    *limits.quote_budget(exchange, self.settings.quote_rate_per_s, self.settings.quote_burst)
                )
            if not budget.take(_cost(changes)):
                self._waiting[st.id] = (st, wanted, t)  # a newer want replaces it: coalesced, never queued
                continue
            minute = t.time - t.time % 60_000
            base = new_order(now, minute, owner_id, st.id, trader_id, exchange, st.symbol, type="quote")
            for side, want, have in changes:
                refused = side == "buy" and want is not None and book is not None and _refused_buy(book, want)
                if want is None or refused:
                    if have is not None:
                        cancels.extend(self._cancels(st, [have], owner_id, trader_id, exchange))
                    if refused:
                        log.info("assignment %s: buy quote not sent: %s", st.id, refused)
                    continue
                cid = quote_order_id(st.id, t.time, side)
                rows.append(
                    {
                        **base,
                        "client_order_id": cid,
                        "side": side,
                        "amount": want.amount,
                        "limit_price": want.price,
                    }
                )
                if have is not None:  # replaced: the venue cancels the old one before it places the new one
                    self.orders.extra[cid] = Extra(cancels=[have.cid])
                slots[cid] = (st, side, QuoteSlot(cid, want.price, want.amount))
        if rows:
            new_ids = await self.orders.store_intents(rows)
            placed = [r for r in rows if r["client_order_id"] in new_ids]
            for r in rows:
                if r["client_order_id"] not in new_ids:  # this tick's quote exists already: never twice
                    self.orders.extra.pop(r["client_order_id"], None)
            # A side holds its new quote only once the quote is to be sent, and only then: a quote whose id
            # exists already is not sent, and what rests on that side (``have``) is still what rests there.
            # (It was taken for sent before: the sim replays the unfinished minute's ticks after a restart,
            # the ids of its quotes came again, and each replacement that was not sent left its predecessor
            # resting on the venue, open in the database and forgotten by this desk: two quotes on a side,
            # and one that no pause, kill switch or shutdown took down.) Set after the intents are stored,
            # with no await before the calls start: a shutdown that cancels this round while they are being
            # stored takes down what rests, not a quote that was never sent.
            for cid in new_ids:
                slot = slots.get(cid)
                if slot is not None:
                    slot[0].quotes[slot[1]] = slot[2]
            if placed:
                self._track({r["assignment_id"] for r in placed}, self.orders.start_orders(t, placed))
        if cancels:
            task = asyncio.create_task(self.orders.cancel_all([c[:5] for c in cancels]))
            self._track({c[5] for c in cancels}, task)

    def _cancels(
        self,
        st: AssignmentState,
        slots: list[QuoteSlot],
        owner_id: int | None = None,
        trader_id: int | None = None,
        exchange: str | None = None,
    ) -> list[tuple[Any, ...]]:
        trader = trader_id if trader_id is not None else st.trader_id
        if trader is None:
            return []
        return [
            (
                owner_id if owner_id is not None else st.owner_id,
                trader,
                exchange or st.trader_exchange or st.exchange,
                s.cid,
                st.symbol,
                st.id,
            )
            for s in slots
        ]

    def _track(self, assignment_ids: set[int], task: asyncio.Task[Any]) -> None:
        """The assignments are not evaluated again until their quote calls are answered."""
        self._busy |= assignment_ids
        self._calls.add(task)

        def done(_: Any) -> None:
            self._busy -= assignment_ids
            self._calls.discard(task)

        task.add_done_callback(done)

    async def _retry(self) -> None:
        """Send the changes that waited for their account's budget, newest wants only, when it allows."""
        waiting, self._waiting = self._waiting, {}
        by_tick: dict[int, tuple[m.Tick, list[tuple[AssignmentState, list[model.Quote]]]]] = {}
        for st, wanted, t in waiting.values():
            if st.id not in self.index.by_id:
                continue
            budget = self._budgets.get(st.trader_id or 0)
            if budget is not None and budget.wait_s(_cost(self._changes(st, wanted))) > 0:
                self._waiting[st.id] = (st, wanted, t)
                continue
            by_tick.setdefault(id(t), (t, []))[1].append((st, wanted))
        for t, wants in by_tick.values():
            for tf in {st.timeframe for st, _ in wants}:
                frame = Frame(t.exchange, t.symbol, tf, 0, t.trace_id, t.recv_ns)
                await self._send(t, frame, [(st, w) for st, w in wants if st.timeframe == tf])

    async def _withdraw(self, states: list[AssignmentState]) -> None:
        """Cancel every quote of these assignments (paused, failed, or core stopping)."""
        cancels = [c for st in states for c in self._cancels(st, list(st.quotes.values()))]
        for st in states:
            self._waiting.pop(st.id, None)
        if cancels:
            await self.orders.cancel_all([c[:5] for c in cancels])

    async def _failed(self, failed: list[tuple[AssignmentState, m.EvalOutcome]]) -> None:
        """A failed evaluation takes the assignment's quotes down (nobody decides their prices any more);
        after ``eval_pause_after_failures`` in a row the assignment is paused."""
        pause_after = self.settings.eval_pause_after_failures
        paused = []
        for st, out in failed:
            st.failures += 1
            if st.failures >= pause_after:
                paused.append(
                    (st, f"paused after {st.failures} failed evaluations in a row; last error: {out.error}")
                )
        async with write_gate(self.sf), self.sf() as s:
            for st, _ in failed:
                await s.execute(
                    update(Assignment).where(Assignment.id == st.id).values(consecutive_failures=st.failures)
                )
            for st, reason in paused:
                await s.execute(
                    update(Assignment)
                    .where(Assignment.id == st.id)
                    .values(enabled=False, paused_reason=reason)
                )
            await s.commit()
        for st, reason in paused:
            self.index.remove(st.id)
            await notices.paused(self.nc, st, reason)
        gone = {st.id for st, _ in paused}  # withdrawn just below: not again by the housekeeping
        self.index.dropped = [st for st in self.index.dropped if st.id not in gone]
        await self._withdraw([st for st, _ in failed])

    async def _reset_failures(self, assignment_id: int) -> None:
        async with write_gate(self.sf), self.sf() as s:
            await s.execute(
                update(Assignment).where(Assignment.id == assignment_id).values(consecutive_failures=0)
            )
            await s.commit()

    async def _positions(
        self, t: m.Tick, frame: Frame, results: list[tuple[AssignmentState, m.EvalOutcome]]
    ) -> None:
        """``on_tick`` returned a position, as ``decide`` does: its quotes come down and the position is taken
        at the market like a candle decision's (core.trade, the tick's last trade as its reference price)."""
        await self._withdraw([st for st, _ in results])
        price = t.last or (t.bid + t.ask) / 2
        candle = m.Candle(
            exchange=t.exchange,
            symbol=t.symbol,
            tf=frame.tf,
            time=t.time - t.time % 1000,
            open=price,
            high=price,
            low=price,
            close=price,
            volume=0.0,
            trace_id=t.trace_id,
            recv_ns=t.recv_ns,
        )
        await self.desk.handle(candle, results, [])


def _cost(changes: list[tuple[str, model.Quote | None, QuoteSlot | None]]) -> int:
    """The calls a change of quotes makes: a placement and a cancel each."""
    return sum((want is not None) + (have is not None) for _, want, have in changes)


def _refused_buy(book: risk.AccountBook, want: model.Quote) -> str | None:
    """Why the account's limits refuse a buy quote (its daily loss limit, its largest order), or None."""
    limits = book.limits
    if risk.loss_limit_reached(limits, book.loss_today):
        return f"daily loss limit reached: lost {book.loss_today:.2f} today (limit {limits.daily_loss_limit})"
    notional = want.price * want.amount
    if limits.max_order_notional is not None and notional > limits.max_order_notional:
        return f"worth {notional:.2f}, above max_order_notional {limits.max_order_notional}"
    return None
