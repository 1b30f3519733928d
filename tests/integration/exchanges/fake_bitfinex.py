"""A local Bitfinex: public websocket v2 candles and tickers and REST v2 (public candles, authenticated
wallets and orders), following Bitfinex's documented formats, with faults a test can script.

The market is a *tape*: every true 1m candle becomes a few growing updates (the open candle as trades
arrive), played on the websocket one after another. The tape position is shared across connections, so
the market moves on while a client is away, as it does on the real exchange.

Orders (exchange wallet): EXCHANGE MARKET executes at once at the last price; EXCHANGE LIMIT (with
``tif``, or with the OCO flag and ``price_oco_stop``, which adds a linked EXCHANGE STOP leg), EXCHANGE
STOP and EXCHANGE TRAILING STOP (``price_trailing``, an absolute distance) rest, reserving balance, until
``trade_through(price)`` (or the tape as it plays) trades the market through them. A stop that fires
becomes an EXCHANGE MARKET order (TYPE_PREV keeps what it was); when one leg of an OCO pair executes the
other is canceled. A malformed order is refused as Bitfinex does, with an error array.

The book's top (bid, ask and their sizes) follows the last price with a spread of ``tick_spread`` (a
fraction) until a test pins it with ``send_ticker``, which also sends a ticker update to every client
subscribed to the ticker channel (each gets the current ticker as its snapshot on subscribing);
``ticks_per_update`` sends that many ticker updates with every tape update (a busy market). An EXCHANGE
LIMIT with the POSTONLY flag that would take liquidity (a buy at or above the ask, a sell at or below the
bid) is canceled at once with status "POSTONLY CANCELED": the submit notification says SUCCESS and carries
the canceled order, as Bitfinex's does; with ``postonly_cancel_late`` it carries the order ACTIVE and the
cancellation shows in the next lookup. ``connections``, ``subscriptions`` (candle keys) and
``ticker_subscriptions`` (symbols) count what clients asked for; ``ticks_sent`` the ticker messages sent;
``most_resting`` the most EXCHANGE LIMIT orders that rested at once on each side of the book.

Script actions, keyed by tape position (the action runs before that update is sent):
  ("drop", n)         close the websocket abruptly, then let the market move n updates
  ("silence", n)      stop sending anything (heartbeats too) on this connection; the market moves n updates
  ("restart", 0)      send info 20051 (server restarting: reconnect) and close
  ("maintenance", n)  send info 20060, stay silent while the market moves n updates, then send 20061
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from aiohttp import web
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.protocol import State

Row = tuple[int, float, float, float, float, float]

FLAG_HIDDEN, FLAG_REDUCE_ONLY, FLAG_POST_ONLY, FLAG_OCO = 64, 1024, 4096, 16384
RESTING = ("EXCHANGE LIMIT", "EXCHANGE STOP", "EXCHANGE TRAILING STOP")
SUBMIT_FIELDS = {
    "type",
    "symbol",
    "amount",
    "price",
    "cid",
    "gid",
    "flags",
    "tif",
    "price_trailing",
    "price_aux_limit",
    "price_oco_stop",
    "lev",
    "meta",
}


def tape_of(rows: Iterable[Row], updates_per_candle: int = 3) -> list[Row]:
    """Each candle as ``updates_per_candle`` growing states ending in the true candle."""
    tape: list[Row] = []
    for t, o, h, lo, c, v in rows:
        for j in range(1, updates_per_candle):
            cj = o + (c - o) * j / updates_per_candle
            tape.append((t, o, max(o, cj), min(o, cj), cj, v * j / updates_per_candle))
        tape.append((t, o, h, lo, c, v))
    return tape


def wire(row: Row) -> list[Any]:
    """Our row as Bitfinex's [MTS, OPEN, CLOSE, HIGH, LOW, VOLUME]."""
    t, o, h, lo, c, v = row
    return [t, o, c, h, lo, v]


