"""Backtests of quoting strategies (on_tick) through the API, as the web app runs them: POST /api/backtests,
a BacktestWorker on a real NATS runs it over a real SQLite store, GET /api/backtests/{id} gives the fills.
On the market's stored ticks when there are any in the range, else on its candles with a synthetic spread."""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from tradewind.backtest import quotes
from tradewind.backtest.worker import BacktestWorker
from tradewind.bus.connection import connect
from tradewind.bus.embedded import EmbeddedNats
from tradewind.config import Settings
from tradewind.secrets import SecretBox
from tradewind.storage import candles as store
from tradewind.storage.db import make_engine, make_session_factory
from tradewind.storage.migrate import upgrade_async
from tradewind.storage.models import TickRow
from tradewind.web.app import create_app

from .test_quotes_cli import market_maker  # the example of docs/strategies.md, as written there

KEY = "yQ0c1c8b1nJmQ1W3Yw3q0m9XK2b6b4Q7b2b2Zm4z3xY="
MIN = 60_000
T0 = 1_704_067_200_000  # 2024-01-01T00:00:00Z
PARAMS = {"size": 1, "max_inventory": 3}


def swinging(n: int) -> list[tuple[int, float, float, float, float, float]]:
    """n 1m candles from T0 swinging 0.5 around 100, each reaching 0.1 past its open and close."""
    closes = [100 + 0.5 * math.sin(i / 6) for i in range(n)]
    rows = []
    for i, c in enumerate(closes):
        o = closes[i - 1] if i else c
        rows.append((T0 + MIN * i, o, max(o, c) + 0.1, min(o, c) - 0.1, c, 1.0))
    return rows


def hour_of_ticks() -> list[tuple[int, float, float, float]]:
    """An hour of ticks from T0 + 15 min, one a second, swinging 0.2 % around 100 with trades a little outside
    the book (as the CLI's test of stored ticks)."""
    out = []
    for k in range(3600):
        mid = 100 + 0.2 * math.sin(k / 60)
        last = mid + 0.15 * math.sin(k / 7)
        out.append((T0 + 15 * MIN + 1000 * k, round(mid - 0.01, 4), round(mid + 0.01, 4), round(last, 4)))
    return out


def arrays(rows: list[tuple[int, float, float, float, float, float]]) -> dict[str, np.ndarray]:
    cols = list(zip(*rows, strict=True))
    out = {
        k: np.asarray(cols[i], dtype=np.float64)
        for i, k in enumerate(("time", "open", "high", "low", "close", "volume"))
    }
    out["time"] = out["time"].astype(np.int64)
    return out


