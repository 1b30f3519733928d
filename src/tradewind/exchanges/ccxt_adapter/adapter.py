"""Every other exchange through ccxt: one adapter class, configured by exchange id.

Market data comes from one public ccxt instance (``watch_ohlcv`` where ccxt.pro has it for the venue,
else ``fetch_ohlcv`` polled every ``Venue.poll_s``; ticks through ``ticks.TickFeed``); account calls use
one instance per API key, created on first use, with ccxt's rate limiter on and the account's sandbox
flag applied. ccxt's exception classes become ours, so shared code never sees ccxt.

Order types, through ccxt's unified API; which of them a venue holds is read from ccxt's ``has``:
  market         create_order(symbol, "market", side, amount)
  limit          create_order(symbol, "limit", side, amount, price)                 (binance: LIMIT GTC)
  post-only      create_order(symbol, "limit", ..., price, {"postOnly": True})      (binance: LIMIT_MAKER)
  stop           create_stop_loss_order(symbol, "market", ..., stopLossPrice)     (binance: STOP_LOSS)
  take_profit    create_take_profit_order(symbol, "limit", ..., price, takeProfitPrice=price)
                                                                         (binance: TAKE_PROFIT_LIMIT)
  trailing_stop  create_trailing_percent_order(symbol, "market", ..., trailingPercent)
                                                   (binance: STOP_LOSS with trailingDelta in basis points)
ccxt has no unified one-cancels-the-other order nor a good-till-date limit: a take-profit with a stop
price, or a limit order that expires, is refused here rather than placed as something else. A post-only
order goes only where ccxt sends ``postOnly`` (``has['createPostOnlyOrder']`` or ``Venue.post_only``),
never as a plain limit; one the venue refuses because it would take comes back "rejected".
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import aclosing
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

import ccxt
import ccxt.async_support as ccxt_async

from tradewind.bus.messages import Candle, Tick
from tradewind.config import Settings
from tradewind.domain import TIMEFRAMES, tf_ms
from tradewind.exchanges.base import (
    AuthError,
    Capabilities,
    Credentials,
    ExchangeError,
    ExchangeUnavailable,
    OrderRejected,
    OrderResult,
    OrderSpec,
)
from tradewind.exchanges.ccxt_adapter.ticks import TickFeed
from tradewind.exchanges.ccxt_adapter.venues import Venue, venue
from tradewind.exchanges.series import CandleSeries, Row, closed_candle, fan_in

log = logging.getLogger(__name__)

_STATUS = {
    "open": "open",
    "closed": "filled",
    "canceled": "canceled",
    "canceling": "open",  # asked to cancel, not yet canceled: it may still fill
    "expired": "canceled",
    "rejected": "rejected",
}

# Our order type -> the ccxt ``has`` entry saying the venue holds it (True, or "emulated" by ccxt through
# createOrder's params, which still places it on the venue).
_HAS = {
    "stop": "createStopLossOrder",
    "take_profit": "createTakeProfitOrder",
    "trailing_stop": "createTrailingPercentOrder",
}
_NAMES = {
    "limit": "a limit order",
    "stop": "a stop-loss",
    "take_profit": "a take-profit",
    "trailing_stop": "a trailing stop",
    "oco": "a take-profit and stop pair (OCO)",
}
# Extra createOrder params a venue wants for a trailing stop (binance spot: which kind of trigger order).
_TRAILING_PARAMS: dict[str, dict[str, Any]] = {"binance": {"stopLossOrTakeProfit": "stopLoss"}}


def order_types_of(has: dict[str, Any]) -> frozenset[str]:
    """The order types besides market that a venue holds itself, from ccxt's ``has``."""
    types = {"limit"} if has.get("createLimitOrder", True) not in (False, None) else set()
    types |= {ours for ours, key in _HAS.items() if has.get(key) in (True, "emulated")}
    return frozenset(types)


