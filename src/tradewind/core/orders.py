"""core.orders: the owner of open orders and positions.

It places the order intents core.trade stored (one request per exchange and chunk), records what the
exchange says (``apply``: fills move the assignment's position once, whatever reports them and however
often), places and re-creates the protective orders that hold a position's exits (core.positions), and
reconciles: an order whose outcome is unknown (a timeout, a crash) stays ``pending`` until the
reconciler asks the exchange by client order id — filled, open, or never placed. Nothing is retried
blindly.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, NamedTuple, cast

from nats.aio.client import Client
from nats.aio.msg import Msg
from sqlalchemy import CursorResult, and_, bindparam, func, or_, select, update
from sqlalchemy.exc import IntegrityError

from tradewind.bus import messages as m
from tradewind.bus import subjects
from tradewind.config import Settings
from tradewind.core import notices, positions
from tradewind.core.decide import AssignmentIndex
from tradewind.domain import legacy_candle_of, legacy_client_order_id
from tradewind.metrics import ORDERS, TICK_TO_ORDER
from tradewind.storage.db import SessionFactory, dialect_of, execute_rows, insert_for, insert_rows, write_gate
from tradewind.storage.models import Assignment, Order, Trader
from tradewind.storage.types import table_of, utcnow
from tradewind.trading import model, risk

log = logging.getLogger(__name__)

ZERO = Decimal(0)
APPLY_ATTEMPTS = 40  # about two and a half minutes of retries, then the reconciler settles them
ORDER_BATCH = 250  # orders per request to an exchange service
RESTING_CHECK_S = 300.0  # how often the reconciler asks about an order resting on purpose
TERMINAL = ("filled", "canceled", "rejected", "not_placed")
LEGACY_SCAN = 20_000  # the newest orders looked at for intents stored in the id form before issue 17
_UNREAD = object()
_ASSIGNMENTS = table_of(Assignment)  # Core tables: executemany updates without the ORM's bulk rules
_ORDERS = table_of(Order)
# What the exchange said about an order (``OrderBook._apply``); only still-open orders change: a concurrent
# report of the same fill is a no-op. Built once: ``execute_rows`` keeps its compiled form.
_ANSWERED = (
    update(_ORDERS)
    .where(_ORDERS.c.id == bindparam("oid"), or_(_ORDERS.c.status == "pending", _ORDERS.c.status == "open"))
    .values(
        status=bindparam("status"),
        filled=bindparam("filled"),
        fee=bindparam("fee"),
        price=bindparam("price"),
        reason=bindparam("reason"),
        pnl=bindparam("pnl"),
        latency_ms=func.coalesce(bindparam("latency_ms"), _ORDERS.c.latency_ms),
        exchange_order_id=func.coalesce(bindparam("exchange_order_id"), _ORDERS.c.exchange_order_id),
        exit_reason=func.coalesce(bindparam("exit_reason"), _ORDERS.c.exit_reason),
        updated_at=bindparam("updated_at"),
        candle_time=func.coalesce(_ORDERS.c.candle_time, bindparam("candle_time")),
    )
)
# The positions the fills moved.
_BOOKED = (
    update(_ASSIGNMENTS)
    .where(_ASSIGNMENTS.c.id == bindparam("aid"))
    .values(
        position_qty=bindparam("position_qty"),
        entry_cost=bindparam("entry_cost"),
        realized_pnl=bindparam("realized_pnl"),
        last_position=bindparam("last_position"),
        protection=bindparam("protection"),
        updated_at=bindparam("updated_at"),
    )
)
# What an exchange said about one order: its client id, the answer, and the ms from the candle's arrival
# to the order call (None: not known, or not the answer to a placement).
Answer = tuple[str, m.OrderAck, float | None]
# Requests made ahead of their calls (``OrderBook.prepare``): per batch its exchange, orders and encoded request
Prepared = list[tuple[str, list[dict[str, Any]], bytes | None]]


@dataclass
class Extra:
    """What an order intent carries to the venue besides its row: the exits attached to an entry, the
    orders to cancel before it, a trailing stop's reference high, and the protection it puts in place."""

    protect: model.Exits | None = None
    cancels: list[str] = field(default_factory=list)
    reference: Decimal | None = None
    protection: dict[str, Any] | None = None


class _Owner(NamedTuple):
    """Who an order is for, as ``_protect`` reads it from an order row."""

    owner_id: int
    assignment_id: int
    trader_id: int
    exchange: str
    symbol: str


