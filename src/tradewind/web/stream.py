"""`/api/stream`: a WebSocket carrying the user's own events and the public candles, as JSON.

The socket subscribes to exactly two subjects: ``subjects.user_events(<this user>)`` and the public
candles. Another user's events are on another subject, so no filter can forget to drop them.

Every frame is a ``StreamEvent`` (tagged by ``type``): the user's events as the bus carries them
(bus.messages.UserEvent) and this module's candle, tick, error and subscribed frames. web.openapi puts
them in the OpenAPI document, from which the frontend's types are generated.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Annotated, Any, TypeVar
from urllib.parse import urlsplit

import msgspec
from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from nats.aio.msg import Msg
from pydantic import BaseModel, BeforeValidator, Field, ValidationError, field_validator
from sqlalchemy import select

from tradewind.bus import messages as m
from tradewind.bus import subjects
from tradewind.bus.connection import unsubscribe_all
from tradewind.storage.models import Market
from tradewind.storage.models import Session as LoginSession
from tradewind.storage.types import utcnow
from tradewind.web.deps import authenticate, session_token
from tradewind.web.schemas import MAX_ID, _check_tf
from tradewind.web.security import token_hash

router = APIRouter()
log = logging.getLogger(__name__)
MAX_QUEUE = 1000
MAX_FILTERS = 100
TICKS_PER_S = 4  # a browser draws the book; the quoting strategies see every tick in core
UNAUTHORIZED = 4401
FORBIDDEN = 4403
T = TypeVar("T")


class CandleEvent(m.LiveEvent, m.Bar, frozen=True, kw_only=True, tag="candle"):
    """A candle of a market, forming or closed (``market_id`` null: a market the app does not list)."""

    market_id: int | None
    exchange: str
    symbol: str
    tf: str
    closed: bool


class TickEvent(m.LiveEvent, frozen=True, kw_only=True, tag="tick"):
    """The top of a market's book, for a market the socket subscribed to by id (at most ``TICKS_PER_S`` a
    second each); a side the venue left empty is 0, ``time`` is the venue's (epoch ms, 0: none given)."""

    market_id: int | None
    exchange: str
    symbol: str
    bid: float
    ask: float
    bid_size: float
    ask_size: float
    last: float
    time: int


class ErrorEvent(m.LiveEvent, frozen=True, kw_only=True, tag="error"):
    """What is wrong with the client's last message, or why the socket cannot carry live updates."""

    detail: str


class SubscribedEvent(m.LiveEvent, frozen=True, kw_only=True, tag="subscribed"):
    """The markets whose candles (and ticks) the socket now receives; null: every market's candles."""

    markets: list[int] | None


StreamEvent = m.UserEvent | CandleEvent | TickEvent | ErrorEvent | SubscribedEvent
_json = msgspec.json.Encoder()


def _text(event: StreamEvent) -> str:
    return _json.encode(event).decode()


async def _send(ws: WebSocket, event: StreamEvent) -> None:
    await ws.send_text(_text(event))


_candle = msgspec.msgpack.Decoder(m.Candle).decode
_tick = msgspec.msgpack.Decoder(m.Tick).decode


def _read(msg: Msg, decode: Callable[[bytes], T], what: str) -> T | None:
    try:
        return decode(msg.data)
    except Exception:
        log.warning("stream: undecodable %s on %s", what, msg.subject)
        return None


Key = tuple[str, str]  # (exchange, symbol)
CandleListener = Callable[[m.Candle, str], None]  # the candle, and its CandleEvent as sent
TickListener = Callable[[Key, str], None]  # the market, and its TickEvent as sent


