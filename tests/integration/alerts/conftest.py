"""The alerts component on a real NATS and a migrated SQLite database, beside the real web app, with local
servers standing in for webhooks, Telegram and SMTP (receivers.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tradewind.alerts.service import AlertService
from tradewind.bus.connection import connect, ensure_md_stream
from tradewind.bus.embedded import EmbeddedNats
from tradewind.config import Settings
from tradewind.secrets import SecretBox
from tradewind.storage import candles as store
from tradewind.storage.db import make_engine, make_session_factory
from tradewind.storage.migrate import upgrade_async
from tradewind.web.app import create_app

from .receivers import FakeTelegram, LocalSmtp, WebhookReceiver

KEY = "yQ0c1c8b1nJmQ1W3Yw3q0m9XK2b6b4Q7b2b2Zm4z3xY="
PASSWORD = "correct horse battery staple"
LONG = 'function decide(c, p) return "long" end'


class Api:
    def __init__(self, app: Any) -> None:
        self.app = app

    async def user(self, email: str) -> httpx.AsyncClient:
        c = httpx.AsyncClient(transport=httpx.ASGITransport(app=self.app), base_url="http://test")
        assert (
            await c.post("/api/auth/register", json={"email": email, "password": PASSWORD})
        ).status_code == 201
        r = await c.post("/api/auth/login", json={"email": email, "password": PASSWORD})
        c.cookies.clear()
        c.headers["Authorization"] = f"Bearer {r.json()['token']}"
        return c


async def assignment(c: httpx.AsyncClient, name: str = "Always long", **trader: Any) -> dict[str, Any]:
    """A strategy, a paper account (``trader``: its risk limits) and an assignment of it to sim BTC/USD 1m."""
    s = (await c.post("/api/strategies", json={"name": name, "code": LONG})).json()
    t = (
        await c.post("/api/traders", json={"name": "Paper", "exchange": "sim", "paper": True, **trader})
    ).json()
    markets = (await c.get("/api/markets")).json()["items"]
    market = next(mk for mk in markets if (mk["exchange"], mk["symbol"]) == ("sim", "BTC/USD"))
    r = await c.post(
        "/api/assignments", json={"strategy_id": s["id"], "market_id": market["id"], "trader_id": t["id"]}
    )
    assert r.status_code == 201, r.text
    return {**r.json(), "trader": t, "strategy": s}


@pytest.fixture
async def nats_url(tmp_path: Path) -> AsyncIterator[str]:
    server = EmbeddedNats(tmp_path / "nats")
    yield await server.start()
    await server.stop()


@pytest.fixture
async def nc(nats_url: str):  # type: ignore[no-untyped-def]
    client = await connect(nats_url, "alerts-test")
    await ensure_md_stream(client.jetstream())
    yield client
    await client.drain()


@pytest.fixture
async def webhook() -> AsyncIterator[WebhookReceiver]:
    w = await WebhookReceiver().start()
    yield w
    await w.stop()


@pytest.fixture
async def telegram() -> AsyncIterator[FakeTelegram]:
    t = await FakeTelegram().start()
    yield t
    await t.stop()


@pytest.fixture
def smtp():  # type: ignore[no-untyped-def]
    server = LocalSmtp().start()
    yield server
    server.stop()


@pytest.fixture
def settings(tmp_path: Path, telegram: FakeTelegram, smtp: LocalSmtp) -> Settings:
    return Settings(
        data_dir=tmp_path,
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'tw.db'}",
        sim_symbols=["BTC/USD"],
        sim_speed=1200,
        history_days=0,
        eval_timeout_s=2,
        alerts_attempts=3,
        alerts_retry_s=0.05,
        alerts_retry_max_s=0.2,
        alerts_exchange_silence_s=1,
        telegram_api_url=telegram.url,
        smtp_host="127.0.0.1",
        smtp_port=smtp.port,
        smtp_security="none",
        smtp_from="alerts@tradewind.test",
    )


@pytest.fixture
async def sf(settings: Settings):  # type: ignore[no-untyped-def]
    await upgrade_async(settings.db_url)
    engine = make_engine(settings.db_url)
    factory = make_session_factory(engine)
    async with factory() as s:
        await store.get_or_create_market(s, "sim", "BTC/USD")
        await s.commit()
    yield factory
    await engine.dispose()


@pytest.fixture
def box() -> SecretBox:
    return SecretBox([KEY])


@pytest.fixture
def api(settings: Settings, sf, nc, box: SecretBox) -> Api:  # type: ignore[no-untyped-def]
    return Api(create_app(settings, sf, nc, box))


@pytest.fixture
async def alerts(settings: Settings, sf, nats_url: str, box: SecretBox) -> AsyncIterator[AlertService]:  # type: ignore[no-untyped-def]
    """The component as `tradewind run alerts` starts it: its own connection to the bus."""
    conn = await connect(nats_url, "alerts")
    service = AlertService(settings, conn, sf, box)
    await service.start()
    yield service
    await service.stop()
    await conn.drain()
