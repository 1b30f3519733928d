"""The market maker of docs/strategies.md on the whole platform through the ccxt adapter, configured as
Binance, against the local Binance: ticks polled from its REST ticker in, post-only quotes out as
LIMIT_MAKER orders under our client ids (``newClientOrderId``), replaced as the book moves, filled when the
market trades through them, and none left on Binance after a pause, the kill switch and shutdown (see
quoting.py for the lifecycle)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import select

from tradewind.config import Settings
from tradewind.domain import assignment_of
from tradewind.exchanges.ccxt_adapter import CcxtAdapter
from tradewind.storage.models import Order

from .conftest import Row, consecutive, load_rows
from .fake_binance import OPEN, FakeBinance
from .quoting import Platform, Resting, run_lifecycle

# The market's minutes: quiet at 0.05 BTC (its ATR is nil: the strategy's spread is its own 0.2 %).
MINUTES: list[Row] = [(1_699_999_980_000 + i * 60_000, 0.05, 0.05, 0.05, 0.05, 1.0) for i in range(20)]
STATUS = {
    "NEW": "open",
    "PARTIALLY_FILLED": "open",
    "FILLED": "filled",
    "CANCELED": "canceled",
    "EXPIRED": "canceled",
    "REJECTED": "rejected",
}


class Binance:
    """The local Binance as the lifecycle sees it."""

    def __init__(self, server: FakeBinance) -> None:
        self.server = server

    async def book(self, bid: Decimal, ask: Decimal) -> None:
        self.server.set_book(bid, ask)  # the adapter polls the ticker

    def trade(self, price: Decimal) -> int:
        return len(self.server.trade_through(price))

    def resting(self) -> list[Resting]:
        return [
            Resting(o["clientOrderId"], o["side"].lower(), Decimal(o["price"]))
            for o in self.server.orders
            if o["status"] in OPEN
        ]

    def status(self, client_id: str) -> str:
        [o] = [o for o in self.server.orders if o["clientOrderId"] == client_id]
        return STATUS[o["status"]]

    def most_resting(self) -> dict[str, int]:
        return {side.lower(): n for side, n in self.server.most_resting.items()}

    def client_id(self, ours: str) -> str:
        return ours


@pytest.fixture
async def binance(tmp_path: Path) -> AsyncIterator[tuple[Platform, FakeBinance]]:
    server = FakeBinance(
        consecutive(load_rows("ETH-BTC-5m.csv"), 36, step=300_000),
        rows_1m=MINUTES,
        balances={"BTC": Decimal("1"), "ETH": Decimal("1")},
    )
    await server.start()
    settings = Settings(
        data_dir=tmp_path,
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'tw.db'}",
        history_days=0,
        exchanges=["binance"],
        ccxt_urls={"binance": server.url},
        ccxt_symbols={"binance": ["ETH/BTC"]},
        exchange_timeout_s=2,
    )
    adapter = CcxtAdapter("binance", settings, poll_interval_s=0.2, tick_interval_s=0.1)
    p = Platform(tmp_path, settings, adapter)
    try:
        await p.start()
        yield p, server
    finally:
        await p.stop()
        await server.stop()


async def test_a_market_maker_quotes_limit_maker_orders_through_ccxt_and_leaves_nothing_behind(
    binance,
) -> None:  # type: ignore[no-untyped-def]
    p, server = binance
    assert p.adapter.capabilities.streams_ticks and p.adapter.capabilities.post_only
    started = time.monotonic()
    seen = await run_lifecycle(
        p,
        Binance(server),
        exchange="binance",
        symbol="ETH/BTC",
        mid=Decimal("0.05"),
        size=Decimal("0.5"),
        allocation="1",
        params={"size": 0.5, "max_inventory": 5, "reserve": 0.1},
    )
    assert time.monotonic() - started < 20

    # Every quote went out as a LIMIT_MAKER order (post-only) under our client order id, and each rested.
    posted = [q for method, path, q in server.requests if (method, path) == ("POST", "order")]
    assert all(q["type"] == "LIMIT_MAKER" and "timeInForce" not in q for q in posted), posted
    ids = [q["newClientOrderId"] for q in posted]
    assert len(ids) == len(set(ids)), "a client id was used twice"
    assert {o.client_id for q in seen.quotes for o in q.values()} <= set(ids)
    assert all(assignment_of(i) == seen.assignment_id and i[-3:] in ("-qb", "-qs") for i in ids)
    # Each rested until cancelled or filled, but for a quote made on the tick before the book moved past
    # it: Binance refuses that one as taking liquidity (what LIMIT_MAKER is for), and core records the refusal.
    refused = set(ids) - {o["clientOrderId"] for o in server.orders}
    if refused:
        async with p.sf() as s:
            rows = (
                await s.execute(
                    select(Order.client_order_id, Order.status, Order.reason).where(
                        Order.client_order_id.in_(refused)
                    )
                )
            ).all()
        assert {r.status for r in rows} == {"rejected"} and len(rows) == len(refused), rows
        assert all("match and take" in (r.reason or "") for r in rows), rows
    assert len(refused) <= 2, f"{len(refused)} of {len(ids)} quotes refused as taking liquidity"
    assert sorted(o["status"] for o in server.orders).count("FILLED") == 3
    assert {o["status"] for o in server.orders} == {"FILLED", "CANCELED"}
    # The ticks came from the REST ticker, polled (the fake has no websocket here).
    assert any(path == "24hr" for _, path, _ in server.requests) and not server.ws_connections
