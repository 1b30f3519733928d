"""``sim``: the simulated exchange behind the same adapter protocol as the real ones.

Its clock runs ``sim_speed`` times faster than the wall clock (60: a 1m candle every second) and never
goes back: after a restart it continues from the last stored candle, so the history has no hole.

Orders other than market orders rest in the paper engine (``engine.py``) and are matched on each 1m
candle the walk makes, streamed or generated catching up, before the candle is handed on: core hears of
a fill (through ``set_listener``) before the candle that caused it.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator
from decimal import Decimal

from sqlalchemy import select

from tradewind.bus.messages import Candle
from tradewind.config import Settings
from tradewind.exchanges.base import Capabilities, Credentials, ExchangeError, OrderResult, OrderSpec
from tradewind.exchanges.sim.engine import Listener, PaperEngine
from tradewind.exchanges.sim.market import MINUTE, RandomWalk
from tradewind.marketdata import resample_rows
from tradewind.storage.db import SessionFactory
from tradewind.storage.models import CandleRow, Market
from tradewind.trading import model

log = logging.getLogger(__name__)


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
        )
        self.engine = PaperEngine(
            session_factory,
            Decimal(settings.sim_fee),
            Decimal(settings.sim_paper_cash),
            maker_fee=Decimal(settings.sim_maker_fee),
            slippage_bps=Decimal(settings.sim_slippage_bps),
        )
        self.walks: dict[str, RandomWalk] = {}
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
                self.walks[symbol] = RandomWalk(symbol, seed, *(last or (None, None)))
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
        rows = walk.generate(start, count) if count > 0 else []
        for row in rows:  # the resting orders see every candle, the ones generated catching up too
            await self._match(symbol, row)
        if tf != "1m":
            rows = resample_rows(rows, tf)
        return [self._candle(symbol, tf, r) for r in rows]

    async def stream_candles(self, symbols: list[str], tf: str) -> AsyncIterator[Candle]:
        if tf != "1m":
            raise ExchangeError("sim streams 1m candles; core derives the other timeframes")
        walks = [self._walk(s) for s in symbols]
        next_open = max((w.last_time + MINUTE) if w.last_time is not None else 0 for w in walks)
        next_open = max(next_open, self.sim_now() // MINUTE * MINUTE - MINUTE)
        while True:
            close_at = next_open + MINUTE
            wait_ms = (close_at - self.sim_now()) / self.speed
            if wait_ms > 0:
                await asyncio.sleep(wait_ms / 1000)
            for walk in walks:
                if walk.last_time is not None and walk.last_time >= next_open:
                    continue
                (row,) = walk.generate(next_open, 1)
                await self._match(walk.symbol, row)  # its fills are reported before the candle
                yield self._candle(walk.symbol, "1m", row)
            next_open += MINUTE

    async def _match(self, symbol: str, row: tuple[int, float, float, float, float, float]) -> None:
        """The resting orders of ``symbol`` on a new 1m candle (the engine stores and reports what fills)."""
        t, o, h, lo, c, _ = row
        try:
            await self.engine.on_candle(symbol, model.Bar.of(t, o, h, lo, c))
        except Exception:  # the candle is generated already: it goes out, whatever happened to the orders
            log.exception("sim: matching the orders of %s on the candle of %d failed", symbol, t)

    def _candle(self, symbol: str, tf: str, row: tuple[int, float, float, float, float, float]) -> Candle:
        t, o, h, lo, c, v = row
        return Candle(
            exchange=self.capabilities.name, symbol=symbol, tf=tf, time=t, open=o, high=h, low=lo, close=c,
            volume=v, closed=True, trace_id=uuid.uuid4().hex[:16], recv_ns=time.time_ns(),
        )  # fmt: skip

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

    async def place_order(self, creds: Credentials, order: OrderSpec) -> OrderResult:
        price = _next_open(self._walk(order.symbol))
        return await self.engine.place(creds.trader_id, order, price, now_ms=self.sim_now())

    async def place_orders(self, orders: list[tuple[Credentials, OrderSpec]]) -> list[OrderResult]:
        """A batch through the matching engine at once: one lookup of the client ids, one group commit."""
        items, unknown = [], {}
        for i, (creds, order) in enumerate(orders):
            walk = self.walks.get(order.symbol)
            if walk is None:
                unknown[i] = OrderResult(
                    client_order_id=order.client_order_id,
                    status="rejected",
                    reason=f"sim has no market {order.symbol}",
                )
                continue
            items.append((creds.trader_id, order, _next_open(walk)))
        filled = iter(await self.engine.place_many(items, now_ms=self.sim_now()) if items else [])
        return [unknown[i] if i in unknown else next(filled) for i in range(len(orders))]

    async def fetch_order(self, creds: Credentials, client_order_id: str, symbol: str) -> OrderResult | None:
        return await self.engine.find(client_order_id)

    async def cancel_order(self, creds: Credentials, client_order_id: str, symbol: str) -> OrderResult:
        return await self.engine.cancel(creds.trader_id, client_order_id, now_ms=self.sim_now())


def _next_open(walk: RandomWalk) -> Decimal:
    """The price a market order fills at: each simulated candle opens at the previous close."""
    return Decimal(repr(walk.last_close)).quantize(Decimal("0.00000001"))
