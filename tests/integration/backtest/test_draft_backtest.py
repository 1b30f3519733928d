"""A backtest of code that was not saved (the editor's "Backtest this code"): the run uses the code sent with it,
keeps it, says so, and leaves the strategy's versions as they were; code with errors is a 422 on its line."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest

from tradewind.backtest.worker import BacktestWorker
from tradewind.bus.connection import connect
from tradewind.bus.embedded import EmbeddedNats
from tradewind.config import Settings
from tradewind.secrets import SecretBox
from tradewind.web.app import create_app

from .test_fresh_candles import KEY, MINUTE, add, market, sf  # noqa: F401 - sf: the fixture

NEVER = 'function decide(c, p) return "short" end'
LONG = """params = {size = {type = "float", min = 0.1, max = 1, default = 1}}
function decide(c, p) return {position = "long", size = p.size} end
"""


@pytest.mark.timeout(120)
async def test_unsaved_code_is_backtested_without_a_new_version(tmp_path: Path, sf) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
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
            login = {"email": "draft@example.com", "password": "correct horse battery"}
            await c.post("/api/auth/register", json=login)
            r = await c.post("/api/auth/login", json=login)
            c.cookies.clear()
            c.headers["Authorization"] = f"Bearer {r.json()['token']}"
            sid = (await c.post("/api/strategies", json={"name": "never", "code": NEVER})).json()["id"]
            body = {
                "strategy_id": sid,
                "market_id": mid,
                "timeframe": "1m",
                "from": MINUTE * 11,
                "lookback": 5,
            }

            async def run(**extra: object) -> dict:  # type: ignore[type-arg]
                r = await c.post("/api/backtests", json={**body, **extra})
                assert r.status_code == 202, r.text
                for _ in range(400):
                    doc = (await c.get(f"/api/backtests/{r.json()['id']}")).json()
                    if doc["status"] in ("done", "error"):
                        return doc  # type: ignore[no-any-return]
                    await asyncio.sleep(0.05)
                raise AssertionError("the backtest did not finish")

            saved = await run()
            assert saved["status"] == "done" and saved["trades"] == [] and saved["draft"] is False
            draft = await run(code=LONG, params={"size": 0.5})
            assert draft["status"] == "done", draft
            assert draft["draft"] is True and draft["version"] == 1 and draft["params"] == {"size": 0.5}
            assert len(draft["trades"]) >= 1, "the sent code ran, not the saved version"
            assert (await c.get(f"/api/strategies/{sid}")).json()["version"] == 1
            assert len((await c.get(f"/api/strategies/{sid}/versions")).json()) == 1
            # The sent code's own declaration checks the parameters; its errors are on their line.
            r = await c.post("/api/backtests", json={**body, "code": LONG, "params": {"size": 5}})
            assert r.status_code == 422 and r.json()["errors"][0]["field"] == "params.size"
            r = await c.post("/api/backtests", json={**body, "code": "function decide(c)\n  return = 1\nend"})
            assert r.status_code == 422 and r.json()["errors"][0] == {
                "field": "code",
                "line": 2,
                "message": r.json()["errors"][0]["message"],
            }
            assert (await c.get("/api/backtests")).json()["items"][0]["id"] == draft["id"], "nothing queued"
    finally:
        await worker.stop()
        await worker_nc.close()
        await web_nc.close()
        await server.stop()