class OrderBook:
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
        self.extra: dict[str, Extra] = {}  # client id -> what its order carries besides its row
        # venue reports (on_order_update) queued or being booked: ``settle`` waits for them
        self._applying = 0
        self._reports: list[m.OrderUpdated] = []  # venue reports waiting to be booked, in arrival order
        self._booking: asyncio.Task[None] | None = None
        self._protecting: set[asyncio.Task[None]] = set()  # protective orders being placed: ``settle`` waits
        self._booked: dict[str, int] = {}  # exchange service run -> the newest of its updates booked
        self.unanswered = 0  # the last reconcile's questions that no exchange answered
        self.updates: Any = None  # the subscription of order updates (see ``settle``)
        # assignment -> its protection, changed in memory (a trailing high): stored with the evaluations
        self.dirty: dict[int, dict[str, Any] | None] = {}
        self._legacy_through: object = _UNREAD  # see _legacy_horizon
        self.calls_started = 0  # order calls started (``start_orders``), ever
        self.calls_open = 0  # of which not answered and recorded yet

    async def drain(self) -> None:
        """Wait for the order calls in flight (tests, and a clean shutdown)."""
        while self._inflight:
            await asyncio.gather(*list(self._inflight), return_exceptions=True)

    def spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._inflight.add(task)
        task.add_done_callback(self._inflight.discard)

    async def store_intents(self, orders: list[dict[str, Any]]) -> set[str]:
        """Insert order intents, and the protection they put in place; return the client order ids that
        are new (the others exist already, under their id or, stored by a core before issue 17, under the
        form of then: ``_stored_before``)."""
        async with write_gate(self.sf), self.sf() as s:
            through = await self._legacy_horizon(s)
            if through is not None:
                orders = await self._stored_before(s, orders, through)
            guards = [
                (o["assignment_id"], x.protection)
                for o in orders
                if (x := self.extra.get(o["client_order_id"])) is not None and x.protection is not None
            ]
            new_ids: set[str] = set()
            if orders:
                try:  # the usual case, every intent new: a plain batch insert (RETURNING costs 3x as much)
                    await insert_rows(s, _ORDERS, orders)
                    new_ids = {o["client_order_id"] for o in orders}
                except IntegrityError:  # some exist (a redelivered candle): insert the others, learn which
                    await s.rollback()
                    ins = self._insert(_ORDERS).on_conflict_do_nothing(index_elements=["client_order_id"])
                    new_ids = set(
                        (await s.execute(ins.returning(_ORDERS.c.client_order_id), orders)).scalars()
                    )
            if guards:
                for aid, _ in guards:  # what it writes is newer than a trailing high waiting to be stored
                    self.dirty.pop(aid, None)
                await store_protection(s, dict(guards))
            await s.commit()
        for aid, p in guards:
            st = self.index.by_id.get(aid)
            if st is not None:
                st.protection = p
        return new_ids

    async def _legacy_horizon(self, s: Any) -> int | None:
        """The newest candle an intent was stored for in the client order id's form before issue 17
        (``domain.legacy_candle_of``), among the newest ``LEGACY_SCAN`` orders; None: there is none. Read
        once, by the first intents this core stores: the intents of the candles an older core handled last,
        which may come again (redelivered after the upgrade), are the newest rows then."""
        if self._legacy_through is _UNREAD:
            o = _ORDERS.c
            rows = await s.execute(
                select(o.client_order_id, o.assignment_id).order_by(o.id.desc()).limit(LEGACY_SCAN)
            )
            self._legacy_through = max(
                (t for cid, aid in rows.all() if (t := legacy_candle_of(cid, aid)) is not None), default=None
            )
            if self._legacy_through is not None:
                log.info(
                    "intents stored in the client order id's earlier form up to the candle of %d: "
                    "a candle up to it is checked against both forms",
                    self._legacy_through,
                )
        return cast(int | None, self._legacy_through)

    async def _stored_before(
        self, s: Any, orders: list[dict[str, Any]], through: int
    ) -> list[dict[str, Any]]:
        """The intents not stored yet under the client order id's form before issue 17: a candle an older
        core stored intents for and that is delivered again after the upgrade places nothing twice."""
        old: dict[str, str] = {}  # its earlier id -> an intent's id
        for o in orders:
            t, aid = o["candle_time"], o["assignment_id"]
            if t is not None and t <= through and aid is not None:
                earlier = legacy_client_order_id(o["client_order_id"], aid, t)
                if earlier is not None:
                    old[earlier] = o["client_order_id"]
        if not old:
            return orders
        c = _ORDERS.c.client_order_id
        found = (await s.execute(select(c).where(c.in_(list(old))))).scalars().all()
        if not found:
            return orders
        stored = {old[cid] for cid in found}
        for cid in stored:
            self.extra.pop(cid, None)
        log.warning(
            "%d intent(s) stored already under their earlier client order id: not placed again", len(stored)
        )
        return [o for o in orders if o["client_order_id"] not in stored]

    def start_orders(
        self,
        candle: m.Candle | m.Tick | None,
        orders: list[dict[str, Any]],
        prepared: Prepared | None = None,
    ) -> asyncio.Task[None]:
        """One request per exchange and chunk of orders (the exchange service places them concurrently),
        each in a task of its own that starts sending at the caller's next ``await``; their results are
        recorded together. ``prepared``: the requests of exactly these orders, made by ``prepare`` while
        their intents were being stored."""
        if prepared is None:
            prepared = [(exchange, part, None) for exchange, part in _batches(orders)]
        else:
            for o in orders:  # what they carry is in their requests already
                self.extra.pop(o["client_order_id"], None)
        calls = [
            asyncio.create_task(self._place_batch(candle, exchange, part, payload))
            for exchange, part, payload in prepared
        ]
        task = asyncio.create_task(self._record_orders(calls))
        self.calls_started += 1
        self.calls_open += 1
        self._inflight.add(task)
        task.add_done_callback(self._inflight.discard)
        task.add_done_callback(self._call_done)
        return task

    def _call_done(self, _task: asyncio.Task[None]) -> None:
        self.calls_open -= 1

    async def prepare(self, candle: m.Candle | m.Tick | None, orders: list[dict[str, Any]]) -> Prepared:
        """The encoded requests of ``orders``, batch by batch, yielding between batches: made while their
        intents are being stored (the database works in its own thread then, and SQLite's multi-row insert
        holds no lock of Python's while it writes), so that the calls go out as soon as the intents are
        committed. Nothing is sent here, and nothing is taken from ``extra`` (``start_orders`` does)."""
        trace_id = candle.trace_id if candle else ""
        out: Prepared = []
        for exchange, part in _batches(orders):
            await asyncio.sleep(0)
            reqs = [self._request(o, trace_id, keep=True) for o in part]
            out.append((exchange, part, m.encode(m.PlaceOrders(orders=reqs))))
        return out

    async def _record_orders(self, calls: list[asyncio.Task[list[Answer]]]) -> None:
        done = await asyncio.gather(*calls)
        await self._apply_retrying([ack for acks in done for ack in acks], "order results")

    async def _apply_retrying(self, acks: Sequence[Answer], what: str) -> None:
        for attempt in range(APPLY_ATTEMPTS):
            try:
                await self.apply(acks)
                return
            except Exception as exc:  # the database is away: keep what the exchange said and try again
                log.warning(
                    "recording %d %s failed (%s); retry %d", len(acks), what, type(exc).__name__, attempt + 1
                )
                await asyncio.sleep(min(0.5 * (attempt + 1), 5.0))
        log.error("%d %s not recorded; the reconciler will ask the exchange again", len(acks), what)

    def _request(self, o: dict[str, Any], trace_id: str, keep: bool = False) -> m.PlaceOrder:
        """The request of one order; ``keep``: leave what it carries (``extra``) in place."""
        cid = o["client_order_id"]
        x = self.extra.get(cid) if keep else self.extra.pop(cid, None)
        kind: m.OrderType = o.get("type") or "market"
        if x is None and kind == "market" and o.get("expires_at") is None and o.get("oco_group") is None:
            # the usual order (a signal's entry or exit): nothing besides its row
            return m.PlaceOrder(
                trader_id=o["trader_id"],
                owner_id=o["owner_id"],
                client_order_id=cid,
                symbol=o["symbol"],
                side=o["side"],
                amount=format(o["amount"], "f"),
                type="market",
                price=_text(o.get("limit_price")),
                stop_price=_text(o.get("stop_price")),
                trail=_text(o.get("trail")),
                trace_id=trace_id,
            )
        x = x or Extra()
        protect = x.protect
        quote = kind == "quote"  # a quote is a post-only limit order on the venue
        return m.PlaceOrder(
            trader_id=o["trader_id"],
            owner_id=o["owner_id"],
            client_order_id=cid,
            symbol=o["symbol"],
            side=o["side"],
            amount=format(o["amount"], "f"),
            type="limit" if kind == "quote" else kind,
            post_only=quote,
            price=_text(o.get("limit_price") if kind != "trailing_stop" else x.reference),
            stop_price=_text(o.get("stop_price")),
            trail=_text(o.get("trail")),
            expires_at=o.get("expires_at"),
            group=o.get("oco_group"),
            cancels=x.cancels,
            protect=m.Protect(
                stop_loss=_text(protect.stop_loss),
                take_profit=_text(protect.take_profit),
                trailing_stop=_text(protect.trailing_stop),
            )
            if protect
            else None,
            trace_id=trace_id,
        )

    async def _place_batch(
        self,
        candle: m.Candle | m.Tick | None,
        exchange: str,
        orders: list[dict[str, Any]],
        payload: bytes | None = None,
    ) -> list[Answer]:
        if payload is None:
            trace_id = candle.trace_id if candle else ""
            payload = m.encode(m.PlaceOrders(orders=[self._request(o, trace_id) for o in orders]))
        # the moment the request goes to the bus: what ``latency_ms`` and the histogram hold
        latency = (time.time_ns() - candle.recv_ns) / 1e6 if candle and candle.recv_ns else None
        acks: dict[str, m.OrderAck] = {}
        problem = None
        try:
            msg = await self.nc.request(
                subjects.exchange_orders(exchange), payload, timeout=self.order_timeout_s
            )
            acks = {a.client_order_id: a for a in m.decode(msg.data, m.OrderAcks).acks}
        except Exception as exc:  # timeout, no responder, a garbled answer: the outcome is unknown
            problem = f"order call: {type(exc).__name__}"
        if latency is not None:  # observed once the calls are out, not between them
            for _ in orders:
                TICK_TO_ORDER.observe(latency)
        unknown = problem or "order call: the exchange did not answer for this order"
        return [
            (
                o["client_order_id"],
                acks.get(o["client_order_id"])
                or m.OrderAck(
                    client_order_id=o["client_order_id"], status="error", reason=unknown, retryable=True
                ),
                latency,
            )
            for o in orders
        ]

    async def cancel_all(self, cancels: list[tuple[int, int, str, str, str]]) -> None:
        """Cancel orders (owner, trader, exchange, client id, symbol) and record what the venue answered."""

        async def one(
            owner_id: int, trader_id: int, exchange: str, cid: str, symbol: str
        ) -> tuple[str, m.OrderAck, None] | None:
            req = m.CancelOrder(owner_id=owner_id, trader_id=trader_id, client_order_id=cid, symbol=symbol)
            try:
                msg = await self.nc.request(
                    subjects.exchange_cancel(exchange), m.encode(req), timeout=self.order_timeout_s
                )
            except Exception as exc:  # the reconciler asks again later
                log.warning("cancel %s: %s", cid, type(exc).__name__)
                return None
            ack = m.decode(msg.data, m.OrderAck)
            return None if ack.status == "error" else (cid, ack, None)

        acks = [a for a in await asyncio.gather(*(one(*c) for c in cancels)) if a is not None]
        if acks:
            await self.apply(acks)

    async def settle(self, timeout_s: float = 2.0, candle: m.Candle | None = None) -> None:
        """Wait until the order updates that reached core are recorded (a venue reports a resting order's
        fill before the candle that filled it: the decision on that candle must see the position it left),
        and the protective orders placed for entries they filled are answered (the venue may have filled
        one already, in the same candle, and reported it before core knew the order). A candle numbers the
        updates its exchange published before it: they are waited for even if they have not reached core
        yet (the bus does not order the candle stream after plain messages). A restarted exchange numbers
        from 1 under a new run id; an update lost on the way costs ``timeout_s`` once."""
        deadline = time.monotonic() + timeout_s

        def behind() -> bool:  # the candle says how many updates its exchange published before it
            return (
                candle is not None
                and bool(candle.source)
                and self._booked.get(candle.source, 0) < candle.updates_seq
            )

        while (
            behind()
            or self._applying
            or self._protecting
            or (self.updates is not None and self.updates.pending_msgs)
        ) and time.monotonic() < deadline:
            await asyncio.sleep(0.002)
        if behind():  # lost on the way (core was not listening): the reconciler asks; no candle waits again
            assert candle is not None
            log.warning(
                "order updates %s..%d of %s never arrived",
                self._booked.get(candle.source, 0) + 1,
                candle.updates_seq,
                candle.source,
            )
            self._booked[candle.source] = candle.updates_seq

    # -- order state ----------------------------------------------------------------------------------

    async def apply(self, acks: Sequence[Answer]) -> None:
        """Record what the exchange said about orders; fills move the assignment's position, once.

        One read of the orders concerned, one batch of updates: a candle of 1,000 fills is a handful of
        statements, not thousands.
        """
        if not acks:
            return
        async with self._apply_lock:  # one at a time: a fill reported twice at once is booked once
            await self._apply(acks)

    async def _apply(self, acks: Sequence[Answer]) -> None:
        events: list[tuple[int, m.OrderEvent]] = []
        losers: set[int] = set()
        protect_next: list[
            tuple[Any, dict[str, Any], Decimal]
        ] = []  # (order row, protection, amount) to place
        cancels: list[tuple[int, int, str, str, str]] = []
        async with write_gate(self.sf), self.sf() as s:
            cids = [cid for cid, _, _ in acks]
            rows = {
                r.client_order_id: r
                for r in (
                    await s.execute(
                        select(
                            Order.id,
                            Order.client_order_id,
                            Order.assignment_id,
                            Order.side,
                            Order.owner_id,
                            Order.symbol,
                            Order.amount,
                            Order.trader_id,
                            Order.exchange,
                            Order.type,
                            Order.limit_price,
                            Order.exit_reason,
                            Order.oco_group,
                            Order.expires_at,
                        ).where(Order.client_order_id.in_(cids), Order.status.in_(("pending", "open")))
                    )
                ).all()
            }
            touched = {
                rows[cid].assignment_id
                for cid, ack, _ in acks
                if cid in rows
                and rows[cid].assignment_id is not None
                and (ack.status == "filled" or rows[cid].type != "market")
            }
            a = _ASSIGNMENTS.c
            books: dict[int, dict[str, Any]] = {}  # the positions the fills move, read in one query
            if touched:
                books = {
                    r.id: {
                        "aid": r.id,
                        "position_qty": r.position_qty,
                        "entry_cost": r.entry_cost,
                        "realized_pnl": r.realized_pnl,
                        "last_position": r.last_position,
                        "protection": r.protection,
                    }
                    for r in (
                        await s.execute(
                            select(
                                a.id,
                                a.position_qty,
                                a.entry_cost,
                                a.realized_pnl,
                                a.last_position,
                                a.protection,
                            ).where(a.id.in_(touched))
                        )
                    ).all()
                }
            for aid, held in books.items():  # a trailing high raised in memory, not stored yet, is the newer
                newer = self.dirty.get(aid)
                old = held["protection"]
                if (
                    newer
                    and old
                    and (newer.get("group"), newer.get("rev")) == (old.get("group"), old.get("rev"))
                ):
                    held["protection"] = self.dirty.pop(aid)
            updates: list[dict[str, Any]] = []
            counted: dict[str, int] = {}  # orders by outcome, counted once per batch
            now = utcnow()
            for cid, ack, latency in acks:
                row = rows.get(cid)
                if row is None:
                    log.debug("order update for %s: not pending or open here (final, or not known yet)", cid)
                    continue  # already final: a second report of the same fill changes nothing
                values: dict[str, Any] = {
                    "oid": row.id,
                    "updated_at": now,
                    "latency_ms": latency,
                    "status": "pending",
                    "reason": ack.reason,
                    "filled": ZERO,
                    "fee": ZERO,
                    "price": None,
                    "pnl": None,
                    "exchange_order_id": ack.exchange_order_id,
                    "exit_reason": None,
                    # a resting order's fill is drawn on the candle it happened in
                    "candle_time": ack.time // 60_000 * 60_000 if ack.time else None,
                }
                if ack.status == "not_found":
                    values.update(status="not_placed", reason="the exchange never received this order")
                elif ack.status != "error":  # "error": the outcome is unknown, it stays pending
                    values.update(
                        status=ack.status,
                        filled=Decimal(ack.filled),
                        fee=Decimal(ack.fee),
                        price=Decimal(ack.price) if ack.price is not None else None,
                    )
                status = values["status"]
                counted[status] = counted.get(status, 0) + 1
                book = books.get(row.assignment_id) if row.assignment_id is not None else None
                filled = status == "filled" and values["filled"] > 0
                quote = row.type == "quote"
                if filled and row.side == "sell" and not quote:
                    values["exit_reason"] = row.exit_reason or positions.exit_reason(
                        row.type, ack.reason, values["price"], row.limit_price
                    )
                    values["reason"] = None if ack.reason == values["exit_reason"] else values["reason"]
                if filled and book is not None:
                    pnl = self._book_fill(
                        book, row.side, values["filled"], values["price"] or ZERO, values["fee"]
                    )
                    values["pnl"] = pnl
                    if pnl is not None and pnl < 0:
                        losers.add(row.trader_id)
                    p = book["protection"]
                    if quote:  # a quote's fill moves the inventory, and nothing else
                        pass
                    elif row.side == "buy":  # an entry: its exits become a guard at the fill price
                        # (kept without exits too: the entry price and high, for exits a later decision sets)
                        exits = positions.exits_of(p) if p and p.get("group") == cid else model.NO_EXITS
                        book["protection"] = positions.protection(exits, values["price"], cid)
                        if exits:
                            protect_next.append((row, book["protection"], values["filled"]))
                    elif book["position_qty"] <= 0:  # out: the rest of its protection comes down
                        book["protection"] = None
                        st0 = self.index.by_id.get(row.assignment_id)
                        for other in list(st0.resting) if st0 is not None else []:
                            if other != cid:
                                cancels.append((row.owner_id, row.trader_id, row.exchange, other, row.symbol))
                elif book is not None and status in TERMINAL and row.type == "limit":
                    p = book["protection"]
                    if p and p.get("group") == cid:  # an entry that never filled takes its exits with it
                        book["protection"] = None
                elif book is not None and status == "rejected" and row.type in positions.PROTECTIVE:
                    p = book["protection"]
                    if (
                        p and p.get("group") == row.oco_group
                    ):  # the venue cannot hold it: core watches the guard
                        book["protection"] = {**p, "watched": True}
                        log.info("%s: %s; core watches this guard", cid, ack.reason)
                updates.append(values)
                st = self.index.by_id.get(row.assignment_id) if row.assignment_id is not None else None
                if quote:
                    if st is not None:
                        settled(st, row.side, cid, status)
                    if status == "open" and (st is None or st.trigger != "tick"):  # placed after a pause
                        cancels.append((row.owner_id, row.trader_id, row.exchange, cid, row.symbol))
                elif st is not None:
                    if status in TERMINAL or (row.type != "market" and status == "open"):
                        st.pending.discard(cid)  # the call is settled (a resting order is placed)
                    if row.type == "limit":
                        if status == "open":
                            st.entry_open, st.entry_expires = cid, row.expires_at
                        elif st.entry_open == cid and status in TERMINAL:
                            st.entry_open = st.entry_expires = None
                    elif row.type != "market":
                        if status == "open":
                            st.resting[cid] = row.type
                        elif status in TERMINAL:
                            st.resting.pop(cid, None)
                event = m.FillEvent if status == "filled" else m.OrderEvent
                events.append(
                    (
                        row.owner_id,
                        event(
                            id=row.id,
                            assignment_id=row.assignment_id,
                            client_order_id=cid,
                            symbol=row.symbol,
                            side=row.side,
                            amount=format(row.amount, "f"),
                            status=status,
                            order_type=row.type,
                            filled=format(values["filled"], "f"),
                            price=ack.price,
                            fee=ack.fee,
                            reason=values["reason"],
                            exit_reason=values["exit_reason"],
                        ),
                    )
                )
            for status, n in counted.items():
                ORDERS.labels(status).inc(n)
            if updates:
                await execute_rows(s, _ANSWERED, updates)
            if books:
                now = utcnow()
                await execute_rows(s, _BOOKED, [{**b, "updated_at": now} for b in books.values()])
            await s.commit()
        for book in books.values():
            st = self.index.by_id.get(book["aid"])
            if st is not None:
                st.protection = positions.keep_high(st.protection, book["protection"])
        if losers:
            await self._check_daily_loss(losers)
        for owner_id, ev in events:
            await notices.tell(self.nc, owner_id, ev)
        if protect_next:
            await self._protect(protect_next)
        if cancels:
            self.spawn(self.cancel_all(cancels))

    async def _protect(self, todo: list[tuple[Any, dict[str, Any], Decimal]]) -> None:
        """Place the protective orders of positions just entered (or whose orders are missing)."""
        now = utcnow()
        rows = []
        for row, p, amount in todo:
            for o in positions.orders(p, amount):
                ref = o.pop("reference")
                rows.append(
                    new_order(
                        now,
                        None,
                        row.owner_id,
                        row.assignment_id,
                        row.trader_id,
                        row.exchange,
                        row.symbol,
                        **o,
                    )
                )
                self.extra[o["client_order_id"]] = Extra(reference=ref)
        if not rows:
            return
        new_ids = await self.store_intents(rows)
        placed = [o for o in rows if o["client_order_id"] in new_ids]
        for o in placed:
            st = self.index.by_id.get(o["assignment_id"])
            if st is not None:
                track(st, o)
        if placed:
            task = self.start_orders(None, placed)
            self._protecting.add(task)
            task.add_done_callback(self._protecting.discard)

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
            st.realized_pnl = book["realized_pnl"] or ZERO
            st.entry_cost = book["entry_cost"] or ZERO
        return pnl

    async def _check_daily_loss(self, trader_ids: set[int]) -> None:
        """Pause every assignment of an account whose realized loss today reached its daily limit."""
        async with self.sf() as s:
            accounts = {
                r.id: r
                for r in (
                    await s.execute(
                        select(Trader.id, Trader.daily_loss_limit, Trader.owner_id, Trader.name).where(
                            Trader.id.in_(trader_ids), Trader.daily_loss_limit.is_not(None)
                        )
                    )
                ).all()
            }
            limits = {trader_id: r.daily_loss_limit for trader_id, r in accounts.items()}
            if not limits:
                return
            losses = await losses_today(s, list(limits))
            paused = []
            told = []  # accounts whose assignments this check paused: their owners are told, once
            for trader_id, limit in limits.items():
                loss = losses.get(trader_id, ZERO)
                if risk.loss_limit_reached(risk.Limits(daily_loss_limit=limit), loss):
                    reason = f"daily loss limit reached: lost {loss:.2f} today (limit {limit})"
                    # an UPDATE executed through the session returns a CursorResult (typed as a Result)
                    done = cast(
                        CursorResult[Any],
                        await s.execute(
                            update(Assignment)
                            .where(Assignment.trader_id == trader_id, Assignment.enabled.is_(True))
                            .values(enabled=False, paused_reason=reason)
                        ),
                    )
                    paused.append(trader_id)
                    if done.rowcount:
                        told.append((accounts[trader_id], loss, done.rowcount))
            await s.commit()
        for r, loss, count in told:
            await notices.tell(
                self.nc,
                r.owner_id,
                m.LossLimitEvent(
                    trader_id=r.id,
                    trader_name=r.name,
                    loss=f"{loss:.2f}",
                    limit=format(r.daily_loss_limit, "f"),
                    paused=count,
                ),
            )
        if paused:
            log.warning("daily loss limit reached on account(s) %s: their assignments are paused", paused)
            for st in list(self.index.by_id.values()):
                if st.trader_id in paused:
                    self.index.remove(st.id)

    async def on_order_update(self, msg: Msg) -> None:
        """Queue a venue's report; the reports that arrive together are booked together (``_book_updates``).
        A market maker's replacements bring a thousand cancels a second: booked one by one, each was a
        read, an update and a commit on core's event loop, most of its work at 1,000 quoting assignments."""
        try:
            upd = m.decode(msg.data, m.OrderUpdated)
        except Exception:
            log.warning("core: malformed order update")
            return
        self._reports.append(upd)
        self._applying += 1
        if self._booking is None or self._booking.done():
            self._booking = asyncio.create_task(self._book_updates(), name="core-order-updates")
            self._inflight.add(self._booking)
            self._booking.add_done_callback(self._inflight.discard)

    async def _book_updates(self) -> None:
        while self._reports:
            reports, self._reports = self._reports, []
            for part in _distinct(reports):
                acks = [
                    (
                        u.client_order_id,
                        m.OrderAck(
                            client_order_id=u.client_order_id,
                            status=u.status,
                            filled=u.filled,
                            price=u.price,
                            fee=u.fee,
                            reason=u.reason,
                            time=u.time,
                        ),
                        None,
                    )
                    for u in part
                ]
                try:
                    await self._apply_retrying(acks, "order updates")
                finally:
                    self._applying -= len(part)
                    for u in part:
                        if u.source:
                            self._booked[u.source] = max(self._booked.get(u.source, 0), u.seq)

    async def reconcile(self, min_age_s: float | None = None, limit: int = 500) -> int:
        """Ask the exchange about every order whose outcome is unknown; returns how many were settled."""
        age = self.reconcile_after_s if min_age_s is None else min_age_s
        cutoff = utcnow() - dt.timedelta(seconds=age)
        # An order resting on purpose (a limit entry, a protective exit) is open for hours or days: the venue
        # reports its fill, and it is asked about only every few minutes (each answer moves its updated_at).
        # (an explicit age, the start-up sweep's 0, asks about every open order)
        resting_cutoff = (
            cutoff if min_age_s is not None else utcnow() - dt.timedelta(seconds=max(age, RESTING_CHECK_S))
        )
        async with self.sf() as s:
            rows = (
                await s.execute(
                    select(Order.client_order_id, Order.trader_id, Order.exchange, Order.symbol)
                    .where(
                        or_(
                            and_(Order.status == "pending", Order.updated_at < cutoff),
                            and_(Order.status == "open", Order.type == "market", Order.updated_at < cutoff),
                            and_(
                                Order.status == "open",
                                Order.type != "market",
                                Order.updated_at < resting_cutoff,
                            ),
                        )
                    )
                    .limit(limit)
                )
            ).all()
        settled = []
        self.unanswered = 0  # questions no exchange answered this round
        for cid, trader_id, exchange, symbol in rows:
            req = m.OrderStatusRequest(trader_id=trader_id, client_order_id=cid, symbol=symbol)
            try:
                msg = await self.nc.request(
                    subjects.exchange_order_status(exchange), m.encode(req), timeout=5
                )
            except Exception as exc:
                log.warning("reconcile %s: %s", cid, exc)
                self.unanswered += 1
                continue
            ack = m.decode(msg.data, m.OrderAck)
            if ack.status != "error":
                settled.append((cid, ack, None))
        if settled:
            await self.apply(settled)
        await self.reprotect()
        return len(settled)

    async def reprotect(self) -> int:
        """Re-create the protective orders of open positions that have none on the venue (cancelled by the
        kill switch and resumed, refused while the venue was away, lost in a crash between the entry's fill
        and their placement): a new revision of the same guard. Returns how many positions."""
        todo = []
        async with self._apply_lock:
            for st in list(self.index.by_id.values()):
                p = st.protection
                if (
                    st.position_qty <= 0
                    or not p
                    or p.get("entry") is None
                    or p.get("watched")
                    or st.resting
                    or st.pending
                    or st.trader_id is None
                    or not positions.exits_of(p)
                ):
                    continue
                p = positions.moved(p, positions.exits_of(p))
                row = _Owner(st.owner_id, st.id, st.trader_id, st.trader_exchange or st.exchange, st.symbol)
                todo.append((row, p, st.position_qty))
                st.protection = p
                self.dirty[st.id] = p
        if todo:
            log.info("re-creating the protective orders of %d position(s)", len(todo))
            async with write_gate(self.sf), self.sf() as s:
                await store_protection(s, {r.assignment_id: p for r, p, _ in todo})
                await s.commit()
            await self._protect(todo)
        return len(todo)