def post_only_of(has: dict[str, Any], v: Venue) -> bool:
    """Whether ccxt sends post-only limit orders to this venue: the venue's data, else ccxt's ``has``."""
    if v.post_only is not None:
        return v.post_only
    return has.get("createPostOnlyOrder") in (True, "emulated")


def reason_of(exc: BaseException, exchange_id: str) -> str:
    """ccxt's message without its exchange-id prefix; the venue's own 'msg' when it sent JSON."""
    text = str(exc).removeprefix(exchange_id).strip()
    try:
        body = json.loads(text[text.index("{") :]) if "{" in text else None
    except ValueError:
        body = None
    if isinstance(body, dict):
        return str(body.get("msg") or body.get("message") or body.get("error") or text)
    return text or type(exc).__name__


def translate(exc: Exception, exchange_id: str, *, order_call: bool = False) -> Exception:
    """A ccxt exception as ours: auth -> AuthError, refusal -> OrderRejected, network -> ExchangeUnavailable."""
    reason = reason_of(exc, exchange_id)
    if isinstance(exc, ccxt.AuthenticationError):  # includes PermissionDenied, AccountSuspended
        return AuthError(f"{exchange_id} refused the API key: {reason}")
    if isinstance(
        exc, ccxt.NetworkError
    ):  # RequestTimeout, ExchangeNotAvailable, DDoSProtection, InvalidNonce
        return ExchangeUnavailable(f"{exchange_id} is unavailable: {reason}")
    if order_call and isinstance(exc, ccxt.BaseError):  # InsufficientFunds, InvalidOrder, BadSymbol, ...
        return OrderRejected(reason)  # the exchange answered: nothing was placed
    if isinstance(exc, ccxt.BaseError):
        return ExchangeError(f"{exchange_id}: {reason}")
    return exc


def rehost(value: Any, base: str) -> Any:
    """ccxt URLs (a string or nested dicts of them) with scheme and host replaced by ``base``, paths kept."""
    if isinstance(value, str):
        parts = urlsplit(value)
        return base + value[len(f"{parts.scheme}://{parts.netloc}") :] if parts.netloc else value
    if isinstance(value, dict):
        return {k: rehost(v, base) for k, v in value.items()}
    return value


def _pro_class(exchange_id: str) -> Any:
    import ccxt.pro  # imported on demand: a second of start-up that polling and the CLI do without

    cls = getattr(ccxt.pro, exchange_id, None)
    if cls is None:
        raise ExchangeError(f"ccxt has no websocket support for {exchange_id}")
    return cls


def _pro_has_ohlcv(exchange_id: str) -> bool:
    try:
        return bool(_pro_class(exchange_id)().has.get("watchOHLCV"))  # no I/O: ccxt connects on first use
    except ExchangeError:
        return False


def _rows(raw: Any, exchange_id: str) -> list[Row]:
    """ccxt's OHLCV lists as rows; an answer that is not candles (a proxy's error page, a changed format)
    is an ExchangeError, so the stream backs off and asks again instead of dying on a TypeError."""
    try:
        return [
            (int(r[0]), float(r[1]), float(r[2]), float(r[3]), float(r[4]), float(r[5] or 0)) for r in raw
        ]
    except (TypeError, ValueError, IndexError, KeyError):
        raise ExchangeError(f"{exchange_id} sent candles that cannot be read: {str(raw)[:100]}") from None


def _dec(value: Any) -> Decimal:
    if value is None:
        return Decimal("0")
    return Decimal(repr(value)) if isinstance(value, float) else Decimal(str(value))


