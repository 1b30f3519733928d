"""An exchange account's sandbox flag: its calls go to the venue's testnet (ccxt's set_sandbox_mode), and
an account without it to the live API. The testnet is our local Binance; the live API is a closed port."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import ccxt.async_support as ccxt_async
import pytest

from tradewind.config import Settings
from tradewind.exchanges.base import Credentials, ExchangeUnavailable, OrderSpec
from tradewind.exchanges.ccxt_adapter import CcxtAdapter

from .conftest import consecutive, load_rows
from .fake_binance import FakeBinance

NOWHERE = "http://127.0.0.1:9"  # the discard port: nothing listens there


def rehost(value: Any, base: str) -> Any:
    if isinstance(value, str):
        parts = urlsplit(value)
        return base + value[len(f"{parts.scheme}://{parts.netloc}") :] if parts.netloc else value
    if isinstance(value, dict):
        return {k: rehost(v, base) for k, v in value.items()}
    return value


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


async def test_the_sandbox_flag_sends_an_account_to_the_testnet_and_only_that_account(testnet, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    settings = Settings(data_dir=tmp_path, ccxt_symbols={"binance": ["ETH/BTC"]})
    adapter = CcxtAdapter("binance", settings, request_timeout_s=3, use_websocket=False)
    try:
        assert adapter.capabilities.has_sandbox
        on_testnet = Credentials(trader_id=1, api_key="KEY", api_secret="SECRET", sandbox=True)
        live = Credentials(trader_id=2, api_key="KEY", api_secret="SECRET")
        assert (await adapter.fetch_balances(on_testnet))["BTC"] == Decimal("1")
        placed = await adapter.place_order(on_testnet, OrderSpec("tw-sandbox-1", "ETH/BTC", "buy", Decimal("0.5")))
        assert placed.status == "filled" and [o["clientOrderId"] for o in testnet.orders] == ["tw-sandbox-1"]
        seen = len(testnet.requests)
        with pytest.raises(ExchangeUnavailable):
            await adapter.fetch_balances(live)  # the live API: not the testnet's key, not the testnet
        assert len(testnet.requests) == seen, "a live account's call reached the testnet"
    finally:
        await adapter.close()