@dataclass
class Order:
    id: int
    cid: int
    cid_date: str
    symbol: str
    amount_orig: Decimal
    amount: Decimal  # remaining
    type: str
    status: str
    price_avg: float
    created: int
    fee: Decimal = Decimal("0")
    price: Decimal | None = None  # the limit, or a stop's trigger
    flags: int = 0
    type_prev: str | None = None
    tif: int | None = None  # ms: canceled by Bitfinex then
    price_trailing: Decimal | None = None  # a trailing stop's distance
    placed_id: int | None = None  # an OCO stop leg: the id of the limit order it belongs to
    peak: Decimal | None = None  # a trailing stop: the best price since it was placed
    updated: int = 0

    @property
    def open(self) -> bool:
        return self.status == "ACTIVE" or self.status.startswith("PARTIALLY FILLED")

    def array(self) -> list[Any]:
        arr: list[Any] = [None] * 32
        arr[0], arr[2], arr[3], arr[4] = self.id, self.cid, self.symbol, self.created
        arr[5] = self.updated or self.created
        arr[6], arr[7], arr[8], arr[9], arr[10] = (
            float(self.amount),
            float(self.amount_orig),
            self.type,
            self.type_prev,
            self.tif,
        )
        arr[12], arr[13], arr[17] = self.flags, self.status, self.price_avg
        arr[16] = float(self.price) if self.price is not None else self.price_avg
        arr[18] = float(self.price_trailing) if self.price_trailing is not None else None
        arr[25] = self.placed_id
        return arr


@dataclass
class _Conn:
    """One client websocket: its channels (chanId -> candle key / ticker symbol)."""

    ws: ServerConnection
    candles: dict[int, str] = field(default_factory=dict)
    tickers: dict[int, str] = field(default_factory=dict)
    quiet: bool = False  # nothing is sent, heartbeats included (a silent link, a maintenance)