class LiveFeed:
    """The public candles and ticks, heard once per web process and handed to every open socket.

    Each socket used to subscribe to them itself: NATS then sent every tick once per socket, and this
    process decoded each copy. At 500 sockets and the sim at 60x (60 ticks a second) that was 30,000
    messages a second on one event loop, which fell behind, held its database transactions open meanwhile and
    was cut off by NATS as a slow consumer. Here each message is decoded once, and its frame encoded once.

    Ticks: at most ``TICKS_PER_S`` a second per market for every socket together (the same ones to all)."""

    def __init__(self, nc: Any, sf: Any) -> None:
        self.nc, self.sf = nc, sf
        self.market_ids: dict[Key, int] = {}  # known markets (a market not listed yet is looked up again)
        self._candles: set[CandleListener] = set()
        self._ticks: set[TickListener] = set()
        self._subs: list[Any] = []
        self._lock = asyncio.Lock()
        self._last_tick: dict[str, float] = {}  # by subject

    async def join(self, on_candle: CandleListener, on_tick: TickListener) -> None:
        async with self._lock:
            if not self._subs:
                self._subs = [
                    await self.nc.subscribe(subjects.CORE_CANDLES_ALL, cb=self._on_candle),
                    await self.nc.subscribe(subjects.MD_TICKS_ALL, cb=self._on_tick),
                ]
                await self.nc.flush()  # a socket answered "subscribed" hears the next candle
            self._candles.add(on_candle)
            self._ticks.add(on_tick)

    async def leave(self, on_candle: CandleListener, on_tick: TickListener) -> None:
        async with self._lock:
            self._candles.discard(on_candle)
            self._ticks.discard(on_tick)
            if not self._candles and not self._ticks and self._subs:
                subs, self._subs = self._subs, []
                await unsubscribe_all(subs)

    async def _market_id(self, key: Key) -> int | None:
        if key not in self.market_ids:
            async with self.sf() as s:
                found = (
                    await s.execute(
                        select(Market.id).where(Market.exchange == key[0], Market.symbol == key[1])
                    )
                ).scalar_one_or_none()
            if found is None:
                return None
            self.market_ids[key] = found
        return self.market_ids[key]

    async def _on_candle(self, msg: Msg) -> None:
        c = _read(msg, _candle, "candle")
        if c is None or not self._candles:
            return
        text = _text(
            CandleEvent(
                market_id=await self._market_id((c.exchange, c.symbol)),
                exchange=c.exchange,
                symbol=c.symbol,
                tf=c.tf,
                time=c.time,
                open=c.open,
                high=c.high,
                low=c.low,
                close=c.close,
                volume=c.volume,
                closed=c.closed,
            )
        )
        for listener in list(self._candles):
            listener(c, text)

    async def _on_tick(self, msg: Msg) -> None:
        if not self._ticks:
            return
        # the subject is md.tick.<exchange>.<symbol>: a tick not sent is not decoded either
        now = time.monotonic()
        if now - self._last_tick.get(msg.subject, 0.0) < 1 / TICKS_PER_S:
            return
        t = _read(msg, _tick, "tick")
        if t is None:
            return
        self._last_tick[msg.subject] = now
        key = (t.exchange, t.symbol)
        text = _text(
            TickEvent(
                market_id=self.market_ids.get(key),
                exchange=t.exchange,
                symbol=t.symbol,
                bid=t.bid,
                ask=t.ask,
                bid_size=t.bid_size,
                ask_size=t.ask_size,
                last=t.last,
                time=t.time,
            )
        )
        for listener in list(self._ticks):
            listener(key, text)


