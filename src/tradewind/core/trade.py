"""core.trade: decisions -> orders, without ever placing one twice.

Each decision goes through the trading model (``trading.model.intents``): an entry at the market or at a
limit with the exits that will protect it, an exit, new exits for the open position. An order gets a
client order id derived from (candle, assignment, target) (``domain.client_order_id``, led by the candle
so that its unique index grows at one end); its intent is written before the exchange is called (and
before the evaluation that caused it, see ``handle``), and a unique constraint refuses a second intent
(one an older core stored under the id's earlier form too: ``OrderBook.store_intents``). What happens to
an order after that is core.orders' business; recording the candle's evaluations is core.record's.
"""

from __future__ import annotations

import asyncio
import logging
import time
from decimal import Decimal
from typing import Any

from nats.aio.client import Client
from nats.aio.msg import Msg
from sqlalchemy import func, or_, select

from tradewind.bus import messages as m
from tradewind.bus import subjects
from tradewind.config import Settings
from tradewind.core import positions
from tradewind.core.decide import AssignmentIndex, AssignmentState
from tradewind.core.orders import Extra, OrderBook, Prepared, losses_today, new_order, track
from tradewind.core.record import Handled, Recorder
from tradewind.domain import client_order_id, split_symbol, tf_ms
from tradewind.metrics import ORDERS
from tradewind.storage.db import SessionFactory
from tradewind.storage.models import Assignment, Order, Trader, User
from tradewind.storage.types import table_of, utcnow
from tradewind.trading import model, risk

log = logging.getLogger(__name__)

ZERO = Decimal(0)
NO_LIMITS = risk.Limits()
_ASSIGNMENTS = table_of(Assignment)  # Core tables: the reads of ``_accounts`` as plain tuples
_ORDERS = table_of(Order)
_TRADERS = table_of(Trader)
_USERS = table_of(User)


STALE_NOTE = "not traded: a newer candle's decision was acted on first"
CLOSING_NOTE = "not traded: its position is being closed by its owner"
IN_FLIGHT_NOTE = "not traded: its previous order was still waiting for the exchange's answer"


# Per assignment (owner, account, exchange) or why it may not trade; per account its book.
Accounts = tuple[dict[int, tuple[int, int, str] | str], dict[int, risk.AccountBook]]


EXIT = model.Intent("exit")


class Balances:
    """The free balances of a candle's accounts, read when the candle came (``prefetch_balances``)."""

    def __init__(
        self, orders: OrderBook, accounts: dict[str, set[int]], read: asyncio.Future[list[dict[int, Any]]]
    ) -> None:
        self.orders = orders
        self.accounts = accounts
        self.read = read
        self.started = orders.calls_started  # order calls this core had started when the read began

    def usable(self, buyers: dict[str, set[int]]) -> asyncio.Future[list[dict[int, Any]]] | None:
        """The read, if it covers ``buyers`` and no order call started since it began; else None."""
        if self.orders.calls_started != self.started or self.orders.calls_open:
            return None
        if any(not ids <= self.accounts.get(e, set()) for e, ids in buyers.items()):
            return None
        if self.read.done() and self.read.exception() is not None:
            return None  # asked again: a bus failure propagates from there
        return self.read

    def cancel(self) -> None:
        if not self.read.done():
            self.read.cancel()
        elif not self.read.cancelled():
            self.read.exception()  # retrieved: an unused failed read is no "never retrieved" warning


def _decision(out: m.EvalOutcome) -> model.Decision:
    return model.decision(
        out.position, out.size, out.stop_loss, out.take_profit, out.trailing_stop, out.limit, out.expire
    )


