"""The paper matching engine: balances per paper account, market orders filled at the next open, fees,
and the orders that rest on the sim exchange (limit entries, stops, take-profits, trailing stops).

Fills are committed in groups (one transaction for everything that arrived within a few milliseconds)
and each order is answered only after its group is durable, so a killed process never loses a fill it
confirmed, and a client order id seen before is answered with its first result instead of a second fill.
The lookups of client ids a burst of orders brings are batched too: a candle of a thousand orders is a
few statements, not a thousand sessions.

Resting orders are matched on each 1m candle (``on_candle``) with the trading model
(``tradewind.trading.model``), the same rules a backtest uses: this module keeps no fill rule of its own.
A candle's changes (fills, cancellations, a trailing stop's new high, balances) are one transaction, and
they are reported to the listener (the exchange service) only once it is durable. Open orders live in
memory, indexed by symbol (a candle of a market with none costs a dictionary lookup), and in
``paper_orders``, from which ``start`` loads them again. A limit buy sets its cost and maker fee aside:
the free balance reported (and stored) drops by it until it fills, expires or is cancelled.

Quotes (post-only limit orders, buy or sell; type ``quote`` in ``paper_orders``) are refused when they
would take liquidity from the simulated book (``model.quote_takes``), and otherwise rest, setting aside
what they may cost (a buy: its value and maker fee; a sell: its base). They are matched on the simulator's
trades (``on_trades``), never on candles: a quote fills whole at its price with the maker fee on the first
trade that goes through it (``model.quote_crossed``, ``model.quote_fill``). All the fills of a batch of
trades are one group commit and are reported before ``on_trades`` returns. The best buy and sell quote of
each market are kept, so a trade that reaches neither costs two comparisons.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from decimal import ROUND_DOWN, Decimal
from typing import Any

from sqlalchemy import delete, func, literal_column, select, true, union_all
from sqlalchemy.exc import IntegrityError

from tradewind.domain import protective_order_id
from tradewind.domain import split_symbol as _split_symbol
from tradewind.exchanges.base import ExchangeError, OrderResult, OrderSpec, refused_after
from tradewind.storage.db import SessionFactory, dialect_of, insert_for, write_gate
from tradewind.storage.models import PaperBalance, PaperFill, PaperOrder, Trader
from tradewind.storage.types import table_of
from tradewind.trading import model

log = logging.getLogger(__name__)

QTY = Decimal("0.00000001")
_ZERO = Decimal(0)
_FILLS = table_of(PaperFill)
_ORDERS = table_of(PaperOrder)
_BALANCES = table_of(PaperBalance)
RECENT = 100_000  # results kept in memory for repeated lookups (the tables have them all)
MINUTE = 60_000  # the candles orders are matched on
_NEVER = 2**62  # the expiry of a limit order good till cancelled
_RESULT_FIELDS = tuple(f.name for f in dataclasses.fields(OrderResult))
PROTECTIVE_TYPES = ("stop", "take_profit", "trailing_stop")
QUOTE = "quote"  # a post-only limit order's type in paper_orders (matched on trades, not on candles)

_split = functools.lru_cache(maxsize=4096)(_split_symbol)  # ('BTC', 'USD'), without parsing per order

#: Called with (trader id, result) for every fill and cancellation of a resting order, once stored.
Listener = Callable[[int, OrderResult], Awaitable[None]]


class _Recent:
    """The latest results by client order id, as plain tuples of str/Decimal/int/None: the garbage
    collector stops tracking such tuples, while as 100,000 OrderResult objects they made every full
    collection of the process take tens of milliseconds (on the tick-to-order path of core, embedded)."""

    def __init__(self, size: int) -> None:
        self.size = size
        # An OrderedDict, because evicting the oldest of a plain dict (``del d[next(iter(d))]``) makes
        # ``iter`` walk over every slot deleted since the dict was last resized: once full, each put cost
        # ~30 µs and a candle of 1,000 orders ~33 ms more (a 600-candle run at 1,000 assignments).
        self._rows: OrderedDict[str, tuple[Any, ...]] = OrderedDict()

    def get(self, client_order_id: str, trader_id: int | None = None) -> OrderResult | None:
        """The result, or None; with ``trader_id``, only when it is that account's order."""
        row = self._rows.get(client_order_id)
        if row is None or (trader_id is not None and row[0] != trader_id):
            return None
        return OrderResult(*row[1:])

    def put(self, trader_id: int, result: OrderResult) -> None:
        self._rows[result.client_order_id] = (trader_id, *(getattr(result, n) for n in _RESULT_FIELDS))
        if len(self._rows) > self.size:
            self._rows.popitem(last=False)


@dataclasses.dataclass(slots=True)
class _Order:
    """A resting order (a row of paper_orders)."""

    trader_id: int
    client_order_id: str
    symbol: str
    side: str
    type: str
    amount: Decimal
    price: Decimal | None = None
    stop_price: Decimal | None = None
    trail: Decimal | None = None
    high: Decimal | None = None  # a trailing stop's highest high
    expires_at: int | None = None
    oco_group: str | None = None
    protect: dict[str, Any] | None = None  # a limit entry's exits (fractions as strings, and rev)
    locked: Decimal = _ZERO  # set aside: quote for a limit buy or a buy quote, base for a sell quote
    status: str = "open"
    reason: str | None = None
    time: int = 0

    @property
    def group(self) -> str:
        return self.oco_group or self.client_order_id

    def row(self) -> dict[str, Any]:
        return {f: getattr(self, f) for f in _ORDER_FIELDS}

    def result(self, fill: model.Fill | None = None) -> OrderResult:
        return OrderResult(
            client_order_id=self.client_order_id,
            status=self.status,
            exchange_order_id=f"paper-{self.client_order_id}",
            filled=fill.amount if fill is not None else _ZERO,
            price=fill.price if fill is not None else None,
            fee=fill.fee if fill is not None else _ZERO,
            fee_asset=_split(self.symbol)[1],
            reason=self.reason,
            time=self.time,
        )

    @property
    def locked_asset(self) -> str:
        """The asset ``locked`` is in: the base of a sell quote, the quote currency otherwise."""
        base, quote = _split(self.symbol)
        return base if self.side == "sell" and self.type == QUOTE else quote

    def leg(self) -> tuple[str, Decimal | None, Decimal | None, Decimal | None]:
        """The order as ``model.guard_of`` reads it (a trailing stop's price: the high it trails from)."""
        price = self.high if self.type == "trailing_stop" else self.price
        return self.type, price, self.stop_price, self.trail