@asynccontextmanager
async def platform(
    tmp_path: Path, markets: dict[str, tuple[list[Any], list[Any]]], *, worker: bool = True
) -> AsyncIterator[tuple[httpx.AsyncClient, dict[str, int]]]:
    """The app with one backtest worker on an embedded NATS (none with ``worker=False``), over a SQLite store
    holding ``markets`` (symbol -> (1m candle rows, tick rows)); a logged-in client and the market ids."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'tw.db'}"
    await upgrade_async(url)
    eng = make_engine(url)
    sf = make_session_factory(eng)
    ids = {}
    async with sf() as s:
        for symbol, (rows, ticks) in markets.items():
            market = await store.get_or_create_market(s, "sim", symbol)
            await store.insert_candles(s, market.id, "1m", rows)
            s.add_all(
                TickRow(market_id=market.id, time=t, bid=b, ask=a, bid_size=1.0, ask_size=1.0, last=x)
                for t, b, a, x in ticks
            )
            ids[symbol] = market.id
        await s.commit()
    settings = Settings(data_dir=tmp_path, database_url=url)
    server = EmbeddedNats(tmp_path / "nats") if worker else None
    nats_url = await server.start() if server else None
    w_nc = await connect(nats_url, "bt-worker") if nats_url else None
    w = BacktestWorker(settings, w_nc, sf, name="worker-1") if w_nc else None
    web_nc = await connect(nats_url, "web") if nats_url else None
    try:
        if w is not None:
            await w.start()
        app = create_app(settings, sf, web_nc, SecretBox([KEY]))
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
            creds = {"email": "maker@example.com", "password": "correct horse battery"}
            assert (await c.post("/api/auth/register", json=creds)).status_code == 201
            r = await c.post("/api/auth/login", json=creds)
            c.cookies.clear()
            c.headers["Authorization"] = f"Bearer {r.json()['token']}"
            yield c, ids
    finally:
        if web_nc is not None:
            await web_nc.close()
        if w is not None:
            await w.stop()
        if w_nc is not None:
            await w_nc.close()
        if server is not None:
            await server.stop()
        await eng.dispose()


async def strategy(c: httpx.AsyncClient, name: str, code: str) -> int:
    r = await c.post("/api/strategies", json={"name": name, "code": code})
    assert r.status_code == 201, r.text
    return int(r.json()["id"])


async def backtest(c: httpx.AsyncClient, body: dict[str, Any]) -> dict[str, Any]:
    """POST the backtest and wait for its end: the GET document."""
    r = await c.post("/api/backtests", json=body)
    assert r.status_code == 202, r.text
    for _ in range(400):
        doc = (await c.get(f"/api/backtests/{r.json()['id']}")).json()
        if doc["status"] in ("done", "error"):
            return doc
        await asyncio.sleep(0.025)
    raise AssertionError(f"backtest {r.json()['id']} did not finish: {doc}")


def quote_fills(doc: dict[str, Any]) -> dict[str, int]:
    return {
        side: sum(1 for f in doc["fills"] if f["kind"] == "quote" and f["side"] == side)
        for side in ("buy", "sell")
    }


@pytest.mark.timeout(60)
async def test_the_documented_market_maker_quotes_on_candles_with_a_synthetic_spread(tmp_path: Path) -> None:
    mm = market_maker(tmp_path).read_text()
    rows = swinging(300)
    async with platform(tmp_path, {"BTC/USD": (rows, [])}) as (c, ids):
        body = {
            "strategy_id": await strategy(c, "mm", mm),
            "market_id": ids["BTC/USD"],
            "timeframe": "1m",
            "params": PARAMS,
            "spread_bps": 5,
        }
        doc = await backtest(c, body)
        assert doc["status"] == "done" and doc["error"] is None, doc
        assert doc["mode"] == "candles" and doc["trades"] is None
        m = doc["metrics"]
        assert m["mode"] == "candles" and "approximation" in m["label"] and m["spread_bps"] == 5
        assert m["candles"] == 300 and m["evaluations"] == 299 and m["max_position"] is None
        buys, sells = quote_fills(doc).values()
        assert buys > 0 and sells > 0 and m["fills"] == {"buy": buys, "sell": sells}
        assert m["quotes_placed"] >= buys + sells and len(doc["equity"]) == 300
        assert doc["config"]["trigger"] is None and doc["config"]["spread_bps"] == 5
        # the run is quotes.run_candles' own, on the stored candles
        local = quotes.run_candles(mm, arrays(rows), params=PARAMS, spread_bps=5, name="mm").summary()
        assert doc["fills"] == local["trades"] and m["final_equity"] == local["final_equity"]
        assert doc["equity"][-1] == local["equity"][-1]
        # without a spread, the default's (2 bps): other quotes, other fills
        default = await backtest(c, {**body, "spread_bps": None})
        assert (
            default["metrics"]["spread_bps"] == quotes.DEFAULT_SPREAD_BPS and default["fills"] != doc["fills"]
        )
        listed = (await c.get("/api/backtests")).json()["items"][0]
        assert listed["mode"] == "candles" and listed["fills"] is None and listed["metrics"]["fills"]

        # a strategy error: status error, the message with its candle, the run up to it kept
        failing = 'function on_tick(t, c) if #c.close == 50 then error("lost the book") end end'
        doc = await backtest(c, {**body, "strategy_id": await strategy(c, "failing", failing)})
        assert doc["status"] == "error" and "lost the book" in doc["error"], doc
        assert (
            "candle 2024-01-01 00:49 UTC" in doc["error"]
            and doc["metrics"]["error_time"] == "2024-01-01T00:49:00Z"
        )
        assert doc["mode"] == "candles" and doc["metrics"]["candles"] == 50 and len(doc["equity"]) == 50

        # a strategy with both functions runs decide unless the trigger says tick
        both = await strategy(
            c,
            "both",
            'function decide(c) return "long" end\n'
            "function on_tick(t) return {quotes = {{side = 'buy', price = t.bid - 0.05, amount = 1}}} end",
        )
        decided = await backtest(c, {**body, "strategy_id": both, "spread_bps": None})
        assert decided["status"] == "done" and decided["mode"] is None and len(decided["trades"]) == 1
        quoted = await backtest(c, {**body, "strategy_id": both, "trigger": "tick"})
        assert quoted["status"] == "done" and quoted["mode"] == "candles" and quote_fills(quoted)["buy"] > 0
        # the market maker told to decide: the sandbox's error, not a crash
        told = await backtest(c, {**body, "trigger": "candle", "spread_bps": None})
        assert told["status"] == "error" and "no function decide" in told["error"]


@pytest.mark.timeout(60)
async def test_the_documented_market_maker_quotes_on_the_stored_ticks_of_its_market(tmp_path: Path) -> None:
    mm = market_maker(tmp_path).read_text()
    rows, ticks = [(T0 + MIN * i, 100.0, 100.05, 99.95, 100.0, 1.0) for i in range(90)], hour_of_ticks()
    markets = {"BTC/USD": (rows, ticks), "ETH/USD": ([], ticks[:10])}
    async with platform(tmp_path, markets) as (c, ids):
        body = {
            "strategy_id": await strategy(c, "mm", mm),
            "market_id": ids["BTC/USD"],
            "timeframe": "1m",
            "params": PARAMS,
            "max_position": 2,
            "min_interval_ms": 5000,
        }
        doc = await backtest(c, body)
        assert doc["status"] == "done", doc
        m = doc["metrics"]
        assert doc["mode"] == m["mode"] == "ticks" and m["label"] == "ticks" and m["ticks"] == 3600
        assert 0 < m["evaluations"] <= 720 and m["min_interval_ms"] == 5000 and m["max_position"] == 2
        buys, sells = quote_fills(doc).values()
        assert buys > 0 and sells > 0 and 0 <= m["final_inventory"] <= 2
        assert doc["fills"][0]["time"] >= "2024-01-01T00:15:00Z" and len(doc["equity"]) > 100
        tick_arrays = {
            k: np.asarray([t[i] for t in ticks], dtype=np.int64 if k == "time" else np.float64)
            for k, i in (("time", 0), ("bid", 1), ("ask", 2), ("last", 3))
        }
        tick_arrays |= {"bid_size": np.ones(len(ticks)), "ask_size": np.ones(len(ticks))}
        local = quotes.run_ticks(
            mm,
            arrays(rows),
            tick_arrays,
            params=PARAMS,
            max_position=2,
            min_interval_ms=5000,
            tf_ms=MIN,
            name="mm",
        ).summary()
        assert doc["fills"] == local["trades"] and m["final_equity"] == local["final_equity"]

        # a range without ticks: the candles, with a synthetic spread
        early = await backtest(c, {**body, "from": T0, "to": T0 + 15 * MIN})
        assert early["status"] == "done" and early["mode"] == "candles" and early["metrics"]["candles"] == 15

        # ticks whose candles are not stored: a message, not a crash
        bare = await backtest(c, {**body, "market_id": ids["ETH/USD"]})
        assert bare["status"] == "error" and "candles stored for market" in bare["error"]
        assert "on_tick's window needs them" in bare["error"]


BAD = [
    ("spread_bps", 0),
    ("spread_bps", -1),
    ("spread_bps", 1000.5),
    ("spread_bps", "wide"),
    ("max_position", 0),
    ("max_position", -0.5),
    ("max_position", 1e13),
    ("min_interval_ms", 99),
    ("min_interval_ms", 3_600_001),
    ("min_interval_ms", 1000.5),
    ("min_interval_ms", "1000"),
    ("trigger", "book"),
    ("trigger", 1),
]


async def test_bad_quoting_fields_are_refused_naming_the_field(tmp_path: Path) -> None:
    async with platform(tmp_path, {"BTC/USD": (swinging(5), [])}, worker=False) as (c, ids):
        sid = await strategy(c, "mm", market_maker(tmp_path).read_text())
        body = {"strategy_id": sid, "market_id": ids["BTC/USD"], "timeframe": "1m"}
        for field, value in BAD:
            r = await c.post("/api/backtests", json={**body, field: value})
            assert r.status_code == 422, (field, value, r.text)
            assert [e["field"] for e in r.json()["errors"]] == [field], r.text
        # the quoting fields with the trigger candle: no quoting run to apply them to
        for name, good in (("spread_bps", 5), ("max_position", 1), ("min_interval_ms", 1000)):
            r = await c.post("/api/backtests", json={**body, "trigger": "candle", name: good})
            assert r.status_code == 422 and r.json()["errors"][0]["field"] == name, r.text
            assert "only for a quoting run" in r.json()["detail"]
        assert (await c.get("/api/backtests")).json()["items"] == []  # nothing refused was stored
        # at their limits: accepted and kept with the run (no worker here: it ends in an error that says so)
        limits = {"trigger": "tick", "spread_bps": 1000, "max_position": 0.5, "min_interval_ms": 3_600_000}
        r = await c.post("/api/backtests", json={**body, **limits})
        assert r.status_code == 202, r.text
        doc = (await c.get(f"/api/backtests/{r.json()['id']}")).json()
        assert {k: doc["config"][k] for k in limits} == limits and "no backtest worker" in doc["error"]
