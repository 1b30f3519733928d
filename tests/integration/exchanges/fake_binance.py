"""A local Binance spot REST API (the endpoints ccxt uses for markets, candles, balances and orders),
following Binance's documented formats, signatures checked, with faults a test can set.

Market: one symbol built from real candles; ``visible`` candles exist so far (the last one is still
open, shown part-way), and a test moves time on by raising ``visible``.

The kline websocket (``/stream/ws/<n>``, Binance's spot market streams: ``SUBSCRIBE`` to
``<symbol>@kline_<interval>``, then ``kline`` events for the open candle as it changes) is driven by
``play_klines``, which moves ``visible`` on with it and can drop the connection part-way.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import time
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import web

from tradewind.marketdata import resample_rows

Row = tuple[int, float, float, float, float, float]
INTERVAL_MS = {"5m": 300_000, "1h": 3_600_000, "1d": 86_400_000}


def _err(status: int, code: int, msg: str) -> web.Response:
    return web.json_response({"code": code, "msg": msg}, status=status)


@dataclass
class FakeBinance:
    rows_5m: list[Row]
    base: str = "ETH"
    quote: str = "BTC"
    visible: int | None = None  # None: every candle exists and is closed
    keys: dict[str, str] = field(default_factory=lambda: {"KEY": "SECRET"})
    balances: dict[str, Decimal] = field(default_factory=lambda: {"BTC": Decimal("1"), "ETH": Decimal("0")})
    order_delay_s: float = 0.0  # answer POST /order this late (after placing it)
    fee_rate: Decimal = Decimal("0.001")

    def __post_init__(self) -> None:
        self.symbol = self.base + self.quote
        self.orders: list[dict[str, Any]] = []
        self.requests: list[tuple[str, str, dict[str, str]]] = []  # (method, path, params)
        self._runner: web.AppRunner | None = None
        self.ws_clients: list[web.WebSocketResponse] = []
        self.ws_connections = 0
        self.ws_subscriptions: list[str] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/api/v3/time", self._time)
        app.router.add_get("/api/v3/exchangeInfo", self._exchange_info)
        app.router.add_get("/api/v3/klines", self._klines)
        app.router.add_get("/api/v3/account", self._signed(self._account))
        app.router.add_post("/api/v3/order", self._signed(self._new_order))
        app.router.add_get("/api/v3/order", self._signed(self._get_order))
        app.router.add_delete("/api/v3/order", self._signed(self._cancel_order))
        app.router.add_get("/stream/ws/{n}", self._ws)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    # -- market data ----------------------------------------------------------------------------------
    def candles(self, interval: str) -> list[Row]:
        rows = self.rows_5m if self.visible is None else self.rows_5m[: self.visible]
        if self.visible is not None and rows:  # the newest candle is still open: show it part-way
            t, o, h, lo, c, v = rows[-1]
            rows = [*rows[:-1], (t, o, max(o, (o + c) / 2), min(o, (o + c) / 2), (o + c) / 2, v / 2)]
        return rows if interval == "5m" else resample_rows(rows, interval)

    def last_price(self) -> Decimal:
        return Decimal(repr(self.candles("5m")[-1][4]))

    async def _time(self, request: web.Request) -> web.Response:
        return web.json_response({"serverTime": int(time.time() * 1000)})

    async def _exchange_info(self, request: web.Request) -> web.Response:
        self.requests.append(("GET", "exchangeInfo", dict(request.query)))
        filters = [
            {"filterType": "PRICE_FILTER", "minPrice": "0.00000100", "maxPrice": "922327.00000000", "tickSize": "0.00000100"},
            {"filterType": "LOT_SIZE", "minQty": "0.00010000", "maxQty": "100000.00000000", "stepSize": "0.00010000"},
            {"filterType": "NOTIONAL", "minNotional": "0.00010000", "applyMinToMarket": True, "maxNotional": "9000000.00000000",
             "applyMaxToMarket": False, "avgPriceMins": 5},
        ]  # fmt: skip
        market = {
            "symbol": self.symbol, "status": "TRADING", "baseAsset": self.base, "baseAssetPrecision": 8,
            "quoteAsset": self.quote, "quotePrecision": 8, "quoteAssetPrecision": 8, "baseCommissionPrecision": 8,
            "quoteCommissionPrecision": 8, "orderTypes": ["LIMIT", "LIMIT_MAKER", "MARKET"], "icebergAllowed": True,
            "ocoAllowed": True, "quoteOrderQtyMarketAllowed": True, "allowTrailingStop": True, "cancelReplaceAllowed": True,
            "isSpotTradingAllowed": True, "isMarginTradingAllowed": False, "filters": filters, "permissions": [],
            "permissionSets": [["SPOT"]], "defaultSelfTradePreventionMode": "EXPIRE_MAKER",
            "allowedSelfTradePreventionModes": ["NONE", "EXPIRE_TAKER", "EXPIRE_MAKER", "EXPIRE_BOTH"],
        }  # fmt: skip
        return web.json_response({"timezone": "UTC", "serverTime": int(time.time() * 1000), "rateLimits": [],
                                  "exchangeFilters": [], "symbols": [market]})  # fmt: skip

    async def _klines(self, request: web.Request) -> web.Response:
        q = request.query
        self.requests.append(("GET", "klines", dict(q)))
        if q.get("symbol") != self.symbol:
            return _err(400, -1121, "Invalid symbol.")
        interval = q.get("interval", "")
        if interval not in INTERVAL_MS:
            return _err(400, -1120, "Invalid interval.")
        size = INTERVAL_MS[interval]
        limit = min(int(q.get("limit", 500)), 1000)
        start, end = int(q.get("startTime", 0)), int(q.get("endTime", 2**62))
        rows = [r for r in self.candles(interval) if start <= r[0] <= end]
        rows = rows[:limit] if "startTime" in q else rows[-limit:]
        return web.json_response([
            [t, f"{o:.8f}", f"{h:.8f}", f"{lo:.8f}", f"{c:.8f}", f"{v:.8f}", t + size - 1, f"{v * c:.8f}", 100,
             f"{v / 2:.8f}", f"{v * c / 2:.8f}", "0"]
            for t, o, h, lo, c, v in rows
        ])  # fmt: skip

    # -- kline websocket ------------------------------------------------------------------------------
    async def _ws(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(heartbeat=None)
        await ws.prepare(request)
        self.ws_connections += 1
        async for msg in ws:
            if msg.type != web.WSMsgType.TEXT:
                continue
            req = msg.json()
            if req.get("method") == "SUBSCRIBE":
                self.ws_subscriptions += req.get("params", [])
                await ws.send_json({"result": None, "id": req.get("id")})
                self.ws_clients.append(ws)
        if ws in self.ws_clients:
            self.ws_clients.remove(ws)
        return ws

    def _kline(self, row: Row, fraction: float, interval: str = "5m") -> dict[str, Any]:
        """The kline event of ``row`` part-way (``fraction`` of its move done), as Binance sends it."""
        t, o, h, lo, c, v = row
        close = o + (c - o) * fraction
        high, low = (
            max(o, close, h if fraction == 1 else close),
            min(o, close, lo if fraction == 1 else close),
        )
        size = INTERVAL_MS[interval]
        return {"e": "kline", "E": int(time.time() * 1000), "s": self.symbol, "k": {
            "t": t, "T": t + size - 1, "s": self.symbol, "i": interval, "f": 1, "L": 2, "o": f"{o:.8f}",
            "c": f"{close:.8f}", "h": f"{high:.8f}", "l": f"{low:.8f}", "v": f"{v * fraction:.8f}", "n": 2,
            "x": False, "q": f"{v * close * fraction:.8f}", "V": "0", "Q": "0", "B": "0",
        }}  # fmt: skip

    async def play_klines(self, upto: int, step_s: float = 0.01, drop: dict[int, int] | None = None) -> None:
        """Move the market from ``visible`` to ``upto`` candles, sending each open candle's updates to the
        subscribers (the last one complete); ``drop={i: n}``: at candle i, cut every connection and let n
        candles pass before anyone can see them again (a gap only REST can fill)."""
        drop = dict(drop or {})
        assert self.visible is not None
        while self.visible < upto:
            i = self.visible - 1  # the open candle
            if i in drop:
                for ws in list(self.ws_clients):
                    self.ws_clients.remove(ws)
                    ws._writer.transport.abort()  # type: ignore[union-attr]  # no close frame: the link just dies
                self.visible += drop.pop(i)
                while not self.ws_clients:  # until the client is back
                    await asyncio.sleep(step_s)
                continue
            for fraction in (0.3, 0.7, 1.0):
                for ws in list(self.ws_clients):
                    if not ws.closed:
                        await ws.send_json(self._kline(self.rows_5m[i], fraction))
                await asyncio.sleep(step_s)
            self.visible += 1

    # -- signed endpoints -----------------------------------------------------------------------------
    def _signed(self, handler: Any) -> Any:
        async def check(request: web.Request) -> web.Response:
            body = await request.text()
            qs = request.query_string
            total = qs + body  # Binance signs "totalParams": the query string followed by the body
            params = dict(parse_qsl(qs)) | dict(parse_qsl(body))
            self.requests.append((request.method, request.path.rsplit("/", 1)[-1], params))
            secret = self.keys.get(request.headers.get("X-MBX-APIKEY", ""))
            if secret is None:
                return _err(401, -2015, "Invalid API-key, IP, or permissions for action.")
            signed, sep, signature = total.rpartition("&signature=")
            expected = hmac.new(secret.encode(), signed.encode(), hashlib.sha256).hexdigest()
            if not sep or not hmac.compare_digest(expected, signature):
                return _err(400, -1022, "Signature for this request is not valid.")
            window = int(params.get("recvWindow", 5000))
            if abs(int(params.get("timestamp", 0)) - time.time() * 1000) > window:
                return _err(400, -1021, "Timestamp for this request is outside of the recvWindow.")
            return await handler(params)

        return check

    async def _account(self, params: dict[str, str]) -> web.Response:
        return web.json_response({
            "makerCommission": 10, "takerCommission": 10, "buyerCommission": 0, "sellerCommission": 0,
            "canTrade": True, "canWithdraw": True, "canDeposit": True, "brokered": False,
            "requireSelfTradePrevention": False, "preventSor": False, "updateTime": int(time.time() * 1000),
            "accountType": "SPOT", "permissions": ["SPOT"], "uid": 1,
            "balances": [{"asset": a, "free": f"{v:.8f}", "locked": "0.00000000"} for a, v in self.balances.items()],
        })  # fmt: skip

    def _find(self, params: dict[str, str]) -> dict[str, Any] | None:
        cid = params.get("origClientOrderId")
        oid = params.get("orderId")
        for o in self.orders:
            if o["symbol"] == params.get("symbol") and (
                o["clientOrderId"] == cid or str(o["orderId"]) == oid
            ):
                return o
        return None

    async def _new_order(self, params: dict[str, str]) -> web.Response:
        if params.get("symbol") != self.symbol:
            return _err(400, -1121, "Invalid symbol.")
        if params.get("type") != "MARKET":
            return _err(400, -1116, "Invalid orderType.")
        cid = params.get("newClientOrderId") or f"auto-{len(self.orders)}"
        if any(o["clientOrderId"] == cid and o["status"] == "NEW" for o in self.orders):
            return _err(400, -2010, "Duplicate order sent.")  # Binance: unique among *open* orders
        qty = Decimal(params["quantity"])
        price = self.last_price()
        side = params["side"]
        cost = qty * price
        if (side == "BUY" and self.balances.get(self.quote, Decimal(0)) < cost) or (
            side == "SELL" and self.balances.get(self.base, Decimal(0)) < qty
        ):
            return _err(400, -2010, "Account has insufficient balance for requested action.")
        sign = 1 if side == "BUY" else -1
        fee = (qty if side == "BUY" else cost) * self.fee_rate
        fee_asset = self.base if side == "BUY" else self.quote
        self.balances[self.base] = self.balances.get(self.base, Decimal(0)) + sign * qty
        self.balances[self.quote] = self.balances.get(self.quote, Decimal(0)) - sign * cost
        self.balances[fee_asset] -= fee
        now = int(time.time() * 1000)
        order = {
            "symbol": self.symbol, "orderId": 28_000 + len(self.orders), "orderListId": -1, "clientOrderId": cid,
            "price": "0.00000000", "origQty": f"{qty:.8f}", "executedQty": f"{qty:.8f}",
            "cummulativeQuoteQty": f"{cost:.8f}", "status": "FILLED", "timeInForce": "GTC", "type": "MARKET",
            "side": side, "stopPrice": "0.00000000", "icebergQty": "0.00000000", "time": now, "updateTime": now,
            "isWorking": True, "workingTime": now, "origQuoteOrderQty": "0.00000000", "selfTradePreventionMode": "NONE",
        }  # fmt: skip
        self.orders.append(order)
        fills = [{"price": f"{price:.8f}", "qty": f"{qty:.8f}", "commission": f"{fee:.8f}", "commissionAsset": fee_asset,
                  "tradeId": 5000 + len(self.orders)}]  # fmt: skip
        if self.order_delay_s:
            await asyncio.sleep(self.order_delay_s)  # placed and filled, but the answer is late
        return web.json_response({**order, "transactTime": now, "fills": fills})

    async def _get_order(self, params: dict[str, str]) -> web.Response:
        found = self._find(params)
        return web.json_response(found) if found else _err(400, -2013, "Order does not exist.")

    async def _cancel_order(self, params: dict[str, str]) -> web.Response:
        found = self._find(params)
        if found is None or found["status"] != "NEW":
            return _err(400, -2011, "Unknown order sent.")
        found["status"] = "CANCELED"
        return web.json_response(found)
