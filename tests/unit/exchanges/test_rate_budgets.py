"""The budgets that keep a key inside a venue's rate limits: Bitfinex's per endpoint, the exchange
service's lookups of an account's watched orders gathered into one call, and core's quote budget lowered
to what the venue allows."""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal
from typing import Any

from tradewind.config import Settings
from tradewind.exchanges import limits
from tradewind.exchanges.base import Credentials, OrderResult
from tradewind.exchanges.bitfinex.rest import AUTH_PER_MIN, BitfinexHttp
from tradewind.exchanges.service import ExchangeService


def test_each_bitfinex_endpoint_has_a_budget_of_its_own() -> None:
    http = BitfinexHttp("http://rest", "http://auth")
    lookups = http.bucket("auth/r/orders")
    assert http.bucket("auth/r/orders") is lookups
    assert http.bucket("auth/w/order/cancel") is not lookups
    # an order's trades: one endpoint whatever the order
    assert http.bucket("auth/r/order/tBTCUSD:1/trades") is http.bucket("auth/r/order/tETHUSD:22/trades")
    assert lookups.rate == AUTH_PER_MIN / 60


async def test_a_spent_lookup_budget_does_not_hold_up_a_cancel() -> None:
    http = BitfinexHttp("http://rest", "http://auth")
    spent = http.bucket("auth/r/orders")
    spent.tokens, spent.stamp = 0.0, time.monotonic()  # the next lookup waits ~0.7 s
    started = time.monotonic()
    waiting = asyncio.create_task(spent.acquire())
    await asyncio.sleep(0)
    await asyncio.wait_for(http.bucket("auth/w/order/cancel").acquire(), timeout=0.1)
    assert time.monotonic() - started < 0.1 and not waiting.done()
    waiting.cancel()


class ManyAtOnce:
    """An adapter that looks up many orders in one call, counting its calls."""

    def __init__(self) -> None:
        self.calls: list[list[tuple[str, str]]] = []

    async def fetch_orders(self, creds: Credentials, orders: list[tuple[str, str]]) -> dict[str, Any]:
        self.calls.append(list(orders))
        return {
            cid: OrderResult(client_order_id=cid, status="open", filled=Decimal(0)) for cid, _ in orders[:-1]
        }


async def test_lookups_of_one_account_go_out_as_one_call() -> None:
    adapter = ManyAtOnce()
    service = ExchangeService.__new__(ExchangeService)  # only the lookup path: no bus, no database
    service.adapter, service._lookups, service._followers = adapter, {}, set()  # type: ignore[assignment]
    a, b = Credentials(trader_id=1), Credentials(trader_id=2)
    found = await asyncio.gather(
        service._lookup(a, "q1", "BTC/USD"),
        service._lookup(a, "q2", "BTC/USD"),
        service._lookup(a, "q3", "BTC/USD"),
        service._lookup(b, "q4", "BTC/USD"),
    )
    # one call per account; an order the venue does not know is None
    assert sorted(len(c) for c in adapter.calls) == [1, 3]
    assert [r.status if r else None for r in found] == ["open", "open", None, None]


def test_core_paces_quotes_at_the_venues_rate() -> None:
    s = Settings()
    assert limits.quote_budget("bitfinex", s.quote_rate_per_s, s.quote_burst) == (AUTH_PER_MIN / 60, 10)
    assert limits.quote_budget("binance", s.quote_rate_per_s, s.quote_burst) == (
        s.quote_rate_per_s,
        s.quote_burst,
    )
    assert limits.quote_budget("bitfinex", 0.5, 3) == (0.5, 3)  # a lower setting wins
