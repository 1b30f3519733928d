"""The native Bitfinex adapter: websocket v2 candles and ticks, REST v2 history, wallets and orders.

Client order ids: Bitfinex identifies an order by an integer ``cid`` together with ``cid_date`` (the
UTC day it was placed). Our string client order id maps to a deterministic 45-bit integer, so a
retry, a restart or another replica computes the same ``cid`` and finds the same order.

Order types (``POST auth/w/order/submit``, exchange wallet, amounts negative for sells):
  market         EXCHANGE MARKET
  limit          EXCHANGE LIMIT at ``price``; ``tif`` "YYYY-MM-DD HH:MM:SS" (UTC) when it expires; a quote
                 (``post_only``) with ``flags`` POSTONLY (4096): Bitfinex cancels it rather than let it take
                 liquidity, its status then reads "POSTONLY CANCELED", which is ours "rejected"
  stop           EXCHANGE STOP with ``price`` = the stop price (a market order once triggered)
  take_profit    EXCHANGE LIMIT at ``price``; with a stop price too, ``flags`` OCO (16384) and
                 ``price_oco_stop``: Bitfinex then holds a second order, an EXCHANGE STOP whose
                 PLACED_ID is the limit's id, and cancels whichever leg did not fill
  trailing_stop  EXCHANGE TRAILING STOP with ``price_trailing`` = the distance in quote currency
                 (Bitfinex's trailing distance is absolute, fixed when the order is placed)
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from tradewind.bus.messages import Candle, Tick
from tradewind.config import Settings
from tradewind.domain import tf_ms
from tradewind.exchanges.base import (
    AuthError,
    Capabilities,
    Credentials,
    ExchangeError,
    OrderRejected,
    OrderResult,
    OrderSpec,
)
from tradewind.exchanges.bitfinex import symbols as names
from tradewind.exchanges.bitfinex.rest import CANDLES_PAGE, BitfinexHttp
from tradewind.exchanges.bitfinex.stream import PublicFeed, StreamTiming
from tradewind.exchanges.series import Row, closed_candle, fill_gaps

CID_BITS = 45  # Bitfinex's cid is an int45
DAY_MS = 86_400_000
HISTORY_SCAN = 2500  # orders/hist's maximum page; Bitfinex keeps closed orders there for two weeks

# Order array fields (docs.bitfinex.com "Order" object)
O_ID, O_CID, O_SYMBOL, O_CREATED, O_UPDATED, O_AMOUNT, O_AMOUNT_ORIG = 0, 2, 3, 4, 5, 6, 7
O_TYPE, O_TYPE_PREV, O_FLAGS, O_STATUS, O_PRICE_AVG, O_PLACED_ID = 8, 9, 12, 13, 17, 25

FLAG_POST_ONLY = 4096  # a quote: Bitfinex cancels the order ("POSTONLY CANCELED") if it would take liquidity
FLAG_OCO = 16384  # one-cancels-the-other: with price_oco_stop, a stop order is placed beside the limit
POST_ONLY_REFUSED = "post-only: Bitfinex canceled the quote because it would have taken liquidity"
# The order types besides market this adapter places for Bitfinex to hold (see the module docstring).
ORDER_TYPES = frozenset({"limit", "stop", "take_profit", "trailing_stop", "oco"})
# Trade array fields (auth/r/order/{symbol}:{id}/trades)
T_FEE, T_FEE_CURRENCY = 9, 10


def cid_of(client_order_id: str) -> int:
    """Our client order id as Bitfinex's integer ``cid``: the top 45 bits of its SHA-256."""
    return int.from_bytes(hashlib.sha256(client_order_id.encode()).digest()[:8], "big") >> (64 - CID_BITS)


