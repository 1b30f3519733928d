"""Eval workers on a real NATS server and a real store: load sharing, isolation, limits from outside."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from sqlalchemy import update

from tradewind.bus import messages as m
from tradewind.bus import subjects
from tradewind.bus.connection import connect
from tradewind.bus.embedded import EmbeddedNats
from tradewind.config import Settings
from tradewind.eval.worker import EvalWorker
from tradewind.storage import candles as store
from tradewind.storage.db import make_engine, make_session_factory
from tradewind.storage.migrate import upgrade_async
from tradewind.storage.models import CandleRow, Strategy, StrategyVersion, User

GOOD = (
    'function decide(c, p) if c.close[#c.close] > c.open[#c.open] then return "long" end return "short" end'
)
# Each `..` is one Lua instruction that copies 16 MB in C: the count hook fires every thousand
# instructions, so it takes seconds to notice the time limit in the Lua state; the kill stops it in time.
STALLS_IN_C = """
function decide(c, p)
  local s = string.rep("x", 1000000)
  s = s .. s .. s .. s .. s .. s .. s .. s
  s = s .. s
  while true do local t = s .. "x" end
end
"""
LOOPS = "function decide(c) while true do end end"
MEMORY_BOMB = (
    'function decide(c) local s, t = string.rep("x", 1000000), {} for i = 1, 1e9 do t[i] = s .. i end end'
)
COUNTER = """
function init(p) n = p.start or 0 end
function decide(c, p) n = n + 1 return {position = "neutral", note = tostring(n)} end
"""
BAD_RETURN = "function decide(c) return 42 end"
CODES = {1: GOOD, 2: STALLS_IN_C, 3: LOOPS, 4: MEMORY_BOMB, 5: COUNTER, 6: BAD_RETURN}
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
        for sid, code in CODES.items():
            s.add(Strategy(id=sid, owner_id=1, name=f"s{sid}", latest_version=1))
            await s.flush()
            s.add(StrategyVersion(strategy_id=sid, version=1, code=code))
        market = await store.get_or_create_market(s, "sim", "BTC/USD")
        rows = [
            (T0 + i * 60_000, 100.0 + i % 3, 102.0 + i % 3, 99.0, 101.0 + (i % 2), 5.0) for i in range(600)
        ]
        await store.insert_candles(s, market.id, "1m", rows)
        await s.commit()
    server = EmbeddedNats(tmp_path / "nats")
    nats_url = await server.start()
    # room for STALLS_IN_C's 16 MB strings; limits small enough that each hostile strategy hits its own
    settings = Settings(
        data_dir=tmp_path,
        database_url=url,
        eval_time_limit_ms=300,
        eval_memory_mb=64,
        eval_instruction_limit=1_000_000,
    )
    yield settings, sf, nats_url
    await server.stop()
    await engine.dispose()


def request(
    jobs: list[tuple[int, int]], minute: int = 599, params: dict | None = None, owner: int | None = 1
) -> bytes:
    return m.encode(
        m.EvalRequest(
            exchange="sim",
            symbol="BTC/USD",
            tf="1m",
            candle_time=T0 + minute * 60_000,
            jobs=[
                m.EvalJob(assignment_id=a, strategy_id=s, version=1, params=params or {}, owner_id=owner)
                for a, s in jobs
            ],
        )
    )


async def ask(client, payload: bytes, timeout: float = 20) -> m.EvalReply:  # type: ignore[no-untyped-def]
    return m.decode((await client.request(subjects.EVAL_RUN, payload, timeout=timeout)).data, m.EvalReply)


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
        decoded = await asyncio.gather(*(ask(client, request([(i, 1)], 590 + i % 10)) for i in range(40)))
        assert all(len(d.outcomes) == 1 and d.outcomes[0].status == "ok" for d in decoded)
        assert {d.worker for d in decoded} == {"w0", "w1"}
    finally:
        await client.close()
        for w, nc in workers:
            await w.stop()
            await nc.close()


async def test_hostile_strategies_in_a_batch_fail_alone_and_the_worker_keeps_serving(env) -> None:  # type: ignore[no-untyped-def]
    settings, sf, url = env
    nc = await connect(url, "w")
    worker = EvalWorker(settings, nc, sf, name="w")
    await worker.start()
    client = await connect(url, "client")
    try:
        loop = asyncio.get_running_loop()
        started = loop.time()
        reply = await ask(
            client, request([(1, 1), (2, 2), (3, 1), (4, 3), (5, 4), (6, 1), (7, 6)]), timeout=30
        )
        assert loop.time() - started < 6, "each hostile strategy is stopped within its limits"
        by_id = {o.assignment_id: o for o in reply.outcomes}
        assert [o.assignment_id for o in reply.outcomes] == [1, 2, 3, 4, 5, 6, 7]
        assert all(by_id[a].status == "ok" and by_id[a].position in ("long", "short") for a in (1, 3, 6))
        stalled, looped, bombed, bad = by_id[2], by_id[4], by_id[5], by_id[7]
        assert (
            stalled.status == "error"
            and "time limit" in stalled.error
            and "stopped from outside" in stalled.error
        )
        assert "'s2'" in stalled.error and "candle" in stalled.error
        assert looped.status == "error" and "instruction limit" in looped.error and "'s3'" in looped.error
        assert bombed.status == "error" and "memory limit" in bombed.error
        assert bad.status == "error" and "bad return value" in bad.error
        assert worker.executor.restarts == 1  # only the C stall needed the kill
        again = await ask(client, request([(1, 1), (3, 1)]), timeout=10)
        assert [o.status for o in again.outcomes] == ["ok", "ok"]
    finally:
        await client.close()
        await worker.stop()
        await nc.close()


async def test_each_assignment_keeps_its_own_runtime_and_init_runs_once(env) -> None:  # type: ignore[no-untyped-def]
    settings, sf, url = env
    nc = await connect(url, "w")
    worker = EvalWorker(settings, nc, sf, name="w")
    await worker.start()
    client = await connect(url, "client")
    try:
        notes = []
        for minute in (597, 598, 599):
            reply = await ask(client, request([(10, 5), (11, 5)], minute, params={"start": 100}))
            notes.append([o.note for o in reply.outcomes])
        assert notes == [["101", "101"], ["102", "102"], ["103", "103"]]
        # new params: a new runtime, init runs again
        reply = await ask(client, request([(10, 5)], 599, params={"start": 7}))
        assert reply.outcomes[0].note == "8"
    finally:
        await client.close()
        await worker.stop()
        await nc.close()


async def test_the_window_cache_follows_core_candles_on_the_bus(env) -> None:  # type: ignore[no-untyped-def]
    settings, sf, url = env
    nc = await connect(url, "w")
    worker = EvalWorker(settings, nc, sf, name="w")
    await worker.start()
    client = await connect(url, "client")
    try:
        await ask(client, request([(1, 1)], 599))  # loads the window from the store
        candle = m.Candle(
            exchange="sim",
            symbol="BTC/USD",
            tf="1m",
            time=T0 + 600 * 60_000,
            open=10.0,
            high=30.0,
            low=5.0,
            close=20.0,
            volume=1.0,
        )
        await client.publish(subjects.core_candle("sim", "BTC/USD", "1m"), m.encode(candle))
        reply = await ask(client, request([(1, 1)], 600))
        assert reply.outcomes[0].status == "ok" and reply.outcomes[0].position == "long"  # close 20 > open 10
        missing = await ask(client, request([(1, 1)], 700))
        assert missing.outcomes[0].status == "error" and "no candle" in missing.outcomes[0].error
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
        await worker.windows.on_candle(
            m.Candle(
                exchange="sim",
                symbol="BTC/USD",
                tf="1m",
                time=T0 + 600 * 60_000,
                open=1,
                high=2,
                low=0.5,
                close=1.5,
                volume=1,
            )
        )
        window = await worker.windows.window("sim", "BTC/USD", "1m", T0 + 600 * 60_000, 500)
        assert window.last_time == T0 + 600 * 60_000 and window.close[-1] == 1.5 and len(window) == 500
    finally:
        await worker.stop()
        await nc.close()


async def test_a_candle_that_comes_late_makes_the_next_window_come_from_the_store(env) -> None:  # type: ignore[no-untyped-def]
    """A derived candle closed again whole, or a minute given back after a failover, arrives behind newer
    ones: the cached rows would keep the old values, so the window is read again."""
    settings, sf, url = env
    nc = await connect(url, "w")
    worker = EvalWorker(settings, nc, sf, name="w")
    await worker.start()
    try:
        late = T0 + 300 * 60_000
        window = await worker.windows.window("sim", "BTC/USD", "1m", T0 + 599 * 60_000, 500)
        assert window.close[-300] == 101.0
        async with sf() as s:  # core stores the late candle, then publishes it
            await s.execute(update(CandleRow).where(CandleRow.time == late).values(close=77.0))
            await s.commit()
        await worker.windows.on_candle(
            m.Candle(
                exchange="sim",
                symbol="BTC/USD",
                tf="1m",
                time=late,
                open=100,
                high=102,
                low=77,
                close=77.0,
                volume=5,
            )
        )
        window = await worker.windows.window("sim", "BTC/USD", "1m", T0 + 599 * 60_000, 500)
        assert window.close[-300] == 77.0 and len(window) == 500
    finally:
        await worker.stop()
        await nc.close()


async def test_a_worker_runs_a_strategy_only_for_its_owner(env) -> None:  # type: ignore[no-untyped-def]
    """Core names each job's owner; a strategy of someone else (or a job naming nobody) is not run."""
    settings, sf, url = env
    nc = await connect(url, "w")
    w = EvalWorker(settings, nc, sf, name="w")
    await w.start()
    client = await connect(url, "client")
    try:
        mine = await ask(client, request([(1, 1)], owner=1))
        theirs = await ask(client, request([(2, 1), (3, 1)], owner=2))
        nobody = await ask(client, request([(4, 1)], owner=None))
        assert [o.status for o in mine.outcomes] == ["ok"]
        for reply in (theirs, nobody):
            assert {o.status for o in reply.outcomes} == {"error"}
            assert all("does not belong" in (o.error or "") and o.logs == [] for o in reply.outcomes)
        assert sorted(o.assignment_id for o in theirs.outcomes) == [2, 3]
    finally:
        await client.close()
        await w.stop()
        await nc.close()
