"""Ticks through ccxt: each market's best bid and ask, their sizes and the last trade price.

Where ccxt.pro streams the venue's tickers the feed watches them: ``watchBidsAsks`` (the top of the book
as it changes, every market on one subscription), else ``watchTicker`` per market. Otherwise it polls
REST: ``fetch_tickers`` (or ``fetch_bids_asks``) for every market in one call where ccxt's ``has`` says the
venue answers that, else ``fetch_ticker`` market by market. Polls ask for each market at most once per
``interval_s`` and are never closer together than ccxt's ``rateLimit`` (milliseconds per request). A failed
poll or a dropped socket backs off and tries again: the stream ends only when it is closed.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import aclosing
from typing import Any

from tradewind.bus.messages import Tick
from tradewind.exchanges.base import ExchangeError
from tradewind.exchanges.series import fan_in

log = logging.getLogger(__name__)

WATCH_METHODS = ("watchBidsAsks", "watchTicker")
QUEUE_SIZE = 1000  # ticks waiting for the reader; past that the oldest go: the latest is what matters
# What a ccxt parser raises on an answer that is not tickers (a proxy's error page, a changed format).
_UNREADABLE = (TypeError, ValueError, KeyError, IndexError, AttributeError)

Call = Callable[[Awaitable[Any]], Awaitable[Any]]


def _num(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def tick_of(exchange_id: str, symbol: str, ticker: Any, recv_ns: int, last: float = 0.0) -> Tick | None:
    """A ccxt ticker as a Tick; None without both a bid and an ask. ``last``: the price to report when
    the ticker has none (a book ticker carries no trade); the venue's time, else our receive time."""
    if not isinstance(ticker, dict):
        return None
    bid, ask = _num(ticker.get("bid")), _num(ticker.get("ask"))
    if bid is None or ask is None or bid <= 0 or ask <= 0:
        return None
    stamp = _num(ticker.get("timestamp"))
    return Tick(
        exchange=exchange_id,
        symbol=symbol,
        bid=bid,
        ask=ask,
        bid_size=_num(ticker.get("bidVolume")) or 0.0,
        ask_size=_num(ticker.get("askVolume")) or 0.0,
        last=_num(ticker.get("last")) or last,
        time=int(stamp) if stamp else recv_ns // 1_000_000,
        recv_ns=recv_ns,
        trace_id=uuid.uuid4().hex[:16],
    )


def poll_plan(exchange_id: str, has: dict[str, Any], symbols: list[str]) -> tuple[str, list[list[str]]]:
    """The ccxt call that polls these markets, and the markets each call asks for."""
    if len(symbols) > 1 or not has.get("fetchTicker"):
        for name in ("fetchTickers", "fetchBidsAsks"):
            if has.get(name):
                return name, [list(symbols)]
    if has.get("fetchTicker"):
        return "fetchTicker", [[s] for s in symbols]
    raise ExchangeError(f"{exchange_id} has no tickers in ccxt")


def _offer(queue: asyncio.Queue[Tick], tick: Tick) -> None:
    if queue.full():
        queue.get_nowait()
    queue.put_nowait(tick)


