"""core.trade: decisions -> orders, without ever placing one twice.

Each decision is a target position. An order gets a client order id derived from (assignment, candle,
target); its intent is written before the exchange is called (and before the evaluation that caused
it, see ``handle``), and a unique constraint refuses a second intent. A call whose outcome is unknown
(timeout) stays ``pending`` until the reconciler asks the exchange by client id: filled, open, or
never placed. Nothing is retried blindly.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from decimal import Decimal
from typing import Any, NamedTuple

from nats.aio.client import Client
from nats.aio.msg import Msg
from sqlalchemy import bindparam, func, or_, select, update
from sqlalchemy.exc import IntegrityError

from tradewind.bus import messages as m
from tradewind.bus import subjects
from tradewind.config import Settings
from tradewind.core.decide import AssignmentIndex, AssignmentState
from tradewind.domain import client_order_id, split_symbol
from tradewind.metrics import EVAL_DURATION, EVALUATIONS, ORDERS, TICK_TO_DECISION, TICK_TO_ORDER
from tradewind.storage.db import SessionFactory, dialect_of, insert_for, insert_rows, write_gate
from tradewind.storage.models import Assignment, Evaluation, Order, Trader, User
from tradewind.storage.types import utcnow
from tradewind.trading import risk

log = logging.getLogger(__name__)

ZERO = Decimal(0)
NO_LIMITS = risk.Limits()
EVALS_OK = EVALUATIONS.labels("ok")  # the labelled child, looked up once
APPLY_ATTEMPTS = 40  # about two and a half minutes of retries, then the reconciler settles them
ORDER_BATCH = 250  # orders per request to an exchange service
TERMINAL = ("filled", "canceled", "rejected", "not_placed")
_ASSIGNMENTS = Assignment.__table__  # Core tables: executemany updates without the ORM's bulk rules
_ORDERS = Order.__table__
_EVALUATIONS = Evaluation.__table__
_TRADERS = Trader.__table__
_USERS = User.__table__


STALE_NOTE = "not traded: a newer candle's decision was acted on first"


# Per assignment (owner, account, exchange) or why it may not trade; per account its book.
Accounts = tuple[dict[int, tuple[int, int, str] | str], dict[int, risk.AccountBook]]


class Handled(NamedTuple):
    """What ``handle`` leaves for ``record``: one chunk's outcomes and what they change."""

    results: list[tuple[AssignmentState, m.EvalOutcome]]
    tick_ms: float | None  # candle -> decision
    paused: list[tuple[int, str]]  # (assignment, reason)
    reset: list[int]  # assignments whose failure count is back to 0
    notes: dict[int, str]  # assignment -> why its decision was not traded, or traded smaller than asked