def new_order(
    now: dt.datetime,
    candle_time: int | None,
    owner_id: int,
    assignment_id: int,
    trader_id: int,
    exchange: str,
    symbol: str,
    **columns: Any,
) -> dict[str, Any]:
    """A new order's row for ``store_intents``: the owner's, an assignment's, through one of the owner's
    accounts; pending, nothing filled yet, the order columns (positions.ORDER_FIELDS) None unless
    ``columns`` (client_order_id, side, amount, type, ...) set them."""
    row = _NEW_ORDER.copy()  # one copy of a prepared dict: a candle of 1,000 intents makes 1,000 of them
    row["owner_id"] = owner_id
    row["assignment_id"] = assignment_id
    row["trader_id"] = trader_id
    row["exchange"] = exchange
    row["symbol"] = symbol
    row["candle_time"] = candle_time
    row["created_at"] = row["updated_at"] = now
    if columns:
        row.update(columns)
    return row


_NEW_ORDER: dict[str, Any] = {
    "owner_id": None,
    "assignment_id": None,
    "trader_id": None,
    "exchange": None,
    "symbol": None,
    "candle_time": None,
    "filled": ZERO,
    "fee": ZERO,
    "created_at": None,
    "updated_at": None,
    "reason": None,
    "status": "pending",
    **dict.fromkeys(positions.ORDER_FIELDS),
}


