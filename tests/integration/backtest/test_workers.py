"""Backtests on the bus: a sweep of 120 points over two BacktestWorkers on a real NATS, and the API's
POST/GET /api/backtests run by a worker over a real SQLite store."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.shared_data import SHARED_DATA as DATA
from tradewind.backtest import engine, sweep
from tradewind.backtest.importers import load
from tradewind.backtest.worker import BacktestWorker, pack_candles
from tradewind.bus.connection import connect
from tradewind.bus.embedded import EmbeddedNats
from tradewind.bus.messages import BacktestData
from tradewind.config import Settings
from tradewind.secrets import SecretBox
from tradewind.storage import candles as store
from tradewind.storage.db import make_engine, make_session_factory
from tradewind.storage.migrate import upgrade_async
from tradewind.web.app import create_app

from .test_cli import SMA  # the same SMA crossover the CLI runs

CANDLES = DATA / "XRP-ETH-5m.csv"
BOOM = 'function decide(c) if #c.close > 100 then error("boom") end return "long" end'
SMA_PLOT = """function decide(c)
  local fast, slow = ta.sma(c.close, 5), ta.sma(c.close, 20)
  local n = #c.close
  return {position = fast[n] > slow[n] and "long" or "short", plot = {fast = fast[n], slow = slow[n]}}