_ORDER_FIELDS = tuple(f.name for f in dataclasses.fields(_Order))


@dataclasses.dataclass(slots=True)
class _Changes:
    """What matching changes in one account on one market: ``bal``, its balances (changed in place); the
    order rows, fills and assets whose balance changed, stored in one group commit; and the results to
    report once stored (a list shared by every account one candle or batch of trades touches)."""

    bal: dict[str, Decimal]
    base: str
    quote: str
    reports: list[tuple[int, OrderResult]]
    rows: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    fills: list[dict[str, object]] = dataclasses.field(default_factory=list)
    assets: set[str] = dataclasses.field(default_factory=set)


# A queued write: (paper_fills row or None, assets whose balance changed, trader id, the future answered
# once stored, paper_orders rows to upsert).
_Entry = tuple[
    dict[str, object] | None, Iterable[str] | None, int, "asyncio.Future[None]", list[dict[str, Any]]
]


class PaperEngine:
    def __init__(
        self,
        session_factory: SessionFactory,
        fee: Decimal,
        initial_cash: Decimal,
        cash_asset: str = "USD",
        *,
        maker_fee: Decimal | None = None,
        slippage_bps: Decimal = _ZERO,
    ):
        self.sf = session_factory
        self.fee = fee  # the taker fee
        self.costs = model.Costs(
            Decimal(fee), Decimal(fee if maker_fee is None else maker_fee), Decimal(slippage_bps)
        )
        self.initial_cash = initial_cash
        self.cash_asset = cash_asset
        self.listener: Listener | None = None
        self._balances: dict[int, dict[str, Decimal]] = {}
        self._results = _Recent(RECENT)  # client order id -> final result (recent; the tables have all)
        self._open: dict[str, _Order] = {}  # client order id -> resting order
        self._by_symbol: dict[str, dict[str, _Order]] = {}  # symbol -> client order id -> resting order
        self._quotes: dict[str, dict[str, _Order]] = {}  # the same for quotes (in placement order)
        self._best: dict[str, tuple[Decimal | None, Decimal | None]] = {}  # symbol -> best buy, best sell
        self._queue: list[_Entry] = []
        self._wakeup = asyncio.Event()
        self._lookups: dict[str, asyncio.Future[OrderResult | None]] = {}  # ids asked for, not yet looked up
        self._lookup_task: asyncio.Task[None] | None = None
        self._insert = insert_for(dialect_of(session_factory))
        self._lock = asyncio.Lock()
        self._flush_lock = asyncio.Lock()  # one group commit at a time (a reset waits for the one in flight)
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Load the resting orders and start the group commits."""
        async with self.sf() as s:
            rows = (await s.execute(select(_ORDERS).where(_ORDERS.c.status == "open"))).all()
        for r in rows:
            self._add(_Order(**{f: getattr(r, f) for f in _ORDER_FIELDS}))
        self._task = asyncio.create_task(self._flusher(), name="paper-flush")

    async def close(self) -> None:
        if self._task:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        await self._flush()

    async def forget(self, trader_id: int) -> None:
        """Drop a deleted account's balances (unless a fill still waits to be stored) and resting orders
        from memory."""
        async with self._lock:
            if not any(e[2] == trader_id for e in self._queue):
                self._balances.pop(trader_id, None)
            self._drop_orders({trader_id})

    async def balances(self, trader_id: int) -> dict[str, Decimal]:
        async with self._lock:
            return dict(await self._load(trader_id))

    async def reset(self, trader_id: int, last_fill_id: int | None) -> tuple[str | None, dict[str, Decimal]]:
        """Put a paper account back to its starting cash (``initial_cash``, and no other asset): None and the
        new balances, or why not and {}. Refused while the account has orders resting here, or when a fill
        of it newer than ``last_fill_id`` is stored or on its way: the caller checked the account's
        positions against the fills up to that one (None: it saw none)."""
        async with self._lock:
            if any(o.trader_id == trader_id for o in self._open.values()):
                return "the account has orders resting on the exchange; cancel them first", {}
            async with self._flush_lock:
                await self._flush_batch()  # what is on its way is stored first: nothing writes after us
                async with write_gate(self.sf), self.sf() as s:
                    newest = (
                        await s.execute(select(func.max(_FILLS.c.id)).where(_FILLS.c.trader_id == trader_id))
                    ).scalar_one_or_none()
                    if newest != last_fill_id:
                        return "the account traded meanwhile; look at its positions and try again", {}
                    if (await s.get(Trader, trader_id)) is None:
                        return "no such paper account", {}
                    await s.execute(delete(_BALANCES).where(_BALANCES.c.trader_id == trader_id))
                    await s.execute(
                        _BALANCES.insert(),
                        [{"trader_id": trader_id, "asset": self.cash_asset, "amount": self.initial_cash}],
                    )
                    await s.commit()
            self._balances[trader_id] = {self.cash_asset: self.initial_cash}
            return None, dict(self._balances[trader_id])

    async def _load(self, trader_id: int) -> dict[str, Decimal]:
        bal = self._balances.get(trader_id)
        if bal is None:
            async with self.sf() as s:
                rows = (
                    await s.execute(select(PaperBalance).where(PaperBalance.trader_id == trader_id))
                ).scalars()
                bal = {r.asset: r.amount for r in rows}
                if not bal:
                    bal = {self.cash_asset: self.initial_cash}
                    s.add(PaperBalance(trader_id=trader_id, asset=self.cash_asset, amount=self.initial_cash))
                    await s.commit()
            self._balances[trader_id] = bal
        return bal

    # -- lookups ----------------------------------------------------------------------------------------
    def _known(self, client_order_id: str) -> OrderResult | None:
        """The order's current state from memory: resting, or a recent result."""
        o = self._open.get(client_order_id)
        return o.result() if o is not None else self._results.get(client_order_id)

    def _known_for(self, trader_id: int, client_order_id: str) -> OrderResult | None:
        """``_known``, only when it is ``trader_id``'s order (what an order of that account may learn)."""
        o = self._open.get(client_order_id)
        if o is not None:
            return o.result() if o.trader_id == trader_id else None
        return self._results.get(client_order_id, trader_id)

    async def find(self, client_order_id: str) -> OrderResult | None:
        known = self._known(client_order_id)
        if known is not None:
            return known
        fut = self._lookups.get(client_order_id)
        if fut is None:
            fut = self._lookups[client_order_id] = asyncio.get_running_loop().create_future()
            if self._lookup_task is None or self._lookup_task.done():
                self._lookup_task = asyncio.create_task(self._look_up(), name="paper-lookup")
        return await asyncio.shield(fut)

    async def find_many(self, client_order_ids: list[str]) -> list[OrderResult | None]:
        """``find`` for a batch: the ones in memory, the rest with one query per 500."""
        found: dict[str, OrderResult | None] = {c: self._known(c) for c in client_order_ids}
        missing = [c for c, r in found.items() if r is None]
        for i in range(0, len(missing), 500):
            found.update(await self._stored(missing[i : i + 500]))
        return [found[c] for c in client_order_ids]

    async def _stored(
        self, client_order_ids: list[str], trader_id: int | None = None
    ) -> dict[str, OrderResult]:
        """The stored results of these ids, in one statement: fills and rejections (paper_fills), resting
        and cancelled orders (paper_orders; a filled one's fill is in paper_fills); with ``trader_id``, of
        that account's orders only."""
        f, o = _FILLS.c, _ORDERS.c
        mine_f = f.trader_id == trader_id if trader_id is not None else true()
        mine_o = o.trader_id == trader_id if trader_id is not None else true()
        q = union_all(
            select(
                f.client_order_id,
                f.symbol,
                f.amount,
                f.price,
                f.fee,
                f.status,
                f.reason,
                f.time,
                literal_column("0").label("src"),
            ).where(f.client_order_id.in_(client_order_ids), mine_f),
            select(
                o.client_order_id,
                o.symbol,
                o.amount,
                o.price,
                o.locked,
                o.status,
                o.reason,
                o.time,
                literal_column("1").label("src"),
            ).where(o.client_order_id.in_(client_order_ids), mine_o),
        )
        async with self.sf() as s:
            rows = (await s.execute(q)).all()
        out: dict[str, OrderResult] = {}
        for r in sorted(rows, key=lambda r: -int(r.src)):  # a fill wins over its order's row
            if int(r.src) == 0:
                out[r.client_order_id] = _result(r)
            else:
                out[r.client_order_id] = OrderResult(
                    client_order_id=r.client_order_id,
                    status=r.status,
                    exchange_order_id=f"paper-{r.client_order_id}",
                    fee_asset=_split(r.symbol)[1],
                    reason=r.reason,
                    time=r.time,
                )
        return out

    async def _look_up(self) -> None:
        """Answer every pending lookup with one query per few hundred ids."""
        await asyncio.sleep(0)  # the rest of a burst joins this round
        while self._lookups:
            batch = dict(list(self._lookups.items())[:500])
            try:
                found = await self._stored(list(batch))
            except Exception as exc:
                for cid, fut in batch.items():
                    del self._lookups[cid]
                    if not fut.done():
                        fut.set_exception(exc)
                continue
            for cid, fut in batch.items():
                del self._lookups[cid]
                if not fut.done():
                    fut.set_result(found.get(cid))

    # -- placing ----------------------------------------------------------------------------------------
    async def place(
        self,
        trader_id: int,
        spec: OrderSpec,
        price: Decimal,
        now_ms: int | None = None,
        *,
        book: tuple[Decimal, Decimal] | None = None,
    ) -> OrderResult:
        """Fill a market order at ``price`` (the next candle's open), rest any other type, or reject it;
        idempotent by client id. ``book``: the market's (bid, ask), which a quote must not take."""
        books = {spec.symbol: book} if book is not None else None
        return (await self.place_many([(trader_id, spec, price)], now_ms, books=books))[0]

    async def place_many(
        self,
        orders: list[tuple[int, OrderSpec, Decimal]],
        now_ms: int | None = None,
        *,
        books: Mapping[str, tuple[Decimal, Decimal]] | None = None,
    ) -> list[OrderResult]:
        """Place a batch of orders, in order, with one lookup of their client ids and one group commit.
        ``price`` is the market price (the next candle's open): a market order fills there. ``books``:
        each market's (bid, ask), which a quote must not take (without it: both at ``price``)."""
        if len(orders) == 1:  # single orders arriving together share one lookup through find()
            previous = [await self.find(orders[0][1].client_order_id)]
        else:
            previous = await self.find_many([spec.client_order_id for _, spec, _ in orders])
        # what became of the orders they cancel that are neither resting nor recent (usually none): of each
        # order's own account only, as everything an order may learn of others
        gone: dict[int, list[str]] = {}  # account -> its named orders not in memory (one pass over the batch)
        for t, spec, _ in orders:
            for c in spec.cancels:
                if self._known_for(t, c) is None:
                    gone.setdefault(t, []).append(c)
        earlier: dict[tuple[int, str], OrderResult] = {}
        for trader_id, cids in gone.items():
            for i in range(0, len(cids), 500):
                found = await self._stored(cids[i : i + 500], trader_id)
                earlier.update(((trader_id, c), r) for c, r in found.items())
        now_ms = now_ms if now_ms is not None else int(time.time() * 1000)
        results: list[OrderResult] = []
        reports: list[tuple[int, OrderResult]] = []
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        queued = False
        async with self._lock:
            try:
                for (trader_id, spec, price), known in zip(orders, previous, strict=True):
                    # the newest state in memory (a concurrent duplicate got here first), or the stored one
                    known = self._known(spec.client_order_id) or known
                    if known is not None:
                        results.append(known)
                        continue
                    try:
                        bal = await self._load(trader_id)
                    except IntegrityError:  # the account was deleted a moment ago: this order alone fails
                        results.append(
                            OrderResult(
                                client_order_id=spec.client_order_id,
                                status="rejected",
                                reason="no such paper account",
                            )
                        )
                        continue
                    book = books.get(spec.symbol) if books is not None else None
                    results.append(
                        self._place(bal, trader_id, spec, price, now_ms, done, reports, book, earlier)
                    )
                    queued = True
            finally:
                if queued:  # whatever happened after them, the orders taken are stored
                    self._wakeup.set()
        if queued:
            await done  # answered only once durable
        await self._report(reports)
        return results

    def _place(
        self,
        bal: dict[str, Decimal],
        trader_id: int,
        spec: OrderSpec,
        price: Decimal,
        now_ms: int,
        done: asyncio.Future[None],
        reports: list[tuple[int, OrderResult]],
        book: tuple[Decimal, Decimal] | None = None,
        earlier: Mapping[tuple[int, str], OrderResult] | None = None,
    ) -> OrderResult:
        """One new order, queued for the next group commit with everything it changed (no await here).
        ``earlier``: the stored results of orders it cancels that are not in memory, by (account, client id)."""
        base, quote = _split(spec.symbol)
        rows: list[dict[str, Any]] = []
        assets: set[str] = set()
        outcomes: list[OrderResult] = []
        for cid in spec.cancels:  # taken down first: a limit entry's funds come back before this order
            o = self._open.get(cid)
            if o is not None and o.trader_id == trader_id:
                self._cancel(o, bal, "canceled", now_ms, rows, assets)
                reports.append((trader_id, o.result()))
                continue
            # not resting (any more): it may have filled meanwhile, which the rule below refuses
            known = self._known_for(trader_id, cid) or (earlier or {}).get((trader_id, cid))
            if known is not None:
                outcomes.append(known)
        amount = spec.amount.quantize(QTY, rounding=ROUND_DOWN)
        kind = spec.type
        reason = refused_after(outcomes) or _invalid(spec, amount)
        if reason is None and kind == "market":
            f = model.fill(spec.side, amount, price, "market", self.costs)
            if spec.side == "buy":
                if not model.affordable(bal.get(quote, _ZERO), f):
                    reason = (
                        f"insufficient {quote}: need {f.value + f.fee:.2f}, have {bal.get(quote, _ZERO):.2f}"
                    )
            elif bal.get(base, _ZERO) < amount:
                reason = f"insufficient {base}: need {amount}, have {bal.get(base, _ZERO)}"
            if reason is None:
                self._book(bal, base, quote, f, assets)
                row = _fill_row(trader_id, spec.client_order_id, spec.symbol, f, "filled", None, now_ms)
                if spec.side == "buy" and spec.protect is not None:
                    exits = model.Exits(
                        spec.protect.stop_loss, spec.protect.take_profit, spec.protect.trailing_stop
                    )
                    if exits:
                        guard = model.Guard.at_entry(f.price, exits)
                        self._protect(
                            trader_id,
                            spec.symbol,
                            spec.client_order_id,
                            spec.protect.rev,
                            guard,
                            amount,
                            now_ms,
                            rows,
                        )
                return self._answer(row, assets, trader_id, done, rows)
        elif reason is None and spec.post_only:
            made = self._quote(bal, trader_id, spec, amount, book or (price, price), now_ms, assets)
            if isinstance(made, _Order):
                return self._rest(made, rows, assets, done)
            reason = made
        elif reason is None and kind == "limit":
            assert spec.price is not None
            locked = amount * spec.price * (1 + self.costs.maker_fee)
            have = bal.get(quote, _ZERO)
            if have < locked:
                reason = f"insufficient {quote}: need {locked:.2f}, have {have:.2f}"
            else:
                bal[quote] = have - locked
                assets.add(quote)
                p = spec.protect
                o = _Order(
                    trader_id,
                    spec.client_order_id,
                    spec.symbol,
                    "buy",
                    "limit",
                    amount,
                    spec.price,
                    expires_at=spec.expires_at,
                    locked=locked,
                    time=now_ms,
                    protect=None
                    if p is None
                    else {
                        **model.Exits(p.stop_loss, p.take_profit, p.trailing_stop).as_strings(),
                        "rev": p.rev,
                    },
                )
                return self._rest(o, rows, assets, done)
        elif reason is None:  # a protective sell
            high = spec.price if spec.price is not None else price
            stop = spec.stop_price
            if kind == "trailing_stop" and stop is None:
                stop = model.Guard(trail=spec.trail, high=high).trail_price
            o = _Order(
                trader_id,
                spec.client_order_id,
                spec.symbol,
                "sell",
                kind,
                amount,
                spec.price,
                stop,
                spec.trail if kind == "trailing_stop" else None,
                high if kind == "trailing_stop" else None,
                oco_group=spec.group,
                time=now_ms,
            )
            return self._rest(o, rows, assets, done)
        # rejected: stored with the fills, so that the same client id is answered the same again
        row = {
            "trader_id": trader_id,
            "client_order_id": spec.client_order_id,
            "symbol": spec.symbol,
            "side": spec.side,
            "amount": amount,
            "price": spec.price if spec.price is not None else price,
            "fee": _ZERO,
            "status": "rejected",
            "reason": reason,
            "time": now_ms,
        }
        return self._answer(row, assets, trader_id, done, rows)

    def _answer(
        self,
        row: dict[str, Any],
        assets: set[str],
        trader_id: int,
        done: asyncio.Future[None],
        rows: list[dict[str, Any]],
    ) -> OrderResult:
        """A new order answered at once (filled or rejected): its result, with its paper_fills ``row``
        queued for the next group commit along with the balances and order rows it changed."""
        result = _result(_Row(**row))
        self._results.put(row["trader_id"], result)
        self._queue.append((row, assets, trader_id, done, rows))
        return result

    def _quote(
        self,
        bal: dict[str, Decimal],
        trader_id: int,
        spec: OrderSpec,
        amount: Decimal,
        book: tuple[Decimal, Decimal],
        now_ms: int,
        assets: set[str],
    ) -> _Order | str:
        """A quote to rest, what it may cost set aside; or why not (it would take, or the money or the
        base is not there)."""
        assert spec.price is not None
        bid, ask = book
        side, price = spec.side, spec.price
        if model.quote_takes(side, price, bid, ask):
            return (
                f"post-only order refused: it would take liquidity ({side} at {price}; bid {bid}, ask {ask})"
            )
        base, quote = _split(spec.symbol)
        asset, locked = (
            (quote, amount * price * (1 + self.costs.maker_fee)) if side == "buy" else (base, amount)
        )
        have = bal.get(asset, _ZERO)
        if have < locked:
            return (
                f"insufficient {asset}: need {locked:.2f}, have {have:.2f}"
                if side == "buy"
                else (f"insufficient {asset}: need {locked}, have {have}")
            )
        bal[asset] = have - locked
        assets.add(asset)
        return _Order(
            trader_id,
            spec.client_order_id,
            spec.symbol,
            side,
            QUOTE,
            amount,
            price,
            locked=locked,
            time=now_ms,
        )

    def _rest(
        self, o: _Order, rows: list[dict[str, Any]], assets: set[str], done: asyncio.Future[None]
    ) -> OrderResult:
        self._add(o)
        rows.append(o.row())
        self._queue.append((None, assets, o.trader_id, done, rows))
        return o.result()

    def _protect(
        self,
        trader_id: int,
        symbol: str,
        entry_cid: str,
        rev: int,
        guard: model.Guard,
        amount: Decimal,
        now_ms: int,
        rows: list[dict[str, Any]],
    ) -> list[_Order]:
        """Rest the orders that hold ``guard`` for the position an entry opened (one OCO group, named
        after the entry; client ids derived as core derives them)."""
        made = []
        for kind, price, stop_price, trail in model.protective_orders(guard):
            cid = protective_order_id(entry_cid, kind, rev)
            if self._known(cid) is not None:  # placed already (core got there first)
                continue
            o = _Order(
                trader_id,
                cid,
                symbol,
                "sell",
                kind,
                amount,
                price,
                stop_price,
                trail,
                price if kind == "trailing_stop" else None,
                oco_group=entry_cid,
                time=now_ms,
            )
            self._add(o)
            rows.append(o.row())
            made.append(o)
        return made

    # -- cancelling -------------------------------------------------------------------------------------
    async def cancel(self, trader_id: int, client_order_id: str, now_ms: int | None = None) -> OrderResult:
        """Cancel a resting order (what it set aside comes back); a filled or cancelled one answers its
        final state. Raises ExchangeError for an order this account does not have."""
        now_ms = now_ms if now_ms is not None else int(time.time() * 1000)
        if client_order_id not in self._open:
            found = await self.find(client_order_id)
            if found is None:
                raise ExchangeError(f"no order {client_order_id}")
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        async with self._lock:
            o = self._open.get(client_order_id)
            if o is None:
                known = self._known(client_order_id) or await self.find(client_order_id)
                if known is None:
                    raise ExchangeError(f"no order {client_order_id}")
                return known
            if o.trader_id != trader_id:
                raise ExchangeError(f"no order {client_order_id}")
            bal = await self._load(trader_id)
            rows: list[dict[str, Any]] = []
            assets: set[str] = set()
            self._cancel(o, bal, "canceled", now_ms, rows, assets)
            self._queue.append((None, assets, trader_id, done, rows))
            self._wakeup.set()
        await done
        return o.result()

    def _cancel(
        self,
        o: _Order,
        bal: dict[str, Decimal],
        reason: str,
        now_ms: int,
        rows: list[dict[str, Any]],
        assets: set[str],
    ) -> None:
        if o.locked:
            asset = o.locked_asset
            bal[asset] = bal.get(asset, _ZERO) + o.locked
            assets.add(asset)
        self._close(o, "canceled", reason, now_ms)
        self._results.put(o.trader_id, o.result())
        rows.append(o.row())

    # -- matching ---------------------------------------------------------------------------------------
    async def on_candle(self, symbol: str, bar: model.Bar) -> None:
        """Match the resting orders of ``symbol`` on a closed 1m candle: limit entries fill or expire,
        protective orders trigger (the one holding the exit fills, its group is cancelled) or trail. The
        changes are stored in one transaction, then reported to the listener, before this returns."""
        if not self._by_symbol.get(symbol):
            return
        reports: list[tuple[int, OrderResult]] = []
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        queued = False
        async with self._lock:
            await self._load_owners(self._by_symbol.get(symbol, {}).values())
            # No await from here on: everything this candle changes goes into one group commit.
            groups: dict[tuple[int, str], list[_Order]] = {}
            limits: list[_Order] = []
            for o in self._by_symbol.get(symbol, {}).values():
                if o.type == "limit":
                    limits.append(o)
                else:
                    groups.setdefault((o.trader_id, o.group), []).append(o)
            base, quote = _split(symbol)
            try:
                for (trader_id, _), orders in groups.items():
                    bal = self._balances.get(trader_id)
                    if bal is None:
                        continue
                    changes = _Changes(bal, base, quote, reports)
                    self._match_group(changes, orders, bar)
                    queued |= self._enqueue(trader_id, done, changes)
                for o in limits:
                    bal = self._balances.get(o.trader_id)
                    if bal is None:
                        continue
                    changes = _Changes(bal, base, quote, reports)
                    self._match_limit(changes, o, bar)
                    queued |= self._enqueue(o.trader_id, done, changes)
            finally:
                if queued:
                    self._wakeup.set()
        if queued:
            await done
        await self._report(reports)

    async def _load_owners(self, orders: Iterable[_Order]) -> None:
        """The balances of the accounts these orders belong to; a deleted account's orders go with it."""
        gone = set()
        for trader_id in {o.trader_id for o in orders}:
            try:
                await self._load(trader_id)
            except IntegrityError:
                gone.add(trader_id)
        self._drop_orders(gone)

    def resting(self, symbol: str) -> bool:
        """Whether an order matched on candles rests on ``symbol`` (without one, its candles need not come
        here)."""
        return symbol in self._by_symbol

    def quoting(self, symbol: str) -> bool:
        """Whether a quote rests on ``symbol`` (without one, its trades need not come here)."""
        return symbol in self._quotes

    async def on_trades(self, symbol: str, times: Sequence[int], prices: Sequence[float]) -> None:
        """Match the quotes resting on ``symbol`` on these trades of the simulator, in order: each quote
        the market goes through fills whole at its price, with the maker fee, at the first trade that goes
        through it. The fills are stored in one group commit, then reported to the listener, before this
        returns. Trades that reach no quote cost a comparison with the best buy and sell quote."""
        if symbol not in self._quotes or not prices:
            return
        low, high = model.dec(min(prices)), model.dec(max(prices))
        if not self._reached(symbol, low, high):
            return
        reports: list[tuple[int, OrderResult]] = []
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        queued = False
        async with self._lock:
            await self._load_owners(self._quotes.get(symbol, {}).values())
            # No await from here on: the quotes are as they were when the trades were made.
            trades: list[Decimal] | None = None
            crossed: list[tuple[int, _Order]] = []
            for o in self._quotes.get(symbol, {}).values():
                assert o.price is not None
                if not model.quote_crossed(o.side, o.price, low, high):
                    continue
                if trades is None:
                    trades = [model.dec(p) for p in prices]
                first = next(
                    (i for i, p in enumerate(trades) if model.quote_crossed(o.side, o.price, p, p)), None
                )
                if first is not None:
                    crossed.append((first, o))
            crossed.sort(key=lambda c: c[0])  # by trade, then in the order they were placed
            base, quote = _split(symbol)
            try:
                for i, o in crossed:
                    bal = self._balances.get(o.trader_id)
                    if bal is None:
                        continue
                    changes = _Changes(bal, base, quote, reports)
                    self._fill_quote(changes, o, int(times[i]))
                    queued |= self._enqueue(o.trader_id, done, changes)
            finally:
                if queued:
                    self._wakeup.set()
        if queued:
            await done
        await self._report(reports)

    def _reached(self, symbol: str, low: Decimal, high: Decimal) -> bool:
        """Whether trades from ``low`` to ``high`` go through the best buy or the best sell quote of
        ``symbol`` (if through neither, they go through none)."""
        best = self._best.get(symbol)
        if best is None:
            quotes = self._quotes.get(symbol, {}).values()
            buys = [o.price for o in quotes if o.side == "buy" and o.price is not None]
            sells = [o.price for o in quotes if o.side == "sell" and o.price is not None]
            best = self._best[symbol] = (max(buys, default=None), min(sells, default=None))
        buy, sell = best
        return (buy is not None and model.quote_crossed("buy", buy, low, high)) or (
            sell is not None and model.quote_crossed("sell", sell, low, high)
        )

    def _fill_quote(self, c: _Changes, o: _Order, now_ms: int) -> None:
        """A quote the market went through: what it set aside comes back, its fill is charged."""
        assert o.price is not None
        f = model.quote_fill(model.Quote(o.side, o.price, o.amount), self.costs, time=now_ms)
        asset = o.locked_asset
        c.bal[asset] = c.bal.get(asset, _ZERO) + o.locked
        o.locked = _ZERO
        self._filled(c, o, f, None, now_ms)

    def _enqueue(self, trader_id: int, done: asyncio.Future[None], c: _Changes) -> bool:
        rows, fills, assets = c.rows, c.fills, c.assets
        if not rows and not fills:
            return False
        for i, row in enumerate(fills):  # one entry per fill (entry[0]: a paper_fills row)
            self._queue.append((row, assets if i == 0 else None, trader_id, done, rows if i == 0 else []))
        if not fills:
            self._queue.append((None, assets, trader_id, done, rows))
        return True

    def _match_group(self, c: _Changes, orders: list[_Order], bar: model.Bar) -> None:
        """One position's protective orders on a candle."""
        guard = model.guard_of([o.leg() for o in orders])
        amount = max(o.amount for o in orders)
        r = model.on_bar(bar, amount, guard, None, self.costs, MINUTE)
        if r.fills:
            self._exit(c, orders, r.fills[-1], guard, bar)
        elif r.guard is not None:
            for o in orders:
                if o.type == "trailing_stop" and r.guard.high != o.high:
                    o.high, o.stop_price, o.time = r.guard.high, r.guard.trail_price, bar.time
                    c.rows.append(o.row())

    def _exit(
        self, c: _Changes, orders: list[_Order], f: model.Fill, guard: model.Guard, bar: model.Bar
    ) -> None:
        """A protective exit: the order that holds it fills, the rest of its group is cancelled."""
        holder = _holder(orders, f.reason)
        if holder.amount != f.amount:  # the group's orders disagree on the amount: this one's own
            f = model.on_bar(bar, holder.amount, guard, None, self.costs, MINUTE).fills[-1]
        have = c.bal.get(c.base, _ZERO)
        if have < holder.amount:
            why = f"insufficient {c.base}: need {holder.amount}, have {have}"
            for o in orders:
                self._cancelled(c, o, why, bar.time)
            return
        self._filled(c, holder, f, f.reason, bar.time)
        for o in orders:
            if o is not holder:
                self._cancelled(c, o, f"one-cancels-the-other: {holder.client_order_id} filled", bar.time)

    def _match_limit(self, c: _Changes, o: _Order, bar: model.Bar) -> None:
        """A resting limit entry on a candle: it fills (its exits then protect the position, in this
        candle too), expires, or rests on."""
        assert o.price is not None
        exits = model.Exits.from_strings(o.protect)
        resting = model.Resting(
            o.amount, o.price, o.expires_at if o.expires_at is not None else _NEVER, exits
        )
        r = model.on_bar(bar, _ZERO, None, resting, self.costs, MINUTE)
        if not r.fills:
            if r.expired:
                self._cancelled(c, o, "expired", bar.time)
            return
        entry = r.fills[0]
        c.bal[c.quote] = c.bal.get(c.quote, _ZERO) + o.locked  # the set-aside comes back; the fill is charged
        o.locked = _ZERO
        self._filled(c, o, entry, None, bar.time)
        if not exits:
            return
        rev = int((o.protect or {}).get("rev") or 0)
        if len(r.fills) > 1:  # out in its own candle: the orders the entry's guard made, one of them fills
            guard = model.Guard.at_entry(entry.price, exits)
            made = self._protect(
                o.trader_id, o.symbol, o.client_order_id, rev, guard, o.amount, bar.time, c.rows
            )
            if made:
                self._exit(c, made, r.fills[-1], guard, bar)
        elif r.guard is not None:
            self._protect(o.trader_id, o.symbol, o.client_order_id, rev, r.guard, o.amount, bar.time, c.rows)

    def _filled(self, c: _Changes, o: _Order, f: model.Fill, reason: str | None, now_ms: int) -> None:
        """A resting order filled: the fill booked, the order closed, stored and reported."""
        self._book(c.bal, c.base, c.quote, f, c.assets)
        self._close(o, "filled", reason, now_ms)
        result = o.result(f)
        self._results.put(o.trader_id, result)
        c.rows.append(o.row())
        c.fills.append(_fill_row(o.trader_id, o.client_order_id, o.symbol, f, "filled", reason, now_ms))
        c.reports.append((o.trader_id, result))

    def _cancelled(self, c: _Changes, o: _Order, reason: str, now_ms: int) -> None:
        """A resting order matching cancelled (expired, or its group's exit could not or did fill), reported."""
        self._cancel(o, c.bal, reason, now_ms, c.rows, c.assets)
        c.reports.append((o.trader_id, o.result()))

    def _book(self, bal: dict[str, Decimal], base: str, quote: str, f: model.Fill, assets: set[str]) -> None:
        bal[quote] = bal.get(quote, _ZERO) + f.cash
        bal[base] = bal.get(base, _ZERO) + (f.amount if f.side == "buy" else -f.amount)
        assets.add(quote)
        assets.add(base)

    # -- the resting orders in memory -------------------------------------------------------------------
    def _add(self, o: _Order) -> None:
        self._open[o.client_order_id] = o
        if o.type == QUOTE:
            self._best.pop(o.symbol, None)
        index = self._quotes if o.type == QUOTE else self._by_symbol
        index.setdefault(o.symbol, {})[o.client_order_id] = o

    def _close(self, o: _Order, status: str, reason: str | None, now_ms: int) -> None:
        o.status, o.reason, o.time = status, reason, now_ms
        self._open.pop(o.client_order_id, None)
        if o.type == QUOTE:
            self._best.pop(o.symbol, None)
        index = self._quotes if o.type == QUOTE else self._by_symbol
        book = index.get(o.symbol)
        if book is not None:
            book.pop(o.client_order_id, None)
            if not book:
                del index[o.symbol]

    def _drop_orders(self, trader_ids: set[int]) -> None:
        if not trader_ids:
            return
        for o in [o for o in self._open.values() if o.trader_id in trader_ids]:
            self._close(o, o.status, o.reason, o.time)

    async def _report(self, reports: list[tuple[int, OrderResult]]) -> None:
        if self.listener is None:
            return
        for trader_id, result in reports:
            try:
                await self.listener(trader_id, result)
            except Exception:  # stored already: core's reconciler asks for what it missed
                log.exception("paper engine: reporting %s failed", result.client_order_id)

    # -- storing ----------------------------------------------------------------------------------------
    async def _flusher(self) -> None:
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            await asyncio.sleep(0.002)  # let a burst of orders join one transaction
            try:
                await self._flush()
            except Exception:
                log.exception("paper engine: flush failed; retrying")
                await asyncio.sleep(0.5)
                self._wakeup.set()

    async def _flush(self) -> None:
        async with self._flush_lock:
            await self._flush_batch()

    async def _flush_batch(self) -> None:
        batch, self._queue = self._queue, []
        if not batch:
            return
        try:
            fills = [e[0] for e in batch if e[0] is not None]
            orders = {row["client_order_id"]: row for e in batch for row in e[4]}  # the newest of each
            touched = {(e[2], asset) for e in batch for asset in e[1] or ()}
            async with write_gate(self.sf), self.sf() as s:
                if fills:
                    await s.execute(_FILLS.insert(), fills)
                if orders:
                    upsert = self._insert(_ORDERS)
                    upsert = upsert.on_conflict_do_update(
                        index_elements=["client_order_id"],
                        set_={f: upsert.excluded[f] for f in _ORDER_FIELDS if f != "client_order_id"},
                    )
                    await s.execute(upsert, list(orders.values()))
                # The in-memory balance is the newest: it already includes every change of this batch.
                if touched:
                    upsert = self._insert(_BALANCES)
                    upsert = upsert.on_conflict_do_update(
                        index_elements=["trader_id", "asset"], set_={"amount": upsert.excluded.amount}
                    )
                    await s.execute(
                        upsert,
                        [
                            {"trader_id": t, "asset": a, "amount": self._balances[t][a]}
                            for t, a in sorted(touched)
                        ],
                    )
                await s.commit()
        except IntegrityError:
            # A paper account deleted while its order was being filled: its fill cannot be stored (its
            # money went with it). Its entries are dropped and the others stored on the next pass; kept in
            # the queue, they failed every later flush, and every other account's fills with them.
            gone = await self._vanished({e[2] for e in batch})
            if not gone:
                self._queue[:0] = batch
                raise
            log.warning("paper engine: dropped the fills of deleted account(s) %s", sorted(gone))
            kept = [entry for entry in batch if entry[2] not in gone]
            self._queue[:0] = kept
            for trader_id in gone:
                self._balances.pop(trader_id, None)
            self._drop_orders(gone)
            waiting = {id(entry[3]) for entry in kept}
            for entry in batch:
                done = entry[3]
                if id(done) not in waiting and not done.done():
                    done.set_result(None)
            self._wakeup.set()
            return
        except Exception:
            self._queue[:0] = batch
            raise
        for entry in batch:
            if not entry[3].done():  # entries of one place_many share their future
                entry[3].set_result(None)

    async def _vanished(self, trader_ids: set[int]) -> set[int]:
        async with self.sf() as s:
            found = set((await s.execute(select(Trader.id).where(Trader.id.in_(trader_ids)))).scalars())
        return trader_ids - found


