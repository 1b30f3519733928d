"""Bitfinex public websocket v2: candles and tickers on the same connections, kept alive (reconnect with
backoff, resubscribe, backfill gaps).

Protocol (docs.bitfinex.com, "Public Channels"): send
``{"event": "subscribe", "channel": "candles", "key": "trade:1m:tBTCUSD"}`` or
``{"event": "subscribe", "channel": "ticker", "symbol": "tBTCUSD"}``; the server answers
``{"event": "subscribed", "chanId": N, ...}`` (with the ``key`` or the ``symbol``), then data on ``[N, ...]``
and ``[N, "hb"]`` every 15 s. Candles: ``[N, [[MTS, O, C, H, L, V], ...]]`` (a snapshot, newest first), then
``[N, [MTS, O, C, H, L, V]]`` for every change of a candle. Ticker: snapshot and updates alike,
``[N, [BID, BID_SIZE, ASK, ASK_SIZE, DAILY_CHANGE, DAILY_CHANGE_RELATIVE, LAST_PRICE, VOLUME, HIGH, LOW]]``.
``{"event": "unsubscribe", "chanId": N}`` ends a channel. ``{"event": "info", "code": 20051}`` asks clients
to reconnect; 20060 / 20061 bracket a maintenance (pause, then resubscribe).

One ``PublicFeed`` serves a list of markets to a candle reader and a tick reader, each optional: the
readers come and go, the connections subscribe to what the readers present want.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import time
import uuid
from collections.abc import AsyncGenerator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import Counter
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, WebSocketException

from tradewind.bus.messages import Candle, Tick
from tradewind.exchanges.base import ExchangeError
from tradewind.exchanges.bitfinex import symbols as names
from tradewind.exchanges.bitfinex.rest import row_of
from tradewind.exchanges.series import CandleSeries, Row, closed_candle

log = logging.getLogger(__name__)

RECONNECTS = Counter(
    "tradewind_exchange_reconnects_total", "Market-data reconnections by reason", ["exchange", "reason"]
)
TICKS_REPLACED = Counter(
    "tradewind_exchange_ticks_replaced_total",
    "Ticks replaced by a newer one of the same market before anybody read them",
    ["exchange"],
)

INFO_RESTART = 20051  # "Stop/Restart Websocket Server (please reconnect)"
INFO_MAINTENANCE_START = 20060
INFO_MAINTENANCE_END = 20061  # "resubscribe to all channels"
ERR_ALREADY_SUBSCRIBED = 10301
ERR_UNSUBSCRIBE_FAILED = 10400  # the channel was gone already
CHANNELS_PER_CONNECTION = 25  # Bitfinex caps public channels per connection
MARKETS_PER_CONNECTION = CHANNELS_PER_CONNECTION // 2  # room for each market's candles and ticker

# Ticker payload fields
K_BID, K_BID_SIZE, K_ASK, K_ASK_SIZE, K_LAST = 0, 1, 2, 3, 6


@dataclass(frozen=True)
class StreamTiming:
    """Deadlines of the public stream; tests shrink them to keep fault scenarios fast."""

    silence_s: float = 20.0  # no message at all (heartbeats come every 15 s) this long: the link is dead
    maintenance_s: float = 180.0  # allowed silence between 20060 and 20061 (Bitfinex: "120 s at most")
    backoff_initial_s: float = 0.5
    backoff_max_s: float = 30.0
    close_grace_s: float | None = 5.0  # close a quiet market's open candle this long after its minute ends
    open_timeout_s: float = 10.0


class _Reconnect(Exception):
    """End this connection and open a new one; ``reason`` labels the metric."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class _Progress:
    got_data = False  # a connection that delivered data resets the backoff


Backfill = Callable[[str, int, int], Awaitable[list[Row]]]  # (platform symbol, start, end) -> closed rows
Sub = tuple[str, str]  # ("candles", key) | ("ticker", Bitfinex symbol): one channel, as we ask for it


