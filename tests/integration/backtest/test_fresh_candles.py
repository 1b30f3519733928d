"""A backtest sees the candles stored when it was submitted: a run with no end, submitted again after new
candles arrived, runs over them too (the worker's candle cache never answers with an older range), and
the run says which range it used."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest

from tradewind.backtest.worker import BacktestWorker
from tradewind.bus.connection import connect
from tradewind.bus.embedded import EmbeddedNats
from tradewind.bus.messages import BacktestData
from tradewind.config import Settings
from tradewind.secrets import SecretBox
from tradewind.storage import candles as store
from tradewind.storage.db import make_engine, make_session_factory
from tradewind.storage.migrate import upgrade_async
from tradewind.web.app import create_app

KEY = "yQ0c1c8b1nJmQ1W3Yw3q0m9XK2b6b4Q7b2b2Zm4z3xY="
LONG = 'function decide(c, p) return "long" end'
MINUTE = 60_000


def rows(first: int, n: int) -> list[tuple[int, float, float, float, float, float]]:
    return [(MINUTE * i, 100.0 + i, 101.0 + i, 99.0 + i, 100.5 + i, 1.0) for i in range(first, first + n)]


@pytest.fixture
async def sf(tmp_path: Path):  # type: ignore[no-untyped-def]
    url = f"sqlite+aiosqlite:///{tmp_path / 'tw.db'}"
    await upgrade_async(url)
    engine = make_engine(url)
    yield make_session_factory(engine)
    await engine.dispose()


async def add(sf, market_id: int, first: int, n: int) -> None:  # type: ignore[no-untyped-def]
    async with sf() as s:
        await store.insert_candles(s, market_id, "1m", rows(first, n))
        await s.commit()


async def market(sf) -> int:  # type: ignore[no-untyped-def]
    async with sf() as s:
        m = await store.get_or_create_market(s, "sim", "BTC/USD")
        await s.commit()
        return m.id


async def test_an_open_range_is_loaded_again_once_new_candles_are_stored(tmp_path: Path, sf) -> None:  # type: ignore[no-untyped-def]
    mid = await market(sf)
    await add(sf, mid, 1, 100)
    worker = BacktestWorker(Settings(data_dir=tmp_path), None, sf)  # type: ignore[arg-type]
    data = BacktestData(market_id=mid, tf="1m", start=MINUTE * 11)
    assert len((await worker.candles(data))["time"]) == 90
    await add(sf, mid, 101, 5)  # five minutes later
    assert len((await worker.candles(data))["time"]) == 95
    closed = BacktestData(market_id=mid, tf="1m", start=MINUTE * 11, end=MINUTE * 201)  # ends in the future
    assert len((await worker.candles(closed))["time"]) == 95
    await add(sf, mid, 106, 1)
    assert (await worker.candles(closed))["time"][-1] == MINUTE * 106
    unchanged = await worker.candles(closed)
    assert unchanged is await worker.candles(closed)  # nothing new: the cache answers


@pytest.mark.timeout(120)
async def test_a_backtest_without_an_end_runs_up_to_its_submission_and_says_so(tmp_path: Path, sf) -> None:  # type: ignore[no-untyped-def]
    mid = await market(sf)
    await add(sf, mid, 1, 100)
    server = EmbeddedNats(tmp_path / "nats")
    url = await server.start()
    worker_nc, web_nc = await connect(url, "bt"), await connect(url, "web")
    settings = Settings(data_dir=tmp_path)
    worker = BacktestWorker(settings, worker_nc, sf)
    await worker.start()
    app = create_app(settings, sf, web_nc, SecretBox([KEY]))
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
            await c.post(
                "/api/auth/register", json={"email": "bt@example.com", "password": "correct horse battery"}
            )
            r = await c.post(
                "/api/auth/login", json={"email": "bt@example.com", "password": "correct horse battery"}
            )
            c.cookies.clear()
            c.headers["Authorization"] = f"Bearer {r.json()['token']}"
            sid = (await c.post("/api/strategies", json={"name": "long", "code": LONG})).json()["id"]
            body = {
                "strategy_id": sid,
                "market_id": mid,
                "timeframe": "1m",
                "from": MINUTE * 11,
                "lookback": 5,
            }

            async def run() -> dict:  # type: ignore[type-arg]
                r = await c.post("/api/backtests", json=body)
                assert r.status_code == 202, r.text
                for _ in range(400):
                    doc = (await c.get(f"/api/backtests/{r.json()['id']}")).json()
                    if doc["status"] in ("done", "error"):
                        return doc  # type: ignore[no-any-return]
                    await asyncio.sleep(0.05)
                raise AssertionError("the backtest did not finish")

            first = await run()
            assert first["status"] == "done", first
            assert first["range"]["from"] == MINUTE * 11 and first["range"]["candles"] == 90
            assert (
                first["range"]["last"] == MINUTE * 100
                and first["range"]["to"] == first["config"]["to"] == MINUTE * 101
            )
            await add(sf, mid, 101, 7)  # minutes later, new candles
            second = await run()
            assert second["range"]["candles"] == 97 and second["range"]["last"] == MINUTE * 107
            listed = (await c.get("/api/backtests")).json()["items"]
            assert [b["range"]["candles"] for b in listed] == [97, 90]
    finally:
        await worker.stop()
        await worker_nc.close()
        await web_nc.close()
        await server.stop()
