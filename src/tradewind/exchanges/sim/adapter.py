"""``sim``: the simulated exchange behind the same adapter protocol as the real ones.

Its clock runs ``sim_speed`` times faster than the wall clock (60: a 1m candle every second) and never
goes back: after a restart it continues from the last stored candle, so the history has no hole.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from decimal import Decimal

from sqlalchemy import select

from tradewind.bus.messages import Candle
from tradewind.config import Settings
from tradewind.exchanges.base import Capabilities, Credentials, ExchangeError, OrderResult, OrderSpec
from tradewind.exchanges.sim.engine import PaperEngine
from tradewind.exchanges.sim.market import MINUTE, RandomWalk
from tradewind.marketdata import resample_rows
from tradewind.storage.db import SessionFactory
from tradewind.storage.models import CandleRow, Market


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
        )
        self.engine = PaperEngine(
            session_factory, Decimal(settings.sim_fee), Decimal(settings.sim_paper_cash)
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
                yield self._candle(walk.symbol, "1m", row)
            next_open += MINUTE

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
        found = await self.engine.find(client_order_id)
        if found is None:
            raise ExchangeError(f"no order {client_order_id}")
        return found  # market orders fill at once: nothing is ever open to cancel


def _next_open(walk: RandomWalk) -> Decimal:
    """The price a market order fills at: each simulated candle opens at the previous close."""
    return Decimal(repr(walk.last_close)).quantize(Decimal("0.00000001"))