def _batches(orders: list[dict[str, Any]]) -> list[tuple[str, list[dict[str, Any]]]]:
    """``orders`` by exchange, in chunks of ``ORDER_BATCH``: one request each."""
    by_exchange: dict[str, list[dict[str, Any]]] = {}
    for o in orders:
        by_exchange.setdefault(o["exchange"], []).append(o)
    return [
        (exchange, group[i : i + ORDER_BATCH])
        for exchange, group in by_exchange.items()
        for i in range(0, len(group), ORDER_BATCH)
    ]


def _text(v: Decimal | None) -> str | None:
    return None if v is None else format(v, "f")


def track(st: Any, o: dict[str, Any]) -> None:
    """An order just sent for an assignment. A market order holds the assignment's next decisions back
    until its outcome is known (``pending``); an order meant to rest does not: a limit entry is its
    ``entry_open``, a protective order one of its ``resting`` ones from now on (a signal exit cancels it
    even while its placement is on its way), and the venue's answer settles either."""
    cid, kind = o["client_order_id"], o.get("type") or "market"
    if kind == "market":
        st.pending.add(cid)
    elif kind == "limit":
        st.entry_open, st.entry_expires = cid, o.get("expires_at")
    else:
        st.resting[cid] = kind


def settled(st: Any, side: str, cid: str, status: str) -> None:
    """The venue answered about a quote: a final answer empties its side, "open" says the venue holds it.
    An answer about an older quote of that side (replaced already) changes nothing."""
    slot = st.quotes.get(side)
    if slot is None or slot.cid != cid:
        return
    if status in TERMINAL:
        del st.quotes[side]
    elif status == "open":
        slot.status = "open"


async def store_protection(s: Any, changes: dict[int, dict[str, Any] | None]) -> None:
    await s.execute(
        update(_ASSIGNMENTS).where(_ASSIGNMENTS.c.id == bindparam("aid")).values(protection=bindparam("p")),
        [{"aid": aid, "p": p} for aid, p in changes.items()],
    )


async def losses_today(s: Any, trader_ids: list[int]) -> dict[int, Decimal]:
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


def _distinct(reports: list[m.OrderUpdated]) -> list[list[m.OrderUpdated]]:
    """The reports in arrival order, cut wherever an order is reported again: a batch reads each order's
    row once, so two reports of one order (placed, then filled) are booked one batch after the other."""
    parts: list[list[m.OrderUpdated]] = [[]]
    seen: set[str] = set()
    for u in reports:
        if u.client_order_id in seen:
            parts.append([])
            seen = set()
        seen.add(u.client_order_id)
        parts[-1].append(u)
    return [p for p in parts if p]
