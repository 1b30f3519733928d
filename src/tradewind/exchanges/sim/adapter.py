"""``sim``: the simulated exchange behind the same adapter protocol as the real ones.

Its clock runs ``sim_speed`` times faster than the wall clock (60: a 1m candle every second) and never
goes back: after a restart it continues from the last stored candle, so the history has no hole.

Each minute of a market is a path of trades (``market.py``), one every ``sim_tick_ms`` of sim time. It is
generated once, when the tick stream or the candle stream first needs it, and shared by both: a trade's
tick goes out as the clock passes it (its bid and ask ``sim_spread_bps`` apart around it), and the candle
at the minute's close is the aggregate of the same trades. Every trade goes through the paper engine's
quotes before its tick and before the candle that holds it, streamed or generated catching up. The other
orders that rest in the paper engine (``engine.py``) are matched on each 1m candle, before it is handed
on: core hears of a fill (through ``set_listener``) before the tick or the candle that caused it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy import select

from tradewind.bus.messages import Candle, Tick
from tradewind.config import Settings
from tradewind.exchanges.base import Capabilities, Credentials, ExchangeError, OrderResult, OrderSpec
from tradewind.exchanges.series import closed_candle
from tradewind.exchanges.sim.engine import Listener, PaperEngine
from tradewind.exchanges.sim.market import MINUTE, RandomWalk
from tradewind.marketdata import Row, resample_rows
from tradewind.storage.db import SessionFactory
from tradewind.storage.models import CandleRow, Market
from tradewind.trading import model

log = logging.getLogger(__name__)

BOOK_DEPTH = 3  # the size at the best bid and ask, in trades of the minute (a trade: its volume / trades)


@dataclass(slots=True, eq=False)
class _Minute:
    """One minute of a market's trades, shared by the tick and the candle streams."""

    row: Row  # its candle
    times: list[int]
    prices: list[float]
    size: float  # a trade's size
    matched: int = 0  # the trades that went through the quotes
    closed: bool = False  # its candle is handed out: a tick of it is stale


class _Feed:
    """A market's minutes generated and not yet handed out as candles, and its last trade."""

    def __init__(self) -> None:
        self.minutes: dict[int, _Minute] = {}  # by open time, oldest first
        self.last: float | None = None  # the last trade that went through the quotes
        self.lock = asyncio.Lock()  # the trades go through the quotes one stream at a time, in order


