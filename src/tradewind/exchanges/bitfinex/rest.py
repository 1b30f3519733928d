"""Bitfinex REST v2: public candles and the authenticated calls, signed, nonce'd and rate limited.

Signatures: ``bfx-signature`` = hex HMAC-SHA384, keyed with the API secret, of
``/api/v2/<path><nonce><body>``; ``bfx-nonce`` must grow with every call made with a key.
Errors arrive as ``["error", code, "message"]`` (usually with HTTP 500) and become our
AuthError / OrderRejected / ExchangeUnavailable, so callers never parse Bitfinex's format.

Rate limits: Bitfinex counts requests per IP and per endpoint ("between 10 and 90 requests a minute to a
specific REST API endpoint"; an IP over it is blocked on that endpoint for 10-60 s). We stay under with a
token bucket per endpoint: public candles 30/min (burst 10), each authenticated endpoint 90/min (burst 15).
Per endpoint, not one budget for all: the status lookups of resting orders (``auth/r/orders``) then never
delay a cancel (``auth/w/order/cancel``) or a placement (``auth/w/order/submit``) of the same key.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import re
import time
from typing import Any

import httpx

from tradewind.exchanges.base import AuthError, Credentials, ExchangeError, ExchangeUnavailable, OrderRejected
from tradewind.exchanges.limits import BITFINEX_AUTH_PER_MIN
from tradewind.exchanges.series import Row

PUBLIC_PER_MIN = 30
PUBLIC_BURST = 10
AUTH_PER_MIN = BITFINEX_AUTH_PER_MIN
AUTH_BURST = 15
CANDLES_PAGE = 10_000  # Bitfinex's maximum `limit` for candle history
ENDPOINT_ID = re.compile(r"/[^/]*:[^/]*/")  # the order named in a path: auth/r/order/{symbol}:{id}/trades

ERR_AUTH = 10100
ERR_NONCE_SMALL = 10114
ERR_NOT_READY = 11000
ERR_RATE_LIMIT = 11010
ERR_MAINTENANCE = 20060


class TokenBucket:
    """At most ``per_min`` acquisitions a minute on average, ``burst`` at once; waiters queue in order."""

    def __init__(self, per_min: float, burst: int) -> None:
        self.rate = per_min / 60.0
        self.capacity = float(burst)
        self.tokens = float(burst)
        self.stamp = time.monotonic()
        self._lock = asyncio.Lock()

    async def acquire(self) -> None:
        async with self._lock:
            while True:
                now = time.monotonic()
                self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
                self.stamp = now
                if self.tokens >= 1:
                    self.tokens -= 1
                    return
                await asyncio.sleep((1 - self.tokens) / self.rate)


class NonceSource:
    """Microseconds since the epoch, strictly increasing: a restart a moment later still starts higher,
    and two calls in the same microsecond get distinct nonces."""

    def __init__(self) -> None:
        self._last = 0

    def next(self) -> str:
        self._last = max(time.time_ns() // 1000, self._last + 1)
        return str(self._last)


def sign(secret: str, path: str, nonce: str, body: str) -> str:
    """The ``bfx-signature`` header of a call to ``path`` (e.g. 'auth/r/wallets')."""
    return hmac.new(secret.encode(), f"/api/v2/{path}{nonce}{body}".encode(), hashlib.sha384).hexdigest()


def bitfinex_error(data: Any) -> tuple[int, str] | None:
    """(code, message) of a Bitfinex error reply, or None."""
    if isinstance(data, list) and len(data) >= 3 and data[0] == "error":
        return int(data[1] or 0), str(data[2])
    if isinstance(data, dict) and "error" in data:  # the older {"error": "ERR_RATE_LIMIT"} form
        text = str(data.get("message") or data["error"])
        return (ERR_RATE_LIMIT if "RATE_LIMIT" in str(data["error"]) else 0), text
    return None


def to_exchange_error(code: int, message: str, *, order_call: bool) -> ExchangeError:
    if code == ERR_AUTH or message.startswith("apikey"):
        return AuthError(f"Bitfinex refused the API key ({message})")
    if code == ERR_NONCE_SMALL:
        return AuthError("Bitfinex says the nonce is too small: is this API key used by another program too?")
    if code == ERR_RATE_LIMIT:
        return ExchangeUnavailable(f"Bitfinex rate limit reached ({message}); try again in a minute")
    if code in (ERR_NOT_READY, ERR_MAINTENANCE):
        return ExchangeUnavailable(f"Bitfinex is in maintenance ({message})")
    if order_call:
        return OrderRejected(message)  # Bitfinex answered: the order was refused, not lost
    return ExchangeError(f"Bitfinex: {message}")


class BitfinexHttp:
    """The HTTP side of the adapter. ``timeout_s`` bounds every call; past it the outcome is unknown."""

    def __init__(self, rest_url: str, auth_url: str, timeout_s: float = 10.0) -> None:
        self.rest_url = rest_url.rstrip("/")
        self.auth_url = auth_url.rstrip("/")
        self.timeout_s = timeout_s
        self.nonce = NonceSource()
        self.public_bucket = TokenBucket(PUBLIC_PER_MIN, PUBLIC_BURST)
        self.auth_buckets: dict[str, TokenBucket] = {}  # endpoint -> its budget (see the module's docstring)
        self._client: httpx.AsyncClient | None = None

    @property
    def client(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=self.timeout_s, headers={"accept": "application/json"})
        return self._client

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def _send(self, method: str, url: str, **kw: Any) -> tuple[int, Any]:
        try:
            resp = await self.client.request(method, url, **kw)
        except httpx.TimeoutException:
            raise ExchangeUnavailable(f"Bitfinex did not answer within {self.timeout_s:g}s") from None
        except httpx.HTTPError as exc:
            raise ExchangeUnavailable(f"Bitfinex is unreachable ({type(exc).__name__}: {exc})") from None
        try:
            data = resp.json()
        except ValueError:
            data = None
        if data is None and resp.status_code >= 400:
            # No Bitfinex error body (a proxy's 502, an HTML page): we cannot know what happened.
            raise ExchangeUnavailable(f"Bitfinex answered HTTP {resp.status_code}")
        if resp.status_code == 429 and bitfinex_error(data) is None:
            raise ExchangeUnavailable("Bitfinex rate limit reached; try again in a minute")
        return resp.status_code, data

    async def candles(
        self, bfx_symbol: str, tf_key: str, start: int, end: int, limit: int = CANDLES_PAGE
    ) -> list[Row]:
        """Candles with open time in [start, end] (Bitfinex's end is inclusive), oldest first."""
        await self.public_bucket.acquire()
        _, data = await self._send(
            "GET",
            f"{self.rest_url}/candles/trade:{tf_key}:{bfx_symbol}/hist",
            params={"start": start, "end": end, "sort": 1, "limit": limit},
        )
        err = bitfinex_error(data)
        if err is not None:
            raise to_exchange_error(*err, order_call=False)
        if not isinstance(data, list):
            raise ExchangeError(f"Bitfinex sent candles in an unexpected shape: {str(data)[:200]}")
        return sorted(row_of(c) for c in data)

    def bucket(self, path: str) -> TokenBucket:
        """The budget of ``path``'s endpoint: an order's trades (``auth/r/order/tBTCUSD:123/trades``) are
        one endpoint whatever the order."""
        endpoint = ENDPOINT_ID.sub("/*/", path)
        found = self.auth_buckets.get(endpoint)
        if found is None:
            found = self.auth_buckets[endpoint] = TokenBucket(AUTH_PER_MIN, AUTH_BURST)
        return found

    async def auth(self, creds: Credentials, path: str, body: dict[str, Any] | None = None) -> Any:
        """POST a signed call to ``path`` ('auth/r/wallets', 'auth/w/order/submit', ...)."""
        if not creds.api_key or not creds.api_secret:
            raise AuthError("this trading account has no Bitfinex API key")
        if creds.sandbox:  # never trade live money for an account its owner believes is on a testnet
            raise ExchangeError(
                "Bitfinex has no testnet: untick the testnet option (for paper trading on Bitfinex, use the "
                "key of a paper sub-account)"
            )
        raw = json.dumps(body or {}, separators=(",", ":"))
        for attempt in range(2):
            # The nonce is taken once the budget lets the call go: a call waiting on another endpoint's
            # budget with an older nonce would otherwise be refused after a newer one went out.
            await self.bucket(path).acquire()
            nonce = self.nonce.next()
            headers = {
                "content-type": "application/json",
                "bfx-nonce": nonce,
                "bfx-apikey": creds.api_key,
                "bfx-signature": sign(creds.api_secret, path, nonce, raw),
            }
            _, data = await self._send("POST", f"{self.auth_url}/{path}", content=raw, headers=headers)
            err = bitfinex_error(data)
            if err is None:
                return data
            # A nonce refused as too small was never acted on; another process using the same key got
            # ahead of us (two exchange-service replicas). One retry with a fresh, larger nonce is safe.
            if err[0] == ERR_NONCE_SMALL and attempt == 0:
                continue
            raise to_exchange_error(*err, order_call=path == "auth/w/order/submit")
        raise AssertionError("unreachable")


def row_of(c: list[Any]) -> Row:
    """Bitfinex's [MTS, OPEN, CLOSE, HIGH, LOW, VOLUME] as our (time, open, high, low, close, volume)."""
    return (int(c[0]), float(c[1]), float(c[3]), float(c[4]), float(c[2]), float(c[5]))