def tick_of(exchange: str, symbol: str, payload: Any, recv_ns: int) -> Tick | None:
    """A ticker snapshot or update as a Tick, or None if it is not a trading pair's ticker.

    Bitfinex's ticker carries no timestamp: ``time`` is our receive time (ms). BID_SIZE and ASK_SIZE are
    passed on as Bitfinex reports them (its REST reference describes them as the summed sizes near the top
    of the book, not only the best level's)."""
    if not isinstance(payload, list) or len(payload) <= K_LAST:
        return None
    fields = (payload[K_BID], payload[K_BID_SIZE], payload[K_ASK], payload[K_ASK_SIZE], payload[K_LAST])
    if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in fields):
        return None
    bid, bid_size, ask, ask_size, last = (float(v) for v in fields)
    return Tick(
        exchange=exchange,
        symbol=symbol,
        bid=bid,
        ask=ask,
        bid_size=bid_size,
        ask_size=ask_size,
        last=last,
        time=recv_ns // 1_000_000,
        recv_ns=recv_ns,
        trace_id=uuid.uuid4().hex[:16],
    )


class LatestTicks:
    """Ticks not read yet, at most one per market: a newer tick replaces the unread one of its market (a
    tick missed is not sent later). Putting never waits, so a slow reader cannot hold up the socket."""

    def __init__(self, exchange: str) -> None:
        self.exchange = exchange
        self.replaced = 0
        self._ticks: dict[str, Tick] = {}
        self._ready = asyncio.Event()

    def __len__(self) -> int:
        return len(self._ticks)

    def put(self, tick: Tick) -> None:
        if self._ticks.pop(tick.symbol, None) is not None:
            self.replaced += 1
            TICKS_REPLACED.labels(self.exchange).inc()
        self._ticks[tick.symbol] = tick  # to the back: the market that has waited longest is read first
        self._ready.set()

    async def get(self) -> Tick:
        while not self._ticks:
            self._ready.clear()
            await self._ready.wait()
        return self._ticks.pop(next(iter(self._ticks)))


class _Candles:
    """The candle reader: its timeframe, each market's series, the closed candles it has not read yet."""

    def __init__(self, symbols: list[str], tf: str, tf_ms: int, backfill: Backfill) -> None:
        self.tf = tf
        self.tf_key = names.timeframe(tf)
        self.series = {s: CandleSeries(tf_ms, _bind(backfill, s)) for s in symbols}
        self.queue: asyncio.Queue[Candle] = asyncio.Queue()

    def key(self, symbol: str) -> str:
        return f"trade:{self.tf_key}:{names.to_bitfinex(symbol)}"


def _bind(backfill: Backfill, symbol: str) -> Callable[[int, int], Awaitable[list[Row]]]:
    async def fetch(start: int, end: int) -> list[Row]:
        return await backfill(symbol, start, end)

    return fetch


@dataclass
class _Link:
    """One websocket of the feed: its markets and, while it is open, the channels asked for on it."""

    symbols: list[str]
    ws: ClientConnection | None = None
    asked: dict[Sub, str] = field(default_factory=dict)  # subscriptions sent -> platform symbol
    routes: dict[int, Sub] = field(default_factory=dict)  # chanId -> the subscription it answers