class TradeDesk:
    """Turns a candle's evaluations into orders; ``orders`` places and follows them, ``recorder`` stores
    the evaluations."""

    def __init__(self, settings: Settings, nc: Client, sf: SessionFactory, index: AssignmentIndex) -> None:
        self.settings = settings
        self.nc = nc
        self.sf = sf
        self.index = index
        self.orders = OrderBook(settings, nc, sf, index)
        self.recorder = Recorder(nc, sf, index, self.orders)
        self._cancels: list[
            tuple[AssignmentState, int, str, str]
        ] = []  # (state, account, exchange, client id)
        # Assignments whose position a person is closing (core.close): their decisions trade nothing meanwhile.
        self.closing: set[int] = set()
        # Assignments whose decision is being turned into orders (from the check of ``pending`` to their
        # intents stored and tracked): a close waits for them, and then sees their orders.
        self.deciding: dict[int, int] = {}

    # What the service and the tests call, where it lives.
    async def drain(self) -> None:
        await self.orders.drain()

    async def apply(self, acks: list[tuple[str, m.OrderAck, float | None]]) -> None:
        await self.orders.apply(acks)

    async def reconcile(self, min_age_s: float | None = None, limit: int = 500) -> int:
        return await self.orders.reconcile(min_age_s, limit)

    async def on_order_update(self, msg: Msg) -> None:
        await self.orders.on_order_update(msg)

    async def settle(self, timeout_s: float = 2.0, candle: m.Candle | None = None) -> None:
        await self.orders.settle(timeout_s, candle)

    @staticmethod
    def in_flight(
        candle: m.Candle, results: list[tuple[AssignmentState, m.EvalOutcome]]
    ) -> tuple[list[tuple[AssignmentState, m.EvalOutcome]], list[tuple[AssignmentState, m.EvalOutcome]]]:
        """Split a chunk's outcomes into those to act on now and the decisions of assignments whose previous
        market order is still on its way (``pending``): their position is not known until it is answered.
        A candle that follows its predecessor closely (candles held up behind a retried chunk, then released
        at once) would otherwise find most of them in flight and trade nothing for them."""
        ready: list[tuple[AssignmentState, m.EvalOutcome]] = []
        held: list[tuple[AssignmentState, m.EvalOutcome]] = []
        for st, out in results:
            waits = out.status == "ok" and st.pending and candle.time >= st.acted_through
            (held if waits else ready).append((st, out))
        return ready, held

    async def answered(self, states: list[AssignmentState], timeout_s: float | None = None) -> None:
        """Wait until none of ``states`` has a market order in flight, or until no order call of this core is
        open any more (an order the venue accepted but has not filled yet, "ACTIVE" on Bitfinex, may stay in
        flight for long: the market's next candles do not wait for its fill), at most ``timeout_s`` (by
        default the order call's own timeout: after it, an unanswered order is the reconciler's)."""
        deadline = time.monotonic() + (self.order_timeout_s if timeout_s is None else timeout_s)
        while any(st.pending for st in states) and self.orders.calls_open > 0 and time.monotonic() < deadline:
            await asyncio.sleep(0.002)

    async def record(self, candle: m.Candle, later: list[Handled]) -> None:
        await self.recorder.record(candle, later)

    @property
    def order_timeout_s(self) -> float:
        return self.orders.order_timeout_s

    @order_timeout_s.setter
    def order_timeout_s(self, value: float) -> None:
        self.orders.order_timeout_s = value

    @property
    def reconcile_after_s(self) -> float:
        return self.orders.reconcile_after_s

    @reconcile_after_s.setter
    def reconcile_after_s(self, value: float) -> None:
        self.orders.reconcile_after_s = value

    # -- evaluations in, orders out ------------------------------------------------------------------

    async def handle(
        self,
        candle: m.Candle,
        results: list[tuple[AssignmentState, m.EvalOutcome]],
        later: list[Handled] | None = None,
        accounts: asyncio.Task[Accounts] | None = None,
        balances: Balances | None = None,
    ) -> None:
        """Store the order intents one chunk's evaluations cause, start those orders, then record the
        evaluations — or, given ``later``, leave that to one ``record(candle, later)`` for the whole
        candle, so that no chunk's orders wait behind another chunk's evaluation rows. ``accounts``,
        ``balances``: their reads started when the candle came (``prefetch``, ``prefetch_balances``)."""
        now_ns = time.time_ns()
        tick_ms = (now_ns - candle.recv_ns) / 1e6 if candle.recv_ns else None
        # Only what the orders need happens before they go out; rows and metrics wait for ``record``.
        paused: list[tuple[int, str]] = []
        reset: list[int] = []
        notes: dict[int, str] = {}
        wanted: list[tuple[AssignmentState, model.Intent, str | None]] = []
        pause_after = self.settings.eval_pause_after_failures
        for st, out in results:
            if out.status != "ok":
                st.failures += 1
                if st.failures >= pause_after:
                    paused.append(
                        (
                            st.id,
                            f"paused after {st.failures} failed evaluations in a row; last error: {out.error}",
                        )
                    )
                continue
            if st.failures:
                st.failures = 0
                reset.append(st.id)
            if candle.time < st.acted_through:
                # A decision older than one already acted on: its candle came back after a newer one (a core
                # died holding it and the stream redelivered it after the standby had gone on). It is recorded,
                # but trading on it would undo the newer decision.
                ORDERS.labels("stale_decision").inc()
                notes[st.id] = STALE_NOTE
                continue
            st.acted_through = candle.time
            if st.trader_id is None:
                continue
            if st.pending:  # waited for (``in_flight``, ``answered``) and still unanswered
                notes[st.id] = IN_FLIGHT_NOTE
                continue
            if st.id in self.closing:
                notes[st.id] = CLOSING_NOTE
                continue
            if st.protection is not None and st.position_qty > 0:
                hit = self._watch(st, candle)
                if hit is not None:  # core holds this guard itself (the venue cannot): it exits now
                    wanted.append((st, EXIT, hit))
                    continue
            if st.entry_open is not None and st.entry_expires is not None:
                if candle.time + tf_ms(candle.tf) >= st.entry_expires and st.trader_id is not None:
                    # its last candle closed: core takes it down (a venue that expires orders has already)
                    self._cancels.append((st, st.trader_id, st.trader_exchange or st.exchange, st.entry_open))
                    st.entry_expires = None
            slot = model.Slot(st.position_qty, st.entry_open is not None, positions.exits_of(st.protection))
            for intent in model.intents(slot, _decision(out)):
                wanted.append((st, intent, None))

        active = {st.id for st, _, _ in wanted}
        for aid in active:
            self.deciding[aid] = self.deciding.get(aid, 0) + 1
        try:
            placed = await self._place(candle, wanted, notes, accounts, balances)
        finally:
            for aid in active:
                left = self.deciding.pop(aid, 1) - 1
                if left > 0:
                    self.deciding[aid] = left
        if placed:  # started by ``_place``
            await asyncio.sleep(0)  # let the order calls go out before this chunk's (or candle's) bookkeeping
        if self._cancels:
            cancels, self._cancels = self._cancels, []
            unique = {
                c: (st.owner_id, t, e, c, st.symbol) for st, t, e, c in cancels
            }  # an expiry and a "short" at once
            self.orders.spawn(self.orders.cancel_all(list(unique.values())))
        work = Handled(results, tick_ms, paused, reset, notes)
        if later is None:
            await self.recorder.record(candle, [work])
        else:
            later.append(work)

    async def _place(
        self,
        candle: m.Candle,
        wanted: list[tuple[AssignmentState, model.Intent, str | None]],
        notes: dict[int, str],
        accounts: asyncio.Task[Accounts] | None,
        balances: Balances | None = None,
    ) -> list[dict[str, Any]]:
        """Plan the intents' orders, store them and track them; the orders whose calls are to start."""
        orders = await self._plan(candle, wanted, notes, accounts, balances)
        if self.closing and orders:  # a person started closing one of these positions meanwhile: theirs wins
            for o in orders:
                if o["assignment_id"] in self.closing:
                    notes[o["assignment_id"]] = CLOSING_NOTE
                    self.orders.extra.pop(o["client_order_id"], None)
            orders = [o for o in orders if o["assignment_id"] not in self.closing]
        placed: list[dict[str, Any]] = []
        prepared: Prepared | None = None
        if orders:
            # The intents first, in a transaction of their own, and the calls right after them: a chunk's
            # evaluation rows are written while its orders travel. A crash in between leaves intents without
            # their evaluations; the redelivered candle evaluates those assignments again, and a decision's
            # client order id (candle, assignment, target) refuses a second intent, so no second order. The
            # requests are made while the intents are written (nothing is sent before they are committed).
            wanted_calls = [o for o in orders if o["status"] == "pending"]
            new_ids, prepared = await asyncio.gather(
                self.orders.store_intents(orders), self.orders.prepare(candle, wanted_calls)
            )
            placed = [o for o in wanted_calls if o["client_order_id"] in new_ids]
            if len(placed) != len(wanted_calls):  # some were stored before (a candle delivered again)
                prepared = None
            for o in orders:
                if o["status"] == "rejected":
                    ORDERS.labels("rejected").inc()
        if placed:
            # The intents are stored: the calls and their bookkeeping need not hold up the next chunk or
            # candle (a crash from here on is settled by the reconciler, by client order id).
            for o in placed:
                st = self.index.by_id.get(o["assignment_id"])
                if st is not None:
                    track(st, o)
            self.orders.start_orders(candle, placed, prepared)
        return placed

    def _watch(self, st: AssignmentState, candle: m.Candle) -> str | None:
        """A guard core holds itself (``watched``; or any guard's trailing high, which the web app draws):
        whether this closed candle reached its stop or target — then the reason to exit at the market —
        else raise its trailing high."""
        p = st.protection
        if p is None or p.get("entry") is None:
            return None
        watched = p.get("watched")
        if not watched and (p.get("high") is None or candle.high <= float(p["high"])):
            return None  # the usual case, decided without Decimals: nothing to check, no new high
        if (
            not watched
            and p.get("stop_loss") is None
            and p.get("take_profit") is None
            and p.get("trailing_stop") is None
        ):
            st.protection = {
                **p,
                "high": repr(candle.high),
            }  # no exits yet: the high, in memory, for later ones
            return None
        g = positions.guard_of(p)
        if g is None:
            return None
        bar = model.Bar.of(candle.time, candle.open, candle.high, candle.low, candle.close)
        if watched:
            hit = g.check(bar)
            if hit is not None:
                return hit[1]
        if bar.high > g.high:  # kept whether or not it trails now: a trailing stop set later starts from it
            st.protection = positions.with_guard(p, g.closed(bar))
            if g:  # stored with the candle's evaluations when the position has exits (else kept in memory)
                self.orders.dirty[st.id] = st.protection
        return None

    async def _plan(
        self,
        candle: m.Candle,
        wanted: list[tuple[AssignmentState, model.Intent, str | None]],
        notes: dict[int, str],
        accounts: asyncio.Task[Accounts] | None = None,
        balances: Balances | None = None,
    ) -> list[dict[str, Any]]:
        """Turn the trading model's intents into order rows: ownership, sizing, the balance check and the
        account's risk limits. What core keeps in memory only says which assignments might trade; whether
        they may, and with which account and limits, is read from the database here, for every order
        (``_accounts``), so a change the index has not caught up with yet can never move money.
        ``accounts``: that read, started by ``prefetch`` when the candle arrived (shared by the candle's
        chunks). ``notes`` gets, per assignment, why a decision was not traded or traded smaller than
        asked. Cancels of resting entries go out with the orders (``self._cancels``)."""
        if not wanted:
            return []
        price = Decimal(repr(candle.close))
        buyers: dict[str, set[int]] = {}
        for st, it, _ in wanted:
            if it.kind == "enter" and st.trader_id is not None and st.trader_exchange is not None:
                buyers.setdefault(st.trader_exchange, set()).add(st.trader_id)
        asset = split_symbol(candle.symbol)[1]
        fresh_enough = balances.usable(buyers) if balances is not None and buyers else None
        found, facts = await asyncio.gather(
            fresh_enough
            if fresh_enough is not None
            else asyncio.gather(*(self._free(e, ids, asset) for e, ids in buyers.items())),
            accounts if accounts is not None else self._accounts(candle, [st for st, _, _ in wanted]),
        )
        allowed, books = facts
        for free in found:
            for trader_id, amount in free.items():
                if trader_id in books:
                    books[trader_id].free = amount
        rows = []
        now = utcnow()  # one timestamp for the batch (and processed once by insert_rows)
        tf = tf_ms(candle.tf)
        for st, it, why in wanted:
            fresh = allowed.get(st.id)
            if isinstance(fresh, str):
                notes[st.id] = fresh
                continue
            assert fresh is not None
            owner_id, trader_id, exchange = fresh
            kind = it.kind
            if kind == "cancel_entry":
                if st.entry_open is not None:
                    self._cancels.append((st, trader_id, exchange, st.entry_open))
                continue
            if kind == "enter":
                reference = it.limit if it.limit is not None else price
                capital = model.capital(st.allocation, st.realized_pnl)
                sized = risk.size_buy(books[trader_id], candle.symbol, capital, it.size, reference)
                if sized.note:
                    notes[st.id] = sized.note
                cid = client_order_id(st.id, candle.time, "long")
                rows.append(
                    new_order(
                        now,
                        candle.time,
                        owner_id,
                        st.id,
                        trader_id,
                        exchange,
                        st.symbol,
                        client_order_id=cid,
                        side="buy",
                        amount=sized.amount,
                        status="rejected" if sized.reason else "pending",
                        reason=sized.reason,
                        size_note=sized.note,
                        type="market" if it.limit is None else "limit",
                        limit_price=it.limit,
                        expires_at=None if it.limit is None else model.expiry(candle.time, tf, it.expire),
                    )
                )
                if it.exits and not sized.reason:  # stored with the intent (store_intents), the entry's exits
                    self.orders.extra[cid] = Extra(
                        protect=it.exits, protection=positions.protection(it.exits, None, cid)
                    )
            elif kind == "exit":
                cid = client_order_id(st.id, candle.time, "short")
                rows.append(
                    new_order(
                        now,
                        candle.time,
                        owner_id,
                        st.id,
                        trader_id,
                        exchange,
                        st.symbol,
                        client_order_id=cid,
                        side="sell",
                        amount=st.position_qty,
                        type="market",
                        size_note=None,
                        exit_reason=why or "signal",
                    )
                )
                # the position's protective orders (and a resting entry) come down first, in the same call
                cancels = [*st.resting, *([st.entry_open] if st.entry_open else [])]
                if cancels:
                    self.orders.extra[cid] = Extra(cancels=cancels)
            elif kind == "protect" and st.protection is not None:
                p = positions.moved(st.protection, it.exits)
                new = positions.orders(p, st.position_qty)
                for i, o in enumerate(new):
                    ref = o.pop("reference")
                    # drawn on the candle it fills in
                    rows.append(
                        new_order(
                            now, None, owner_id, st.id, trader_id, exchange, st.symbol, size_note=None, **o
                        )
                    )
                    # each names the old orders: if one of them filled meanwhile, none of the new ones is
                    # placed for the position it sold (model.refused_after_cancels); the first cancels them
                    self.orders.extra[o["client_order_id"]] = Extra(
                        cancels=list(st.resting),
                        reference=ref,
                        protection=p if i == 0 else None,
                    )
                if not new:  # nothing to hold on the venue (cannot happen with exits set): keep it in core
                    st.protection = p
        return rows

    def prefetch(self, candle: m.Candle, states: list[AssignmentState]) -> asyncio.Task[Accounts]:
        """Start reading the candle's accounts (``_accounts``) while its evaluations run: the read is then
        off the path from the tick to the order calls. It sees every change committed before the candle
        reached core."""
        return asyncio.create_task(self._accounts(candle, states))

    def prefetch_balances(self, candle: m.Candle, states: list[AssignmentState]) -> Balances | None:
        """Start reading the free balance of the candle's paper accounts while its evaluations run, when no
        order of this core is on its way (None otherwise: ``_plan`` asks after the evaluations, as it must
        then). ``_plan`` uses it only if no order call started since (``Balances.usable``): the balance it
        gives is then what a read after the evaluations would give, as far as this core's orders go. Only
        paper accounts: a venue's balance costs a call of the key's budget, made only for a candle that buys."""
        if self.orders.calls_open:
            return None
        accounts: dict[str, set[int]] = {}
        for st in states:
            if st.trader_id is not None and st.trader_exchange is not None and st.trader_paper:
                accounts.setdefault(st.trader_exchange, set()).add(st.trader_id)
        if not accounts:
            return None
        asset = split_symbol(candle.symbol)[1]
        read = asyncio.gather(*(self._free(e, ids, asset) for e, ids in accounts.items()))
        return Balances(self.orders, accounts, read)

    async def accounts(self, candle: Any, states: list[AssignmentState]) -> Accounts:
        """Whether the assignments may trade, and through which account (``_accounts``): core.quotes asks
        before its quotes go out, for a tick's market and an assignment's timeframe (``candle``)."""
        return await self._accounts(candle, states)

    async def _accounts(self, candle: m.Candle, states: list[AssignmentState]) -> Accounts:
        """Read, for the assignments of a candle, whether they still may trade and through which account:
        per assignment ``(owner, account, exchange)`` or why not; per account its limits, what
        its assignments hold of this market (with buys in flight) and its realized loss today."""
        a, t, u, o = _ASSIGNMENTS.c, _TRADERS.c, _USERS.c, _ORDERS.c
        async with self.sf() as s:
            # One query for the assignments of the candle's market and timeframe (by its index: an IN list of
            # 1,000 ids costs more to expand than the rows it saves), integers only, read as plain tuples (a
            # Row's attribute lookups and decoding Money columns cost more than the query at 1,000
            # assignments: 10 ms before, 3 ms now); the limits of the few accounts that have any come in a
            # second query. The allocation is the index's: it is no limit (the account's limits and balance
            # are), and a change of it reaches the index by event.
            has_limits = or_(
                t.max_order_notional.is_not(None),
                t.max_position.is_not(None),
                t.daily_loss_limit.is_not(None),
            )
            rows = {
                r[0]: tuple(r)
                for r in (
                    await s.execute(
                        select(
                            a.id,
                            a.owner_id,
                            a.trader_id,
                            a.enabled,
                            t.owner_id,
                            t.exchange,
                            u.killed,
                            has_limits,
                        )
                        .select_from(
                            _ASSIGNMENTS.outerjoin(_TRADERS, t.id == a.trader_id).outerjoin(
                                _USERS, u.id == t.owner_id
                            )
                        )
                        .where(a.market_id == states[0].market_id, a.timeframe == candle.tf)
                    )
                ).all()
            }
            limited_ids = {r[2] for r in rows.values() if r[7]}
            limits = (
                {
                    r[0]: risk.Limits(*r[1:])
                    for r in (
                        await s.execute(
                            select(t.id, t.max_order_notional, t.max_position, t.daily_loss_limit).where(
                                t.id.in_(limited_ids)
                            )
                        )
                    ).all()
                }
                if limited_ids
                else {}
            )
            allowed: dict[int, tuple[int, int, str] | str] = {}
            books: dict[int, risk.AccountBook] = {}
            for st in states:
                row = rows.get(st.id)
                if row is None:
                    allowed[st.id] = "not traded: the assignment was deleted"
                    continue
                _, owner, trader_id, enabled, trader_owner, exchange, killed, _ = row
                if not enabled:
                    allowed[st.id] = "not traded: the assignment was paused"
                elif trader_owner is None or trader_id != st.trader_id:
                    allowed[st.id] = "not traded: its trading account changed or was deleted"
                elif not (trader_owner == owner == st.owner_id) or exchange != candle.exchange:
                    # Never expected: every path that links an account checks its owner. Were one to miss,
                    # this is where the money stops.
                    ORDERS.labels("refused_owner").inc()
                    log.error(
                        "core: assignment %s (owner %s) refused an order on account %s (owner %s, %s)",
                        st.id,
                        owner,
                        trader_id,
                        trader_owner,
                        exchange,
                    )
                    allowed[st.id] = (
                        "not traded: the trading account does not belong to this assignment's owner"
                    )
                elif killed:
                    allowed[st.id] = "not traded: the kill switch is on"
                else:
                    allowed[st.id] = (owner, trader_id, exchange)
                    if trader_id not in books:
                        books[trader_id] = risk.AccountBook(
                            limits=limits.get(trader_id, NO_LIMITS), free=None
                        )
            positioned = [tid for tid, b in books.items() if b.limits.max_position is not None]
            if positioned:
                held = (
                    await s.execute(
                        select(a.trader_id, func.sum(a.position_qty))
                        .where(a.trader_id.in_(positioned), a.market_id == states[0].market_id)
                        .group_by(a.trader_id)
                    )
                ).all()
                flying = (
                    await s.execute(
                        select(o.trader_id, func.sum(o.amount))
                        .where(
                            o.status.in_(("pending", "open")),
                            o.side == "buy",
                            o.trader_id.in_(positioned),
                            o.exchange == candle.exchange,
                            o.symbol == candle.symbol,
                        )
                        .group_by(o.trader_id)
                    )
                ).all()
                for tid, qty in [*held, *flying]:
                    book = books[tid].held
                    book[candle.symbol] = book.get(candle.symbol, ZERO) + Decimal(qty or 0)
            limited = [tid for tid, b in books.items() if b.limits.daily_loss_limit is not None]
            if limited:
                for tid, loss in (await losses_today(s, limited)).items():
                    books[tid].loss_today = loss
        return allowed, books

    async def _free(self, exchange: str, trader_ids: set[int], asset: str) -> dict[int, Decimal | None]:
        """The free ``asset`` of each account, in one request to the exchange service (None: unknown)."""
        # A bus failure (timeout, no responder) propagates: core retries the candle rather than drop the trade.
        msg = await self.nc.request(
            subjects.exchange_balances(exchange),
            m.encode(m.BalancesRequest(trader_ids=sorted(trader_ids))),
            timeout=5,
        )
        reply = m.decode(msg.data, m.BalancesReply)
        for trader_id, error in reply.errors.items():
            log.warning("balance check for trader %s: %s", trader_id, error)
        return {
            t: Decimal(reply.balances[t].get(asset, "0")) if t in reply.balances else None for t in trader_ids
        }