class TradeDesk:
    def __init__(self, settings: Settings, nc: Client, sf: SessionFactory, index: AssignmentIndex) -> None:
        self.settings = settings
        self.nc = nc
        self.sf = sf
        self.index = index
        self.order_timeout_s = 10.0
        self.reconcile_after_s = 15.0
        self._insert = insert_for(dialect_of(sf))
        self._inflight: set[asyncio.Task[None]] = set()
        self._apply_lock = asyncio.Lock()

    async def drain(self) -> None:
        """Wait for the order calls in flight (tests, and a clean shutdown)."""
        while self._inflight:
            await asyncio.gather(*list(self._inflight), return_exceptions=True)

    # -- evaluations in, orders out ------------------------------------------------------------------
    async def handle(
        self,
        candle: m.Candle,
        results: list[tuple[AssignmentState, m.EvalOutcome]],
        later: list[Handled] | None = None,
        accounts: asyncio.Task[Accounts] | None = None,
    ) -> None:
        """Store the order intents one chunk's evaluations cause, start those orders, then record the
        evaluations — or, given ``later``, leave that to one ``record(candle, later)`` for the whole
        candle, so that no chunk's orders wait behind another chunk's evaluation rows."""
        now_ns = time.time_ns()
        tick_ms = (now_ns - candle.recv_ns) / 1e6 if candle.recv_ns else None
        # Only what the orders need happens before they go out; rows and metrics wait for ``record``.
        paused: list[tuple[int, str]] = []
        reset: list[int] = []
        notes: dict[int, str] = {}
        wanted: list[tuple[AssignmentState, str, float]] = []
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
            if st.trader_id is None or st.pending:
                continue
            if out.position == "long" and st.position_qty <= 0:
                wanted.append((st, "buy", max(0.0, min(1.0, out.size))))
            elif out.position == "short" and st.position_qty > 0:
                wanted.append((st, "sell", 1.0))

        orders = await self._plan(candle, wanted, notes, accounts)
        placed: list[dict[str, Any]] = []
        if orders:
            # The intents first, in a transaction of their own, and the calls right after them: a chunk's
            # evaluation rows are written while its orders travel. A crash in between leaves intents without
            # their evaluations; the redelivered candle evaluates those assignments again, and a decision's
            # client order id (assignment, candle, target) refuses a second intent, so no second order.
            new_ids = await self._store_intents(orders)
            placed = [o for o in orders if o["client_order_id"] in new_ids and o["status"] == "pending"]
            for o in orders:
                if o["status"] == "rejected":
                    ORDERS.labels("rejected").inc()
        if placed:
            # The intents are stored: the calls and their bookkeeping need not hold up the next chunk or
            # candle (a crash from here on is settled by the reconciler, by client order id).
            for o in placed:
                st = self.index.by_id.get(o["assignment_id"])
                if st is not None:
                    st.pending.add(o["client_order_id"])
            self._start_orders(candle, placed)
            await asyncio.sleep(0)  # let the order calls go out before this chunk's (or candle's) bookkeeping
        work = Handled(results, tick_ms, paused, reset, notes)
        if later is None:
            await self.record(candle, [work])
        else:
            later.append(work)

    async def record(self, candle: m.Candle, later: list[Handled]) -> None:
        """Store evaluations (and failure counts, and pauses) handled with ``later``, in one transaction."""
        now = utcnow()
        evals: list[dict[str, Any]] = []
        for h in later:
            tick_ms = h.tick_ms
            for st, out in h.results:
                note = out.note
                ours = h.notes.get(st.id)
                if ours:  # the user sees why no order (or a smaller one) followed this decision
                    note = f"{note} · {ours}" if note else ours
                if tick_ms is not None:
                    TICK_TO_DECISION.observe(tick_ms)
                EVAL_DURATION.observe(out.duration_us / 1000)
                (EVALS_OK if out.status == "ok" else EVALUATIONS.labels(out.status)).inc()
                evals.append({
                    "assignment_id": st.id, "candle_time": candle.time, "status": out.status, "position": out.position,
                    "size": out.size, "note": note, "error": out.error, "logs": list(out.logs),
                    "duration_ms": out.duration_us / 1000, "latency_ms": tick_ms, "created_at": now,
                })  # fmt: skip
        results = [r for h in later for r in h.results]
        paused = [p for h in later for p in h.paused]
        reset = [a for h in later for a in h.reset]
        async with write_gate(self.sf), self.sf() as s:
            if evals:
                # Core, not ORM, inserts: the ORM's bulk path costs ~0.1 ms a row, a candle of 1,000 adds 0.1 s
                ins = self._insert(_EVALUATIONS).on_conflict_do_nothing(
                    index_elements=["assignment_id", "candle_time"]
                )
                await s.execute(ins, evals)
            paused_ids = {aid for aid, _ in paused}
            failing = [st.id for st, out in results if out.status != "ok" and st.id not in paused_ids]
            if failing:
                await s.execute(
                    update(_ASSIGNMENTS).where(_ASSIGNMENTS.c.id == bindparam("aid")).values(
                        consecutive_failures=_ASSIGNMENTS.c.consecutive_failures + 1),
                    [{"aid": a} for a in failing],
                )  # fmt: skip
            if reset:
                await s.execute(
                    update(_ASSIGNMENTS)
                    .where(_ASSIGNMENTS.c.id == bindparam("aid"))
                    .values(consecutive_failures=0),
                    [{"aid": a} for a in reset],
                )
            for aid, reason in paused:
                await s.execute(
                    update(Assignment).where(Assignment.id == aid).values(
                        enabled=False, paused_reason=reason, consecutive_failures=Assignment.consecutive_failures + 1)
                )  # fmt: skip
            await s.commit()
        for aid, _ in paused:
            self.index.remove(aid)
        await self._publish_evaluations(candle, results)

    async def _store_intents(self, orders: list[dict[str, Any]]) -> set[str]:
        """Insert order intents; return the client order ids that are new (the others exist already)."""
        async with write_gate(self.sf), self.sf() as s:
            try:  # the usual case, every intent new: a plain batch insert (RETURNING costs 3x as much)
                await insert_rows(s, _ORDERS, orders)
                await s.commit()
                return {o["client_order_id"] for o in orders}
            except IntegrityError:  # some exist (a redelivered candle): insert the others, learn which
                await s.rollback()
            ins = self._insert(_ORDERS).on_conflict_do_nothing(index_elements=["client_order_id"])
            new_ids = set((await s.execute(ins.returning(_ORDERS.c.client_order_id), orders)).scalars())
            await s.commit()
            return new_ids

    async def _plan(
        self,
        candle: m.Candle,
        wanted: list[tuple[AssignmentState, str, float]],
        notes: dict[int, str],
        accounts: asyncio.Task[Accounts] | None = None,
    ) -> list[dict[str, Any]]:
        """Turn wanted trades into order rows: ownership, sizing, the balance check and the account's risk
        limits. What core keeps in memory only says which assignments might trade; whether they may, and
        with which account and limits, is read from the database here, for every order (``_accounts``), so
        a change the index has not caught up with yet can never move money. ``accounts``: that read, started
        by ``prefetch`` when the candle arrived (shared by the candle's chunks). ``notes`` gets, per
        assignment, why a decision was not traded or traded smaller than asked."""
        if not wanted:
            return []
        price = Decimal(repr(candle.close))
        buyers: dict[str, set[int]] = {}
        for st, side, _ in wanted:
            if side == "buy" and st.trader_id is not None and st.trader_exchange is not None:
                buyers.setdefault(st.trader_exchange, set()).add(st.trader_id)
        found, facts = await asyncio.gather(
            asyncio.gather(
                *(self._free(e, ids, split_symbol(candle.symbol)[1]) for e, ids in buyers.items())
            ),
            accounts if accounts is not None else self._accounts(candle, [st for st, _, _ in wanted]),
        )
        allowed, books = facts
        for free in found:
            for trader_id, amount in free.items():
                if trader_id in books:
                    books[trader_id].free = amount
        rows = []
        now = utcnow()  # one timestamp for the batch (and processed once by insert_rows)
        for st, side, size in wanted:
            fresh = allowed.get(st.id)
            if isinstance(fresh, str):
                notes[st.id] = fresh
                continue
            assert fresh is not None
            owner_id, trader_id, exchange = fresh
            reason = None
            if side == "buy":
                sized = risk.size_buy(books[trader_id], candle.symbol, st.allocation, size, price)
                amount, reason = sized.amount, sized.reason
                if sized.note:
                    notes[st.id] = sized.note
            else:
                amount = st.position_qty
            cid = client_order_id(st.id, candle.time, "long" if side == "buy" else "short")
            rows.append({
                "owner_id": owner_id, "assignment_id": st.id, "trader_id": trader_id, "client_order_id": cid,
                "exchange": exchange, "symbol": st.symbol, "side": side, "amount": amount,
                "status": "rejected" if reason else "pending", "reason": reason, "candle_time": candle.time,
                "filled": ZERO, "fee": ZERO, "created_at": now, "updated_at": now,
            })  # fmt: skip
        return rows

    def prefetch(self, candle: m.Candle, states: list[AssignmentState]) -> asyncio.Task[Accounts]:
        """Start reading the candle's accounts (``_accounts``) while its evaluations run: the read is then
        off the path from the tick to the order calls. It sees every change committed before the candle
        reached core."""
        return asyncio.create_task(self._accounts(candle, states))

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
            has_limits = or_(t.max_order_notional.is_not(None), t.max_position.is_not(None),
                             t.daily_loss_limit.is_not(None))  # fmt: skip
            rows = {r[0]: tuple(r) for r in (await s.execute(
                select(a.id, a.owner_id, a.trader_id, a.enabled, t.owner_id, t.exchange, u.killed, has_limits)
                .select_from(_ASSIGNMENTS.outerjoin(_TRADERS, t.id == a.trader_id).outerjoin(_USERS, u.id == t.owner_id))
                .where(a.market_id == states[0].market_id, a.timeframe == candle.tf)
            )).all()}  # fmt: skip
            limited_ids = {r[2] for r in rows.values() if r[7]}
            limits = {r[0]: risk.Limits(*r[1:]) for r in (await s.execute(
                select(t.id, t.max_order_notional, t.max_position, t.daily_loss_limit).where(t.id.in_(limited_ids))
            )).all()} if limited_ids else {}  # fmt: skip
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
                    log.error("core: assignment %s (owner %s) refused an order on account %s (owner %s, %s)",
                              st.id, owner, trader_id, trader_owner, exchange)  # fmt: skip
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
                held = (await s.execute(
                    select(a.trader_id, func.sum(a.position_qty)).where(
                        a.trader_id.in_(positioned), a.market_id == states[0].market_id).group_by(a.trader_id)
                )).all()  # fmt: skip
                flying = (await s.execute(
                    select(o.trader_id, func.sum(o.amount)).where(
                        o.status.in_(("pending", "open")), o.side == "buy", o.trader_id.in_(positioned),
                        o.exchange == candle.exchange, o.symbol == candle.symbol).group_by(o.trader_id)
                )).all()  # fmt: skip
                for tid, qty in [*held, *flying]:
                    book = books[tid].held
                    book[candle.symbol] = book.get(candle.symbol, ZERO) + Decimal(qty or 0)
            limited = [tid for tid, b in books.items() if b.limits.daily_loss_limit is not None]
            if limited:
                for tid, loss in (await _losses_today(s, limited)).items():
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

    def _start_orders(self, candle: m.Candle, orders: list[dict[str, Any]]) -> None:
        """One request per exchange and chunk of orders (the exchange service places them concurrently),
        each in a task of its own that starts sending at the caller's next ``await``; their results are
        recorded together."""
        by_exchange: dict[str, list[dict[str, Any]]] = {}
        for o in orders:
            by_exchange.setdefault(o["exchange"], []).append(o)
        calls = [
            asyncio.create_task(self._place_batch(candle, exchange, group[i : i + ORDER_BATCH]))
            for exchange, group in by_exchange.items()
            for i in range(0, len(group), ORDER_BATCH)
        ]
        task = asyncio.create_task(self._record_orders(calls))
        self._inflight.add(task)
        task.add_done_callback(self._inflight.discard)

    async def _record_orders(
        self, calls: list[asyncio.Task[list[tuple[str, m.OrderAck, float | None]]]]
    ) -> None:
        done = await asyncio.gather(*calls)
        acks = [ack for acks in done for ack in acks]
        for attempt in range(APPLY_ATTEMPTS):
            try:
                await self.apply(acks)
                return
            except Exception as exc:  # the database is away: keep what the exchange said and try again
                log.warning(
                    "recording %d order results failed (%s); retry %d",
                    len(acks),
                    type(exc).__name__,
                    attempt + 1,
                )
                await asyncio.sleep(min(0.5 * (attempt + 1), 5.0))
        log.error("%d order results not recorded; the reconciler will ask the exchange again", len(acks))

    async def _place_batch(
        self, candle: m.Candle, exchange: str, orders: list[dict[str, Any]]
    ) -> list[tuple[str, m.OrderAck, float | None]]:
        req = m.PlaceOrders(orders=[
            m.PlaceOrder(
                trader_id=o["trader_id"], owner_id=o["owner_id"], client_order_id=o["client_order_id"],
                symbol=o["symbol"], side=o["side"],
                amount=format(o["amount"], "f"), trace_id=candle.trace_id,
            ) for o in orders
        ])  # fmt: skip
        latency = (time.time_ns() - candle.recv_ns) / 1e6 if candle.recv_ns else None
        if latency is not None:
            for _ in orders:
                TICK_TO_ORDER.observe(latency)
        acks: dict[str, m.OrderAck] = {}
        problem = None
        try:
            msg = await self.nc.request(
                subjects.exchange_orders(exchange), m.encode(req), timeout=self.order_timeout_s
            )
            acks = {a.client_order_id: a for a in m.decode(msg.data, m.OrderAcks).acks}
        except Exception as exc:  # timeout, no responder, a garbled answer: the outcome is unknown
            problem = f"order call: {type(exc).__name__}"
        unknown = problem or "order call: the exchange did not answer for this order"
        return [
            (o["client_order_id"], acks.get(o["client_order_id"]) or m.OrderAck(
                client_order_id=o["client_order_id"], status="error", reason=unknown, retryable=True), latency)
            for o in orders
        ]  # fmt: skip

    # -- order state ----------------------------------------------------------------------------------
    async def apply(self, acks: list[tuple[str, m.OrderAck, float | None]]) -> None:
        """Record what the exchange said about orders; fills move the assignment's position, once.

        One read of the orders concerned, one batch of updates: a candle of 1,000 fills is a handful of
        statements, not thousands.
        """
        if not acks:
            return
        async with self._apply_lock:  # one at a time: a fill reported twice at once is booked once
            await self._apply(acks)

    async def _apply(self, acks: list[tuple[str, m.OrderAck, float | None]]) -> None:
        events = []
        losers: set[int] = set()
        async with write_gate(self.sf), self.sf() as s:
            cids = [cid for cid, _, _ in acks]
            rows = {
                r.client_order_id: r
                for r in (await s.execute(
                    select(Order.id, Order.client_order_id, Order.assignment_id, Order.side, Order.owner_id, Order.symbol,
                           Order.amount, Order.trader_id)
                    .where(Order.client_order_id.in_(cids), Order.status.in_(("pending", "open")))
                )).all()
            }  # fmt: skip
            fills = {rows[cid].assignment_id for cid, ack, _ in acks
                     if cid in rows and ack.status == "filled" and rows[cid].assignment_id is not None}  # fmt: skip
            a = _ASSIGNMENTS.c
            books: dict[int, dict[str, Any]] = {}  # the positions the fills move, read in one query
            if fills:
                books = {
                    r.id: {"aid": r.id, "position_qty": r.position_qty, "entry_cost": r.entry_cost,
                           "realized_pnl": r.realized_pnl, "last_position": r.last_position}
                    for r in (await s.execute(
                        select(a.id, a.position_qty, a.entry_cost, a.realized_pnl, a.last_position).where(a.id.in_(fills))
                    )).all()
                }  # fmt: skip
            updates: list[dict[str, Any]] = []
            now = utcnow()
            for cid, ack, latency in acks:
                row = rows.get(cid)
                if row is None:
                    continue  # already final: a second report of the same fill changes nothing
                values: dict[str, Any] = {"oid": row.id, "updated_at": now, "latency_ms": latency, "status": "pending",
                                          "reason": ack.reason, "filled": ZERO, "fee": ZERO, "price": None, "pnl": None,
                                          "exchange_order_id": ack.exchange_order_id}  # fmt: skip
                if ack.status == "not_found":
                    values.update(status="not_placed", reason="the exchange never received this order")
                elif ack.status != "error":  # "error": the outcome is unknown, it stays pending
                    values.update(status=ack.status, filled=Decimal(ack.filled), fee=Decimal(ack.fee),
                                  price=Decimal(ack.price) if ack.price is not None else None)  # fmt: skip
                ORDERS.labels(values["status"]).inc()
                if values["status"] == "filled" and row.assignment_id is not None and values["filled"] > 0:
                    pnl = self._book_fill(
                        books.get(row.assignment_id),
                        row.side,
                        values["filled"],
                        values["price"] or ZERO,
                        values["fee"],
                    )
                    values["pnl"] = pnl
                    if pnl is not None and pnl < 0:
                        losers.add(row.trader_id)
                updates.append(values)
                st = self.index.by_id.get(row.assignment_id) if row.assignment_id is not None else None
                if st is not None and values["status"] in TERMINAL:
                    st.pending.discard(cid)
                events.append((row.owner_id, {
                    "id": row.id, "assignment_id": row.assignment_id, "client_order_id": cid, "symbol": row.symbol,
                    "side": row.side, "amount": format(row.amount, "f"), "status": values["status"],
                    "filled": format(values["filled"], "f"), "price": ack.price, "fee": ack.fee, "reason": values["reason"],
                }))  # fmt: skip
            if updates:
                o = _ORDERS.c
                # Only still-open orders change: a concurrent report of the same fill is a no-op.
                stmt = update(_ORDERS).where(o.id == bindparam("oid"), or_(o.status == "pending", o.status == "open")).values(
                    status=bindparam("status"), filled=bindparam("filled"), fee=bindparam("fee"), price=bindparam("price"),
                    reason=bindparam("reason"), pnl=bindparam("pnl"), latency_ms=func.coalesce(bindparam("latency_ms"), o.latency_ms),
                    exchange_order_id=func.coalesce(bindparam("exchange_order_id"), o.exchange_order_id),
                    updated_at=bindparam("updated_at"),
                )  # fmt: skip
                await s.execute(stmt, updates)
            if books:
                now = utcnow()
                await s.execute(
                    update(_ASSIGNMENTS).where(a.id == bindparam("aid")).values(
                        position_qty=bindparam("position_qty"), entry_cost=bindparam("entry_cost"),
                        realized_pnl=bindparam("realized_pnl"), last_position=bindparam("last_position"), updated_at=now),
                    list(books.values()),
                )  # fmt: skip
            await s.commit()
        if losers:
            await self._check_daily_loss(losers)
        for owner_id, data in events:
            kind = "fill" if data["status"] == "filled" else "order"
            await self.nc.publish(subjects.user_events(owner_id), m.encode(m.UserEvent(kind=kind, data=data)))

    def _book_fill(
        self, book: dict[str, Any] | None, side: str, filled: Decimal, price: Decimal, fee: Decimal
    ) -> Decimal | None:
        """Move an assignment's position, entry cost and realized P&L (``book``, written back in one batch);
        return the P&L a sell realized."""
        if book is None:
            return None
        pnl = None
        qty = book["position_qty"] or ZERO
        if side == "buy":
            book["position_qty"] = qty + filled
            book["entry_cost"] = (book["entry_cost"] or ZERO) + filled * price + fee
            book["last_position"] = "long"
        else:
            fraction = min(Decimal(1), filled / qty) if qty > 0 else Decimal(1)
            cost = (book["entry_cost"] or ZERO) * fraction
            pnl = filled * price - fee - cost
            book["realized_pnl"] = (book["realized_pnl"] or ZERO) + pnl
            book["entry_cost"] = (book["entry_cost"] or ZERO) - cost
            book["position_qty"] = max(ZERO, qty - filled)
            book["last_position"] = "short"
        st = self.index.by_id.get(book["aid"])
        if st is not None:
            st.position_qty = book["position_qty"]
        return pnl

    async def _check_daily_loss(self, trader_ids: set[int]) -> None:
        """Pause every assignment of an account whose realized loss today reached its daily limit."""
        async with self.sf() as s:
            limits = dict((await s.execute(
                select(Trader.id, Trader.daily_loss_limit).where(Trader.id.in_(trader_ids), Trader.daily_loss_limit.is_not(None))
            )).all())  # fmt: skip
            if not limits:
                return
            losses = await _losses_today(s, list(limits))
            paused = []
            for trader_id, limit in limits.items():
                loss = losses.get(trader_id, ZERO)
                if risk.loss_limit_reached(risk.Limits(daily_loss_limit=limit), loss):
                    reason = f"daily loss limit reached: lost {loss:.2f} today (limit {limit})"
                    await s.execute(
                        update(Assignment).where(Assignment.trader_id == trader_id, Assignment.enabled.is_(True))
                        .values(enabled=False, paused_reason=reason)
                    )  # fmt: skip
                    paused.append(trader_id)
            await s.commit()
        if paused:
            log.warning("daily loss limit reached on account(s) %s: their assignments are paused", paused)
            for st in list(self.index.by_id.values()):
                if st.trader_id in paused:
                    self.index.remove(st.id)

    async def on_order_update(self, msg: Msg) -> None:
        upd = m.decode(msg.data, m.OrderUpdated)
        ack = m.OrderAck(
            client_order_id=upd.client_order_id, status=upd.status, filled=upd.filled, price=upd.price,
            fee=upd.fee, reason=upd.reason,
        )  # fmt: skip
        await self.apply([(upd.client_order_id, ack, None)])

    async def reconcile(self, min_age_s: float | None = None) -> int:
        """Ask the exchange about every order whose outcome is unknown; returns how many were settled."""
        age = self.reconcile_after_s if min_age_s is None else min_age_s
        cutoff = utcnow() - dt.timedelta(seconds=age)
        async with self.sf() as s:
            rows = (
                await s.execute(
                    select(Order.client_order_id, Order.trader_id, Order.exchange, Order.symbol)
                    .where(Order.status.in_(("pending", "open")), Order.updated_at < cutoff)
                    .limit(500)
                )
            ).all()
        settled = []
        for cid, trader_id, exchange, symbol in rows:
            req = m.OrderStatusRequest(trader_id=trader_id, client_order_id=cid, symbol=symbol)
            try:
                msg = await self.nc.request(
                    subjects.exchange_order_status(exchange), m.encode(req), timeout=5
                )
            except Exception as exc:
                log.warning("reconcile %s: %s", cid, exc)
                continue
            ack = m.decode(msg.data, m.OrderAck)
            if ack.status != "error":
                settled.append((cid, ack, None))
        if settled:
            await self.apply(settled)
        return len(settled)

    async def _publish_evaluations(
        self, candle: m.Candle, results: list[tuple[AssignmentState, m.EvalOutcome]]
    ) -> None:
        for st, out in results:
            data = {
                "assignment_id": st.id, "exchange": candle.exchange, "symbol": candle.symbol, "tf": candle.tf,
                "candle_time": candle.time, "status": out.status, "position": out.position, "note": out.note,
                "error": out.error, "duration_ms": out.duration_us / 1000,
            }  # fmt: skip
            await self.nc.publish(
                subjects.user_events(st.owner_id), m.encode(m.UserEvent(kind="evaluation", data=data))
            )


async def _losses_today(s: Any, trader_ids: list[int]) -> dict[int, Decimal]:
    """Each account's realized loss since midnight UTC (positive: a loss), from its orders' P&L: what
    ``daily_loss_limit`` is held against, both when sizing a buy and when pausing after a fill."""
    o = _ORDERS.c
    rows = await s.execute(
        select(o.trader_id, o.pnl).where(
            o.trader_id.in_(trader_ids), o.pnl.is_not(None), o.updated_at >= risk.start_of_day(utcnow())
        )
    )
    losses: dict[int, Decimal] = {}
    for trader_id, pnl in rows.all():
        losses[trader_id] = losses.get(trader_id, ZERO) - Decimal(pnl)
    return losses