class TickFeed:
    """One venue's ticks. ``rest`` is the public ccxt instance, ``pro`` its ccxt.pro twin (or None: poll);
    ``call`` turns ccxt's exceptions into ours, ``ready`` loads the markets of ``rest``."""

    def __init__(
        self,
        exchange_id: str,
        rest: Any,
        pro: Any | None,
        *,
        interval_s: float,
        call: Call,
        ready: Callable[[], Awaitable[None]],
    ) -> None:
        self.id = exchange_id
        self.rest = rest
        self.pro = pro
        self.interval_s = interval_s
        self._call = call
        self._ready = ready
        self._last: dict[str, float] = {}  # the last trade price seen per market

    @property
    def watch_method(self) -> str | None:
        """The ccxt.pro method streaming this venue's tickers, or None: the feed polls REST."""
        if self.pro is None:
            return None
        return next((name for name in WATCH_METHODS if self.pro.has.get(name)), None)

    @property
    def available(self) -> bool:
        has = self.rest.has
        return self.watch_method is not None or any(
            has.get(name) for name in ("fetchTicker", "fetchTickers", "fetchBidsAsks")
        )

    def poll_gap_s(self, calls_per_round: int) -> float:
        """Seconds between two polls: each market once per ``interval_s``, never over the rate limit."""
        rate_s = (self.rest.rateLimit or 0) / 1000
        return max(rate_s, self.interval_s / max(1, calls_per_round))

    async def stream(self, symbols: list[str]) -> AsyncIterator[Tick]:
        if not symbols:  # nothing to watch: wait rather than end (the service would restart an ended stream)
            await asyncio.Event().wait()
        queue: asyncio.Queue[Tick] = asyncio.Queue(QUEUE_SIZE)
        method = self.watch_method
        pro = self.pro
        if method == "watchBidsAsks" and pro is not None:  # a watch method is only found on a pro client
            runs = [self._watch(lambda: pro.watch_bids_asks(symbols), symbols, queue)]
        elif method == "watchTicker" and pro is not None:
            runs = [self._watch(self._one_ticker(pro, s), [s], queue) for s in symbols]
        else:  # a venue without tickers raises here, to the reader, not in a task nobody awaits
            runs = [self._poll(*poll_plan(self.id, self.rest.has, symbols), queue)]
        async with aclosing(fan_in(runs, queue)) as ticks:
            async for tick in ticks:
                yield tick

    @staticmethod
    def _one_ticker(pro: Any, symbol: str) -> Callable[[], Awaitable[dict[str, Any]]]:
        async def watch() -> dict[str, Any]:
            return {symbol: await pro.watch_ticker(symbol)}

        return watch

    def _emit(self, tickers: Any, symbols: list[str], recv_ns: int, queue: asyncio.Queue[Tick]) -> None:
        if not isinstance(tickers, dict):
            raise ExchangeError(f"{self.id} sent tickers that cannot be read: {str(tickers)[:100]}")
        for symbol in symbols:
            ticker = tickers.get(symbol)
            last = _num(ticker.get("last")) if isinstance(ticker, dict) else None
            if last:
                self._last[symbol] = last
            tick = tick_of(self.id, symbol, ticker, recv_ns, self._last.get(symbol, 0.0))
            if tick is not None:
                _offer(queue, tick)

    async def _fetch(self, method: str, symbols: list[str]) -> Any:
        if method == "fetchTickers":
            return await self._call(self.rest.fetch_tickers(symbols))
        if method == "fetchBidsAsks":
            return await self._call(self.rest.fetch_bids_asks(symbols))
        return {symbols[0]: await self._call(self.rest.fetch_ticker(symbols[0]))}

    async def _poll(self, method: str, groups: list[list[str]], queue: asyncio.Queue[Tick]) -> None:
        gap = self.poll_gap_s(len(groups))
        failures, turn = 0, 0
        while True:
            group = groups[turn % len(groups)]
            turn += 1
            try:
                await self._ready()
                try:
                    tickers = await self._fetch(method, group)
                except _UNREADABLE:
                    raise ExchangeError(f"{self.id} sent tickers that cannot be read") from None
                self._emit(tickers, group, time.time_ns(), queue)
                failures, wait = 0, gap
            except ExchangeError as exc:
                failures += 1
                wait = min(gap * 2 ** min(failures, 6), 60)
                log.warning("%s: polling tickers of %s failed (%s); retry %d", self.id, group, exc, failures)
            # counted from the answer: ccxt's throttle may have held the request back, so its start is unknown
            await asyncio.sleep(wait)

    async def _watch(
        self,
        watch: Callable[[], Awaitable[Any]],
        symbols: list[str],
        queue: asyncio.Queue[Tick],
    ) -> None:
        """ccxt.pro reconnects on the next call after an error; ticks missed meanwhile are not sent later."""
        failures = 0
        while True:
            try:
                try:
                    tickers = await self._call(watch())
                except _UNREADABLE:
                    raise ExchangeError(f"{self.id} sent tickers that cannot be read") from None
                self._emit(tickers, symbols, time.time_ns(), queue)
                failures = 0
            except ExchangeError as exc:
                failures += 1
                log.warning(
                    "%s: ticker websocket for %s failed (%s); retry %d", self.id, symbols, exc, failures
                )
                await asyncio.sleep(min(0.5 * 2 ** min(failures, 6), 30))
