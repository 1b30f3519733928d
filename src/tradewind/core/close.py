"""core.close: a person closes a position now ("close position", "flatten all", the kill switch's flatten).

The web process never places an order: it asks core over the bus (``ClosePositions``). Core checks for
itself that each assignment is the asker's and trades through the asker's own account, then sells what the
assignment holds at the market through the same path as a strategy's exit: the intent is stored before the
exchange is called, under a client order id that names the position (``tw-<assignment>-c<entry order>``),
and the position's resting orders (its stop and target, a limit entry) are cancelled in the same call.

Closing twice cannot sell twice: a second request for the same position finds its close on the way and
answers with that order (a double click, a retry); the unique client order id refuses a second intent even
if two cores were to try. Only once a close has ended without selling everything (refused by the exchange,
a partial fill) does the next request place a new one, numbered ``-1``, ``-2``, ... after it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from decimal import Decimal
from typing import Any

from nats.aio.msg import Msg
from sqlalchemy import func, or_, select

from tradewind.bus import messages as m
from tradewind.core.orders import Extra, new_order, track
from tradewind.core.trade import TradeDesk
from tradewind.metrics import ORDERS
from tradewind.storage.models import ORDER_BLOCK, Assignment, Market, Order, Trader
from tradewind.storage.repositories import order_blocks
from tradewind.storage.types import utcnow

log = logging.getLogger(__name__)

ZERO = Decimal(0)
EXIT_REASON = "manual"  # an order's exit_reason: closed by its owner, not by the strategy or its exits
WAIT_FOR_DECISIONS_S = 5.0  # at most this long for a decision being turned into orders to finish


def close_order_id(assignment_id: int, entry_order_id: int, attempt: int) -> str:
    """The client order id of a close: one per position (named by the order that entered it) and attempt."""
    base = f"tw-{assignment_id}-c{entry_order_id}"
    return base if attempt == 0 else f"{base}-{attempt}"


class Closer:
    """Answers ``ClosePositions`` requests for the core that holds the lease."""

    def __init__(self, desk: TradeDesk) -> None:
        self.desk = desk
        self.sf = desk.sf
        self.index = desk.index
        # One request at a time: two requests for one position (a double click) are decided one after the
        # other, and the second finds the first's order.
        self._lock = asyncio.Lock()

    async def on_request(self, msg: Msg) -> None:
        try:
            req = m.decode(msg.data, m.ClosePositions)
        except Exception:
            log.warning("core: malformed close request")
            reply = m.PositionsClosed(error="malformed close request")
        else:
            try:
                reply = await self.close(req)
            except Exception as exc:  # the database is away: the asker is told, nothing was placed
                log.exception("core: closing positions of user %s failed", req.owner_id)
                reply = m.PositionsClosed(error=f"core could not close: {type(exc).__name__}")
        if msg.reply:
            await msg.respond(m.encode(reply))

    async def close(self, req: m.ClosePositions) -> m.PositionsClosed:
        async with self._lock:
            return await self._close(req)

    async def _close(self, req: m.ClosePositions) -> m.PositionsClosed:
        results: dict[int, m.PositionClose] = {}
        candidates = await self._owned(req)
        if req.assignment_ids is not None:
            for aid in req.assignment_ids:
                if aid not in candidates:
                    results[aid] = m.PositionClose(
                        assignment_id=aid, status="not_found", reason="no such assignment"
                    )
        todo: dict[int, Any] = {}
        for aid, row in candidates.items():
            problem = self._problem(req.owner_id, row)
            if problem is not None:
                results[aid] = problem
            else:
                todo[aid] = row
        if todo:
            # From here on core's own decisions leave these assignments alone (core.trade), and one being
            # turned into orders right now is waited for: its order is then stored, and seen below.
            self.desk.closing.update(todo)
            try:
                await self._decisions_done(set(todo))
                results.update(await self._place(req, todo))
            finally:
                self.desk.closing.difference_update(todo)
        order = req.assignment_ids if req.assignment_ids is not None else sorted(results)
        return m.PositionsClosed(results=[results[aid] for aid in order if aid in results])

    async def _owned(self, req: m.ClosePositions) -> dict[int, Any]:
        """The asker's assignments concerned (every one holding something, for flatten all), with their
        market and account: read from the database, never from memory."""
        a = Assignment
        q = (
            select(
                a.id,
                a.owner_id,
                a.trader_id,
                a.position_qty,
                a.enabled,
                a.trigger,
                Market.exchange,
                Market.symbol,
                Trader.owner_id.label("trader_owner"),
                Trader.exchange.label("trader_exchange"),
            )
            .join(Market, Market.id == a.market_id)
            .outerjoin(Trader, Trader.id == a.trader_id)
            .where(a.owner_id == req.owner_id)
        )
        if req.assignment_ids is not None:
            q = q.where(a.id.in_(req.assignment_ids))
        else:
            q = q.where(a.position_qty > 0)
        async with self.sf() as s:
            return {r.id: r for r in (await s.execute(q)).all()}

    def _problem(self, owner_id: int, row: Any) -> m.PositionClose | None:
        aid = row.id
        if row.position_qty is None or row.position_qty <= 0:
            return m.PositionClose(
                assignment_id=aid, status="flat", reason="nothing to close: it holds nothing"
            )
        if row.trader_id is None or row.trader_owner is None:
            return m.PositionClose(
                assignment_id=aid, status="refused", reason="it has no trading account to sell through"
            )
        if row.trader_owner != owner_id or row.trader_exchange != row.exchange:
            # Never expected: every path that links an account checks its owner. Were one to miss, the money
            # stops here, as it does for a strategy's orders (core.trade).
            ORDERS.labels("refused_owner").inc()
            log.error(
                "core: close of assignment %s (owner %s) refused on account %s (owner %s, %s)",
                aid,
                owner_id,
                row.trader_id,
                row.trader_owner,
                row.trader_exchange,
            )
            return m.PositionClose(
                assignment_id=aid, status="refused", reason="its trading account does not belong to its owner"
            )
        if row.trigger == "tick" and row.enabled:
            return m.PositionClose(
                assignment_id=aid,
                status="refused",
                reason="pause it first: a running quoting strategy would quote its inventory back",
            )
        return None

    async def _decisions_done(self, ids: set[int]) -> None:
        deadline = time.monotonic() + WAIT_FOR_DECISIONS_S
        while ids & self.desk.deciding.keys() and time.monotonic() < deadline:
            await asyncio.sleep(0.005)

    async def _place(self, req: m.ClosePositions, todo: dict[int, Any]) -> dict[int, m.PositionClose]:
        results: dict[int, m.PositionClose] = {}
        o = Order
        async with self.sf() as s:
            fresh = dict(
                (
                    await s.execute(
                        select(Assignment.id, Assignment.position_qty).where(Assignment.id.in_(todo))
                    )
                ).all()
            )
            live = (
                await s.execute(
                    select(o.assignment_id, o.client_order_id, o.type, o.side, o.amount, o.exit_reason).where(
                        o.assignment_id.in_(todo), o.status.in_(("pending", "open"))
                    )
                )
            ).all()
            # their orders, block of ids by block (ix_orders_block: no index leads with the assignment)
            blocks = await order_blocks(s)
            entries: dict[int, int] = {}
            for part in blocks:
                for aid, oid in (
                    await s.execute(
                        select(o.assignment_id, func.max(o.id))
                        .where(
                            ORDER_BLOCK.in_(part),
                            o.assignment_id.in_(todo),
                            o.side == "buy",
                            o.status == "filled",
                            o.filled > 0,
                        )
                        .group_by(o.assignment_id)
                    )
                ).all():
                    if aid is not None:
                        entries[aid] = max(oid, entries.get(aid, 0))
            bases = {aid: close_order_id(aid, entries.get(aid) or 0, 0) for aid in todo}
            tried: list[Any] = []
            for part in blocks:
                tried += (
                    await s.execute(
                        select(o.assignment_id, o.client_order_id).where(
                            ORDER_BLOCK.in_(part),
                            o.assignment_id.in_(todo),
                            or_(
                                *(
                                    or_(o.client_order_id == b, o.client_order_id.like(f"{b}-%"))
                                    for b in bases.values()
                                )
                            ),
                        )
                    )
                ).all()
        attempts: dict[int, int] = {}
        for aid, cid in tried:
            assert aid is not None  # the queries ask for these assignments' orders
            if cid == bases[aid] or cid.startswith(bases[aid] + "-"):
                attempts[aid] = attempts.get(aid, 0) + 1
        cancels: dict[int, list[str]] = {aid: [] for aid in todo}
        busy: dict[int, tuple[str, Any]] = {}
        for aid, cid, kind, side, amount, reason in live:
            assert aid is not None
            if kind in ("market", None):
                busy[aid] = (cid, (side, amount, reason))
            else:  # resting: its protective orders, a limit entry, a quote left behind
                cancels[aid].append(cid)
        now = utcnow()
        rows: list[dict[str, Any]] = []
        for aid, row in todo.items():
            qty = fresh.get(aid) or ZERO
            if aid in busy:
                cid, (side, amount, reason) = busy[aid]
                if side == "sell" and reason == EXIT_REASON:
                    results[aid] = m.PositionClose(
                        assignment_id=aid,
                        status="closing",
                        client_order_id=cid,
                        amount=format(amount, "f"),
                        reason="a close of this position is already on its way",
                    )
                else:
                    results[aid] = m.PositionClose(
                        assignment_id=aid,
                        status="refused",
                        reason="an order of this assignment is on its way; try again in a few seconds",
                    )
                continue
            if qty <= 0:
                results[aid] = m.PositionClose(
                    assignment_id=aid, status="flat", reason="nothing to close: it holds nothing"
                )
                continue
            cid = close_order_id(aid, entries.get(aid) or 0, attempts.get(aid, 0))
            rows.append(
                new_order(
                    now,
                    None,
                    req.owner_id,
                    aid,
                    row.trader_id,
                    row.exchange,
                    row.symbol,
                    client_order_id=cid,
                    side="sell",
                    amount=qty,
                    type="market",
                    exit_reason=EXIT_REASON,
                )
            )
            st = self.index.by_id.get(aid)
            resting = [
                *cancels[aid],
                *(st.resting if st is not None else ()),
                *([st.entry_open] if st is not None and st.entry_open else []),
            ]
            if resting:
                self.desk.orders.extra[cid] = Extra(cancels=list(dict.fromkeys(resting)))
        if not rows:
            return results
        new_ids = await self.desk.orders.store_intents(rows)
        placed = [r for r in rows if r["client_order_id"] in new_ids]
        for r in rows:
            aid, cid = r["assignment_id"], r["client_order_id"]
            if cid in new_ids:
                results[aid] = m.PositionClose(
                    assignment_id=aid, status="placed", client_order_id=cid, amount=format(r["amount"], "f")
                )
            else:  # stored already (another core, a moment ago): that order is the close
                self.desk.orders.extra.pop(cid, None)
                results[aid] = m.PositionClose(
                    assignment_id=aid,
                    status="closing",
                    client_order_id=cid,
                    amount=format(r["amount"], "f"),
                    reason="a close of this position is already on its way",
                )
        for r in placed:
            st = self.index.by_id.get(r["assignment_id"])
            if st is not None:  # a running assignment's next decisions wait for this order's outcome
                track(st, r)
        if placed:
            log.info(
                "core: closing %d position(s) of user %s (%s): %s",
                len(placed),
                req.owner_id,
                req.why,
                ", ".join(r["client_order_id"] for r in placed),
            )
            self.desk.orders.start_orders(None, placed)
            await asyncio.sleep(0)  # the calls go out before the reply
        return results