class SimAdapter:
    def __init__(self, settings: Settings, session_factory: SessionFactory, *, name: str = "sim") -> None:
        self.settings = settings
        self.sf = session_factory
        self.speed = settings.sim_speed
        self.capabilities = Capabilities(
            name=name,
            timeframes=("1m",),
            pushes_fills=True,
            paper=True,
            batch_orders=True,
            history_page_limit=50_000,
            symbols=tuple(settings.sim_symbols),
            order_types=frozenset({"limit", "stop", "take_profit", "trailing_stop", "oco"}),
            streams_ticks=True,
            post_only=True,
        )
        self.engine = PaperEngine(
            session_factory,
            Decimal(settings.sim_fee),
            Decimal(settings.sim_paper_cash),
            maker_fee=Decimal(settings.sim_maker_fee),
            slippage_bps=Decimal(settings.sim_slippage_bps),
        )
        self.walks: dict[str, RandomWalk] = {}
        self._feeds: dict[str, _Feed] = {}
        self._candle_streams = 0  # candle streams running: they hand out every minute generated
        self._half_spread = settings.sim_spread_bps / 2 / 1e4
        self._anchor: tuple[float, int] | None = None  # (wall clock s, sim time ms)

    async def start(self) -> None:
        async with self.sf() as s:
            for i, symbol in enumerate(self.capabilities.symbols):
                q = (
                    select(CandleRow.time, CandleRow.close)
                    .join(Market, Market.id == CandleRow.market_id)
                    .where(
                        Market.exchange == self.capabilities.name,
                        Market.symbol == symbol,
                        CandleRow.tf == "1m",
                    )
                    .order_by(CandleRow.time.desc())
                    .limit(1)
                )
                last = (await s.execute(q)).first()
                seed = self.settings.sim_seed + i + (int(time.time()) if last else 0)
                self.walks[symbol] = RandomWalk(
                    symbol, seed, *(last or (None, None)), tick_ms=self.settings.sim_tick_ms
                )
        await self.engine.start()

    async def close(self) -> None:
        await self.engine.close()

    def set_listener(self, callback: Listener) -> None:
        """``callback(trader_id, result)`` hears of every fill and cancellation of a resting order (once
        stored), before the candle that caused it is yielded."""
        self.engine.listener = callback

    # -- the clock ------------------------------------------------------------------------------------
    def sim_now(self) -> int:
        if self._anchor is None:
            latest = max((w.last_time or 0) + MINUTE for w in self.walks.values()) if self.walks else 0
            now = int(time.time() * 1000) // MINUTE * MINUTE
            self._anchor = (time.time(), max(now, latest))
        wall, sim = self._anchor
        return sim + int((time.time() - wall) * 1000 * self.speed)

    # -- market data ----------------------------------------------------------------------------------
    async def fetch_history(self, symbol: str, tf: str, since: int, until: int | None = None) -> list[Candle]:
        """Generate the candles from the walk's last candle up to ``until`` (the sim's history is
        generated once, in order; a range that is already behind the walk yields nothing)."""
        walk = self._walk(symbol)
        until = until if until is not None else self.sim_now() // MINUTE * MINUTE
        start = max(since, (walk.last_time + MINUTE) if walk.last_time is not None else since)
        start -= start % MINUTE
        count = min((until - start) // MINUTE, self.capabilities.history_page_limit)
        if count <= 0:
            return []
        feed = self._feed(symbol)
        async with feed.lock:  # no later trade goes through the quotes before these
            paths = walk.paths(start, count)
            rows = paths.rows
            for i, row in enumerate(rows):  # the resting orders see every trade and candle, caught up too
                if self.engine.quoting(symbol):
                    await self._trade(symbol, paths.times(i), paths.prices[i].tolist())
                await self._match(symbol, row)
            feed.last = walk.last_close
        if tf != "1m":
            rows = resample_rows(rows, tf)
        return [self._candle(symbol, tf, r) for r in rows]

    async def stream_candles(self, symbols: list[str], tf: str) -> AsyncIterator[Candle]:
        if tf != "1m":
            raise ExchangeError("sim streams 1m candles; core derives the other timeframes")
        walks = [self._walk(s) for s in symbols]
        self._candle_streams += 1
        try:
            # from the first minute the tick stream generated and no candle stream handed out yet
            pending = [min(feed.minutes) for s in symbols if (feed := self._feed(s)).minutes]
            if pending:
                next_open = min(pending)
            else:
                next_open = max((w.last_time + MINUTE) if w.last_time is not None else 0 for w in walks)
                next_open = max(next_open, self.sim_now() // MINUTE * MINUTE - MINUTE)
            while True:
                close_at = next_open + MINUTE
                wait_ms = (close_at - self.sim_now()) / self.speed
                if wait_ms > 0:
                    await asyncio.sleep(wait_ms / 1000)
                for walk in walks:
                    minute = self._minute(walk.symbol, next_open, jump=True)
                    if minute is None:  # handed out already (history)
                        continue
                    await self._advance(walk.symbol, minute, len(minute.times))  # the trades the ticks left
                    self._retire(walk.symbol, minute)
                    await self._match(walk.symbol, minute.row)  # its fills are reported before the candle
                    yield self._candle(walk.symbol, "1m", minute.row)
                next_open += MINUTE
        finally:
            self._candle_streams -= 1

    async def stream_ticks(self, symbols: list[str]) -> AsyncIterator[Tick]:
        """A tick per trade of the walks, as the sim clock passes it, each after the trade went through
        the resting quotes. A tick more than a sim minute late is not sent (its trade still goes through
        the quotes), nor one of a minute whose candle is out. While a walk is behind the clock (history
        still catching up) its market has no ticks: they start with the walk's next minute."""
        for s in symbols:
            self._walk(s)
        step = self.settings.sim_tick_ms
        per_minute = -(-MINUTE // step)
        now = self.sim_now()
        minute = now // MINUTE * MINUTE
        k = min((now - minute) // step, per_minute - 1)  # the trade at or before now
        while True:
            at = minute + k * step
            wait_ms = (at - self.sim_now()) / self.speed
            if wait_ms > 0:
                await asyncio.sleep(wait_ms / 1000)
            stale = self.sim_now() - at > MINUTE
            last = k == per_minute - 1
            for symbol in symbols:
                m = self._minute(symbol, minute, jump=False)
                if m is None or m.closed:
                    continue
                if not stale or last:  # the stale ones go through the quotes with the next one sent
                    await self._advance(symbol, m, k + 1)
                if not stale and not m.closed:
                    yield self._tick(symbol, m, k)
            k += 1
            if k == per_minute:
                for symbol in symbols:
                    self._prune(symbol, minute - 2 * MINUTE)
                minute, k = minute + MINUTE, 0

    # -- the minutes the two streams share -------------------------------------------------------------
    def _feed(self, symbol: str) -> _Feed:
        feed = self._feeds.get(symbol)
        if feed is None:
            feed = self._feeds[symbol] = _Feed()
        return feed

    def _minute(self, symbol: str, t: int, *, jump: bool) -> _Minute | None:
        """The trades of ``symbol``'s minute opening at ``t``, generated now if the walk has not made it
        yet: when it is the walk's next minute, or (``jump``, the candle stream) any later one. None: the
        walk is past it (handed out) or, without ``jump``, not there yet."""
        feed = self._feed(symbol)
        found = feed.minutes.get(t)
        if found is not None:
            return found
        walk = self._walk(symbol)
        if walk.last_time is not None and (
            walk.last_time >= t or (not jump and walk.last_time + MINUTE != t)
        ):
            return None
        paths = walk.paths(t, 1)
        row = paths.rows[0]
        prices = paths.prices[0].tolist()
        if feed.last is None:
            feed.last = row[1]  # the book stands at the previous close until the first trade goes through
        made = feed.minutes[t] = _Minute(row, paths.times(0), prices, row[5] / len(prices))
        return made

    async def _advance(self, symbol: str, minute: _Minute, upto: int) -> None:
        """The trades of ``minute`` before ``upto`` through the quotes, the ones no stream did yet."""
        if minute.matched >= upto:
            return
        feed = self._feed(symbol)
        async with feed.lock:
            start = minute.matched
            if start >= upto:  # the other stream did them meanwhile
                return
            if self.engine.quoting(symbol):
                await self._trade(symbol, minute.times[start:upto], minute.prices[start:upto])
            minute.matched = upto
            feed.last = minute.prices[upto - 1]

    def _retire(self, symbol: str, minute: _Minute) -> None:
        """Its candle is out: the minute leaves the shared ones."""
        minute.closed = True
        self._feed(symbol).minutes.pop(minute.row[0], None)

    def _prune(self, symbol: str, before: int) -> None:
        """With no candle stream to hand them out, the minutes the ticks are done with are forgotten."""
        if self._candle_streams:
            return
        minutes = self._feed(symbol).minutes
        for t in [t for t, m in minutes.items() if t < before and m.matched == len(m.times)]:
            del minutes[t]

    async def _trade(self, symbol: str, times: list[int], prices: list[float]) -> None:
        """Trades of ``symbol``, in order, through its resting quotes (the engine stores and reports what
        fills)."""
        try:
            await self.engine.on_trades(symbol, times, prices)
        except Exception:  # the trades are made: they go out, whatever happened to the quotes
            log.exception("sim: matching the quotes of %s on the trades from %d failed", symbol, times[0])

    def _tick(self, symbol: str, minute: _Minute, k: int) -> Tick:
        last = minute.prices[k]
        bid, ask = self._spread(last)
        depth = minute.size * BOOK_DEPTH
        return Tick(
            exchange=self.capabilities.name,
            symbol=symbol,
            bid=bid,
            ask=ask,
            bid_size=depth,
            ask_size=depth,
            last=last,
            time=minute.times[k],
            recv_ns=time.time_ns(),
            trace_id=os.urandom(8).hex(),
        )

    def _spread(self, last: float) -> tuple[float, float]:
        return last * (1 - self._half_spread), last * (1 + self._half_spread)

    def _book(self, symbol: str) -> tuple[Decimal, Decimal]:
        """The simulated book now: the bid and ask of the last trade that went through the quotes (those
        of its tick)."""
        feed = self._feed(symbol)
        bid, ask = self._spread(feed.last if feed.last is not None else self._walk(symbol).last_close)
        return model.dec(bid), model.dec(ask)

    def _market_price(self, symbol: str) -> Decimal:
        """The price a market order fills at: the open of the minute in progress (each simulated candle
        opens at the previous close)."""
        walk = self._walk(symbol)
        minute = self._feed(symbol).minutes.get(self.sim_now() // MINUTE * MINUTE)
        return _price(minute.row[1] if minute is not None else walk.last_close)

    async def _match(self, symbol: str, row: tuple[int, float, float, float, float, float]) -> None:
        """The resting orders of ``symbol`` on a new 1m candle (the engine stores and reports what fills)."""
        if not self.engine.resting(symbol):  # a candle of a market without orders costs nothing
            return
        t, o, h, lo, c, _ = row
        try:
            await self.engine.on_candle(symbol, model.Bar.of(t, o, h, lo, c))
        except Exception:  # the candle is generated already: it goes out, whatever happened to the orders
            log.exception("sim: matching the orders of %s on the candle of %d failed", symbol, t)

    def _candle(self, symbol: str, tf: str, row: tuple[int, float, float, float, float, float]) -> Candle:
        return closed_candle(self.capabilities.name, symbol, tf, row, time.time_ns(), os.urandom(8).hex())

    def _walk(self, symbol: str) -> RandomWalk:
        try:
            return self.walks[symbol]
        except KeyError:
            raise ExchangeError(f"sim has no market {symbol}") from None

    # -- paper trading --------------------------------------------------------------------------------
    async def forget_account(self, trader_id: int) -> None:
        """A paper account was deleted: its balances leave the matching engine's memory."""
        await self.engine.forget(trader_id)

    async def fetch_balances(self, creds: Credentials) -> dict[str, Decimal]:
        return await self.engine.balances(creds.trader_id)

    async def reset_account(
        self, trader_id: int, last_fill_id: int | None
    ) -> tuple[str | None, dict[str, Decimal], int]:
        """A paper account back to its starting cash (``PaperEngine.reset``): why not (or None), the new
        balances, and the simulator's clock then (epoch ms)."""
        error, balances = await self.engine.reset(trader_id, last_fill_id)
        return error, balances, self.sim_now()

    async def place_order(self, creds: Credentials, order: OrderSpec) -> OrderResult:
        price = self._market_price(order.symbol)
        book = self._book(order.symbol) if order.post_only else None
        return await self.engine.place(creds.trader_id, order, price, now_ms=self.sim_now(), book=book)

    async def place_orders(self, orders: list[tuple[Credentials, OrderSpec]]) -> list[OrderResult]:
        """A batch through the matching engine at once: one lookup of the client ids, one group commit."""
        items, unknown, books = [], {}, {}
        for i, (creds, order) in enumerate(orders):
            walk = self.walks.get(order.symbol)
            if walk is None:
                unknown[i] = OrderResult(
                    client_order_id=order.client_order_id,
                    status="rejected",
                    reason=f"sim has no market {order.symbol}",
                )
                continue
            if order.post_only and order.symbol not in books:
                books[order.symbol] = self._book(order.symbol)
            items.append((creds.trader_id, order, self._market_price(order.symbol)))
        placed = await self.engine.place_many(items, now_ms=self.sim_now(), books=books) if items else []
        filled = iter(placed)
        return [unknown[i] if i in unknown else next(filled) for i in range(len(orders))]

    async def fetch_order(self, creds: Credentials, client_order_id: str, symbol: str) -> OrderResult | None:
        return await self.engine.find(client_order_id)

    async def cancel_order(self, creds: Credentials, client_order_id: str, symbol: str) -> OrderResult:
        return await self.engine.cancel(creds.trader_id, client_order_id, now_ms=self.sim_now())


def _price(x: float) -> Decimal:
    return Decimal(repr(x)).quantize(Decimal("0.00000001"))