class _Row:
    """A fill not yet stored, read like a row of paper_fills."""

    def __init__(self, **values: object) -> None:
        self.__dict__.update(values)


def _result(row: Any) -> OrderResult:
    return OrderResult(
        client_order_id=row.client_order_id,
        status=row.status,
        exchange_order_id=f"paper-{row.client_order_id}",
        filled=row.amount if row.status == "filled" else _ZERO,
        price=row.price if row.status == "filled" else None,
        fee=row.fee,
        fee_asset=_split(row.symbol)[1],
        reason=row.reason,
        time=row.time,
    )


def _fill_row(
    trader_id: int, cid: str, symbol: str, f: model.Fill, status: str, reason: str | None, now_ms: int
) -> dict[str, object]:
    return {
        "trader_id": trader_id,
        "client_order_id": cid,
        "symbol": symbol,
        "side": f.side,
        "amount": f.amount,
        "price": f.price,
        "fee": f.fee,
        "status": status,
        "reason": reason,
        "time": now_ms,
    }


def _invalid(spec: OrderSpec, amount: Decimal) -> str | None:
    """Why an order cannot be placed, or None."""
    kind, side = spec.type, spec.side
    if amount <= 0:
        return "amount must be positive"
    if side not in ("buy", "sell"):
        return f"unknown side {side!r}"
    if spec.post_only:
        if kind != "limit":
            return "only a limit order can be post-only"
        if spec.price is None or spec.price <= 0:
            return "a quote needs a positive price"
        if spec.protect is not None or spec.expires_at is not None:
            return "a quote rests until it fills or is cancelled, without exits or an expiry"
        return None
    if kind == "market":
        return None
    if kind == "limit":
        if side != "buy":
            return "the sim takes limit buys only (entries)"
        if spec.price is None or spec.price <= 0:
            return "a limit order needs a positive price"
        return None
    if kind not in PROTECTIVE_TYPES:
        return f"unknown order type {kind!r}"
    if side != "sell":
        return f"a {kind} order sells (it protects a long position)"
    if kind == "stop" and (spec.stop_price is None or spec.stop_price <= 0):
        return "a stop order needs a positive stop price"
    if kind == "take_profit" and (spec.price is None or spec.price <= 0):
        return "a take-profit order needs a positive price"
    if kind == "trailing_stop" and (spec.trail is None or not 0 < spec.trail < 1):
        return "a trailing stop needs a trail between 0 and 1"
    return None


def _holder(orders: list[_Order], reason: str | None) -> _Order:
    """The order of a group that carries out an exit of this reason."""
    for o in orders:
        if reason == "stop_loss" and (
            o.type == "stop" or (o.type == "take_profit" and o.stop_price is not None)
        ):
            return o
        if reason in ("take_profit", "trailing_stop") and o.type == reason:
            return o
    return orders[0]
