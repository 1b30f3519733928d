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
from decimal import ROUND_DOWN, Decimal
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
from tradewind.storage.models import Assignment, Evaluation, Order, Trader
from tradewind.storage.types import utcnow

log = logging.getLogger(__name__)

QTY = Decimal("0.00000001")
ZERO = Decimal(0)
# Market buys are sized a little under the allocation so that the fee and the move to the fill price fit.
BUY_HEADROOM = Decimal("1.0025")
MIN_NOTIONAL = Decimal("1")
EVALS_OK = EVALUATIONS.labels("ok")  # the labelled child, looked up once
APPLY_ATTEMPTS = 40  # about two and a half minutes of retries, then the reconciler settles them
ORDER_BATCH = 250  # orders per request to an exchange service
TERMINAL = ("filled", "canceled", "rejected", "not_placed")
_ASSIGNMENTS = Assignment.__table__  # Core tables: executemany updates without the ORM's bulk rules
_ORDERS = Order.__table__
_EVALUATIONS = Evaluation.__table__


STALE_NOTE = "not traded: a newer candle's decision was acted on first"


class Handled(NamedTuple):
    """What ``handle`` leaves for ``record``: one chunk's outcomes and what they change."""

    results: list[tuple[AssignmentState, m.EvalOutcome]]
    tick_ms: float | None  # candle -> decision
    paused: list[tuple[int, str]]  # (assignment, reason)
    reset: list[int]  # assignments whose failure count is back to 0
    stale: list[int]  # assignments whose decision came after a newer one's: recorded, not traded


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
    ) -> None:
        """Store the order intents one chunk's evaluations cause, start those orders, then record the
        evaluations — or, given ``later``, leave that to one ``record(candle, later)`` for the whole
        candle, so that no chunk's orders wait behind another chunk's evaluation rows."""
        now_ns = time.time_ns()
        tick_ms = (now_ns - candle.recv_ns) / 1e6 if candle.recv_ns else None
        # Only what the orders need happens before they go out; rows and metrics wait for ``record``.
        paused: list[tuple[int, str]] = []
        reset: list[int] = []
        stale: list[int] = []
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
                stale.append(st.id)
                continue
            st.acted_through = candle.time
            if st.trader_id is None or st.pending:
                continue
            if out.position == "long" and st.position_qty <= 0:
                wanted.append((st, "buy", max(0.0, min(1.0, out.size))))
            elif out.position == "short" and st.position_qty > 0:
                wanted.append((st, "sell", 1.0))

        orders = await self._plan(candle, wanted)
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
        work = Handled(results, tick_ms, paused, reset, stale)
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
            stale = set(h.stale)
            for st, out in h.results:
                note = out.note
                if st.id in stale:  # the user sees why no order followed this decision
                    note = f"{note} · {STALE_NOTE}" if note else STALE_NOTE
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
        self, candle: m.Candle, wanted: list[tuple[AssignmentState, str, float]]
    ) -> list[dict[str, Any]]:
        """Turn wanted trades into order rows: sizing, the balance check, and the account's risk limits."""
        if not wanted:
            return []
        price = Decimal(repr(candle.close))
        quote_asset = split_symbol(candle.symbol)[1]
        buyers: dict[str, set[int]] = {}
        for st, side, _ in wanted:
            if side == "buy" and st.trader_id is not None and st.trader_exchange is not None:
                buyers.setdefault(st.trader_exchange, set()).add(st.trader_id)
        free: dict[int, Decimal | None] = {}
        for found in await asyncio.gather(*(self._free(e, ids, quote_asset) for e, ids in buyers.items())):
            free.update(found)
        rows = []
        now = utcnow()  # one timestamp for the batch (and processed once by insert_rows)
        for st, side, size in wanted:
            reason = None
            if side == "buy":
                quote = st.allocation * Decimal(repr(size))
                if st.max_order_notional is not None:
                    quote = min(quote, st.max_order_notional)
                if st.max_position is not None:
                    quote = min(quote, st.max_position)
                available = free.get(st.trader_id)
                if available is None:
                    reason = "balance check failed: the exchange did not answer"
                else:
                    quote = min(quote, available)
                amount = (quote / (price * BUY_HEADROOM)).quantize(QTY, rounding=ROUND_DOWN)
                if reason is None and amount * price < MIN_NOTIONAL:
                    reason = f"insufficient {quote_asset} balance for this allocation ({available} free)"
                if reason is None:
                    free[st.trader_id] = (available or ZERO) - amount * price * BUY_HEADROOM
            else:
                amount = st.position_qty
            cid = client_order_id(st.id, candle.time, "long" if side == "buy" else "short")
            rows.append({
                "owner_id": st.owner_id, "assignment_id": st.id, "trader_id": st.trader_id, "client_order_id": cid,
                "exchange": st.trader_exchange, "symbol": st.symbol, "side": side, "amount": amount,
                "status": "rejected" if reason else "pending", "reason": reason, "candle_time": candle.time,
                "filled": ZERO, "fee": ZERO, "created_at": now, "updated_at": now,
            })  # fmt: skip
        return rows

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
                trader_id=o["trader_id"], client_order_id=o["client_order_id"], symbol=o["symbol"], side=o["side"],
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
        midnight = utcnow().replace(hour=0, minute=0, second=0, microsecond=0)
        async with self.sf() as s:
            limits = dict((await s.execute(
                select(Trader.id, Trader.daily_loss_limit).where(Trader.id.in_(trader_ids), Trader.daily_loss_limit.is_not(None))
            )).all())  # fmt: skip
            if not limits:
                return
            paused = []
            for trader_id, limit in limits.items():
                pnls = (await s.execute(
                    select(Order.pnl).where(Order.trader_id == trader_id, Order.pnl.is_not(None), Order.updated_at >= midnight)
                )).scalars()  # fmt: skip
                loss = -sum(pnls, ZERO)
                if loss >= limit:
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


def _position_after(current: Decimal | None, delta: Decimal) -> Decimal:
    return max(ZERO, (current or ZERO) + delta)