def cid_date(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d")


def _day_ms(day: str) -> int:
    """A ``cid_date`` as the epoch milliseconds of its midnight (UTC)."""
    return int(datetime.strptime(day, "%Y-%m-%d").replace(tzinfo=UTC).timestamp() * 1000)


def _dec(value: Any) -> Decimal:
    return Decimal(repr(value)) if isinstance(value, float) else Decimal(str(value or 0))


def order_status(text: str) -> str:
    """Bitfinex's order status text as ours. Bitfinex writes what happened last, then what was before:
    'ACTIVE', 'PARTIALLY FILLED @ 107.6(-0.1)', 'EXECUTED @ 107.6(-0.2): was PARTIALLY FILLED @ ...',
    'CANCELED', 'CANCELED was: PARTIALLY FILLED @ ...' (also the leg of an OCO pair that did not fill),
    'POSTONLY CANCELED', 'IOC CANCELED', 'INSUFFICIENT MARGIN was: ...', 'RSN_DUST', 'RSN_PAUSE'.
    A post-only order Bitfinex canceled because it would have taken liquidity was refused, not canceled."""
    upper = text.upper()
    head = upper.split(" WAS:", 1)[0].split(": WAS", 1)[0]  # the current state, not the history after it
    if head.startswith("EXECUTED"):
        return "filled"
    if "POSTONLY" in head:
        return "rejected"
    if "CANCELED" in head or "EXPIRED" in head:
        return "canceled"
    if "INSUFFICIENT" in head or head.startswith("RSN_"):
        return "rejected"
    return "open"  # ACTIVE, PARTIALLY FILLED


def _field(arr: list[Any], i: int) -> Any:
    return arr[i] if len(arr) > i else None


def _num(value: Decimal) -> str:
    """A decimal as Bitfinex's decimal string: no exponent, no trailing zeros."""
    text = format(value, "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def _price(value: Decimal) -> str:
    """A price as Bitfinex keeps it: five significant digits, at most eight decimals (a stop computed
    as entry * (1 - x) has many more)."""
    if value <= 0:
        raise OrderRejected(f"a price must be positive, not {value}")
    rounded = value.quantize(Decimal(1).scaleb(max(value.adjusted() - 4, -8)))
    return _num(rounded)


def tif_of(expires_at_ms: int) -> str:
    """Epoch milliseconds as Bitfinex's ``tif``: a UTC datetime string."""
    return datetime.fromtimestamp(expires_at_ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S")


def trailing_distance(order: OrderSpec) -> Decimal:
    """A trailing stop's absolute distance: ``trail`` times its reference price, which is ``price`` if
    given, else the one its current stop level was computed from (the highest price for a sell, so
    stop = ref * (1 - trail); the lowest for a buy, stop = ref * (1 + trail))."""
    trail = order.trail
    if trail is None or not 0 < trail < 1:
        raise OrderRejected(f"a trailing stop needs a trail between 0 and 1, not {trail}")
    if order.price is not None:
        ref = order.price
    elif order.stop_price is not None:
        ref = order.stop_price / (1 - trail if order.side == "sell" else 1 + trail)
    else:
        raise OrderRejected(
            "a trailing stop needs a reference price or its stop price: Bitfinex trails by an amount"
        )
    return trail * ref


def submit_body(order: OrderSpec, cid: int, bfx_symbol: str) -> dict[str, Any]:
    """The body of ``auth/w/order/submit`` for this order. Raises OrderRejected for a type or a missing
    field Bitfinex cannot take, before anything is sent."""
    if order.side not in ("buy", "sell"):
        raise OrderRejected(f"an order's side is buy or sell, not {order.side!r}")
    if order.amount <= 0:
        raise OrderRejected(f"an order's amount must be positive, not {order.amount}")
    amount = order.amount if order.side == "buy" else -order.amount
    body: dict[str, Any] = {"symbol": bfx_symbol, "amount": _num(amount), "cid": cid}
    kind = order.type
    if order.expires_at is not None and kind != "limit":
        raise OrderRejected(f"only a limit order can expire on Bitfinex, not a {kind} order")
    if order.post_only and kind != "limit":
        raise OrderRejected(f"only a limit order can be post-only, not a {kind} order")
    if kind == "market":
        body["type"] = "EXCHANGE MARKET"
    elif kind == "limit":
        if order.price is None:
            raise OrderRejected("a limit order needs a price")
        body.update(type="EXCHANGE LIMIT", price=_price(order.price))
        if order.expires_at is not None:
            body["tif"] = tif_of(order.expires_at)
        if order.post_only:
            body["flags"] = FLAG_POST_ONLY
    elif kind == "stop":
        if order.stop_price is None:
            raise OrderRejected("a stop order needs a stop price")
        body.update(type="EXCHANGE STOP", price=_price(order.stop_price))
    elif kind == "take_profit":
        if order.price is None:
            raise OrderRejected("a take-profit order needs a price")
        body.update(type="EXCHANGE LIMIT", price=_price(order.price))
        if order.stop_price is not None:
            body.update(flags=FLAG_OCO, price_oco_stop=_price(order.stop_price))
    elif kind == "trailing_stop":
        body.update(type="EXCHANGE TRAILING STOP", price_trailing=_price(trailing_distance(order)))
    else:
        raise OrderRejected(f"Bitfinex has no order type {kind!r} in tradewind")
    return body


class BitfinexAdapter:
    """Bitfinex, natively. URLs and markets from settings; timing knobs for tests."""

    def __init__(
        self,
        settings: Settings,
        *,
        timing: StreamTiming | None = None,
        request_timeout_s: float | None = None,
        clock: Callable[[], float] = time.time,
        name: str = "bitfinex",
    ) -> None:
        self.settings = settings
        self.timing = timing or StreamTiming()
        self.clock = clock
        self.capabilities = Capabilities(
            name=name,
            timeframes=tuple(names.TIMEFRAMES),
            streams_candles=True,
            history_page_limit=CANDLES_PAGE,
            client_id_max_len=64,
            client_id_numeric=True,
            pushes_fills=False,
            has_sandbox=False,
            min_poll_interval_s=1.0,
            symbols=tuple(names.to_platform(s) for s in settings.bitfinex_symbols),
            order_types=ORDER_TYPES,
            streams_ticks=True,
            post_only=True,
        )
        timeout = request_timeout_s if request_timeout_s is not None else settings.exchange_timeout_s
        self.http = BitfinexHttp(settings.bitfinex_rest_url, settings.bitfinex_auth_url, timeout)
        self._cid_dates: dict[int, str] = {}  # cid -> the day we submitted it, for lookups before a restart
        self._pairs: set[int] = set()  # cids of OCO pairs: cancelled by id, leg by leg (see cancel_order)
        self._feeds: list[PublicFeed] = []  # market-data connections, shared by a candle and a tick reader

    async def start(self) -> None:
        for s in self.settings.bitfinex_symbols:
            names.to_platform(s)  # fail fast on a misspelt TRADEWIND_BITFINEX_SYMBOLS

    async def close(self) -> None:
        await self.http.close()

    # -- market data ----------------------------------------------------------------------------------
    async def stream_candles(self, symbols: list[str], tf: str) -> AsyncIterator[Candle]:
        async def backfill(symbol: str, start: int, end: int) -> list[Row]:
            return await self._backfill(symbol, tf, start, end)

        feed = self._feed(symbols, ticks=False)
        async with contextlib.aclosing(feed.candles(tf, tf_ms(tf), backfill)) as candles:
            async for candle in candles:  # closed with this generator: its reader leaves the feed at once
                yield candle

    async def stream_ticks(self, symbols: list[str]) -> AsyncIterator[Tick]:
        """The markets' newest ticks, on the connections that carry their candles when both are read: an
        unread tick is replaced by its market's next one, and the candles never wait for the tick reader."""
        feed = self._feed(symbols, ticks=True)
        async with contextlib.aclosing(feed.ticks()) as ticks:
            async for tick in ticks:
                yield tick

    def _feed(self, symbols: list[str], *, ticks: bool) -> PublicFeed:
        """The feed of these markets with no reader of this kind yet (the other reader's, if it runs)."""
        for feed in self._feeds:
            taken = feed.tick_reader if ticks else feed.candle_reader
            if feed.symbols == list(symbols) and taken is None:
                return feed
        self._feeds = [f for f in self._feeds if not f.idle]
        feed = PublicFeed(
            self.settings.bitfinex_ws_url,
            list(symbols),
            self.timing,
            exchange=self.capabilities.name,
            clock=self.clock,
        )
        self._feeds.append(feed)
        return feed

    async def _backfill(self, symbol: str, tf: str, start: int, end: int) -> list[Row]:
        """Every candle Bitfinex has with open time in [start, end), paging as needed."""
        out: list[Row] = []
        bfx = names.to_bitfinex(symbol)
        while start < end:
            raw = await self.http.candles(bfx, names.timeframe(tf), start, end - 1)
            page = [r for r in raw if start <= r[0] < end]
            out += page
            if not page or len(raw) < CANDLES_PAGE:  # a short page is the whole rest of the range
                break
            start = page[-1][0] + 1
        return out

    async def fetch_history(self, symbol: str, tf: str, since: int, until: int | None = None) -> list[Candle]:
        """One page of closed candles in [since, until), minutes without trades filled flat (see series.fill_gaps)."""
        size = tf_ms(tf)
        now = int(self.clock() * 1000)
        end = min(until, now) if until is not None else now
        if end <= since:
            return []
        rows = await self.http.candles(names.to_bitfinex(symbol), names.timeframe(tf), since, end - 1)
        rows = [r for r in rows if since <= r[0] < end and r[0] + size <= now]
        recv_ns = time.time_ns()
        return [
            closed_candle(self.capabilities.name, symbol, tf, row, recv_ns) for row in fill_gaps(rows, size)
        ]

    # -- account --------------------------------------------------------------------------------------
    async def fetch_balances(self, creds: Credentials) -> dict[str, Decimal]:
        """Available balance of each currency in the exchange (spot) wallet."""
        wallets = await self.http.auth(creds, "auth/r/wallets")
        out: dict[str, Decimal] = {}
        for w in wallets or []:
            if len(w) >= 3 and w[0] == "exchange":
                available = (
                    w[4] if len(w) > 4 and w[4] is not None else w[2]
                )  # null until Bitfinex computes it
                out[names.currency(w[1])] = _dec(available)
        return out

    async def place_order(self, creds: Credentials, order: OrderSpec) -> OrderResult:
        cid = cid_of(order.client_order_id)
        try:
            body = submit_body(order, cid, names.to_bitfinex(order.symbol))
        except InvalidOperation:
            raise OrderRejected(f"the order's numbers cannot be read: {order}") from None
        # Remembered before the call: after a timeout the lookup by cid knows which day to search.
        self._cid_dates[cid] = cid_date(int(time.time() * 1000))
        if body.get("flags", 0) & FLAG_OCO:
            self._pairs.add(cid)
        try:
            note = await self.http.auth(creds, "auth/w/order/submit", body)
        except OrderRejected as exc:
            if "duplicate" in str(exc).lower():  # the same cid was placed before: that order is the answer
                found = await self.fetch_order(creds, order.client_order_id, order.symbol)
                if found is not None:
                    return found
            raise
        # A notification: [MTS, TYPE, MESSAGE_ID, null, DATA, CODE, STATUS, TEXT]
        if not isinstance(note, list) or len(note) < 8:
            raise ExchangeError(f"Bitfinex answered the order in an unexpected shape: {str(note)[:200]}")
        if note[6] in ("ERROR", "FAILURE"):
            raise OrderRejected(str(note[7]))
        data = note[4]
        if data and isinstance(data[0], list):  # an OCO pair answers with both legs: ours carries our cid
            arr = next((a for a in data if _field(a, O_CID) == cid), data[0])
        else:
            arr = data
        return self._result(order.client_order_id, arr)

    async def fetch_order(self, creds: Credentials, client_order_id: str, symbol: str) -> OrderResult | None:
        found = await self._find(creds, client_order_id, symbol)
        return None if found is None else await self._final(creds, client_order_id, found)

    async def fetch_orders(
        self, creds: Credentials, orders: list[tuple[str, str]]
    ) -> dict[str, OrderResult | None]:
        """Many orders of one account (client id, symbol) in one call, two when some have ended: every open
        order of the key (``auth/r/orders``), then the closed ones Bitfinex keeps (``auth/r/orders/hist``)
        for those not open. The exchange service watches an account's resting orders this way, so that a
        market maker's quotes cost one lookup a second however many rest, not one each."""
        open_now = await self.http.auth(creds, "auth/r/orders") or []
        out: dict[str, OrderResult | None] = {}
        ended: list[tuple[str, str]] = []
        for client_order_id, symbol in orders:
            legs = legs_of(open_now, cid_of(client_order_id), names.to_bitfinex(symbol))
            if legs:
                out[client_order_id] = self._result(client_order_id, pick(legs))
            else:
                ended.append((client_order_id, symbol))
        if not ended:
            return out
        days = [d for c, _ in ended if (d := self._cid_dates.get(cid_of(c)))]
        hist: dict[str, Any] = {"limit": HISTORY_SCAN}
        if len(days) == len(ended):  # each placed by this process: the days they can be found in
            hist.update(start=_day_ms(min(days)) - DAY_MS, end=_day_ms(max(days)) + 2 * DAY_MS)
        closed = await self.http.auth(creds, "auth/r/orders/hist", hist) or []
        for client_order_id, symbol in ended:
            legs = legs_of(closed, cid_of(client_order_id), names.to_bitfinex(symbol))
            out[client_order_id] = await self._final(creds, client_order_id, pick(legs)) if legs else None
        return out

    async def cancel_order(self, creds: Credentials, client_order_id: str, symbol: str) -> OrderResult:
        cid = cid_of(client_order_id)
        day = self._cid_dates.get(cid)
        if day is not None and cid not in self._pairs:
            return await self._cancel_by_cid(creds, client_order_id, symbol, cid, day)
        legs = await self._legs(creds, client_order_id, symbol)
        if not legs:
            raise ExchangeError(f"Bitfinex has no order {client_order_id}")
        # By id: exact for either leg of an OCO pair (the stop leg may have no cid of its own). Bitfinex
        # cancels a pair's other leg with it; a second round cancels a leg that is still open after that.
        for _ in range(2):
            open_legs = [a for a in legs if order_status(str(a[O_STATUS])) == "open"]
            if not open_legs:
                break
            try:
                await self.http.auth(creds, "auth/w/order/cancel", {"id": int(open_legs[0][O_ID])})
            except ExchangeError as exc:
                # Gone meanwhile (filled, or canceled with its sibling): what it became is read below.
                if exc.retryable or isinstance(exc, AuthError) or "not found" not in str(exc).lower():
                    raise
            legs = await self._legs(creds, client_order_id, symbol) or legs
        return self._result(client_order_id, pick(legs))

    async def _cancel_by_cid(
        self, creds: Credentials, client_order_id: str, symbol: str, cid: int, day: str
    ) -> OrderResult:
        """An order placed by this process, not an OCO pair: cancelled by its ``cid`` and ``cid_date`` in one
        call (by id it takes a lookup first). Bitfinex answers with the order as it was when the request
        arrived ("submitted for cancellation"); what it became (canceled, or filled meanwhile) is read
        from the closed orders, or, if it is not there yet, from the open ones."""
        arr: list[Any] | None = None
        try:
            note = await self.http.auth(creds, "auth/w/order/cancel", {"cid": cid, "cid_date": day})
        except ExchangeError as exc:
            # Gone already (filled, or cancelled before): what it became is read below.
            if exc.retryable or isinstance(exc, AuthError) or "not found" not in str(exc).lower():
                raise
        else:
            data = note[4] if isinstance(note, list) and len(note) > 4 else None
            arr = data[0] if data and isinstance(data[0], list) else data or None
            if arr is not None and order_status(str(arr[O_STATUS])) != "open":
                return await self._final(creds, client_order_id, arr)
        legs = await self._legs(creds, client_order_id, symbol, closed_first=True)
        if legs:
            return await self._final(creds, client_order_id, pick(legs))
        if arr is None:
            raise ExchangeError(f"Bitfinex has no order {client_order_id}")
        return self._result(client_order_id, arr)  # cancelling: the watch of the order reports the end

    async def _final(self, creds: Credentials, client_order_id: str, arr: list[Any]) -> OrderResult:
        """Our result of an order array, with the fees of what it filled once it has ended."""
        result = self._result(client_order_id, arr)
        if result.filled > 0 and result.status in ("filled", "canceled"):
            result = await self._with_fees(creds, result, arr)
        return result

    async def _find(self, creds: Credentials, client_order_id: str, symbol: str) -> list[Any] | None:
        legs = await self._legs(creds, client_order_id, symbol)
        return pick(legs) if legs else None

    async def _legs(
        self, creds: Credentials, client_order_id: str, symbol: str, *, closed_first: bool = False
    ) -> list[list[Any]]:
        """The order arrays of our order: the one with our cid (and, for an OCO pair, its stop leg, which
        Bitfinex links by PLACED_ID). Open orders first, then the closed ones Bitfinex keeps; the other
        way round for an order just cancelled (``closed_first``)."""
        cid = cid_of(client_order_id)
        bfx = names.to_bitfinex(symbol)
        day = self._cid_dates.get(cid)

        async def opened() -> list[list[Any]]:
            query: dict[str, Any] = {"cid": cid, "cid_date": day} if day else {}
            return legs_of(await self.http.auth(creds, "auth/r/orders", query) or [], cid, bfx)

        async def closed() -> list[list[Any]]:
            hist: dict[str, Any] = {"limit": HISTORY_SCAN}
            if day:
                hist.update(start=_day_ms(day) - DAY_MS, end=_day_ms(day) + 2 * DAY_MS)
            return legs_of(await self.http.auth(creds, "auth/r/orders/hist", hist) or [], cid, bfx)

        first, then = (closed, opened) if closed_first else (opened, closed)
        # an OCO pair's legs end together: when one fills, the other is canceled
        return await first() or await then()

    async def _with_fees(self, creds: Credentials, result: OrderResult, arr: list[Any]) -> OrderResult:
        trades = await self.http.auth(creds, f"auth/r/order/{arr[O_SYMBOL]}:{arr[O_ID]}/trades")
        fee = sum((-_dec(t[T_FEE]) for t in trades or []), Decimal("0"))  # Bitfinex reports fees negative
        asset = names.currency(trades[0][T_FEE_CURRENCY]) if trades else None
        return dataclasses.replace(result, fee=fee, fee_asset=asset)

    def _result(self, client_order_id: str, arr: list[Any]) -> OrderResult:
        filled = _filled(arr)
        avg = _field(arr, O_PRICE_AVG)
        text = str(arr[O_STATUS])
        status = order_status(text)
        if status == "rejected" and filled > 0:
            status = "canceled"  # ended by Bitfinex after a part filled: that part is ours
        reason = text if status in ("rejected", "canceled") and text.upper() != "CANCELED" else None
        if status == "rejected" and "POSTONLY" in text.upper():
            reason = f"{POST_ONLY_REFUSED} ({text})"
        placed_by = _field(arr, O_PLACED_ID)
        if status == "filled" and (int(_field(arr, O_FLAGS) or 0) & FLAG_OCO or placed_by is not None):
            # Which leg of a take-profit pair filled, as the paper engine says it: core's exit reason.
            types = f"{arr[O_TYPE]} {_field(arr, O_TYPE_PREV)}".upper()
            reason = "stop_loss" if placed_by is not None or "STOP" in types else "take_profit"
        return OrderResult(
            client_order_id=client_order_id,
            status=status,
            exchange_order_id=str(arr[O_ID]),
            filled=filled,
            price=_dec(avg) if avg and filled > 0 else None,
            time=int(arr[O_UPDATED] or arr[O_CREATED] or 0),
            reason=reason,
        )


def _filled(arr: list[Any]) -> Decimal:
    return abs(_dec(arr[O_AMOUNT_ORIG])) - abs(_dec(arr[O_AMOUNT]))


def legs_of(arrays: list[list[Any]], cid: int, bfx_symbol: str) -> list[list[Any]]:
    """Our order among Bitfinex's order arrays: those with our cid, and an OCO pair's stop leg (whose
    PLACED_ID is the limit's id, with or without our cid)."""
    mine = [a for a in arrays if a[O_CID] == cid and a[O_SYMBOL] == bfx_symbol]
    ids = {a[O_ID] for a in mine}
    return mine + [
        a
        for a in arrays
        if a[O_ID] not in ids and a[O_SYMBOL] == bfx_symbol and _field(a, O_PLACED_ID) in ids
    ]


def pick(legs: list[list[Any]]) -> list[Any]:
    """The leg that tells our order's state: one that executed, else one still open, else one that
    filled a part before it ended, else the first (the order itself, canceled or refused)."""
    for wanted in ("filled", "open"):
        for a in legs:
            if order_status(str(a[O_STATUS])) == wanted:
                return a
    return next((a for a in legs if _filled(a) > 0), legs[0])
