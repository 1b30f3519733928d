"""Fixtures for core tests: a real NATS server, a migrated SQLite database, users and objects in it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path

import pytest

from tests.postgres import fresh_database
from tradewind.bus.connection import connect, ensure_md_stream
from tradewind.bus.embedded import EmbeddedNats
from tradewind.config import Settings
from tradewind.storage.db import make_engine, make_session_factory
from tradewind.storage.migrate import upgrade_async
from tradewind.storage.models import Assignment, Market, Strategy, StrategyVersion, Trader, User


@pytest.fixture
async def nats_url(tmp_path: Path) -> AsyncIterator[str]:
    server = EmbeddedNats(tmp_path / "nats")
    url = await server.start()
    yield url
    await server.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
async def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """The same tests on SQLite and, where it runs (CI has it), on a fresh PostgreSQL database."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'tw.db'}"
        return
    async with fresh_database("tw_test") as url:
        yield url


@pytest.fixture
async def sf(db_url: str):  # type: ignore[no-untyped-def]
    await upgrade_async(db_url)
    engine = make_engine(db_url)
    yield make_session_factory(engine)
    await engine.dispose()


@pytest.fixture
def settings(tmp_path: Path, db_url: str) -> Settings:
    return Settings(
        data_dir=tmp_path,
        database_url=db_url,
        sim_symbols=["BTC/USD"],
        sim_speed=1200,
        history_days=0,
        eval_timeout_s=2,
    )


@pytest.fixture
async def nc(nats_url: str):  # type: ignore[no-untyped-def]
    client = await connect(nats_url, "test")
    await ensure_md_stream(client.jetstream())
    yield client
    await client.drain()


async def make_assignment(
    sf,
    *,
    email: str = "a@example.com",
    symbol: str = "BTC/USD",
    trader: bool = True,
    code: str = 'function decide(c, p) return "long" end',
) -> Assignment:
    async with sf() as s:
        user = User(email=email, password_hash="x")
        s.add(user)
        await s.flush()
        strategy = Strategy(owner_id=user.id, name="s", latest_version=1)
        s.add(strategy)
        await s.flush()
        s.add(StrategyVersion(strategy_id=strategy.id, version=1, code=code))
        market = Market(exchange="sim", symbol=symbol)
        existing = (await s.execute(Market.__table__.select().where(Market.symbol == symbol))).first()
        if existing is None:
            s.add(market)
            await s.flush()
            market_id = market.id
        else:
            market_id = existing.id
        trader_id = None
        if trader:
            t = Trader(owner_id=user.id, name="paper", exchange="sim", paper=True)
            s.add(t)
            await s.flush()
            trader_id = t.id
        a = Assignment(
            owner_id=user.id,
            strategy_id=strategy.id,
            market_id=market_id,
            timeframe="1m",
            trader_id=trader_id,
            allocation=Decimal("1000"),
            params={},
        )
        s.add(a)
        await s.commit()
        return a
