"""A local Binance spot REST API (the endpoints ccxt uses for markets, candles, balances and orders),
following Binance's documented formats, signatures checked, with faults a test can set.

Market: one symbol built from real candles; ``visible`` candles exist so far (the last one is still
open, shown part-way), and a test moves time on by raising ``visible``. 1m klines (what tradewind's
exchange service reads) exist only when a test gives the market's minutes as ``rows_1m``, the last one
still open; otherwise that interval is refused like any other the fake does not have.

The kline websocket (``/stream/ws/<n>``, Binance's spot market streams: ``SUBSCRIBE`` to
``<symbol>@kline_<interval>``, then ``kline`` events for the open candle as it changes) is driven by
``play_klines``, which moves ``visible`` on with it and can drop the connection part-way.

The top of the book: ``set_book(bid, ask, bid_qty, ask_qty)`` (until then one tick either side of the last
price). REST serves it as ``/api/v3/ticker/bookTicker`` and ``/api/v3/ticker/24hr`` (``symbol``, a JSON
``symbols`` list, or neither for all), each answering instead with the next of ``ticker_faults`` (status,
body) while there are any; the websocket's ``<symbol>@bookTicker`` stream gets it from ``send_book``, and
``drop_book_clients`` cuts those connections. Every request is logged in ``requests`` with its monotonic
time in ``request_times``.

Orders: MARKET fills at once at the last price; LIMIT, STOP_LOSS (stopPrice, or trailingDelta in basis
points for a trailing stop), STOP_LOSS_LIMIT, TAKE_PROFIT and TAKE_PROFIT_LIMIT rest as NEW, locking
balance, until ``trade_through(price)`` trades the market through them: a stop triggers (a *_LIMIT one
then works as a limit at its price), a limit fills at its price. The parameters each type needs are
checked as Binance checks them (-1102 missing, -1106 not wanted, -1104 unknown, -2010 a stop that would
trigger at once, -1013 a trailingDelta outside the TRAILING_DELTA filter). LIMIT_MAKER (post-only) is
refused with -2010 "Order would immediately match and take." when it would cross the book (a buy at or
above the ask, a sell at or below the bid) and otherwise rests like a LIMIT. ``most_resting`` counts the
most LIMIT and LIMIT_MAKER orders that rested at once on each side.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import web

from tradewind.marketdata import resample_rows

Row = tuple[int, float, float, float, float, float]
INTERVAL_MS = {"1m": 60_000, "5m": 300_000, "1h": 3_600_000, "1d": 86_400_000}


def _err(status: int, code: int, msg: str) -> web.Response:
    return web.json_response({"code": code, "msg": msg}, status=status)


# Binance spot's order types: (mandatory parameters, optional ones); STOP_LOSS and TAKE_PROFIT take a
# stopPrice or a trailingDelta (or both). Any other parameter is refused.
ORDER_PARAMS: dict[str, tuple[set[str], set[str]]] = {
    "MARKET": ({"quantity"}, set()),  # (Binance also takes quoteOrderQty instead: not this fake)
    "LIMIT": ({"timeInForce", "quantity", "price"}, {"icebergQty"}),
    "STOP_LOSS": ({"quantity"}, {"stopPrice", "trailingDelta"}),
    "STOP_LOSS_LIMIT": ({"timeInForce", "quantity", "price"}, {"stopPrice", "trailingDelta", "icebergQty"}),
    "TAKE_PROFIT": ({"quantity"}, {"stopPrice", "trailingDelta"}),
    "TAKE_PROFIT_LIMIT": ({"timeInForce", "quantity", "price"}, {"stopPrice", "trailingDelta", "icebergQty"}),
    "LIMIT_MAKER": ({"quantity", "price"}, set()),
}
COMMON_PARAMS = {
    "symbol",
    "side",
    "type",
    "newClientOrderId",
    "newOrderRespType",
    "strategyId",
    "strategyType",
    "selfTradePreventionMode",
    "recvWindow",
    "timestamp",
    "signature",
}
OPEN = ("NEW", "PARTIALLY_FILLED")
TICK_SIZE = Decimal("0.000001")  # the PRICE_FILTER's tickSize
WOULD_TAKE = "Order would immediately match and take."
MIN_TRAILING_DELTA, MAX_TRAILING_DELTA = 10, 2000


@dataclass
class FakeBinance:
    rows_5m: list[Row]
    base: str = "ETH"
    quote: str = "BTC"
    visible: int | None = None  # None: every candle exists and is closed
    rows_1m: list[Row] | None = None  # the market's minutes (the last one open); None: no 1m klines
    keys: dict[str, str] = field(default_factory=lambda: {"KEY": "SECRET"})
    balances: dict[str, Decimal] = field(default_factory=lambda: {"BTC": Decimal("1"), "ETH": Decimal("0")})
    order_delay_s: float = 0.0  # answer POST /order this late (after placing it)
    fee_rate: Decimal = Decimal("0.001")

    def __post_init__(self) -> None:
        self.symbol = self.base + self.quote
        self.orders: list[dict[str, Any]] = []
        self.most_resting = {
            "BUY": 0,
            "SELL": 0,
        }  # LIMIT / LIMIT_MAKER orders open at once on one side, at most
        self.last_trade: Decimal | None = None  # set by trade_through: the market's price from then on
        self.peaks: dict[int, Decimal] = {}  # orderId -> best price since a trailing stop was placed
        self.requests: list[tuple[str, str, dict[str, str]]] = []  # (method, path, params)
        self.request_times: list[float] = []  # time.monotonic() of each entry of ``requests``
        self.book: tuple[Decimal, Decimal, Decimal, Decimal] | None = None  # bid, ask, their sizes
        self.ticker_faults: list[tuple[int, str]] = []  # the next ticker answers: (HTTP status, body)
        self.book_clients: dict[web.WebSocketResponse, set[str]] = {}  # socket -> its bookTicker streams
        self.book_updates = 0
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
        app.router.add_get("/api/v3/ticker/bookTicker", self._book_ticker)
        app.router.add_get("/api/v3/ticker/24hr", self._ticker_24hr)
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

    def _log(self, method: str, path: str, params: dict[str, str]) -> None:
        self.requests.append((method, path, params))
        self.request_times.append(time.monotonic())

    # -- market data ----------------------------------------------------------------------------------
    def candles(self, interval: str) -> list[Row]:
        if interval == "1m":
            return list(self.rows_1m or [])
        rows = self.rows_5m if self.visible is None else self.rows_5m[: self.visible]
        if self.visible is not None and rows:  # the newest candle is still open: show it part-way
            t, o, h, lo, c, v = rows[-1]
            rows = [*rows[:-1], (t, o, max(o, (o + c) / 2), min(o, (o + c) / 2), (o + c) / 2, v / 2)]
        return rows if interval == "5m" else resample_rows(rows, interval)

    def last_price(self) -> Decimal:
        if self.last_trade is not None:
            return self.last_trade
        return Decimal(repr(self.candles("5m")[-1][4]))

    def locked(self, asset: str) -> Decimal:
        """What open orders hold of ``asset``: a sell its quantity, a buy quantity times its price."""
        held = Decimal(0)
        for o in self.orders:
            if o["status"] not in OPEN:
                continue
            left = Decimal(o["origQty"]) - Decimal(o["executedQty"])
            if o["side"] == "SELL" and asset == self.base:
                held += left
            elif o["side"] == "BUY" and asset == self.quote:
                price = Decimal(o["price"]) or Decimal(o["stopPrice"]) or self.last_price()
                held += left * price
        return held

    def resting_limits(self, side: str) -> list[dict[str, Any]]:
        """The LIMIT and LIMIT_MAKER orders open on one side ("BUY" or "SELL")."""
        return [
            o
            for o in self.orders
            if o["status"] in OPEN and o["type"] in ("LIMIT", "LIMIT_MAKER") and o["side"] == side
        ]

    def free(self, asset: str) -> Decimal:
        return self.balances.get(asset, Decimal(0)) - self.locked(asset)

    def trade_through(self, price: float | Decimal | str) -> list[dict[str, Any]]:
        """The market trades at ``price``: stops it reaches trigger (STOP_LOSS sells at or below their
        stopPrice, or below their trailing level; TAKE_PROFIT sells at or above; buys mirrored) and
        limits it reaches fill at their price. Returns the orders that filled."""
        p = self.last_trade = Decimal(str(price))
        filled: list[dict[str, Any]] = []
        for o in self.orders:
            if o["status"] not in OPEN:
                continue
            sell = o["side"] == "SELL"
            if not o["isWorking"]:  # a stop order waiting for its trigger
                if "trailingDelta" in o:  # trails from placement (Binance's activation price: not modeled)
                    best = self.peaks.get(o["orderId"], p)
                    best = self.peaks[o["orderId"]] = max(best, p) if sell else min(best, p)
                    step = best * Decimal(o["trailingDelta"]) / 10_000
                    hit = p <= best - step if sell else p >= best + step
                else:
                    stop = Decimal(o["stopPrice"])
                    below = o["type"].startswith("STOP_LOSS") == sell  # triggers when the price falls to it
                    hit = p <= stop if below else p >= stop
                if not hit:
                    continue
                o["isWorking"], o["workingTime"] = True, int(time.time() * 1000)
                if not o["type"].endswith("LIMIT"):  # STOP_LOSS / TAKE_PROFIT: a market order now
                    self._fill(o, p)
                    filled.append(o)
                    continue
            limit = Decimal(o["price"])
            if (p >= limit) if sell else (p <= limit):
                self._fill(o, limit)
                filled.append(o)
        return filled

    def _fill(self, o: dict[str, Any], price: Decimal) -> None:
        qty = Decimal(o["origQty"]) - Decimal(o["executedQty"])
        cost = qty * price
        sign = 1 if o["side"] == "BUY" else -1
        fee_asset = self.base if sign > 0 else self.quote
        self.balances[self.base] = self.balances.get(self.base, Decimal(0)) + sign * qty
        self.balances[self.quote] = self.balances.get(self.quote, Decimal(0)) - sign * cost
        self.balances[fee_asset] -= (qty if sign > 0 else cost) * self.fee_rate
        total = Decimal(o["cummulativeQuoteQty"]) + cost
        o.update(
            executedQty=o["origQty"],
            cummulativeQuoteQty=f"{total:.8f}",
            status="FILLED",
            updateTime=int(time.time() * 1000),
        )

    async def _time(self, request: web.Request) -> web.Response:
        return web.json_response({"serverTime": int(time.time() * 1000)})

    async def _exchange_info(self, request: web.Request) -> web.Response:
        self._log("GET", "exchangeInfo", dict(request.query))
        filters = [
            {
                "filterType": "PRICE_FILTER",
                "minPrice": "0.00000100",
                "maxPrice": "922327.00000000",
                "tickSize": "0.00000100",
            },
            {
                "filterType": "LOT_SIZE",
                "minQty": "0.00010000",
                "maxQty": "100000.00000000",
                "stepSize": "0.00010000",
            },
            {
                "filterType": "NOTIONAL",
                "minNotional": "0.00010000",
                "applyMinToMarket": True,
                "maxNotional": "9000000.00000000",
                "applyMaxToMarket": False,
                "avgPriceMins": 5,
            },
            {
                "filterType": "TRAILING_DELTA",
                "minTrailingAboveDelta": MIN_TRAILING_DELTA,
                "maxTrailingAboveDelta": MAX_TRAILING_DELTA,
                "minTrailingBelowDelta": MIN_TRAILING_DELTA,
                "maxTrailingBelowDelta": MAX_TRAILING_DELTA,
            },
        ]
        market = {
            "symbol": self.symbol,
            "status": "TRADING",
            "baseAsset": self.base,
            "baseAssetPrecision": 8,
            "quoteAsset": self.quote,
            "quotePrecision": 8,
            "quoteAssetPrecision": 8,
            "baseCommissionPrecision": 8,
            "quoteCommissionPrecision": 8,
            "orderTypes": [
                "LIMIT",
                "LIMIT_MAKER",
                "MARKET",
                "STOP_LOSS",
                "STOP_LOSS_LIMIT",
                "TAKE_PROFIT",
                "TAKE_PROFIT_LIMIT",
            ],
            "icebergAllowed": True,
            "ocoAllowed": True,
            "quoteOrderQtyMarketAllowed": True,
            "allowTrailingStop": True,
            "cancelReplaceAllowed": True,
            "isSpotTradingAllowed": True,
            "isMarginTradingAllowed": False,
            "filters": filters,
            "permissions": [],
            "permissionSets": [["SPOT"]],
            "defaultSelfTradePreventionMode": "EXPIRE_MAKER",
            "allowedSelfTradePreventionModes": ["NONE", "EXPIRE_TAKER", "EXPIRE_MAKER", "EXPIRE_BOTH"],
        }
        return web.json_response(
            {
                "timezone": "UTC",
                "serverTime": int(time.time() * 1000),
                "rateLimits": [],
                "exchangeFilters": [],
                "symbols": [market],
            }
        )

    async def _klines(self, request: web.Request) -> web.Response:
        q = request.query
        self._log("GET", "klines", dict(q))
        if q.get("symbol") != self.symbol:
            return _err(400, -1121, "Invalid symbol.")
        interval = q.get("interval", "")
        if interval not in INTERVAL_MS or (interval == "1m" and self.rows_1m is None):
            return _err(400, -1120, "Invalid interval.")
        size = INTERVAL_MS[interval]
        limit = min(int(q.get("limit", 500)), 1000)
        start, end = int(q.get("startTime", 0)), int(q.get("endTime", 2**62))
        rows = [r for r in self.candles(interval) if start <= r[0] <= end]
        rows = rows[:limit] if "startTime" in q else rows[-limit:]
        return web.json_response(
            [
                [
                    t,
                    f"{o:.8f}",
                    f"{h:.8f}",
                    f"{lo:.8f}",
                    f"{c:.8f}",
                    f"{v:.8f}",
                    t + size - 1,
                    f"{v * c:.8f}",
                    100,
                    f"{v / 2:.8f}",
                    f"{v * c / 2:.8f}",
                    "0",
                ]
                for t, o, h, lo, c, v in rows
            ]
        )

    # -- the top of the book ----------------------------------------------------------------------------
    def set_book(self, bid: Any, ask: Any, bid_qty: Any = "1", ask_qty: Any = "1") -> None:
        self.book = (Decimal(str(bid)), Decimal(str(ask)), Decimal(str(bid_qty)), Decimal(str(ask_qty)))

    def top(self) -> tuple[Decimal, Decimal, Decimal, Decimal]:
        if self.book is not None:
            return self.book
        last = self.last_price()
        return last - TICK_SIZE, last + TICK_SIZE, Decimal(1), Decimal(1)

    def _ticker_symbols(self, q: Any) -> list[str] | web.Response:
        """The symbols a ticker request asks for (``symbol``, a JSON ``symbols`` list, or all)."""
        if "symbol" in q and "symbols" in q:
            return _err(400, -1128, "Combination of optional parameters invalid.")
        if "symbols" in q:
            try:
                wanted = json.loads(q["symbols"])
            except ValueError:
                return _err(400, -1100, "Illegal characters found in parameter 'symbols'.")
        else:
            wanted = [q["symbol"]] if "symbol" in q else [self.symbol]
        if not isinstance(wanted, list) or any(s != self.symbol for s in wanted):
            return _err(400, -1121, "Invalid symbol.")
        return wanted

    async def _ticker(self, request: web.Request, path: str, body: Any) -> web.Response:
        q = request.query
        self._log("GET", path, dict(q))
        if self.ticker_faults:
            status, text = self.ticker_faults.pop(0)
            kind = "application/json" if text[:1] in "[{" else "text/html"
            return web.Response(status=status, text=text, content_type=kind)
        wanted = self._ticker_symbols(q)
        if isinstance(wanted, web.Response):
            return wanted
        items = [body(s) for s in wanted]
        return web.json_response(items[0] if "symbol" in q else items)

    async def _book_ticker(self, request: web.Request) -> web.Response:
        bid, ask, bid_qty, ask_qty = self.top()
        return await self._ticker(
            request,
            "bookTicker",
            lambda s: {
                "symbol": s,
                "bidPrice": f"{bid:.8f}",
                "bidQty": f"{bid_qty:.8f}",
                "askPrice": f"{ask:.8f}",
                "askQty": f"{ask_qty:.8f}",
            },
        )

    async def _ticker_24hr(self, request: web.Request) -> web.Response:
        bid, ask, bid_qty, ask_qty = self.top()
        day = self.candles("5m")[-288:]
        first, last, now = Decimal(repr(day[0][1])), self.last_price(), int(time.time() * 1000)
        volume, quote_volume = sum(r[5] for r in day), sum(r[5] * r[4] for r in day)
        return await self._ticker(
            request,
            "24hr",
            lambda s: {
                "symbol": s,
                "priceChange": f"{last - first:.8f}",
                "priceChangePercent": f"{(last - first) / first * 100:.3f}",
                "weightedAvgPrice": f"{quote_volume / volume if volume else 0:.8f}",
                "prevClosePrice": f"{first:.8f}",
                "lastPrice": f"{last:.8f}",
                "lastQty": "0.10000000",
                "bidPrice": f"{bid:.8f}",
                "bidQty": f"{bid_qty:.8f}",
                "askPrice": f"{ask:.8f}",
                "askQty": f"{ask_qty:.8f}",
                "openPrice": f"{first:.8f}",
                "highPrice": f"{max(r[2] for r in day):.8f}",
                "lowPrice": f"{min(r[3] for r in day):.8f}",
                "volume": f"{volume:.8f}",
                "quoteVolume": f"{quote_volume:.8f}",
                "openTime": now - 86_400_000,
                "closeTime": now,
                "firstId": 1,
                "lastId": 100,
                "count": 100,
            },
        )

    async def send_book(self) -> int:
        """Push the top of the book to the ``<symbol>@bookTicker`` subscribers; returns how many got it."""
        bid, ask, bid_qty, ask_qty = self.top()
        self.book_updates += 1
        # Binance's spot bookTicker event: no "e", no time
        event = {
            "u": self.book_updates,
            "s": self.symbol,
            "b": f"{bid:.8f}",
            "B": f"{bid_qty:.8f}",
            "a": f"{ask:.8f}",
            "A": f"{ask_qty:.8f}",
        }
        sent = 0
        for ws, streams in list(self.book_clients.items()):
            if f"{self.symbol.lower()}@bookTicker" in streams and not ws.closed:
                await ws.send_json(event)
                sent += 1
        return sent

    def drop_book_clients(self) -> None:
        """Cut every bookTicker connection without a close frame: the link just dies."""
        for ws in list(self.book_clients):
            del self.book_clients[ws]
            ws._writer.transport.abort()  # type: ignore[union-attr]

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
                streams = req.get("params", [])
                self.ws_subscriptions += streams
                await ws.send_json({"result": None, "id": req.get("id")})
                books = {s for s in streams if s.endswith("@bookTicker")}
                if books:
                    self.book_clients.setdefault(ws, set()).update(books)
                if len(books) < len(streams) and ws not in self.ws_clients:  # klines go to these
                    self.ws_clients.append(ws)
        if ws in self.ws_clients:
            self.ws_clients.remove(ws)
        self.book_clients.pop(ws, None)
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
        return {
            "e": "kline",
            "E": int(time.time() * 1000),
            "s": self.symbol,
            "k": {
                "t": t,
                "T": t + size - 1,
                "s": self.symbol,
                "i": interval,
                "f": 1,
                "L": 2,
                "o": f"{o:.8f}",
                "c": f"{close:.8f}",
                "h": f"{high:.8f}",
                "l": f"{low:.8f}",
                "v": f"{v * fraction:.8f}",
                "n": 2,
                "x": False,
                "q": f"{v * close * fraction:.8f}",
                "V": "0",
                "Q": "0",
                "B": "0",
            },
        }

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
            self._log(request.method, request.path.rsplit("/", 1)[-1], params)
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
        return web.json_response(
            {
                "makerCommission": 10,
                "takerCommission": 10,
                "buyerCommission": 0,
                "sellerCommission": 0,
                "canTrade": True,
                "canWithdraw": True,
                "canDeposit": True,
                "brokered": False,
                "requireSelfTradePrevention": False,
                "preventSor": False,
                "updateTime": int(time.time() * 1000),
                "accountType": "SPOT",
                "permissions": ["SPOT"],
                "uid": 1,
                "balances": [
                    {"asset": a, "free": f"{self.free(a):.8f}", "locked": f"{self.locked(a):.8f}"}
                    for a in self.balances
                ],
            }
        )

    def _find(self, params: dict[str, str]) -> dict[str, Any] | None:
        cid = params.get("origClientOrderId")
        oid = params.get("orderId")
        for o in self.orders:
            if o["symbol"] == params.get("symbol") and (
                o["clientOrderId"] == cid or str(o["orderId"]) == oid
            ):
                return o
        return None

    def _order_problem(self, params: dict[str, str]) -> web.Response | None:
        """Binance's answer to a malformed order, or None: the parameters its type needs and no others."""
        if params.get("symbol") != self.symbol:
            return _err(400, -1121, "Invalid symbol.")
        kind = params.get("type", "")
        if kind not in ORDER_PARAMS:
            return _err(400, -1116, "Invalid orderType.")
        if params.get("side") not in ("BUY", "SELL"):
            return _err(400, -1117, "Invalid side.")
        needed, optional = ORDER_PARAMS[kind]
        for name in sorted(needed):
            if not params.get(name):
                return _err(
                    400, -1102, f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed."
                )
        if kind in ("STOP_LOSS", "STOP_LOSS_LIMIT", "TAKE_PROFIT", "TAKE_PROFIT_LIMIT") and not (
            params.get("stopPrice") or params.get("trailingDelta")
        ):
            return _err(
                400, -1102, "Mandatory parameter 'stopPrice' was not sent, was empty/null, or malformed."
            )
        for name in sorted(params):
            if name in COMMON_PARAMS | needed | optional:
                continue
            if name in ("price", "stopPrice", "timeInForce", "trailingDelta", "quantity", "quoteOrderQty"):
                return _err(400, -1106, f"Parameter '{name}' sent when not required.")
            return _err(
                400,
                -1104,
                f"Not all sent parameters were read; read '{len(params) - 1}' parameter(s) but was sent '{len(params)}'.",
            )
        if "timeInForce" in params and params["timeInForce"] not in ("GTC", "IOC", "FOK"):
            return _err(400, -1115, "Invalid timeInForce.")
        try:
            numbers = {k: Decimal(params[k]) for k in ("quantity", "price", "stopPrice") if k in params}
        except ArithmeticError:
            return _err(400, -1100, "Illegal characters found in a parameter.")
        if any(v <= 0 for v in numbers.values()):
            return _err(400, -1013, "Filter failure: PRICE_FILTER")
        if "trailingDelta" in params:
            delta = params["trailingDelta"]
            if not delta.isdigit() or not MIN_TRAILING_DELTA <= int(delta) <= MAX_TRAILING_DELTA:
                return _err(400, -1013, "Filter failure: TRAILING_DELTA")
        if "stopPrice" in numbers and "trailingDelta" not in params:
            sell, last, stop = params["side"] == "SELL", self.last_price(), numbers["stopPrice"]
            falls = kind.startswith("STOP_LOSS") == sell  # the stop waits for the price to fall to it
            if (stop >= last) if falls else (stop <= last):
                return _err(400, -2010, "Stop price would trigger immediately.")
        return None

    async def _new_order(self, params: dict[str, str]) -> web.Response:
        problem = self._order_problem(params)
        if problem is not None:
            return problem
        kind = params["type"]
        cid = params.get("newClientOrderId") or f"auto-{len(self.orders)}"
        if any(o["clientOrderId"] == cid and o["status"] in OPEN for o in self.orders):
            return _err(400, -2010, "Duplicate order sent.")  # Binance: unique among *open* orders
        qty = Decimal(params["quantity"])
        side = params["side"]
        limit = Decimal(params.get("price", "0"))
        if kind == "LIMIT_MAKER":  # post-only: refused rather than matched against the book
            bid, ask = self.top()[:2]
            if (limit >= ask) if side == "BUY" else (limit <= bid):
                return _err(400, -2010, WOULD_TAKE)
        stop = Decimal(params.get("stopPrice", "0"))
        price = self.last_price() if kind == "MARKET" else (limit or stop or self.last_price())
        cost = qty * price
        if (side == "BUY" and self.free(self.quote) < cost) or (
            side == "SELL" and self.free(self.base) < qty
        ):
            return _err(400, -2010, "Account has insufficient balance for requested action.")
        now = int(time.time() * 1000)
        order = {
            "symbol": self.symbol,
            "orderId": 28_000 + len(self.orders),
            "orderListId": -1,
            "clientOrderId": cid,
            "price": f"{limit:.8f}",
            "origQty": f"{qty:.8f}",
            "executedQty": "0.00000000",
            "cummulativeQuoteQty": "0.00000000",
            "status": "NEW",
            "timeInForce": params.get("timeInForce", "GTC"),
            "type": kind,
            "side": side,
            "stopPrice": f"{stop:.8f}",
            "icebergQty": "0.00000000",
            "time": now,
            "updateTime": now,
            "isWorking": kind in ("MARKET", "LIMIT", "LIMIT_MAKER"),
            "workingTime": now,
            "origQuoteOrderQty": "0.00000000",
            "selfTradePreventionMode": "NONE",
        }
        if not order["isWorking"]:
            order["workingTime"] = -1
        if "trailingDelta" in params:
            order.update(trailingDelta=int(params["trailingDelta"]), trailingTime=-1)
            self.peaks[order["orderId"]] = self.last_price()
        self.orders.append(order)
        self.most_resting[side] = max(self.most_resting[side], len(self.resting_limits(side)))
        fills: list[dict[str, Any]] = []
        if kind == "MARKET":
            fee = (qty if side == "BUY" else cost) * self.fee_rate
            fee_asset = self.base if side == "BUY" else self.quote
            self._fill(order, price)
            fills = [
                {
                    "price": f"{price:.8f}",
                    "qty": f"{qty:.8f}",
                    "commission": f"{fee:.8f}",
                    "commissionAsset": fee_asset,
                    "tradeId": 5000 + len(self.orders),
                }
            ]
        if self.order_delay_s:
            await asyncio.sleep(self.order_delay_s)  # placed (and filled), but the answer is late
        return web.json_response({**order, "transactTime": now, "fills": fills})

    async def _get_order(self, params: dict[str, str]) -> web.Response:
        found = self._find(params)
        if found is None:
            return _err(400, -2013, "Order does not exist.")
        return web.json_response(found)

    async def _cancel_order(self, params: dict[str, str]) -> web.Response:
        found = self._find(params)
        if found is None or found["status"] not in OPEN:
            return _err(400, -2011, "Unknown order sent.")
        found.update(status="CANCELED", updateTime=int(time.time() * 1000))
        return web.json_response(found)
