"""An exchange account's sandbox flag: its calls go to the venue's testnet (ccxt's set_sandbox_mode), and
an account without it to the live API. The testnet is our local Binance; the live API is a closed port."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import ccxt.async_support as ccxt_async
import httpx
import pytest

from tradewind.bus.connection import connect
from tradewind.bus.embedded import EmbeddedNats
from tradewind.config import Settings
from tradewind.exchanges.base import Credentials, ExchangeUnavailable, OrderSpec
from tradewind.exchanges.ccxt_adapter import CcxtAdapter
from tradewind.exchanges.ccxt_adapter.adapter import rehost
from tradewind.exchanges.service import ExchangeService
from tradewind.secrets import SecretBox
from tradewind.storage.db import make_engine, make_session_factory
from tradewind.storage.migrate import upgrade_async
from tradewind.web.app import create_app

from .conftest import consecutive, load_rows
from .fake_binance import FakeBinance

NOWHERE = "http://127.0.0.1:9"  # the discard port: nothing listens there
BOX_KEY = "yQ0c1c8b1nJmQ1W3Yw3q0m9XK2b6b4Q7b2b2Zm4z3xY="
PASSWORD = "correct horse battery staple"


@pytest.fixture
async def testnet(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[FakeBinance]:
    server = FakeBinance(consecutive(load_rows("ETH-BTC-5m.csv"), 36, step=300_000))
    await server.start()

    class Binance(ccxt_async.binance):  # type: ignore[misc,name-defined]
        """ccxt's Binance with its live API nowhere and its testnet here."""

        def describe(self) -> Any:
            d = super().describe()
            d["urls"]["api"] = rehost(d["urls"]["api"], NOWHERE)
            d["urls"]["test"] = rehost(d["urls"]["test"], server.url)
            return d

    monkeypatch.setattr(ccxt_async, "binance", Binance)
    yield server
    await server.stop()


async def test_the_sandbox_flag_sends_an_account_to_the_testnet_and_only_that_account(
    testnet, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    settings = Settings(data_dir=tmp_path, ccxt_symbols={"binance": ["ETH/BTC"]})
    adapter = CcxtAdapter("binance", settings, request_timeout_s=3, use_websocket=False)
    try:
        assert adapter.capabilities.has_sandbox
        on_testnet = Credentials(trader_id=1, api_key="KEY", api_secret="SECRET", sandbox=True)
        live = Credentials(trader_id=2, api_key="KEY", api_secret="SECRET")
        assert (await adapter.fetch_balances(on_testnet))["BTC"] == Decimal("1")
        placed = await adapter.place_order(
            on_testnet, OrderSpec("tw-sandbox-1", "ETH/BTC", "buy", Decimal("0.5"))
        )
        assert placed.status == "filled" and [o["clientOrderId"] for o in testnet.orders] == ["tw-sandbox-1"]
        seen = len(testnet.requests)
        with pytest.raises(ExchangeUnavailable):
            await adapter.fetch_balances(live)  # the live API: not the testnet's key, not the testnet
        assert len(testnet.requests) == seen, "a live account's call reached the testnet"
    finally:
        await adapter.close()


async def test_an_account_created_with_the_testnet_option_is_checked_and_served_on_the_testnet(  # type: ignore[no-untyped-def]
    testnet, tmp_path: Path
) -> None:
    """Through the web API and the exchange service on the bus, as the web app's account form does it."""
    nats = EmbeddedNats(tmp_path / "nats")
    nc = await connect(await nats.start(), "test")
    url = f"sqlite+aiosqlite:///{tmp_path / 'tw.db'}"
    await upgrade_async(url)
    engine = make_engine(url)
    sf = make_session_factory(engine)
    settings = Settings(data_dir=tmp_path, database_url=url, exchanges=["binance"], exchange_timeout_s=3)
    box = SecretBox([BOX_KEY])
    service = ExchangeService(
        settings, CcxtAdapter("binance", settings, use_websocket=False), nc, nc.jetstream(), sf, box
    )
    await service.start(stream=False)  # the live API is down: the service starts all the same
    api = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=create_app(settings, sf, nc, box)), base_url="http://t"
    )
    try:
        r = await api.post("/api/auth/register", json={"email": "t@example.com", "password": PASSWORD})
        assert r.status_code == 201, r.text
        token = (
            await api.post("/api/auth/login", json={"email": "t@example.com", "password": PASSWORD})
        ).json()["token"]
        api.cookies.clear()
        api.headers["Authorization"] = f"Bearer {token}"
        account = {
            "name": "binance",
            "exchange": "binance",
            "paper": False,
            "api_key": "KEY",
            "api_secret": "SECRET",
        }

        r = await api.post("/api/traders", json={**account, "sandbox": True})
        assert r.status_code == 201, r.text
        assert r.json()["sandbox"] is True
        assert [p for _, p, _ in testnet.requests].count("account") == 1  # the key was checked on the testnet
        r = await api.get(f"/api/traders/{r.json()['id']}/balances")
        assert r.status_code == 200, r.text
        assert Decimal(r.json()["balances"]["BTC"]) == 1

        seen = len(testnet.requests)
        r = await api.post("/api/traders", json=account)  # live: the key is checked on the live API
        assert r.status_code == 422, r.text
        assert "binance is not reachable" in r.json()["detail"]
        assert len(testnet.requests) == seen, "a live account's check reached the testnet"
    finally:
        await api.aclose()
        await service.stop()
        await nc.drain()
        await nats.stop()
        await engine.dispose()
