"""Eval workers on a real NATS server and a real store: load sharing, isolation, limits from outside."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tradewind.bus import messages as m
from tradewind.bus import subjects
from tradewind.bus.connection import connect
from tradewind.bus.embedded import EmbeddedNats
from tradewind.config import Settings
from tradewind.eval.worker import EvalWorker
from tradewind.storage import candles as store
from tradewind.storage.db import make_engine, make_session_factory
from tradewind.storage.migrate import upgrade_async
from tradewind.storage.models import Strategy, StrategyVersion, User

GOOD = 'function decide(c, p) if c.close[#c.close] > c.open[#c.open] then return "long" end return "short" end'
# A pattern that backtracks for minutes in C, where no count hook runs.
PATHOLOGICAL = """
function decide(c, p)
  local s = string.rep("a", 300)
  string.find(s, string.rep("a*", 20) .. "b")
  return "long"
end
"""
T0 = 1_700_000_040_000 - 1_700_000_040_000 % 60_000


@pytest.fixture
async def env(tmp_path: Path):  # type: ignore[no-untyped-def]
    url = f"sqlite+aiosqlite:///{tmp_path / 'e.db'}"
    await upgrade_async(url)
    engine = make_engine(url)
    sf = make_session_factory(engine)
    async with sf() as s:
        s.add(User(id=1, email="e@example.com", password_hash="x"))
        await s.flush()
        for sid, code in ((1, GOOD), (2, PATHOLOGICAL)):
            s.add(Strategy(id=sid, owner_id=1, name=f"s{sid}", latest_version=1))
            await s.flush()
            s.add(StrategyVersion(strategy_id=sid, version=1, code=code))
        market = await store.get_or_create_market(s, "sim", "BTC/USD")
        rows = [(T0 + i * 60_000, 100.0 + i % 3, 102.0 + i % 3, 99.0, 101.0 + (i % 2), 5.0) for i in range(600)]
        await store.insert_candles(s, market.id, "1m", rows)
        await s.commit()
    server = EmbeddedNats(tmp_path / "nats")
    nats_url = await server.start()
    settings = Settings(data_dir=tmp_path, database_url=url, eval_time_limit_ms=300)
    yield settings, sf, nats_url
    await server.stop()
    await engine.dispose()


def request(jobs: list[tuple[int, int]], minute: int = 599) -> bytes:
    return m.encode(m.EvalRequest(exchange="sim", symbol="BTC/USD", tf="1m", candle_time=T0 + minute * 60_000,
                                  jobs=[m.EvalJob(assignment_id=a, strategy_id=s, version=1) for a, s in jobs]))  # fmt: skip


async def test_two_workers_share_requests_and_answer_every_job(env) -> None:  # type: ignore[no-untyped-def]
    settings, sf, url = env
    workers = []
    for i in range(2):
        nc = await connect(url, f"w{i}")
        w = EvalWorker(settings, nc, sf, name=f"w{i}")
        await w.start()
        workers.append((w, nc))
    client = await connect(url, "client")
    try:
        replies = await asyncio.gather(*(client.request(subjects.EVAL_RUN, request([(i, 1)], 590 + i % 10), timeout=20) for i in range(40)))
        decoded = [m.decode(r.data, m.EvalReply) for r in replies]
        assert all(len(d.outcomes) == 1 and d.outcomes[0].status == "ok" for d in decoded)
        assert {d.worker for d in decoded} == {"w0", "w1"}
    finally:
        await client.close()
        for w, nc in workers:
            await w.stop()
            await nc.close()


async def test_a_pathological_pattern_is_stopped_from_outside_and_the_batch_goes_on(env) -> None:  # type: ignore[no-untyped-def]
    settings, sf, url = env
    nc = await connect(url, "w")
    worker = EvalWorker(settings, nc, sf, name="w")
    await worker.start()
    client = await connect(url, "client")
    try:
        loop = asyncio.get_running_loop()
        started = loop.time()
        reply = m.decode((await client.request(subjects.EVAL_RUN, request([(1, 1), (2, 2), (3, 1)]), timeout=30)).data, m.EvalReply)
        assert loop.time() - started < 5
        good1, bad, good2 = reply.outcomes
        assert good1.status == "ok" and good2.status == "ok"
        assert bad.status == "error" and "time limit" in bad.error and "s2" in bad.error
        assert worker.executor.restarts == 1
        # the worker keeps serving
        again = m.decode((await client.request(subjects.EVAL_RUN, request([(1, 1)]), timeout=10)).data, m.EvalReply)
        assert again.outcomes[0].status == "ok"
    finally:
        await client.close()
        await worker.stop()
        await nc.close()


async def test_the_window_ends_at_the_candle_asked_for(env) -> None:  # type: ignore[no-untyped-def]
    settings, sf, url = env
    nc = await connect(url, "w")
    worker = EvalWorker(settings, nc, sf, name="w")
    await worker.start()
    try:
        window = await worker.windows.window("sim", "BTC/USD", "1m", T0 + 300 * 60_000, 100)
        assert len(window) == 100 and window.last_time == T0 + 300 * 60_000
        window = await worker.windows.window("sim", "BTC/USD", "1m", T0 + 599 * 60_000, 500)
        assert len(window) == 500 and window.last_time == T0 + 599 * 60_000
        await worker.windows.on_candle(m.Candle(exchange="sim", symbol="BTC/USD", tf="1m", time=T0 + 600 * 60_000,
                                                open=1, high=2, low=0.5, close=1.5, volume=1))  # fmt: skip
        window = await worker.windows.window("sim", "BTC/USD", "1m", T0 + 600 * 60_000, 500)
        assert window.last_time == T0 + 600 * 60_000 and window.close[-1] == 1.5 and len(window) == 500
    finally:
        await worker.stop()
        await nc.close()
