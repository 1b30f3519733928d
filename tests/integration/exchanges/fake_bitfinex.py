"""A local Bitfinex: public websocket v2 candles and REST v2 (public candles, authenticated wallets and
orders), following Bitfinex's documented formats, with faults a test can script.

The market is a *tape*: every true 1m candle becomes a few growing updates (the open candle as trades
arrive), played on the websocket one after another. The tape position is shared across connections, so
the market moves on while a client is away, as it does on the real exchange.

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
from decimal import Decimal
from typing import Any

from aiohttp import web
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.protocol import State

Row = tuple[int, float, float, float, float, float]


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

    def array(self) -> list[Any]:
        arr: list[Any] = [None] * 32
        arr[0], arr[2], arr[3], arr[4], arr[5] = self.id, self.cid, self.symbol, self.created, self.created
        arr[6], arr[7], arr[8], arr[13], arr[17] = (
            float(self.amount),
            float(self.amount_orig),
            self.type,
            self.status,
            self.price_avg,
        )
        arr[16] = self.price_avg
        return arr


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

    def __post_init__(self) -> None:
        self.tape = tape_of(self.rows, self.updates_per_candle)
        self.cursor = self.start_at
        self.connections = 0
        self.subscriptions: list[str] = []
        self.orders: list[Order] = []
        self.calls: list[tuple[str, Any]] = []
        self.rejected_auth: list[str] = []
        self.faults: list[str] = []  # what the client did wrong, for assertions
        self.nonces: dict[str, int] = {}
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
        return self.tape[max(self.cursor - 1, 0)][4]

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
        await ws.send(
            json.dumps({"event": "info", "version": 2, "serverId": "fake", "platform": {"status": 1}})
        )
        chan = 17 + self.connections
        try:
            sub = json.loads(await ws.recv())
            key = f"trade:1m:{self.symbol}"
            if sub.get("event") != "subscribe" or sub.get("channel") != "candles" or sub.get("key") != key:
                await ws.send(json.dumps({"event": "error", "msg": "subscribe: invalid", "code": 10300}))
                return
            self.subscriptions.append(sub["key"])
            await ws.send(
                json.dumps({"event": "subscribed", "channel": "candles", "chanId": chan, "key": key})
            )
            snapshot = sorted(self.state().values(), reverse=True)[: self.snapshot_size]
            await ws.send(json.dumps([chan, [wire(r) for r in snapshot]]))
            await self._play(ws, chan)
        except ConnectionClosed:
            pass

    async def _play(self, ws: ServerConnection, chan: int) -> None:
        quiet = asyncio.Event()  # set: heartbeats stop too
        hb = asyncio.create_task(self._heartbeats(ws, chan, quiet))
        try:
            while True:
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
                        quiet.set()
                        self.cursor += n
                        await ws.wait_closed()
                        return
                    if kind == "maintenance":
                        await ws.send(
                            json.dumps(
                                {"event": "info", "code": 20060, "msg": "Entering in Maintenance mode"}
                            )
                        )
                        quiet.set()
                        await asyncio.sleep(0.3)
                        self.cursor += n
                        try:
                            await ws.send(
                                json.dumps({"event": "info", "code": 20061, "msg": "Maintenance ended"})
                            )
                        except ConnectionClosed:
                            self.faults.append("client left during maintenance")
                            raise
                        quiet.clear()
                        continue
                if self.cursor >= len(self.tape):  # the tape is over: idle until the client leaves
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(ws.wait_closed(), self.step_s * 10)
                    if ws.state is State.CLOSED:
                        return
                    continue
                await ws.send(json.dumps([chan, wire(self.tape[self.cursor])]))
                self.cursor += 1
                await asyncio.sleep(self.step_s)
        finally:
            hb.cancel()

    async def _heartbeats(self, ws: ServerConnection, chan: int, quiet: asyncio.Event) -> None:
        with contextlib.suppress(ConnectionClosed):
            while True:
                await asyncio.sleep(self.hb_s)
                if not quiet.is_set():
                    await ws.send(json.dumps([chan, "hb"]))

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
            return web.json_response(
                [["exchange", c, float(v), 0, float(v), None, None] for c, v in self.wallets.items()]
            )
        if path == "auth/w/order/submit":
            return await self._submit(data)
        if path == "auth/r/orders":
            found = [
                o for o in self.orders if o.status == "ACTIVE" and ("cid" not in data or o.cid == data["cid"])
            ]
            return web.json_response([o.array() for o in found])
        if path == "auth/r/orders/hist":
            return web.json_response(
                [o.array() for o in reversed(self.orders) if o.status != "ACTIVE"][: data.get("limit", 25)]
            )
        if path == "auth/w/order/cancel":
            for o in self.orders:
                if o.cid == data.get("cid") and o.cid_date == data.get("cid_date") and o.status == "ACTIVE":
                    o.status = "CANCELED"
                    return web.json_response(self._note("oc-req", o, "SUCCESS", "Submitted for cancellation"))
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

    async def _submit(self, data: dict[str, Any]) -> web.Response:
        if (
            data.get("type") != "EXCHANGE MARKET"
            or data.get("symbol") != self.symbol
            or not isinstance(data.get("cid"), int)
        ):
            return web.json_response(["error", 10020, "order: invalid"], status=500)
        day = time.strftime("%Y-%m-%d", time.gmtime())
        if any(o.cid == data["cid"] and o.cid_date == day for o in self.orders):
            return web.json_response(["error", 10001, "Invalid order: duplicate cid"], status=500)
        amount = Decimal(data["amount"])
        price = Decimal(repr(self.last_price()))
        base, quote = self.symbol[1:4], self.symbol[4:]
        cost = abs(amount) * price
        if (amount > 0 and self.wallets.get(quote, Decimal(0)) < cost) or (
            amount < 0 and self.wallets.get(base, Decimal(0)) < -amount
        ):
            return web.json_response(
                [
                    "error",
                    10001,
                    f"Invalid order: not enough exchange balance for {amount} {self.symbol[1:]} at {price}",
                ],
                status=500,
            )
        fee = cost * self.fee_rate
        self.wallets[base] = self.wallets.get(base, Decimal(0)) + amount
        self.wallets[quote] = self.wallets.get(quote, Decimal(0)) - amount * price - fee
        now = int(time.time() * 1000)
        order = Order(len(self.orders) + 1001, data["cid"], day, self.symbol, amount, Decimal(0), "EXCHANGE MARKET",
                      f"EXECUTED @ {price}({amount})", float(price), now, fee)  # fmt: skip
        self.orders.append(order)
        ack = Order(**{**order.__dict__, "amount": amount, "status": "ACTIVE", "price_avg": 0.0})
        if self.submit_delay_s:
            await asyncio.sleep(self.submit_delay_s)  # placed, but the answer is late
        return web.json_response(self._note("on-req", ack, "SUCCESS", "Submitting 1 orders."))

    @staticmethod
    def _note(kind: str, order: Order, status: str, text: str) -> list[Any]:
        return [int(time.time() * 1000), kind, None, None, [order.array()], None, status, text]
