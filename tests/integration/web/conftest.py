"""A real app (create_app) over HTTP, on SQLite migrated in a temporary folder, with or without NATS."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.postgres import fresh_database
from tradewind.bus.connection import connect
from tradewind.bus.embedded import EmbeddedNats
from tradewind.config import Settings
from tradewind.secrets import SecretBox
from tradewind.storage import candles as store
from tradewind.storage.db import make_engine, make_session_factory
from tradewind.storage.migrate import upgrade_async
from tradewind.web.app import create_app

KEY = "yQ0c1c8b1nJmQ1W3Yw3q0m9XK2b6b4Q7b2b2Zm4z3xY="
PASSWORD = "correct horse battery staple"


class Api:
    def __init__(self, app: Any) -> None:
        self.app = app

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=httpx.ASGITransport(app=self.app), base_url="http://test")

    async def user(self, email: str) -> httpx.AsyncClient:
        c = self.client()
        r = await c.post("/api/auth/register", json={"email": email, "password": PASSWORD})
        assert r.status_code == 201, r.text
        r = await c.post("/api/auth/login", json={"email": email, "password": PASSWORD})
        assert r.status_code == 200, r.text
        c.cookies.clear()
        c.headers["Authorization"] = f"Bearer {r.json()['token']}"
        return c


@pytest.fixture
async def sf(tmp_path: Path):  # type: ignore[no-untyped-def]
    url = f"sqlite+aiosqlite:///{tmp_path / 'web.db'}"
    await upgrade_async(url)
    engine = make_engine(url)
    factory = make_session_factory(engine)
    async with factory() as s:
        m = await store.get_or_create_market(s, "sim", "BTC/USD")
        await store.insert_candles(
            s, m.id, "1m", [(60_000 * i, 1.0, 2.0, 0.5, 1.5, 10.0) for i in range(1, 30)]
        )
        await s.commit()
    yield factory
    await engine.dispose()


@pytest.fixture
async def pg_api(tmp_path: Path) -> AsyncIterator[Api]:
    """The app on a fresh PostgreSQL database of its own (dropped afterwards); skipped where none runs."""
    async with fresh_database("tw_web") as url:
        engine = make_engine(url)
        try:
            await upgrade_async(url)
            factory = make_session_factory(engine)
            async with factory() as s:
                m = await store.get_or_create_market(s, "sim", "BTC/USD")
                await store.insert_candles(
                    s, m.id, "1m", [(60_000 * i, 1.0, 2.0, 0.5, 1.5, 10.0) for i in range(1, 30)]
                )
                await s.commit()
            yield Api(
                create_app(Settings(data_dir=tmp_path, database_url=url), factory, None, SecretBox([KEY]))
            )
        finally:
            await engine.dispose()


@pytest.fixture
async def nats_url(tmp_path: Path):  # type: ignore[no-untyped-def]
    server = EmbeddedNats(tmp_path / "nats")
    yield await server.start()
    await server.stop()


@pytest.fixture
async def nats_client(nats_url: str):  # type: ignore[no-untyped-def]
    nc = await connect(nats_url, "web-test")
    yield nc
    await nc.close()


@pytest.fixture
async def api(tmp_path: Path, sf) -> AsyncIterator[Api]:  # type: ignore[no-untyped-def]
    settings = Settings(data_dir=tmp_path, database_url=f"sqlite+aiosqlite:///{tmp_path / 'web.db'}")
    yield Api(create_app(settings, sf, None, SecretBox([KEY])))


@pytest.fixture
async def api_bus(tmp_path: Path, sf, nats_client) -> AsyncIterator[Api]:  # type: ignore[no-untyped-def]
    settings = Settings(data_dir=tmp_path, database_url=f"sqlite+aiosqlite:///{tmp_path / 'web.db'}")
    yield Api(create_app(settings, sf, nats_client, SecretBox([KEY])))