end"""
KEY = "yQ0c1c8b1nJmQ1W3Yw3q0m9XK2b6b4Q7b2b2Zm4z3xY="

pytestmark = pytest.mark.skipif(not CANDLES.exists(), reason="the shared candles are not here")


@pytest.fixture
async def nats_url(tmp_path: Path):  # type: ignore[no-untyped-def]
    server = EmbeddedNats(tmp_path / "nats")
    yield await server.start()
    await server.stop()


async def _workers(url: str, settings: Settings, sf, n: int = 2):  # type: ignore[no-untyped-def]
    out = []
    for i in range(n):
        nc = await connect(url, f"bt-worker-{i}")
        w = BacktestWorker(settings, nc, sf, name=f"worker-{i + 1}")
        out.append((nc, w))
    await asyncio.gather(*(w.start() for _, w in out))
    return out


async def _stop(workers) -> None:  # type: ignore[no-untyped-def]
    for nc, w in workers:
        await w.stop()
        await nc.close()


@pytest.mark.timeout(300)
async def test_a_sweep_of_120_points_with_its_candles_in_the_jobs_runs_on_both_workers(
    nats_url: str, tmp_path: Path
) -> None:
    workers = await _workers(nats_url, Settings(data_dir=tmp_path), None)
    try:
        points = sweep.grid({}, [sweep.parse_sweep("fast=3..14"), sweep.parse_sweep("slow=20..65:5")])
        assert len(points) == 120
        # the candles travel with the jobs, as a sweep sends them to remote workers
        data = BacktestData(tf="5m", inline=pack_candles(load(CANDLES).arrays()), key="xrp-eth-5m")
        results = await sweep.run(SMA, data, points, nats_url=nats_url, in_flight=8)
    finally:
        await _stop(workers)
    used = sweep.workers_used(results)
    assert set(used) == {"worker-1", "worker-2"} and sum(used.values()) == 120
    assert all(w.jobs_done > 10 for _, w in workers), used
    assert all(p.error is None for p in results)
    # each point is the backtest the engine gives in this process
    arrays = load(CANDLES).arrays()
    for p in (results[0], results[57], results[-1]):
        local = engine.run(SMA, arrays, params=p.params).summary()
        assert p.summary["final_equity"] == local["final_equity"]
        assert p.summary["trade_count"] == len(local["trades"])
    best = sweep.rank(results)[0]
    assert best.summary["final_equity"] == max(p.summary["final_equity"] for p in results)


@pytest.mark.timeout(300)
async def test_the_api_queues_a_backtest_that_a_worker_runs_and_only_its_owner_sees(
    nats_url: str, tmp_path: Path
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'tw.db'}"
    await upgrade_async(url)
    eng = make_engine(url)
    sf = make_session_factory(eng)
    loaded = load(CANDLES)
    async with sf() as s:
        market = await store.get_or_create_market(s, "binance", "XRP/ETH")
        await store.insert_candles(s, market.id, "5m", loaded.rows)
        await s.commit()
    settings = Settings(data_dir=tmp_path, database_url=url)
    workers = await _workers(nats_url, settings, sf, n=1)
    web_nc = await connect(nats_url, "web")
    app = create_app(settings, sf, web_nc, SecretBox([KEY]))
    transport = httpx.ASGITransport(app=app)
    try:
        async with (
            httpx.AsyncClient(transport=transport, base_url="http://t") as alice,
            httpx.AsyncClient(transport=transport, base_url="http://t") as bob,
        ):
            for c, email in ((alice, "alice@example.com"), (bob, "bob@example.com")):
                assert (
                    await c.post(
                        "/api/auth/register", json={"email": email, "password": "correct horse battery"}
                    )
                ).status_code == 201
                r = await c.post(
                    "/api/auth/login", json={"email": email, "password": "correct horse battery"}
                )
                c.cookies.clear()
                c.headers["Authorization"] = f"Bearer {r.json()['token']}"
            r = await alice.post("/api/strategies", json={"name": "sma", "code": SMA})
            assert r.status_code == 201, r.text
            sid = r.json()["id"]
            body = {
                "strategy_id": sid,
                "market_id": market.id,
                "timeframe": "5m",
                "params": {"fast": 5, "slow": 20},
            }
            r = await alice.post("/api/backtests", json=body)
            assert r.status_code == 202, r.text
            bid = r.json()["id"]
            assert r.json()["status"] in ("queued", "running")
            for _ in range(600):
                doc = (await alice.get(f"/api/backtests/{bid}")).json()
                if doc["status"] in ("done", "error"):
                    break
                await asyncio.sleep(0.05)
            assert doc["status"] == "done", doc
            local = engine.run(SMA, loaded.arrays(), params={"fast": 5, "slow": 20}).summary()
            assert doc["metrics"]["final_equity"] == local["final_equity"]
            assert doc["metrics"]["candles"] == 706
            assert doc["trades"] == local["trades"]
            assert len(doc["equity"]) > 100 and doc["equity"][-1][1] == pytest.approx(
                local["final_equity"], rel=1e-9
            )
            assert doc["equity"][0][0] == 1570752000000 and max(p[2] for p in doc["equity"]) == pytest.approx(
                local["max_drawdown_pct"], rel=1e-4
            )
            # the new metrics as the engine gives them, and buying and holding at the curve's times
            for k in ("profit_factor", "avg_trade_duration_s", "fees_paid", "buy_and_hold_return_pct"):
                assert doc["metrics"][k] == pytest.approx(local[k]), k
            assert [p[0] for p in doc["buy_and_hold"]] == [p[0] for p in doc["equity"]]
            assert doc["buy_and_hold"][0][1] == 10_000 and doc["plot"] == {}  # this SMA plots nothing
            assert (await bob.get(f"/api/backtests/{bid}")).status_code == 404
            assert [b["id"] for b in (await alice.get("/api/backtests")).json()["items"]] == [bid]
            assert (await bob.get("/api/backtests")).json()["items"] == []
            r = await bob.post("/api/backtests", json=body)  # alice's strategy
            assert r.status_code == 422
            bad = dict(body, timeframe="7m")
            assert (await alice.post("/api/backtests", json=bad)).status_code == 422

            # a strategy's own series: the last 5,000 candles' (all 706 here, less the warm-up's NaN)
            r = await alice.post("/api/strategies", json={"name": "plotted", "code": SMA_PLOT})
            r = await alice.post("/api/backtests", json=dict(body, strategy_id=r.json()["id"], params={}))
            for _ in range(600):
                plotted = (await alice.get(f"/api/backtests/{r.json()['id']}")).json()
                if plotted["status"] in ("done", "error"):
                    break
                await asyncio.sleep(0.05)
            assert plotted["status"] == "done", plotted
            assert sorted(plotted["plot"]) == ["fast", "slow"] and len(plotted["plot"]["slow"]) == 706 - 19
            assert plotted["plot"]["slow"][-1][0] == doc["equity"][-1][0]
            listed = (await alice.get("/api/backtests")).json()["items"]
            assert listed[0].get("plot") is None  # a list leaves it out

            # a strategy that fails: the run ends in status error, with the message and the candle
            r = await alice.post("/api/strategies", json={"name": "boom", "code": BOOM})
            r = await alice.post("/api/backtests", json=dict(body, strategy_id=r.json()["id"]))
            assert r.status_code == 202, r.text
            for _ in range(600):
                doc = (await alice.get(f"/api/backtests/{r.json()['id']}")).json()
                if doc["status"] in ("done", "error"):
                    break
                await asyncio.sleep(0.05)
            assert (
                doc["status"] == "error" and "boom" in doc["error"] and "2019-10-11 08:20 UTC" in doc["error"]
            )
            assert doc["metrics"]["candles"] == 101
    finally:
        await web_nc.close()
        await _stop(workers)
        await eng.dispose()


@pytest.mark.timeout(300)
async def test_the_cli_sends_a_sweep_to_the_workers_on_the_configured_bus(
    nats_url: str, tmp_path: Path
) -> None:
    strat = tmp_path / "sma.lua"
    strat.write_text(SMA)
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRADEWIND_")}
    env.update(TRADEWIND_NATS_URL=nats_url, TRADEWIND_DATA_DIR=str(tmp_path / "home"))
    cmd = [
        str(Path(sys.executable).parent / "tradewind"),
        "backtest",
        str(strat),
        "--data",
        str(CANDLES),
        "--sweep",
        "fast=3..8",
        "--param",
        "slow=30",
        "--json",
    ]
    workers = await _workers(nats_url, Settings(data_dir=tmp_path), None)
    try:
        out = await asyncio.to_thread(
            subprocess.run, cmd, capture_output=True, text=True, env=env, timeout=240
        )
    finally:
        await _stop(workers)
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert (
        doc["points"] == 6
        and sum(doc["workers"].values()) == 6
        and set(doc["workers"]) <= {"worker-1", "worker-2"}
    )
    assert sum(w.jobs_done for _, w in workers) == 6
    assert [r["params"] for r in doc["results"]] != [] and all(
        r["params"]["slow"] == 30 for r in doc["results"]
    )