class CcxtAdapter:
    """Any exchange ccxt supports. ``urls`` replaces entries of ccxt's ``urls['api']`` (its own format);
    ``settings.ccxt_urls[exchange_id]`` replaces the host of every API URL."""

    def __init__(
        self,
        exchange_id: str,
        settings: Settings,
        *,
        urls: dict[str, Any] | None = None,
        sandbox: bool = False,
        poll_interval_s: float | None = None,
        request_timeout_s: float | None = None,
        use_websocket: bool | None = None,
        tick_interval_s: float | None = None,
    ) -> None:
        if exchange_id not in ccxt.exchanges:
            raise ExchangeError(f"ccxt does not know the exchange {exchange_id!r}")
        self.id = exchange_id
        self.venue = venue(exchange_id)
        self.urls = urls or {}
        self.base_url = settings.ccxt_urls.get(exchange_id)
        self.sandbox = sandbox
        self.timeout_s = request_timeout_s if request_timeout_s is not None else settings.exchange_timeout_s
        self.poll_s = poll_interval_s if poll_interval_s is not None else self.venue.poll_s
        self.public = self._make(getattr(ccxt_async, exchange_id), sandbox)
        # An overridden REST URL says nothing about the venue's websocket host: poll REST there.
        if use_websocket is None:
            use_websocket = not (self.urls or self.base_url) and _pro_has_ohlcv(exchange_id)
        self.use_websocket = use_websocket
        self._pro = self._make(_pro_class(exchange_id), sandbox) if use_websocket else None
        self._accounts: dict[tuple[str, str, bool], Any] = {}
        self._markets_lock = asyncio.Lock()
        self._ticks = TickFeed(
            exchange_id,
            self.public,
            self._pro,
            interval_s=tick_interval_s if tick_interval_s is not None else self.venue.tick_poll_s,
            call=self._call,
            ready=self._markets,
        )
        self.capabilities = Capabilities(
            name=exchange_id,
            timeframes=tuple(tf for tf in TIMEFRAMES if tf in (self.public.timeframes or {})),
            streams_candles=self.use_websocket,
            history_page_limit=self.venue.history_limit,
            client_id_max_len=self.venue.client_id_max_len,
            pushes_fills=False,
            has_sandbox=bool(self.public.urls.get("test")),
            min_poll_interval_s=max(1.0, self.poll_s),
            symbols=tuple(settings.ccxt_symbols.get(exchange_id, [])),
            order_types=order_types_of(self.public.has),  # ccxt's has is static: no call needed
            streams_ticks=self._ticks.available,
            post_only=post_only_of(self.public.has, self.venue),
        )

    # -- instances ------------------------------------------------------------------------------------
    def _make(self, cls: Any, sandbox: bool, creds: Credentials | None = None) -> Any:
        config: dict[str, Any] = {
            "enableRateLimit": True,
            "timeout": int(self.timeout_s * 1000),
            "options": json.loads(json.dumps(self.venue.options)),  # a copy: ccxt mutates its options
        }
        if creds is not None:
            config.update(apiKey=creds.api_key, secret=creds.api_secret)
        ex = cls(config)
        if sandbox:
            if not ex.urls.get("test"):
                raise ExchangeError(f"{self.id} has no sandbox/testnet in ccxt")
            ex.set_sandbox_mode(True)
        self._override_urls(ex)
        return ex

    def _override_urls(self, ex: Any) -> None:
        api = ex.urls.get("api")
        if self.urls:
            if isinstance(api, dict):
                api.update(self.urls)
            else:
                ex.urls["api"] = dict(self.urls)
        if self.base_url:
            ex.urls["api"] = rehost(ex.urls.get("api"), self.base_url.rstrip("/"))

    async def _markets(self) -> None:
        async with self._markets_lock:
            if not self.public.markets:
                try:
                    await self.public.load_markets()
                except ccxt.BaseError as exc:
                    raise translate(exc, self.id) from None

    async def _account(self, creds: Credentials) -> Any:
        if not creds.api_key or not creds.api_secret:
            raise AuthError(f"this trading account has no {self.id} API key")
        sandbox = creds.sandbox or self.sandbox
        # Keyed by the secret too (hashed): a key whose secret was replaced gets a new instance.
        key = (creds.api_key, hashlib.sha256(creds.api_secret.encode()).hexdigest(), sandbox)
        ex = self._accounts.get(key)
        if ex is None:
            ex = self._accounts[key] = self._make(getattr(ccxt_async, self.id), sandbox, creds)
        if not ex.markets:
            if sandbox == self.sandbox:
                await self._markets()
                ex.set_markets(self.public.markets, self.public.currencies)
            else:
                await self._call(ex.load_markets())
        return ex

    async def _call(self, awaitable: Any, *, order_call: bool = False) -> Any:
        try:
            return await awaitable
        except ccxt.BaseError as exc:
            raise translate(exc, self.id, order_call=order_call) from None

    async def start(self) -> None:
        try:
            await self._markets()
        except ExchangeUnavailable as exc:
            # Not fatal: every call loads the markets on first use, and accounts on the venue's testnet
            # never need the live API at all. A venue that is down must not keep its service down.
            log.warning("%s: markets not loaded at start (%s); loading them on first use", self.id, exc)

    async def close(self) -> None:
        instances = [self.public, *self._accounts.values(), *([self._pro] if self._pro else [])]
        self._accounts.clear()
        for ex in instances:
            try:
                await ex.close()
            except Exception:  # closing is best effort; a broken session must not block shutdown
                log.debug("%s: closing a ccxt instance failed", self.id, exc_info=True)

    # -- market data ----------------------------------------------------------------------------------
    async def _ohlcv(self, symbol: str, tf: str, since: int | None, limit: int) -> list[Row]:
        await self._markets()
        try:
            raw = await self._call(self.public.fetch_ohlcv(symbol, tf, since=since, limit=limit))
        except (
            TypeError,
            ValueError,
            IndexError,
            KeyError,
        ):  # ccxt's parser on an answer that is not candles
            raise ExchangeError(f"{self.id} sent candles that cannot be read") from None
        return _rows(raw, self.id)

    async def fetch_history(self, symbol: str, tf: str, since: int, until: int | None = None) -> list[Candle]:
        size = tf_ms(tf)
        now = int(time.time() * 1000)
        rows = await self._ohlcv(symbol, tf, since, self.venue.history_limit)
        end = min(until, now) if until is not None else now
        recv_ns = time.time_ns()
        return [
            self._candle(symbol, tf, r, recv_ns) for r in rows if since <= r[0] < end and r[0] + size <= now
        ]

    async def stream_candles(self, symbols: list[str], tf: str) -> AsyncIterator[Candle]:
        size = tf_ms(tf)
        queue: asyncio.Queue[Candle] = asyncio.Queue()
        run = self._watch if self._pro is not None else self._poll
        runs = [run(s, tf, self._series(s, tf, size), queue) for s in symbols]
        async with aclosing(fan_in(runs, queue)) as candles:
            async for candle in candles:
                yield candle

    def _series(self, symbol: str, tf: str, size: int) -> CandleSeries:
        async def backfill(start: int, end: int) -> list[Row]:
            out: list[Row] = []
            while start < end:
                page = [
                    r
                    for r in await self._ohlcv(symbol, tf, start, self.venue.history_limit)
                    if start <= r[0] < end
                ]
                out += page
                if not page:
                    break
                start = page[-1][0] + size
            return out

        return CandleSeries(size, backfill)

    async def _poll(self, symbol: str, tf: str, series: CandleSeries, queue: asyncio.Queue[Candle]) -> None:
        """REST polling: each answer's last candle is the open one; everything before it is closed."""
        failures = 0
        while True:
            try:
                since = (
                    series.pending[0]
                    if series.pending
                    else (series.last_emitted + series.tf_ms if series.last_emitted is not None else None)
                )
                rows = await self._ohlcv(symbol, tf, since, self.venue.history_limit if since else 100)
                recv_ns = time.time_ns()
                for i, row in enumerate(rows):
                    closed = i < len(rows) - 1
                    for out in await series.update(row, closed=closed):
                        await queue.put(self._candle(symbol, tf, out, recv_ns))
                failures = 0
                await asyncio.sleep(self.poll_s)
            except ExchangeError as exc:
                failures += 1
                log.warning("%s: polling %s failed (%s); retry %d", self.id, symbol, exc, failures)
                await asyncio.sleep(min(self.poll_s * 2 ** min(failures, 6), 60))

    async def _watch(self, symbol: str, tf: str, series: CandleSeries, queue: asyncio.Queue[Candle]) -> None:
        """ccxt.pro websocket: ccxt reconnects on the next call after an error; the open candle is then
        forgotten and the gap before the next candle is backfilled from REST by the series."""
        pro = self._pro
        assert pro is not None  # stream_candles watches only with a ccxt.pro client
        failures = 0
        while True:
            try:
                raw = await self._call(pro.watch_ohlcv(symbol, tf))
                recv_ns = time.time_ns()
                for row in sorted(_rows(raw, self.id)):
                    for out in await series.update(row):
                        await queue.put(self._candle(symbol, tf, out, recv_ns))
                failures = 0
            except ExchangeError as exc:
                failures += 1
                series.forget_open()
                log.warning(
                    "%s: candle websocket for %s failed (%s); retry %d", self.id, symbol, exc, failures
                )
                await asyncio.sleep(min(0.5 * 2 ** min(failures, 6), 30))

    def stream_ticks(self, symbols: list[str]) -> AsyncIterator[Tick]:
        """Best bid and ask of these markets: ccxt.pro's tickers where the venue streams them, else REST
        polls at most once a second per market within ccxt's ``rateLimit`` (see ``ticks``)."""
        return self._ticks.stream(symbols)

    def _candle(self, symbol: str, tf: str, row: Row, recv_ns: int) -> Candle:
        return closed_candle(self.id, symbol, tf, row, recv_ns, uuid.uuid4().hex[:16])

    # -- account --------------------------------------------------------------------------------------
    async def fetch_balances(self, creds: Credentials) -> dict[str, Decimal]:
        ex = await self._account(creds)
        balance = await self._call(ex.fetch_balance())
        return {asset: _dec(free) for asset, free in (balance.get("free") or {}).items() if free is not None}

    def _refuse(self, what: str) -> OrderRejected:
        return OrderRejected(f"{self.id} cannot hold {_NAMES[what]}; core watches it")

    def _check(self, order: OrderSpec) -> None:
        """Refuse, before any call, an order this venue cannot hold as asked: never a market order instead."""
        kind = order.type
        if kind not in ("market", "limit", *_HAS):
            raise OrderRejected(f"unknown order type {kind!r}")
        if kind != "market" and kind not in self.capabilities.order_types:
            raise self._refuse(kind)
        if order.post_only and kind != "limit":
            raise OrderRejected(
                f"only a limit order can be post-only, not {_NAMES.get(kind, 'a market order')}"
            )
        if order.post_only and not self.capabilities.post_only:
            raise OrderRejected(f"{self.id} cannot place post-only orders through ccxt")
        if (
            kind == "take_profit"
            and order.stop_price is not None
            and "oco" not in self.capabilities.order_types
        ):
            raise self._refuse("oco")
        # ccxt has no unified good-till-date: a limit order with ``expires_at`` is placed good-till-cancelled
        # and core cancels it at its expiry (it does so for every venue; a venue that expires it itself has
        # then answered the cancel with its final state).
        if kind in ("limit", "take_profit") and order.price is None:
            raise OrderRejected(f"{_NAMES[kind]} needs a price")
        if kind == "stop" and order.stop_price is None:
            raise OrderRejected("a stop-loss needs a stop price")
        if kind == "trailing_stop" and (order.trail is None or not 0 < order.trail < 1):
            raise OrderRejected(f"a trailing stop needs a trail between 0 and 1, not {order.trail}")

    async def _create(self, ex: Any, order: OrderSpec, params: dict[str, Any]) -> Any:
        symbol, side, amount = order.symbol, order.side, float(order.amount)
        price = float(order.price) if order.price is not None else None
        if order.type == "market":
            return await ex.create_order(symbol, "market", side, amount, None, params)
        if order.type == "limit":
            extra = {**params, "postOnly": True} if order.post_only else params
            return await ex.create_order(symbol, "limit", side, amount, price, extra)
        if order.type == "stop":
            assert order.stop_price is not None
            return await ex.create_stop_loss_order(
                symbol, "market", side, amount, None, float(order.stop_price), params
            )
        if order.type == "take_profit":  # a limit at price that the venue places when the price is reached
            return await ex.create_take_profit_order(symbol, "limit", side, amount, price, price, params)
        assert order.type == "trailing_stop" and order.trail is not None
        # ccxt takes a percentage; venues take whole basis points (binance's trailingDelta)
        percent = (order.trail * 10_000).quantize(Decimal(1)) / 100
        extra = {**params, **_TRAILING_PARAMS.get(self.id, {})}
        return await ex.create_trailing_percent_order(
            symbol, "market", side, amount, None, float(percent), None, extra
        )

    async def place_order(self, creds: Credentials, order: OrderSpec) -> OrderResult:
        self._check(order)
        ex = await self._account(creds)
        params = {self.venue.client_id_param: order.client_order_id}
        try:
            placed = await self._create(ex, order, params)
        except self.venue.duplicate_errors:
            found = await self.fetch_order(creds, order.client_order_id, order.symbol)
            if found is None:
                raise OrderRejected(
                    "the exchange reports a duplicate client order id it cannot find"
                ) from None
            return found  # placed before (a retry after a lost answer): that order is the answer
        except ccxt.BaseError as exc:
            if order.post_only and self._would_take(exc):
                # the venue answered: nothing was placed, and the same quote would be refused again
                return OrderResult(
                    client_order_id=order.client_order_id,
                    status="rejected",
                    reason=f"post-only order refused: it would take liquidity ({reason_of(exc, self.id)})",
                )
            raise translate(exc, self.id, order_call=True) from None
        return self._result(order.client_order_id, placed)

    def _would_take(self, exc: ccxt.BaseError) -> bool:
        """Whether the venue refused a post-only order because it would have matched at once."""
        if isinstance(exc, ccxt.OrderImmediatelyFillable):
            return True
        return isinstance(exc, ccxt.InvalidOrder) and any(
            words in str(exc) for words in self.venue.post_only_refusals
        )

    async def fetch_order(self, creds: Credentials, client_order_id: str, symbol: str) -> OrderResult | None:
        ex = await self._account(creds)
        try:
            found = await ex.fetch_order(None, symbol, {self.venue.lookup_param: client_order_id})
        except ccxt.OrderNotFound:
            return None
        except ccxt.BaseError as exc:
            raise translate(exc, self.id) from None
        return self._result(client_order_id, found)

    async def cancel_order(self, creds: Credentials, client_order_id: str, symbol: str) -> OrderResult:
        ex = await self._account(creds)
        try:
            await ex.cancel_order(None, symbol, {self.venue.lookup_param: client_order_id})
        except ccxt.OrderNotFound:
            pass  # already filled or canceled: its state below is the answer
        except ccxt.BaseError as exc:
            raise translate(exc, self.id) from None
        found = await self.fetch_order(creds, client_order_id, symbol)
        if found is None:
            raise ExchangeError(f"{self.id} has no order {client_order_id}")
        return found

    def _result(self, client_order_id: str, o: dict[str, Any]) -> OrderResult:
        fees = [
            f
            for f in (o.get("fees") or ([o["fee"]] if o.get("fee") else []))
            if f and f.get("cost") is not None
        ]
        price = o.get("average") or o.get("price")
        return OrderResult(
            client_order_id=client_order_id,
            status=_STATUS.get(o.get("status") or "open", "open"),
            exchange_order_id=str(o["id"]) if o.get("id") is not None else None,
            filled=_dec(o.get("filled")),
            price=_dec(price) if price else None,
            fee=sum((_dec(f["cost"]) for f in fees), Decimal("0")),
            fee_asset=fees[0].get("currency") if fees else None,
            time=int(o.get("lastTradeTimestamp") or o.get("timestamp") or 0),
        )
