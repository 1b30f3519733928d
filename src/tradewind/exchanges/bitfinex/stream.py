"""Bitfinex public websocket v2 candles, kept alive: reconnect with backoff, resubscribe, backfill gaps.

Protocol (docs.bitfinex.com, "Public Channels: Candles"): send
``{"event": "subscribe", "channel": "candles", "key": "trade:1m:tBTCUSD"}``; the server answers
``{"event": "subscribed", "chanId": N, "key": ...}``, then ``[N, [[MTS, O, C, H, L, V], ...]]`` (a snapshot,
newest first), then ``[N, [MTS, O, C, H, L, V]]`` for every change of a candle and ``[N, "hb"]`` every
15 s. ``{"event": "info", "code": 20051}`` asks clients to reconnect; 20060 / 20061 bracket a
maintenance (pause, then resubscribe).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

from prometheus_client import Counter
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import WebSocketException

from tradewind.bus.messages import Candle
from tradewind.exchanges.base import ExchangeError
from tradewind.exchanges.bitfinex import symbols as names
from tradewind.exchanges.bitfinex.rest import row_of
from tradewind.exchanges.series import CandleSeries, Row

log = logging.getLogger(__name__)

RECONNECTS = Counter(
    "tradewind_exchange_reconnects_total", "Market-data reconnections by reason", ["exchange", "reason"]
)

INFO_RESTART = 20051  # "Stop/Restart Websocket Server (please reconnect)"
INFO_MAINTENANCE_START = 20060
INFO_MAINTENANCE_END = 20061  # "resubscribe to all channels"
ERR_ALREADY_SUBSCRIBED = 10301
CHANNELS_PER_CONNECTION = 25  # Bitfinex caps public channels per connection


@dataclass(frozen=True)
class StreamTiming:
    """Deadlines of the candle stream; tests shrink them to keep fault scenarios fast."""

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
    got_data = False  # a connection that delivered candles resets the backoff


Backfill = Callable[[str, int, int], Awaitable[list[Row]]]  # (platform symbol, start, end) -> closed rows


class CandleStream:
    """Closed candles of ``symbols`` (platform names) on one Bitfinex timeframe, each exactly once."""

    def __init__(
        self,
        ws_url: str,
        symbols: list[str],
        tf: str,
        tf_ms: int,
        backfill: Backfill,
        timing: StreamTiming,
        *,
        exchange: str = "bitfinex",
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.ws_url = ws_url
        self.symbols = symbols
        self.tf = tf
        self.tf_key = names.timeframe(tf)
        self.timing = timing
        self.exchange = exchange
        self.clock = clock
        self.series = {s: CandleSeries(tf_ms, self._bind(backfill, s)) for s in symbols}
        self.queue: asyncio.Queue[Candle] = asyncio.Queue()
        self.connections = 0  # successful websocket opens, for tests and logs

    @staticmethod
    def _bind(backfill: Backfill, symbol: str) -> Callable[[int, int], Awaitable[list[Row]]]:
        async def fetch(start: int, end: int) -> list[Row]:
            return await backfill(symbol, start, end)

        return fetch

    async def __aiter__(self) -> AsyncIterator[Candle]:
        tasks = [
            asyncio.create_task(self._connection(self.symbols[i : i + CHANNELS_PER_CONNECTION]))
            for i in range(0, len(self.symbols), CHANNELS_PER_CONNECTION)
        ]
        if self.timing.close_grace_s is not None:
            tasks.append(asyncio.create_task(self._close_timer(self.timing.close_grace_s)))
        try:
            while True:
                yield await self.queue.get()
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    # -- one websocket, reopened for ever -------------------------------------------------------------
    async def _connection(self, symbols: list[str]) -> None:
        attempt = 0
        while True:
            progress = _Progress()
            reason = "closed"
            try:
                async with connect(
                    self.ws_url, open_timeout=self.timing.open_timeout_s, max_size=2**24
                ) as ws:
                    self.connections += 1
                    await self._session(ws, symbols, progress)
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

    async def _session(self, ws: ClientConnection, symbols: list[str], progress: _Progress) -> None:
        by_key = {f"trade:{self.tf_key}:{names.to_bitfinex(s)}": s for s in symbols}
        for key in by_key:
            await ws.send(json.dumps({"event": "subscribe", "channel": "candles", "key": key}))
        channels: dict[int, str] = {}
        deadline = self.timing.silence_s
        while True:
            try:
                raw = await asyncio.wait_for(ws.recv(), timeout=deadline)
            except TimeoutError:
                raise _Reconnect("silent") from None
            recv_ns = time.time_ns()
            msg = json.loads(raw)
            if isinstance(msg, dict):
                deadline = self._event(msg, by_key, channels, deadline)
                continue
            if not isinstance(msg, list) or len(msg) < 2 or msg[1] == "hb":
                continue
            symbol = channels.get(msg[0])
            if symbol is None:
                continue
            await self._candles(symbol, msg[1], recv_ns)
            progress.got_data = True

    def _event(self, msg: dict, by_key: dict[str, str], channels: dict[int, str], deadline: float) -> float:
        event = msg.get("event")
        if event == "subscribed" and msg.get("key") in by_key:
            channels[msg["chanId"]] = by_key[msg["key"]]
        elif event == "error":
            if msg.get("code") != ERR_ALREADY_SUBSCRIBED:
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

    async def _candles(self, symbol: str, payload: list, recv_ns: int) -> None:
        series = self.series[symbol]
        if payload and isinstance(
            payload[0], list
        ):  # a snapshot, newest first: all but the newest are closed
            rows = sorted(row_of(c) for c in payload)
            series.forget_open()
            for row in rows[:-1]:
                await self._emit(symbol, await series.update(row, closed=True), recv_ns)
            await self._emit(symbol, await series.update(rows[-1]), recv_ns)
        elif payload:
            await self._emit(symbol, await series.update(row_of(payload)), recv_ns)

    async def _emit(self, symbol: str, rows: list[Row], recv_ns: int) -> None:
        for t, o, h, lo, c, v in rows:
            candle = Candle(
                exchange=self.exchange, symbol=symbol, tf=self.tf, time=t, open=o, high=h, low=lo, close=c,
                volume=v, closed=True, trace_id=uuid.uuid4().hex[:16], recv_ns=recv_ns,
            )  # fmt: skip
            await self.queue.put(candle)

    async def _close_timer(self, grace_s: float) -> None:
        while True:
            await asyncio.sleep(min(1.0, max(grace_s / 2, 0.05)))
            now_ms = int(self.clock() * 1000)
            for symbol, series in self.series.items():
                with contextlib.suppress(ExchangeError):  # a failed backfill is retried on the next tick
                    await self._emit(symbol, await series.expire(now_ms, int(grace_s * 1000)), time.time_ns())
