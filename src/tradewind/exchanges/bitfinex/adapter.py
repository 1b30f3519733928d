"""The native Bitfinex adapter: websocket v2 candles, REST v2 history, wallets and orders.

Client order ids: Bitfinex identifies an order by an integer ``cid`` together with ``cid_date`` (the
UTC day it was placed). Our string client order id maps to a deterministic 45-bit integer, so a
retry, a restart or another replica computes the same ``cid`` and finds the same order.
"""

from __future__ import annotations

import dataclasses
import hashlib
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from tradewind.bus.messages import Candle
from tradewind.config import Settings
from tradewind.domain import tf_ms
from tradewind.exchanges.base import (
    Capabilities,
    Credentials,
    ExchangeError,
    OrderRejected,
    OrderResult,
    OrderSpec,
)
from tradewind.exchanges.bitfinex import symbols as names
from tradewind.exchanges.bitfinex.rest import CANDLES_PAGE, BitfinexHttp
from tradewind.exchanges.bitfinex.stream import CandleStream, StreamTiming
from tradewind.exchanges.series import Row, fill_gaps

CID_BITS = 45  # Bitfinex's cid is an int45
HISTORY_SCAN = 2500  # orders/hist's maximum page; Bitfinex keeps closed orders there for two weeks

# Order array fields (docs.bitfinex.com "Order" object)
O_ID, O_CID, O_SYMBOL, O_CREATED, O_UPDATED, O_AMOUNT, O_AMOUNT_ORIG, O_STATUS, O_PRICE_AVG = (
    0,
    2,
    3,
    4,
    5,
    6,
    7,
    13,
    17,
)
# Trade array fields (auth/r/order/{symbol}:{id}/trades)
T_FEE, T_FEE_CURRENCY = 9, 10


def cid_of(client_order_id: str) -> int:
    """Our client order id as Bitfinex's integer ``cid``: the top 45 bits of its SHA-256."""
    return int.from_bytes(hashlib.sha256(client_order_id.encode()).digest()[:8], "big") >> (64 - CID_BITS)