class PublicFeed:
    """Candles and ticks of ``symbols`` (platform names) over Bitfinex's public websocket: one connection
    per group of markets carries both, whichever readers are present (``candles``, ``ticks``)."""

    def __init__(
        self,
        ws_url: str,
        symbols: list[str],
        timing: StreamTiming,
        *,
        exchange: str = "bitfinex",
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.ws_url = ws_url
        self.symbols = symbols
        self.timing = timing
        self.exchange = exchange
        self.clock = clock
        self.links = [
            _Link(symbols[i : i + MARKETS_PER_CONNECTION])
            for i in range(0, len(symbols), MARKETS_PER_CONNECTION)
        ]
        self.candle_reader: _Candles | None = None
        self.tick_reader: LatestTicks | None = None
        self.connections = 0  # successful websocket opens, for tests and logs
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def idle(self) -> bool:
        return self.candle_reader is None and self.tick_reader is None

    # -- readers --------------------------------------------------------------------------------------
    async def candles(self, tf: str, tf_ms: int, backfill: Backfill) -> AsyncGenerator[Candle, None]:
        """Closed candles of every market on ``tf``, each exactly once. One candle reader at a time."""
        if self.candle_reader is not None:
            raise RuntimeError("this feed has a candle reader already")
        reader = self.candle_reader = _Candles(self.symbols, tf, tf_ms, backfill)
        await self._readers_changed()
        try:
            while True:
                yield await reader.queue.get()
        finally:
            self.candle_reader = None
            await self._readers_changed()

    async def ticks(self) -> AsyncGenerator[Tick, None]:
        """Every market's newest tick not read yet. One tick reader at a time."""
        if self.tick_reader is not None:
            raise RuntimeError("this feed has a tick reader already")
        reader = self.tick_reader = LatestTicks(self.exchange)
        await self._readers_changed()
        try:
            while True:
                yield await reader.get()
        finally:
            self.tick_reader = None
            await self._readers_changed()

    async def _readers_changed(self) -> None:
        if self.idle:
            tasks, self._tasks = self._tasks, []
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            return
        if not self._tasks:
            self._tasks = [asyncio.create_task(self._connection(link)) for link in self.links]
            if self.timing.close_grace_s is not None:
                self._tasks.append(asyncio.create_task(self._close_timer(self.timing.close_grace_s)))
            return
        for link in self.links:  # open connections take up (or drop) the channels of the reader that came
            await self._sync(link)

    def _wanted(self, link: _Link) -> dict[Sub, str]:
        out: dict[Sub, str] = {}
        for s in link.symbols:
            if self.candle_reader is not None:
                out[("candles", self.candle_reader.key(s))] = s
            if self.tick_reader is not None:
                out[("ticker", names.to_bitfinex(s))] = s
        return out

    async def _sync(self, link: _Link) -> None:
        """Subscribe what the readers want and this open connection lacks; unsubscribe what nobody wants."""
        ws = link.ws
        if ws is None:
            return  # the connection subscribes everything wanted when it opens
        wanted = self._wanted(link)
        try:
            for sub in [s for s in link.asked if s not in wanted]:
                del link.asked[sub]
                for chan in [c for c, s in link.routes.items() if s == sub]:
                    del link.routes[chan]
                    await ws.send(json.dumps({"event": "unsubscribe", "chanId": chan}))
            for sub, symbol in wanted.items():
                if sub not in link.asked:
                    link.asked[sub] = symbol  # before the await: a concurrent sync must not send it twice
                    await ws.send(json.dumps(_subscribe(sub)))
        except ConnectionClosed:
            pass  # the connection task reconnects and subscribes again

    # -- one websocket, reopened for ever -------------------------------------------------------------
    async def _connection(self, link: _Link) -> None:
        attempt = 0
        while not self.idle:
            progress = _Progress()
            reason = "closed"
            try:
                async with connect(
                    self.ws_url, open_timeout=self.timing.open_timeout_s, max_size=2**24
                ) as ws:
                    self.connections += 1
                    await self._session(ws, link, progress)
            except _Reconnect as exc:
                reason = exc.reason
            except (OSError, TimeoutError, WebSocketException) as exc:
                reason = "dropped"
                log.warning("bitfinex: websocket lost (%s: %s)", type(exc).__name__, exc)
            except ExchangeError as exc:  # a refused subscription or a failed backfill: try again later
                reason = "error"
                log.warning("bitfinex: %s", exc)
            RECONNECTS.labels(self.exchange, reason).inc()
            attempt = 0 if progress.got_data else attempt + 1
            delay = min(self.timing.backoff_max_s, self.timing.backoff_initial_s * 2 ** min(attempt, 16))
            await asyncio.sleep(delay * random.uniform(0.5, 1.0))  # jitter: clients must not return in step

    async def _session(self, ws: ClientConnection, link: _Link, progress: _Progress) -> None:
        link.ws, link.asked, link.routes = ws, {}, {}
        try:
            await self._sync(link)
            deadline = self.timing.silence_s
            while True:
                try:
                    # asyncio.timeout, not wait_for: Python 3.11's wait_for can swallow a cancellation that
                    # arrives as a message does, and a busy ticker makes that likely (the feed could not stop)
                    async with asyncio.timeout(deadline):
                        raw = await ws.recv()
                except TimeoutError:
                    raise _Reconnect("silent") from None
                recv_ns = time.time_ns()
                msg = json.loads(raw)
                if isinstance(msg, dict):
                    deadline = await self._event(ws, link, msg, deadline)
                    continue
                if not isinstance(msg, list) or len(msg) < 2 or msg[1] == "hb":
                    continue
                sub = link.routes.get(msg[0])
                symbol = link.asked.get(sub) if sub is not None else None
                if sub is None or symbol is None:
                    continue  # a channel nobody wants any more, or not ours
                if sub[0] == "ticker":
                    ticks = self.tick_reader
                    tick = tick_of(self.exchange, symbol, msg[1], recv_ns) if ticks is not None else None
                    if ticks is not None and tick is not None:
                        ticks.put(tick)
                else:
                    reader = self.candle_reader
                    if reader is None or sub[1] != reader.key(symbol):
                        continue
                    await self._candles(reader, symbol, msg[1], recv_ns)
                progress.got_data = True
        finally:
            link.ws = None

    async def _event(self, ws: ClientConnection, link: _Link, msg: dict[str, Any], deadline: float) -> float:
        event = msg.get("event")
        if event == "subscribed":
            channel = msg.get("channel")
            sub: Sub = (str(channel), str(msg.get("key") if channel == "candles" else msg.get("symbol")))
            if sub in link.asked:
                link.routes[msg["chanId"]] = sub
            else:  # the reader that asked for it left meanwhile
                with contextlib.suppress(ConnectionClosed):
                    await ws.send(json.dumps({"event": "unsubscribe", "chanId": msg["chanId"]}))
        elif event == "error":
            if msg.get("code") not in (ERR_ALREADY_SUBSCRIBED, ERR_UNSUBSCRIBE_FAILED):
                raise ExchangeError(
                    f"Bitfinex refused a subscription: {msg.get('msg')} (code {msg.get('code')})"
                )
        elif event == "info":
            code = msg.get("code")
            if code == INFO_RESTART:
                log.info("bitfinex: server restarting (20051), reconnecting")
                raise _Reconnect("restart")
            if code == INFO_MAINTENANCE_START:
                log.info("bitfinex: maintenance started (20060), waiting for 20061")
                return self.timing.maintenance_s
            if code == INFO_MAINTENANCE_END:
                log.info("bitfinex: maintenance ended (20061), resubscribing")
                raise _Reconnect("maintenance end")
            platform = msg.get("platform")
            if isinstance(platform, dict) and platform.get("status") == 0:
                raise _Reconnect("platform maintenance")
        return deadline

    # -- candles --------------------------------------------------------------------------------------
    async def _candles(self, reader: _Candles, symbol: str, payload: list[Any], recv_ns: int) -> None:
        series = reader.series[symbol]
        if payload and isinstance(payload[0], list):  # a snapshot, newest first: all but the newest closed
            rows = sorted(row_of(c) for c in payload)
            series.forget_open()
            for row in rows[:-1]:
                self._emit(reader, symbol, await series.update(row, closed=True), recv_ns)
            self._emit(reader, symbol, await series.update(rows[-1]), recv_ns)
        elif payload:
            self._emit(reader, symbol, await series.update(row_of(payload)), recv_ns)

    def _emit(self, reader: _Candles, symbol: str, rows: list[Row], recv_ns: int) -> None:
        for row in rows:
            candle = closed_candle(self.exchange, symbol, reader.tf, row, recv_ns, uuid.uuid4().hex[:16])
            reader.queue.put_nowait(candle)  # unbounded: every closed candle is kept for its reader

    async def _close_timer(self, grace_s: float) -> None:
        while True:
            await asyncio.sleep(min(1.0, max(grace_s / 2, 0.05)))
            reader = self.candle_reader
            if reader is None:
                continue
            now_ms = int(self.clock() * 1000)
            for symbol, series in reader.series.items():
                with contextlib.suppress(ExchangeError):  # a failed backfill is retried on the next tick
                    rows = await series.expire(now_ms, int(grace_s * 1000))
                    self._emit(reader, symbol, rows, time.time_ns())


def _subscribe(sub: Sub) -> dict[str, str]:
    channel, name = sub
    if channel == "candles":
        return {"event": "subscribe", "channel": "candles", "key": name}
    return {"event": "subscribe", "channel": "ticker", "symbol": name}