class SessionWatch:
    """Ends the sockets whose session has ended (a logout, an expiry), for every socket of this process with
    one query each ``interval()`` seconds (how soon a logout also closes the user's open sockets).

    Each socket used to look its own session up every 15-30 s: at 500 sockets that was 20-30 queries a second,
    each with its own database session, on the event loop and the connection pool the requests need."""

    BATCH = 500  # token hashes per query (SQLite's limit on parameters is far above)

    def __init__(self, sf: Any, interval: Callable[[], float]) -> None:
        self.sf, self.interval = sf, interval
        self._sockets: dict[str, set[Callable[[], None]]] = {}  # token hash -> how to end each socket on it
        self._task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def watch(self, token: str, ended: Callable[[], None]) -> Callable[[], None]:
        """Call ``ended`` once the session of ``token`` has ended; returns what stops watching."""
        key = token_hash(token)
        self._sockets.setdefault(key, set()).add(ended)
        loop = asyncio.get_running_loop()
        if self._task is None or self._task.done() or self._loop is not loop:
            self._loop, self._task = loop, loop.create_task(self._run(), name="stream-sessions")

        def unwatch() -> None:
            waiting = self._sockets.get(key)
            if waiting is not None:
                waiting.discard(ended)
                if not waiting:
                    del self._sockets[key]

        return unwatch

    async def _run(self) -> None:
        while self._sockets:
            await asyncio.sleep(self.interval())
            try:
                await self.check()
            except Exception:  # the database busy or gone a moment: the next round looks again
                log.warning("stream: could not check the sockets' sessions", exc_info=True)

    async def check(self) -> None:
        keys = list(self._sockets)
        live: set[str] = set()
        now = utcnow()
        for i in range(0, len(keys), self.BATCH):
            async with self.sf() as s:
                q = select(LoginSession.token_hash).where(
                    LoginSession.token_hash.in_(keys[i : i + self.BATCH]),
                    LoginSession.revoked.is_(False),
                    LoginSession.expires_at >= now,
                )
                live.update((await s.execute(q)).scalars())
        for key in keys:
            if key not in live:
                for ended in list(self._sockets.pop(key, ())):
                    ended()


def session_watch(app: Any, sf: Any, interval: Callable[[], float]) -> SessionWatch:
    watch: SessionWatch | None = getattr(app.state, "session_watch", None)
    if watch is None:
        watch = app.state.session_watch = SessionWatch(sf, interval)
    return watch


def live_feed(app: Any, nc: Any, sf: Any) -> LiveFeed:
    """The app's feed (made with the first socket: an app without sockets subscribes to nothing)."""
    feed: LiveFeed | None = getattr(app.state, "live_feed", None)
    if feed is None or feed.nc is not nc:
        feed = app.state.live_feed = LiveFeed(nc, sf)
    return feed


def _cross_origin(ws: WebSocket) -> bool:
    """A browser on another origin opening a socket that our cookie would authenticate (CSWSH)."""
    origin = ws.headers.get("origin")
    if not origin:
        return False  # not a browser
    return urlsplit(origin).netloc.lower() != ws.headers.get("host", "").lower()


_MarketId = Annotated[int, Field(ge=1, le=MAX_ID, strict=True)]


class _Subscription(BaseModel):
    market_id: _MarketId
    timeframe: str | None = None

    _tf = field_validator("timeframe")(_check_tf)


def _one_or_many(value: Any) -> Any:
    return [value] if isinstance(value, dict) else value


class _Filters(BaseModel):
    """``{"markets": [ids]}`` or ``{"subscribe": [{"market_id": 1, "timeframe": "1m"}, ...]}``; [] = all."""

    markets: list[_MarketId] | None = None
    subscribe: Annotated[list[_Subscription] | None, BeforeValidator(_one_or_many)] = None


USAGE = 'send {"subscribe": [{"market_id": 1, "timeframe": "1m"}]}'


def _parse_filters(text: str) -> list[tuple[int, str | None]] | str:
    """The (market id, timeframe or None) pairs a client asked for, or what is wrong with its message.

    Ids are validated as strictly as in request bodies: a non-finite, fractional, huge or quoted number is
    an answer to the client, never an exception that would end the socket."""
    try:
        req = _Filters.model_validate_json(text)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        return f"{where + ': ' if where else ''}{first['msg'].removeprefix('Value error, ')}; {USAGE}"
    if req.markets is not None:
        return [(i, None) for i in req.markets[:MAX_FILTERS]]
    if req.subscribe is None:
        return USAGE
    return [(sub.market_id, sub.timeframe) for sub in req.subscribe][:MAX_FILTERS]


