"""Core, the exchange component and the native Bitfinex adapter together, against the local Bitfinex:
candles over the websocket, with a dropped connection and the gap it leaves, become stored minutes,
evaluations and orders, each decision one order on the exchange. (Late answers and refusals through the
whole platform: test_bitfinex_e2e.py.)"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import select

from tradewind.bus.connection import connect, ensure_md_stream
from tradewind.bus.embedded import EmbeddedNats
from tradewind.config import Settings
from tradewind.core.service import CoreService
from tradewind.exchanges.bitfinex import BitfinexAdapter, StreamTiming, cid_of
from tradewind.exchanges.service import ExchangeService
from tradewind.secrets import SecretBox
from tradewind.storage.db import make_engine, make_session_factory
from tradewind.storage.migrate import upgrade_async
from tradewind.storage.models import (
    Assignment,
    CandleRow,
    Evaluation,
    Market,
    Order,
    Strategy,
    StrategyVersion,
    Trader,
    User,
)

from ..core.test_pipeline import FlipWorker  # long on even minutes, short on odd ones
from .conftest import consecutive, load_rows
from .fake_bitfinex import FakeBitfinex

KEY = "yQ0c1c8b1nJmQ1W3Yw3q0m9XK2b6b4Q7b2b2Zm4z3xY="
ROWS = consecutive(load_rows("UNITTEST-BTC-1m.csv"), 40)
FAST = StreamTiming(
    silence_s=0.5, maintenance_s=3.0, backoff_initial_s=0.05, backoff_max_s=0.2, close_grace_s=None
)


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator:  # type: ignore[type-arg]
    nats = EmbeddedNats(tmp_path / "nats")
    nc = await connect(await nats.start(), "test")
    await ensure_md_stream(nc.jetstream())
    url = f"sqlite+aiosqlite:///{tmp_path / 'tw.db'}"
    await upgrade_async(url)
    engine = make_engine(url)
    sf = make_session_factory(engine)
    running: list = []

    async def start(server: FakeBitfinex, **settings_kw) -> tuple[CoreService, int]:  # type: ignore[no-untyped-def]
        settings = Settings(
            data_dir=tmp_path,
            database_url=url,
            exchanges=["bitfinex"],
            history_days=0,
            eval_timeout_s=5,
            bitfinex_ws_url=server.ws_url,
            bitfinex_rest_url=server.rest_url,
            bitfinex_auth_url=server.rest_url,
            bitfinex_symbols=["tBTCUSD"],
            **settings_kw,
        )
        box = SecretBox([KEY])
        async with sf() as s:
            user = User(email="trader@example.com", password_hash="x")
            s.add(user)
            await s.flush()
            strategy = Strategy(owner_id=user.id, name="flip", latest_version=1)
            market = Market(exchange="bitfinex", symbol="BTC/USD")
            trader = Trader(
                owner_id=user.id,
                name="bitfinex",
                exchange="bitfinex",
                paper=False,
                api_key_enc=box.encrypt("KEY"),
                api_secret_enc=box.encrypt("SECRET"),
            )
            s.add_all([strategy, market, trader])
            await s.flush()
            s.add(
                StrategyVersion(
                    strategy_id=strategy.id, version=1, code="-- evaluated by the stand-in worker"
                )
            )
            a = Assignment(
                owner_id=user.id,
                strategy_id=strategy.id,
                market_id=market.id,
                timeframe="1m",
                trader_id=trader.id,
                allocation=Decimal("1000"),
                params={},
            )
            s.add(a)
            await s.commit()
        await FlipWorker(nc).start()
        exchange = ExchangeService(
            settings, BitfinexAdapter(settings, timing=FAST), nc, nc.jetstream(), sf, box
        )
        core = CoreService(settings, nc, nc.jetstream(), sf)
        await core.start()
        await exchange.start()
        running.extend([exchange, core])
        return core, a.id

    yield start, sf
    for component in running:
        await component.stop()
    await nc.drain()
    await nats.stop()
    await engine.dispose()


async def wait_until(check, timeout: float = 30.0) -> None:  # type: ignore[no-untyped-def]
    async with asyncio.timeout(timeout):
        while not await check():
            await asyncio.sleep(0.1)


async def test_minutes_decisions_and_orders_from_the_bitfinex_stream_each_exactly_once(stack) -> None:  # type: ignore[no-untyped-def]
    start, sf = stack
    server = FakeBitfinex(
        rows=ROWS, start_at=3, step_s=0.03, script={45: ("drop", 6)}
    )  # a drop skips two minutes
    await server.start()
    try:
        core, aid = await start(server)

        async def stored() -> bool:
            async with sf() as s:
                return (
                    len((await s.execute(select(CandleRow.time).where(CandleRow.tf == "1m"))).all())
                    >= len(ROWS) - 2
                )

        await wait_until(stored)

        async def settled() -> (
            bool
        ):  # Bitfinex answers a market order "ACTIVE": the service follows it to its fill
            async with sf() as s:
                return (
                    await s.execute(select(Order).where(Order.status.in_(("pending", "open"))))
                ).first() is None

        await wait_until(settled)

        async def evaluated() -> bool:  # the evaluations are written after the orders' calls, apart
            async with sf() as s:
                times = set((await s.execute(select(CandleRow.time).where(CandleRow.tf == "1m"))).scalars())
                seen = (
                    await s.execute(select(Evaluation.candle_time).where(Evaluation.assignment_id == aid))
                ).scalars()
                return set(seen) >= times - {min(times)}

        await wait_until(evaluated)
        async with sf() as s:
            candles = (
                (await s.execute(select(CandleRow).where(CandleRow.tf == "1m").order_by(CandleRow.time)))
                .scalars()
                .all()
            )
            evals = list(
                (
                    await s.execute(select(Evaluation.candle_time).where(Evaluation.assignment_id == aid))
                ).scalars()
            )
            orders = (await s.execute(select(Order).order_by(Order.id))).scalars().all()
        by_time = {r[0]: r for r in ROWS}
        got = [(c.time, c.open, c.high, c.low, c.close, c.volume) for c in candles]
        assert [g[0] for g in got] == sorted({g[0] for g in got}), "a minute stored twice"
        assert all(
            b - a == 60_000 for a, b in zip([g[0] for g in got], [g[0] for g in got][1:], strict=False)
        ), "a minute is missing"
        assert all(pytest.approx(by_time[g[0]]) == g for g in got), "a minute with the wrong OHLCV"
        assert server.connections >= 2  # the drop was noticed and the stream resubscribed
        assert sorted(evals) == sorted(set(evals)) and set(evals) >= {g[0] for g in got[1:]}
        placed = [o for o in orders if o.status != "rejected"]
        # (an order in flight holds its assignment's next ones back: with a minute every 0.1 s here, few trade)
        assert len(placed) >= 2 and all(o.status == "filled" for o in placed), [
            (o.status, o.reason) for o in orders
        ]
        assert len({o.client_order_id for o in orders}) == len(orders)
        assert sorted(o.cid for o in server.orders) == sorted(cid_of(o.client_order_id) for o in placed), (
            "one order per decision"
        )
        sides = [o.side for o in placed]
        assert all(x != y for x, y in zip(sides, sides[1:], strict=False)), "buys and sells alternate"
    finally:
        await server.stop()