@dataclass
class FakeBitfinex:
    rows: list[Row]
    symbol: str = "tBTCUSD"
    start_at: int = 0  # tape position at start: the first snapshot shows the market up to here
    snapshot_size: int = 240
    updates_per_candle: int = 3
    step_s: float = 0.002
    hb_s: float = 0.05
    script: dict[int, tuple[str, int]] = field(default_factory=dict)
    keys: dict[str, str] = field(default_factory=lambda: {"KEY": "SECRET"})
    wallets: dict[str, Decimal] = field(
        default_factory=lambda: {"USD": Decimal("10000"), "BTC": Decimal("1")}
    )
    submit_delay_s: float = 0.0  # answer order/submit this late (after placing the order)
    fee_rate: Decimal = Decimal("0.002")
    oco_leg_cid: bool = False  # the stop leg of an OCO pair carries the limit's cid too (else null)
    match_tape: bool = True  # resting orders execute against the tape's prices as it plays
    tick_spread: float = 0.0002  # the book's spread around the last price while no test pinned it
    ticks_per_update: int = 0  # ticker updates sent with every tape update
    postonly_cancel_late: bool = False  # a refused post-only order is answered ACTIVE, canceled just after

    def clock(self) -> float:  # replaced by tests that move time on (a tif passing)
        return time.time()

    def __post_init__(self) -> None:
        self.tape = tape_of(self.rows, self.updates_per_candle)
        self.cursor = self.start_at
        self.connections = 0
        self.subscriptions: list[str] = []
        self.ticker_subscriptions: list[str] = []
        self.ticks_sent = 0
        self.book: tuple[float, float, float, float] | None = None  # pinned (bid, bid size, ask, ask size)
        self.ticker_last: float | None = None  # pinned last trade price of the ticker
        self._conns: list[_Conn] = []
        self._last_chan = 17
        self.orders: list[Order] = []
        self.most_resting = {"buy": 0, "sell": 0}  # EXCHANGE LIMIT orders open at once on one side, at most
        self.calls: list[tuple[str, Any]] = []
        self.rejected_auth: list[str] = []
        self.faults: list[str] = []  # what the client did wrong, for assertions
        self.nonces: dict[str, int] = {}
        self.last_trade: Decimal | None = None  # set by trade_through: the market's price from then on
        self._ws_server: Any = None
        self._runner: web.AppRunner | None = None

    # -- market state ---------------------------------------------------------------------------------
    def state(self) -> dict[int, Row]:
        """Each minute's candle as the market knows it now (the current one partial)."""
        out: dict[int, Row] = {}
        for row in self.tape[: self.cursor]:
            out[row[0]] = row
        return out

    def last_price(self) -> float:
        if self.last_trade is not None:
            return float(self.last_trade)
        return self.tape[max(self.cursor - 1, 0)][4]

    def top(self) -> tuple[float, float, float, float]:
        """The book's top: (bid, bid size, ask, ask size)."""
        if self.book is not None:
            return self.book
        last = self.last_price()
        return (last * (1 - self.tick_spread / 2), 1.0, last * (1 + self.tick_spread / 2), 1.0)

    def ticker(self) -> list[float]:
        """The ticker as Bitfinex sends it: [BID, BID_SIZE, ASK, ASK_SIZE, DAILY_CHANGE,
        DAILY_CHANGE_RELATIVE, LAST_PRICE, VOLUME, HIGH, LOW] (the day: the market's last 1440 minutes)."""
        bid, bid_size, ask, ask_size = self.top()
        last = self.ticker_last if self.ticker_last is not None else self.last_price()
        day = sorted(self.state().values())[-1440:] or [self.tape[0]]
        first = day[0][1]
        change = last - first
        return [
            bid,
            bid_size,
            ask,
            ask_size,
            change,
            change / first if first else 0.0,
            last,
            sum(r[5] for r in day),
            max(r[2] for r in day),
            min(r[3] for r in day),
        ]

    async def send_ticker(
        self, bid: float, ask: float, bid_size: float = 1.0, ask_size: float = 1.0, last: float | None = None
    ) -> None:
        """Pin the book's top (and the ticker's last price) and send a ticker update to every subscriber."""
        self.book = (bid, bid_size, ask, ask_size)
        if last is not None:
            self.ticker_last = last
        for conn in list(self._conns):
            if not conn.quiet:
                with contextlib.suppress(ConnectionClosed):
                    await self._send_ticks(conn)

    def takes_liquidity(self, amount: Decimal, price: Decimal) -> bool:
        """Whether a limit order at ``price`` would trade against the book at once."""
        bid, _, ask, _ = self.top()
        return price >= Decimal(repr(ask)) if amount > 0 else price <= Decimal(repr(bid))

    def trade_through(self, price: float | Decimal | str) -> list[Order]:
        """The market trades at ``price``: resting orders it reaches execute (a sell limit at or below
        it, at its limit; a sell stop at or above it, and a sell trailing stop whose distance below the
        highest price since placement it fell through, at ``price``; buys mirrored). Returns them."""
        self.last_trade = Decimal(str(price))
        return self._match(self.last_trade)

    def _match(self, p: Decimal) -> list[Order]:
        self._expire()
        fired: list[Order] = []
        for o in list(self.orders):
            if not o.open or o.type not in RESTING:
                continue
            sell = o.amount < 0
            if o.type == "EXCHANGE LIMIT":
                assert o.price is not None
                hit, at = (p >= o.price if sell else p <= o.price), o.price
            elif o.type == "EXCHANGE STOP":
                assert o.price is not None
                hit, at = (p <= o.price if sell else p >= o.price), p
            else:
                assert o.price_trailing is not None and o.peak is not None
                o.peak = max(o.peak, p) if sell else min(o.peak, p)
                hit = p <= o.peak - o.price_trailing if sell else p >= o.peak + o.price_trailing
                at = p
            if hit and o.open:
                self._execute(o, at)
                fired.append(o)
        return fired

    def _execute(self, o: Order, price: Decimal) -> None:
        amount = o.amount
        base, quote = self.symbol[1:4], self.symbol[4:]
        fee = abs(amount) * price * self.fee_rate
        self.wallets[base] = self.wallets.get(base, Decimal(0)) + amount
        self.wallets[quote] = self.wallets.get(quote, Decimal(0)) - amount * price - fee
        if o.type in ("EXCHANGE STOP", "EXCHANGE TRAILING STOP"):  # triggered: a market order now
            o.type_prev, o.type = o.type, "EXCHANGE MARKET"
        o.amount, o.price_avg, o.fee = Decimal(0), float(price), o.fee + fee
        o.status = f"EXECUTED @ {price}({amount})"
        o.updated = int(self.clock() * 1000)
        for other in self._pair(o):  # the other leg of an OCO pair
            if other is not o and other.open:
                other.status, other.updated = "CANCELED", o.updated

    def _expire(self) -> None:
        now = int(self.clock() * 1000)
        for o in self.orders:
            if o.open and o.tif is not None and o.tif <= now:
                o.status, o.updated = "CANCELED", now

    def _pair(self, o: Order) -> list[Order]:
        """The order and, for an OCO pair, its other leg."""
        return [x for x in self.orders if x is o or x.placed_id == o.id or (o.placed_id == x.id)]

    def resting_limits(self, side: str) -> list[Order]:
        """The EXCHANGE LIMIT orders open on one side of the book ("buy" or "sell")."""
        return [
            o
            for o in self.orders
            if o.open and o.type == "EXCHANGE LIMIT" and (o.amount > 0) == (side == "buy")
        ]

    def available(self, currency: str) -> Decimal:
        """The balance less what open orders reserve (an OCO pair reserves once, for its limit)."""
        base, quote = self.symbol[1:4], self.symbol[4:]
        held = Decimal(0)
        for o in self.orders:
            if not o.open or o.placed_id is not None:
                continue
            if o.amount < 0 and currency == base:
                held += -o.amount
            elif o.amount > 0 and currency == quote:
                held += o.amount * (o.price if o.price is not None else Decimal(repr(self.last_price())))
        return self.wallets.get(currency, Decimal(0)) - held

    def end_after(self, minutes: int) -> list[Row]:
        """Let the market run ``minutes`` more minutes after the current one, then stop (the tape ends
        inside the last minute, which stays open). Returns the candles of the shortened market."""
        last = min(len(self.rows), self.cursor // self.updates_per_candle + minutes + 1)
        self.tape = self.tape[: last * self.updates_per_candle]
        return self.rows[:last]

    # -- servers --------------------------------------------------------------------------------------
    async def start(self) -> None:
        self._ws_server = await serve(self._ws, "127.0.0.1", 0)
        app = web.Application()
        app.router.add_get("/v2/candles/{key}/hist", self._candles)
        app.router.add_post("/v2/{path:auth/.+}", self._auth)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.http_port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.ws_port = self._ws_server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        self._ws_server.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._ws_server.wait_closed(), 2)
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.ws_port}"

    @property
    def rest_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}/v2"

    # -- websocket ------------------------------------------------------------------------------------
    async def _ws(self, ws: ServerConnection) -> None:
        self.connections += 1
        conn = _Conn(ws)
        self._conns.append(conn)
        hb = asyncio.create_task(self._heartbeats(conn))
        player: asyncio.Task[None] | None = None
        try:
            await ws.send(
                json.dumps({"event": "info", "version": 2, "serverId": "fake", "platform": {"status": 1}})
            )
            async for raw in ws:
                msg = json.loads(raw)
                event, channel = msg.get("event"), msg.get("channel")
                if event == "subscribe" and channel == "candles":
                    if await self._subscribe_candles(conn, msg.get("key")) and (
                        player is None or player.done()
                    ):
                        player = asyncio.create_task(self._play(conn))
                elif event == "subscribe" and channel == "ticker":
                    await self._subscribe_ticker(conn, msg.get("symbol"))
                elif event == "unsubscribe":
                    chan = msg.get("chanId")
                    if conn.candles.pop(chan, None) is None and conn.tickers.pop(chan, None) is None:
                        await self._error(ws, 10400, "unsubscribe: invalid")
                    else:
                        await ws.send(json.dumps({"event": "unsubscribed", "status": "OK", "chanId": chan}))
                elif event == "subscribe":
                    await self._error(ws, 10300, "subscribe: invalid")
                else:
                    await self._error(ws, 10000, "Unknown event")
        except ConnectionClosed:
            pass
        finally:
            self._conns.remove(conn)
            for task in (hb, player):
                if task is not None:
                    task.cancel()

    @staticmethod
    async def _error(ws: ServerConnection, code: int, text: str) -> None:
        await ws.send(json.dumps({"event": "error", "msg": text, "code": code}))

    def _chan(self) -> int:
        self._last_chan += 1
        return self._last_chan

    async def _subscribe_candles(self, conn: _Conn, key: Any) -> bool:
        if key != f"trade:1m:{self.symbol}":
            await self._error(conn.ws, 10300, "subscribe: invalid")
            return False
        if key in conn.candles.values():
            await self._error(conn.ws, 10301, "subscribe: dup")
            return False
        chan = self._chan()
        self.subscriptions.append(key)
        conn.candles[chan] = key
        await conn.ws.send(
            json.dumps({"event": "subscribed", "channel": "candles", "chanId": chan, "key": key})
        )
        snapshot = sorted(self.state().values(), reverse=True)[: self.snapshot_size]
        await conn.ws.send(json.dumps([chan, [wire(r) for r in snapshot]]))
        return True

    async def _subscribe_ticker(self, conn: _Conn, symbol: Any) -> None:
        if symbol != self.symbol:
            await self._error(conn.ws, 10300, "symbol: invalid")
            return
        if symbol in conn.tickers.values():
            await self._error(conn.ws, 10301, "subscribe: dup")
            return
        chan = self._chan()
        self.ticker_subscriptions.append(symbol)
        conn.tickers[chan] = symbol
        await conn.ws.send(
            json.dumps(
                {
                    "event": "subscribed",
                    "channel": "ticker",
                    "chanId": chan,
                    "symbol": symbol,
                    "pair": symbol[1:],
                }
            )
        )
        await conn.ws.send(json.dumps([chan, self.ticker()]))  # the snapshot: the same shape as an update
        self.ticks_sent += 1

    async def _send_ticks(self, conn: _Conn, n: int = 1) -> None:
        for _ in range(n):
            payload = self.ticker()
            for chan in list(conn.tickers):
                await conn.ws.send(json.dumps([chan, payload]))
                self.ticks_sent += 1

    async def _play(self, conn: _Conn) -> None:
        ws = conn.ws
        while conn.candles:  # the market moves while somebody watches its candles
            action = self.script.pop(self.cursor, None)
            if action is not None:
                kind, n = action
                if kind == "drop":
                    self.cursor += n
                    ws.transport.abort()  # no close frame: the link just dies
                    return
                if kind == "restart":
                    await ws.send(
                        json.dumps(
                            {"event": "info", "code": 20051, "msg": "Stopping. Please try to reconnect"}
                        )
                    )
                    await ws.close()
                    return
                if kind == "silence":
                    conn.quiet = True
                    self.cursor += n
                    await ws.wait_closed()
                    return
                if kind == "maintenance":
                    await ws.send(
                        json.dumps({"event": "info", "code": 20060, "msg": "Entering in Maintenance mode"})
                    )
                    conn.quiet = True
                    await asyncio.sleep(0.3)
                    self.cursor += n
                    try:
                        await ws.send(
                            json.dumps({"event": "info", "code": 20061, "msg": "Maintenance ended"})
                        )
                    except ConnectionClosed:
                        self.faults.append("client left during maintenance")
                        raise
                    conn.quiet = False
                    continue
            if self.cursor >= len(self.tape):  # the tape is over: idle until the client leaves
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(ws.wait_closed(), self.step_s * 10)
                if ws.state is State.CLOSED:
                    return
                continue
            row = self.tape[self.cursor]
            for chan in list(conn.candles):
                await ws.send(json.dumps([chan, wire(row)]))
            self.cursor += 1
            if self.match_tape and self.last_trade is None:
                self._match(Decimal(repr(row[4])))
            if self.ticks_per_update:
                await self._send_ticks(conn, self.ticks_per_update)
            await asyncio.sleep(self.step_s)

    async def _heartbeats(self, conn: _Conn) -> None:
        with contextlib.suppress(ConnectionClosed):
            while True:
                await asyncio.sleep(self.hb_s)
                if not conn.quiet:
                    for chan in [*conn.candles, *conn.tickers]:
                        await conn.ws.send(json.dumps([chan, "hb"]))

    # -- public REST ----------------------------------------------------------------------------------
    async def _candles(self, request: web.Request) -> web.Response:
        key = request.match_info["key"]
        if key != f"trade:1m:{self.symbol}":
            return web.json_response(["error", 10020, "symbol: invalid"], status=500)
        q = request.query
        start, end = int(q.get("start", 0)), int(q.get("end", 2**62))
        limit = min(int(q.get("limit", 100)), 10_000)
        rows = [r for t, r in sorted(self.state().items()) if start <= t <= end]
        rows = rows[:limit] if q.get("sort") == "1" else sorted(rows, reverse=True)[:limit]
        self.calls.append(("candles", dict(q)))
        return web.json_response([wire(r) for r in rows])

    # -- authenticated REST ---------------------------------------------------------------------------
    async def _auth(self, request: web.Request) -> web.Response:
        path = request.match_info["path"]
        body = await request.text()
        key, nonce, sig = (request.headers.get(h, "") for h in ("bfx-apikey", "bfx-nonce", "bfx-signature"))
        secret = self.keys.get(key)
        if secret is None:
            self.rejected_auth.append("key")
            return web.json_response(["error", 10100, "apikey: invalid"], status=500)
        expected = hmac.new(
            secret.encode(), f"/api/v2/{path}{nonce}{body}".encode(), hashlib.sha384
        ).hexdigest()
        if not hmac.compare_digest(expected, sig):
            self.rejected_auth.append("signature")
            return web.json_response(["error", 10100, "apikey: digest invalid"], status=500)
        if not nonce.isdigit() or int(nonce) <= self.nonces.get(key, 0):
            self.rejected_auth.append("nonce")
            return web.json_response(["error", 10114, "nonce: small"], status=500)
        self.nonces[key] = int(nonce)
        data = json.loads(body or "{}")
        self.calls.append((path, data))
        if path == "auth/r/wallets":
            self._expire()
            return web.json_response(
                [
                    ["exchange", c, float(v), 0, float(self.available(c)), None, None]
                    for c, v in self.wallets.items()
                ]
            )
        if path == "auth/w/order/submit":
            return await self._submit(data)
        self._expire()
        if path == "auth/r/orders":
            found = [o for o in self.orders if o.open and ("cid" not in data or o.cid == data["cid"])]
            return web.json_response([o.array() for o in found])
        if path == "auth/r/orders/hist":
            return web.json_response(
                [o.array() for o in reversed(self.orders) if not o.open][: data.get("limit", 25)]
            )
        if path == "auth/w/order/cancel":
            for o in self.orders:
                by_id = "id" in data and o.id == data["id"]
                by_cid = "cid" in data and o.cid == data["cid"] and o.cid_date == data.get("cid_date")
                if (by_id or by_cid) and o.open:
                    # Bitfinex answers with the order as the request found it (ACTIVE): the cancellation
                    # shows in the next lookup.
                    note = self._note(
                        "oc-req", o, "SUCCESS", "Submitted for cancellation; waiting for confirmation"
                    )
                    now = int(self.clock() * 1000)
                    for leg in self._pair(o):  # an OCO pair goes together
                        if leg.open:
                            leg.status, leg.updated = "CANCELED", now
                    return web.json_response(note)
            return web.json_response(["error", 10001, "Order not found."], status=500)
        if path.startswith("auth/r/order/") and path.endswith("/trades"):
            oid = int(path.split(":")[1].split("/")[0])
            o = next(o for o in self.orders if o.id == oid)
            return web.json_response(
                [
                    [
                        oid * 10,
                        o.symbol,
                        o.created,
                        oid,
                        float(o.amount_orig),
                        o.price_avg,
                        o.type,
                        o.price_avg,
                        -1,
                        -float(o.fee),
                        "USD",
                        o.cid,
                    ]
                ]
            )
        return web.json_response(["error", 10020, "request invalid"], status=500)

    @staticmethod
    def _decimal(data: dict[str, Any], key: str) -> Decimal | None:
        """A decimal-string field, or None if it is missing; raises ValueError if it is malformed."""
        if key not in data:
            return None
        value = data[key]
        if not isinstance(value, str):
            raise ValueError(key)
        try:
            d = Decimal(value)
        except InvalidOperation:
            raise ValueError(key) from None
        if not d.is_finite() or (key != "amount" and d <= 0):
            raise ValueError(key)
        return d

    def _validate(self, data: dict[str, Any]) -> str | None:
        """Why Bitfinex would refuse this order's fields ('<field>: invalid'), or None."""
        kind = data.get("type")
        for key in data:
            if key not in SUBMIT_FIELDS:
                return f"{key}: invalid"
        if kind not in ("EXCHANGE MARKET", *RESTING):
            return "type: invalid"
        if data.get("symbol") != self.symbol:
            return "symbol: invalid"
        if not isinstance(data.get("cid"), int):
            return "cid: invalid"
        try:
            for key in ("amount", "price", "price_trailing", "price_oco_stop", "price_aux_limit"):
                self._decimal(data, key)
        except ValueError as exc:
            return f"{exc}: invalid"
        if not self._decimal(data, "amount"):
            return "amount: invalid"
        flags = data.get("flags", 0)
        if not isinstance(flags, int) or flags & ~(
            FLAG_HIDDEN | FLAG_REDUCE_ONLY | FLAG_POST_ONLY | FLAG_OCO
        ):
            return "flags: invalid"
        if kind in ("EXCHANGE LIMIT", "EXCHANGE STOP") and "price" not in data:
            return "price: invalid"
        if (kind == "EXCHANGE TRAILING STOP") != ("price_trailing" in data):
            return "price_trailing: invalid"
        if "price_aux_limit" in data:  # only for STOP LIMIT orders, which this venue's fake does not hold
            return "price_aux_limit: invalid"
        oco = bool(flags & FLAG_OCO)
        if oco != ("price_oco_stop" in data) or (oco and kind != "EXCHANGE LIMIT"):
            return "price_oco_stop: invalid"
        if oco:
            price, stop = Decimal(data["price"]), Decimal(data["price_oco_stop"])
            if (stop >= price) if Decimal(data["amount"]) < 0 else (stop <= price):
                return "Invalid order: the OCO stop price must be on the other side of the limit price"
        if "tif" in data:
            if kind != "EXCHANGE LIMIT" or not isinstance(data["tif"], str):
                return "tif: invalid"
            try:
                tif = datetime.strptime(data["tif"], "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)
            except ValueError:
                return "tif: invalid"
            if tif.timestamp() <= self.clock():
                return "tif: invalid"
        return None

    async def _submit(self, data: dict[str, Any]) -> web.Response:
        problem = self._validate(data)
        if problem is not None:
            code = 10001 if problem.startswith("Invalid order") else 10020
            return web.json_response(["error", code, problem], status=500)
        day = time.strftime("%Y-%m-%d", time.gmtime())
        if any(o.cid == data["cid"] and o.cid_date == day for o in self.orders):
            return web.json_response(["error", 10001, "Invalid order: duplicate cid"], status=500)
        kind = data["type"]
        amount = Decimal(data["amount"])
        limit = Decimal(data["price"]) if "price" in data else None
        last = Decimal(repr(self.last_price()))
        price = limit if limit is not None and kind != "EXCHANGE TRAILING STOP" else last
        base, quote = self.symbol[1:4], self.symbol[4:]
        cost = abs(amount) * price
        if (amount > 0 and self.available(quote) < cost) or (amount < 0 and self.available(base) < -amount):
            return web.json_response(
                [
                    "error",
                    10001,
                    f"Invalid order: not enough exchange balance for {amount} {self.symbol[1:]} at {price}",
                ],
                status=500,
            )
        now = int(self.clock() * 1000)
        if kind == "EXCHANGE MARKET":
            fee = cost * self.fee_rate
            self.wallets[base] = self.wallets.get(base, Decimal(0)) + amount
            self.wallets[quote] = self.wallets.get(quote, Decimal(0)) - amount * price - fee
            order = Order(
                len(self.orders) + 1001,
                data["cid"],
                day,
                self.symbol,
                amount,
                Decimal(0),
                kind,
                f"EXECUTED @ {price}({amount})",
                float(price),
                now,
                fee,
            )
            self.orders.append(order)
            ack = Order(**{**order.__dict__, "amount": amount, "status": "ACTIVE", "price_avg": 0.0})
            legs = [ack]
        elif (
            kind == "EXCHANGE LIMIT"
            and data.get("flags", 0) & FLAG_POST_ONLY
            and limit is not None
            and (self.takes_liquidity(amount, limit))
        ):
            order = Order(
                len(self.orders) + 1001,
                data["cid"],
                day,
                self.symbol,
                amount,
                amount,
                kind,
                "POSTONLY CANCELED",
                0.0,
                now,
                price=limit,
                flags=data["flags"],
                updated=now,
            )
            self.orders.append(order)
            ack = Order(**{**order.__dict__, "status": "ACTIVE"}) if self.postonly_cancel_late else order
            legs = [ack]
        else:
            tif = data.get("tif")
            order = Order(
                len(self.orders) + 1001,
                data["cid"],
                day,
                self.symbol,
                amount,
                amount,
                kind,
                "ACTIVE",
                0.0,
                now,
                price=limit if kind != "EXCHANGE TRAILING STOP" else None,
                flags=data.get("flags", 0),
                tif=int(datetime.strptime(tif, "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC).timestamp() * 1000)
                if tif
                else None,
                price_trailing=Decimal(data["price_trailing"]) if "price_trailing" in data else None,
                peak=last if kind == "EXCHANGE TRAILING STOP" else None,
            )
            self.orders.append(order)
            legs = [order]
            if order.flags & FLAG_OCO:
                leg = Order(
                    len(self.orders) + 1001,
                    data["cid"] if self.oco_leg_cid else None,
                    day,
                    self.symbol,
                    amount,
                    amount,
                    "EXCHANGE STOP",
                    "ACTIVE",
                    0.0,
                    now,
                    price=Decimal(data["price_oco_stop"]),
                    flags=order.flags,
                    placed_id=order.id,
                )
                self.orders.append(leg)
                legs.append(leg)
        for side in self.most_resting:  # only a placement adds a resting order: the most is seen here
            self.most_resting[side] = max(self.most_resting[side], len(self.resting_limits(side)))
        if self.submit_delay_s:
            await asyncio.sleep(self.submit_delay_s)  # placed, but the answer is late
        note = self._note("on-req", legs[0], "SUCCESS", f"Submitting {len(legs)} orders.")
        note[4] = [leg.array() for leg in legs]
        return web.json_response(note)

    @staticmethod
    def _note(kind: str, order: Order, status: str, text: str) -> list[Any]:
        return [int(time.time() * 1000), kind, None, None, [order.array()], None, status, text]