def cid_date(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d")


def _dec(value: Any) -> Decimal:
    return Decimal(repr(value)) if isinstance(value, float) else Decimal(str(value or 0))


def order_status(text: str) -> str:
    """Bitfinex's order status text ('ACTIVE', 'EXECUTED @ 107.6(-0.2)', 'CANCELED', ...) as ours."""
    upper = text.upper()
    if "CANCELED" in upper:
        return "canceled"
    if upper.startswith("EXECUTED"):
        return "filled"
    if "INSUFFICIENT" in upper or upper.startswith("RSN_"):
        return "rejected"
    return "open"  # ACTIVE, PARTIALLY FILLED


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
        )
        timeout = request_timeout_s if request_timeout_s is not None else settings.exchange_timeout_s
        self.http = BitfinexHttp(settings.bitfinex_rest_url, settings.bitfinex_auth_url, timeout)
        self._cid_dates: dict[int, str] = {}  # cid -> the day we submitted it, for lookups before a restart

    async def start(self) -> None:
        for s in self.settings.bitfinex_symbols:
            names.to_platform(s)  # fail fast on a misspelt TRADEWIND_BITFINEX_SYMBOLS

    async def close(self) -> None:
        await self.http.close()

    # -- market data ----------------------------------------------------------------------------------
    async def stream_candles(self, symbols: list[str], tf: str) -> AsyncIterator[Candle]:
        async def backfill(symbol: str, start: int, end: int) -> list[Row]:
            return await self._backfill(symbol, tf, start, end)

        stream = CandleStream(
            self.settings.bitfinex_ws_url, list(symbols), tf, tf_ms(tf), backfill, self.timing,
            exchange=self.capabilities.name, clock=self.clock,
        )  # fmt: skip
        async for candle in stream:
            yield candle

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
            Candle(
                exchange=self.capabilities.name,
                symbol=symbol,
                tf=tf,
                time=t,
                open=o,
                high=h,
                low=lo,
                close=c,
                volume=v,
                closed=True,
                recv_ns=recv_ns,
            )  # fmt: skip
            for t, o, h, lo, c, v in fill_gaps(rows, size)
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
        amount = order.amount if order.side == "buy" else -order.amount
        body: dict[str, Any] = {
            "symbol": names.to_bitfinex(order.symbol),
            "amount": format(amount, "f"),
            "cid": cid,
        }
        if order.type == "limit":
            if order.price is None:
                raise OrderRejected("a limit order needs a price")
            body.update(type="EXCHANGE LIMIT", price=format(order.price, "f"))
        else:
            body["type"] = "EXCHANGE MARKET"
        # Remembered before the call: after a timeout the lookup by cid knows which day to search.
        self._cid_dates[cid] = cid_date(int(time.time() * 1000))
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
        arr = data[0] if data and isinstance(data[0], list) else data
        return self._result(order.client_order_id, arr)

    async def fetch_order(self, creds: Credentials, client_order_id: str, symbol: str) -> OrderResult | None:
        found = await self._find(creds, client_order_id, symbol)
        if found is None:
            return None
        result = self._result(client_order_id, found)
        if result.filled > 0 and result.status in ("filled", "canceled"):
            result = await self._with_fees(creds, result, found)
        return result

    async def cancel_order(self, creds: Credentials, client_order_id: str, symbol: str) -> OrderResult:
        found = await self._find(creds, client_order_id, symbol)
        if found is None:
            raise ExchangeError(f"Bitfinex has no order {client_order_id}")
        if order_status(str(found[O_STATUS])) != "open":
            return self._result(client_order_id, found)
        body = {"cid": int(found[O_CID]), "cid_date": cid_date(int(found[O_CREATED]))}
        await self.http.auth(creds, "auth/w/order/cancel", body)
        after = await self._find(creds, client_order_id, symbol)
        return self._result(client_order_id, after or found)

    async def _find(self, creds: Credentials, client_order_id: str, symbol: str) -> list[Any] | None:
        """The order array with our cid: open orders first, then the closed ones Bitfinex keeps."""
        cid = cid_of(client_order_id)
        bfx = names.to_bitfinex(symbol)
        day = self._cid_dates.get(cid)
        query: dict[str, Any] = {"cid": cid, "cid_date": day} if day else {}
        for arr in await self.http.auth(creds, "auth/r/orders", query) or []:
            if arr[O_CID] == cid and arr[O_SYMBOL] == bfx:
                return arr
        hist: dict[str, Any] = {"limit": HISTORY_SCAN}
        if day:
            start = int(datetime.strptime(day, "%Y-%m-%d").replace(tzinfo=UTC).timestamp() * 1000)
            hist.update(start=start - 86_400_000, end=start + 2 * 86_400_000)
        for arr in await self.http.auth(creds, "auth/r/orders/hist", hist) or []:
            if arr[O_CID] == cid and arr[O_SYMBOL] == bfx:
                return arr
        return None

    async def _with_fees(self, creds: Credentials, result: OrderResult, arr: list[Any]) -> OrderResult:
        trades = await self.http.auth(creds, f"auth/r/order/{arr[O_SYMBOL]}:{arr[O_ID]}/trades")
        fee = sum((-_dec(t[T_FEE]) for t in trades or []), Decimal("0"))  # Bitfinex reports fees negative
        asset = names.currency(trades[0][T_FEE_CURRENCY]) if trades else None
        return dataclasses.replace(result, fee=fee, fee_asset=asset)

    def _result(self, client_order_id: str, arr: list[Any]) -> OrderResult:
        orig = abs(_dec(arr[O_AMOUNT_ORIG]))
        remaining = abs(_dec(arr[O_AMOUNT]))
        avg = arr[O_PRICE_AVG] if len(arr) > O_PRICE_AVG else None
        return OrderResult(
            client_order_id=client_order_id,
            status=order_status(str(arr[O_STATUS])),
            exchange_order_id=str(arr[O_ID]),
            filled=orig - remaining,
            price=_dec(avg) if avg else None,
            time=int(arr[O_UPDATED] or arr[O_CREATED] or 0),
            reason=str(arr[O_STATUS]) if order_status(str(arr[O_STATUS])) == "rejected" else None,
        )
