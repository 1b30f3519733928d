"""The market maker of docs/strategies.md on the whole platform against the local Bitfinex: ticks from the
websocket v2 ticker channel in, post-only EXCHANGE LIMIT orders (flag 4096) under client ids of their own
(Bitfinex's ``cid``) out, replaced as the book moves, filled when the market trades through them, and
none left on Bitfinex after a pause, the kill switch and shutdown (see quoting.py for the lifecycle)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path

import pytest

from tradewind.config import Settings
from tradewind.exchanges.bitfinex import BitfinexAdapter, StreamTiming, cid_of

from .conftest import Row
from .fake_bitfinex import FLAG_POST_ONLY, FakeBitfinex
from .quoting import Platform, Resting, run_lifecycle

# A quiet market at 40,000 (its ATR is nil: the strategy's spread is its own 0.2 %), played before it quotes.
FLAT: list[Row] = [
    (1_699_999_980_000 + i * 60_000, 40000.0, 40000.0, 40000.0, 40000.0, 1.0) for i in range(20)
]
TIMING = StreamTiming(silence_s=2.0, backoff_initial_s=0.05, backoff_max_s=0.2, close_grace_s=None)


class Bitfinex:
    """The local Bitfinex as the lifecycle sees it."""

    def __init__(self, server: FakeBitfinex) -> None:
        self.server = server

    async def book(self, bid: Decimal, ask: Decimal) -> None:
        await self.server.send_ticker(bid=float(bid), ask=float(ask))

    def trade(self, price: Decimal) -> int:
        return len(self.server.trade_through(price))

    def resting(self) -> list[Resting]:
        return [
            Resting(str(o.cid), "buy" if o.amount > 0 else "sell", o.price or Decimal(0))
            for o in self.server.orders
            if o.open
        ]

    def status(self, client_id: str) -> str:
        [o] = [o for o in self.server.orders if str(o.cid) == client_id]
        if o.open:
            return "open"
        if o.status.startswith("EXECUTED"):
            return "filled"
        return "rejected" if "POSTONLY" in o.status else "canceled"

    def most_resting(self) -> dict[str, int]:
        return dict(self.server.most_resting)

    def client_id(self, ours: str) -> str:
        return str(cid_of(ours))


@pytest.fixture
async def bitfinex(tmp_path: Path) -> AsyncIterator[tuple[Platform, FakeBitfinex]]:
    # The tape plays its candles at once and then stands still; resting orders fill only when the test
    # trades through them.
    server = FakeBitfinex(rows=FLAT, start_at=30, match_tape=False)
    await server.start()
    settings = Settings(
        data_dir=tmp_path,
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'tw.db'}",
        history_days=0,
        exchanges=["bitfinex"],
        bitfinex_ws_url=server.ws_url,
        bitfinex_rest_url=server.rest_url,
        bitfinex_auth_url=server.rest_url,
        bitfinex_symbols=["tBTCUSD"],
        exchange_timeout_s=2,
    )
    p = Platform(tmp_path, settings, BitfinexAdapter(settings, timing=TIMING))
    try:
        await p.start()
        yield p, server
    finally:
        await p.stop()
        await server.stop()


async def test_a_market_maker_quotes_post_only_on_bitfinex_and_leaves_nothing_behind(bitfinex) -> None:  # type: ignore[no-untyped-def]
    p, server = bitfinex
    started = time.monotonic()
    seen = await run_lifecycle(
        p,
        Bitfinex(server),
        exchange="bitfinex",
        symbol="BTC/USD",
        mid=Decimal("40000"),
        size=Decimal("0.01"),
        allocation="5000",
    )
    elapsed = time.monotonic() - started
    assert elapsed < 20

    # Every quote went out as a post-only EXCHANGE LIMIT order under a cid of its own, and each rested.
    submits = [body for path, body in server.calls if path == "auth/w/order/submit"]
    assert all(b["type"] == "EXCHANGE LIMIT" and b["flags"] == FLAG_POST_ONLY for b in submits), submits
    cids = [b["cid"] for b in submits]
    assert len(cids) == len(set(cids)), "a client id was used twice"
    assert {o.client_id for q in seen.quotes for o in q.values()} <= {str(c) for c in cids}
    assert all(o.flags == FLAG_POST_ONLY and o.status != "POSTONLY CANCELED" for o in server.orders)
    # The ticks came from the ticker channel, on the connection that carries the candles.
    assert server.ticker_subscriptions == ["tBTCUSD"] and server.connections == 1
    # Every quote was cancelled by id on Bitfinex, or filled: 3 fills, the rest cancelled.
    assert sorted(o.status.split(" @")[0] for o in server.orders).count("EXECUTED") == 3
    assert {o.status for o in server.orders} <= {"CANCELED"} | {
        o.status for o in server.orders if o.status.startswith("EXECUTED")
    }
    # Within Bitfinex's budget of each key: a cancel is one call by cid and cid_date (no lookup first), and
    # the resting quotes are watched with one lookup of all open orders a second, not one per quote.
    cancels = [body for path, body in server.calls if path == "auth/w/order/cancel"]
    assert cancels and all(set(b) == {"cid", "cid_date"} for b in cancels), cancels
    watches = [body for path, body in server.calls if path == "auth/r/orders"]
    assert len(watches) <= elapsed + 2, f"{len(watches)} lookups of open orders in {elapsed:.1f} s"