@router.websocket("/api/stream")
async def stream(ws: WebSocket) -> None:
    """Authenticated by the session cookie or a ``token`` query parameter.

    Sends StreamEvents: ``{"type": "candle", ...}``, ``{"type": "tick", ...}`` for the markets it
    subscribed to by id, and the user's own events (``"evaluation"``, ``"order"``, ``"fill"``,
    ``"paused"``, ...). A client may send
    ``{"subscribe": [{"market_id": 1, "timeframe": "1m"}]}`` (timeframe optional) or ``{"markets": [1, 2]}``
    to receive only those candles, and ``{"subscribe": []}`` for all of them again.
    """
    st = ws.app.state.tw
    token = ws.query_params.get("token")
    async with st.sf() as s:
        # a WebSocket is an HTTPConnection: authenticate reads only its headers, cookies and the token
        auth = await authenticate(ws, s, token=token)  # type: ignore[arg-type]
    if auth is None:
        await ws.close(code=UNAUTHORIZED, reason="log in first")
        return
    if auth.via_cookie and _cross_origin(ws):
        await ws.close(code=FORBIDDEN, reason="cross-origin socket refused")
        return
    await ws.accept()
    if st.nc is None:
        await _send(ws, ErrorEvent(detail="live updates need the message bus"))
        await ws.close()
        return
    queue: asyncio.Queue[str] = asyncio.Queue(MAX_QUEUE)  # frames, encoded
    wanted: dict[Key, set[str] | None] | None = None  # None: every market
    feed = live_feed(ws.app, st.nc, st.sf)

    def put(text: str) -> None:
        if queue.full():  # a slow browser loses old updates, never blocks the bus
            with contextlib.suppress(asyncio.QueueEmpty):
                queue.get_nowait()
        queue.put_nowait(text)

    async def on_user(msg: Msg) -> None:
        ev = _read(msg, m.decode_user_event, "user event")
        if ev is not None:
            put(_text(ev))

    def on_candle(c: m.Candle, text: str) -> None:
        if wanted is not None:
            key = (c.exchange, c.symbol)
            if key not in wanted:
                return
            tfs = wanted[key]
            if tfs is not None and c.tf not in tfs:
                return
        put(text)

    def on_tick(key: Key, text: str) -> None:
        # only markets asked for by name: every tick of every market is a flood
        if wanted is not None and key in wanted:
            put(text)

    subs = [await st.nc.subscribe(subjects.user_events(auth.user.id), cb=on_user)]
    await st.nc.flush()  # the server has this socket's subscription before it can answer "subscribed"
    await feed.join(on_candle, on_tick)

    async def sender() -> None:
        while True:
            await ws.send_text(await queue.get())

    async def receiver() -> None:
        nonlocal wanted
        while True:
            message = await ws.receive()
            if message["type"] == "websocket.disconnect":
                raise WebSocketDisconnect(message.get("code", 1000), message.get("reason"))
            text = message.get("text")
            filters = (
                f"send JSON as a text message; {USAGE}" if text is None else _parse_filters(text[:10_000])
            )
            if isinstance(filters, str):
                await _send(ws, ErrorEvent(detail=filters))
                continue
            if not filters:
                wanted = None
                await _send(ws, SubscribedEvent(markets=None))  # None: every market
                continue
            async with st.sf() as s:
                rows = {
                    r.id: r
                    for r in (
                        await s.execute(select(Market).where(Market.id.in_([i for i, _ in filters])))
                    ).scalars()
                }
            new: dict[tuple[str, str], set[str] | None] = {}
            for market_id, tf in filters:
                r = rows.get(market_id)
                if r is None:
                    continue
                key = (r.exchange, r.symbol)
                feed.market_ids[key] = r.id
                tfs = new.setdefault(key, set())
                if tf is None or tfs is None:
                    new[key] = None  # every timeframe
                else:
                    tfs.add(tf)
            wanted = new
            await _send(ws, SubscribedEvent(markets=sorted({rows[i].id for i, _ in filters if i in rows})))

    session_ended = asyncio.Event()
    used, _ = session_token(ws, token)  # type: ignore[arg-type]  # (as authenticate above)
    assert used is not None  # (authenticated with it)
    unwatch = session_watch(ws.app, st.sf, lambda: st.stream_recheck_s).watch(used, session_ended.set)

    async def still_logged_in() -> None:
        await session_ended.wait()
        await ws.close(code=UNAUTHORIZED, reason="the session has ended")

    tasks = [asyncio.create_task(t()) for t in (sender, receiver, still_logged_in)]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    except WebSocketDisconnect:
        pass
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        unwatch()
        await feed.leave(on_candle, on_tick)
        await unsubscribe_all(subs)
