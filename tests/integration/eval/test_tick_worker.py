"""Tick evaluations on the eval worker, over a real NATS server and a real store: ``on_tick`` for every job
of a request with a tick, its quotes on the outcomes, the window a tick sees, ownership, and limits."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tradewind.bus import messages as m
from tradewind.bus import subjects
from tradewind.bus.connection import connect
from tradewind.bus.embedded import EmbeddedNats
from tradewind.config import Settings
from tradewind.eval.executor import Executor, Job
from tradewind.eval.worker import EvalWorker, WindowCache
from tradewind.sandbox.runtime import Limits
from tradewind.sandbox.window import CandleWindow
from tradewind.storage import candles as store
from tradewind.storage.db import make_engine, make_session_factory
from tradewind.storage.migrate import upgrade_async
from tradewind.storage.models import Strategy, StrategyVersion, User

# Quotes around the mid, lower by the position; the window it saw in its log.
QUOTER = """
function on_tick(t, c, p)
  print(#c.close, c.time[#c.time], c.close[#c.close], #t.quotes)
  local mid = (t.bid + t.ask) / 2
  return {quotes = {{side = "buy", price = mid - 1 - t.position, amount = p.size or 0.5},
                    {side = "sell", price = mid + 1 - t.position, amount = 0.25}}}
end
"""
DECIDES = 'function decide(c) return "long" end'
# nothing on a wide book, cancel on a narrow one, a position on a crossed one
MOODS = """
function on_tick(t)
  if t.ask - t.bid > 10 then return end
  if t.ask < t.bid then return {position = "short", note = "crossed"} end
  return {quotes = {}}
end
"""
LOOPS = """
function on_tick(t)
  if t.bid < 0 then while true do end end
  return {quotes = {{side = "sell", price = t.ask, amount = 1}}}
end
"""
STALLS_IN_C = """
function on_tick(t)
  local s = string.rep("x", 1000000)
  s = s .. s .. s .. s .. s .. s .. s .. s
  s = s .. s
  while true do local x = s .. "x" end
end
"""
BOTH = """
function decide(c) return {position = "neutral", note = "decide"} end
function on_tick(t) return {quotes = {{side = "buy", price = t.bid, amount = 1}}} end
"""
CODES = {1: QUOTER, 2: DECIDES, 3: MOODS, 4: LOOPS, 5: STALLS_IN_C, 6: BOTH}
THEIRS = 7  # user 2's quoter
T0 = 1_700_000_040_000 - 1_700_000_040_000 % 300_000
LAST = T0 + 599 * 60_000  # the newest stored 1m candle


@pytest.fixture
async def env(tmp_path: Path):  # type: ignore[no-untyped-def]
    url = f"sqlite+aiosqlite:///{tmp_path / 't.db'}"
    await upgrade_async(url)
    engine = make_engine(url)
    sf = make_session_factory(engine)
    async with sf() as s:
        s.add(User(id=1, email="one@example.com", password_hash="x"))
        s.add(User(id=2, email="two@example.com", password_hash="x"))
        await s.flush()
        for sid, code in [*CODES.items(), (THEIRS, QUOTER)]:
            s.add(Strategy(id=sid, owner_id=2 if sid == THEIRS else 1, name=f"s{sid}", latest_version=1))
            await s.flush()
            s.add(StrategyVersion(strategy_id=sid, version=1, code=code))
        market = await store.get_or_create_market(s, "sim", "BTC/USD")
        rows = [(T0 + i * 60_000, 100.0 + i % 3, 102.0 + i % 3, 99.0, 101.0 + i % 2, 5.0) for i in range(600)]
        await store.insert_candles(s, market.id, "1m", rows)
        # 5m candles whose last bucket is still open (the store keeps a derived timeframe's partial bucket)
        await store.insert_candles(
            s, market.id, "5m", [(T0 + k * 300_000, 100.0, 101.0, 99.0, 100.0 + k, 5.0) for k in range(120)]
        )
        await s.commit()
    server = EmbeddedNats(tmp_path / "nats")
    nats_url = await server.start()
    settings = Settings(
        data_dir=tmp_path,
        database_url=url,
        eval_time_limit_ms=300,
        eval_memory_mb=64,
        eval_instruction_limit=1_000_000,
    )
    nc = await connect(nats_url, "w")
    worker = EvalWorker(settings, nc, sf, name="w")
    await worker.start()
    client = await connect(nats_url, "client")
    yield worker, client
    await client.close()
    await worker.stop()
    await nc.close()
    await server.stop()
    await engine.dispose()


def tick_request(
    jobs: list[tuple[int, int, m.TickState | None]],
    *,
    bid: float = 99.0,
    ask: float = 101.0,
    candle_time: int = 0,
    owner: int | None = 1,
    tf: str = "1m",
    time: int = 0,
    symbol: str = "BTC/USD",
    params: dict | None = None,
) -> bytes:
    tick = m.Tick(exchange="sim", symbol=symbol, bid=bid, ask=ask, time=time)
    return m.encode(
        m.EvalRequest(
            exchange="sim",
            symbol=symbol,
            tf=tf,
            candle_time=candle_time,
            tick=tick,
            jobs=[
                m.EvalJob(
                    assignment_id=a, strategy_id=s, version=1, owner_id=owner, params=params or {}, state=st
                )
                for a, s, st in jobs
            ],
        )
    )


async def ask(client, payload: bytes, timeout: float = 20) -> dict[int, m.EvalOutcome]:  # type: ignore[no-untyped-def]
    reply = m.decode((await client.request(subjects.EVAL_RUN, payload, timeout=timeout)).data, m.EvalReply)
    return {o.assignment_id: o for o in reply.outcomes}


async def test_a_tick_request_answers_each_assignment_with_its_quotes(env) -> None:  # type: ignore[no-untyped-def]
    worker, client = env
    flat = m.TickState(position=0.0, cash=1000.0)
    holding = m.TickState(position=0.5, cash=900.0, quotes=[m.Quote(side="buy", price=98.0, amount=0.5)])
    out = await ask(client, tick_request([(1, 1, flat), (2, 1, holding), (3, 1, None)], params={"size": 2}))
    assert [o.status for o in out.values()] == ["ok"] * 3
    assert out[1].quotes == [
        m.Quote(side="buy", price=99.0, amount=2.0),
        m.Quote(side="sell", price=101.0, amount=0.25),
    ]
    assert out[2].quotes == [
        m.Quote(side="buy", price=98.5, amount=2.0),
        m.Quote(side="sell", price=100.5, amount=0.25),
    ]
    assert out[3].quotes == out[1].quotes, "no state: no position"
    assert all(o.position is None for o in out.values())
    # candle_time 0: the window ends at the newest closed candle (the store's here), lookback candles long
    assert out[1].logs == [f"500\t{LAST}\t{101.0 + 599 % 2}\t0"] and out[2].logs[0].endswith("\t1")


async def test_nothing_an_empty_list_and_a_position_travel_as_such(env) -> None:  # type: ignore[no-untyped-def]
    _, client = env
    state = m.TickState(position=1.0, cash=10.0, quotes=[m.Quote(side="sell", price=105.0, amount=1.0)])
    wide = await ask(client, tick_request([(1, 3, state)], bid=90.0, ask=110.0))
    narrow = await ask(client, tick_request([(1, 3, state)]))
    crossed = await ask(client, tick_request([(1, 3, state)], bid=101.0, ask=100.0))
    assert (wide[1].status, wide[1].quotes, wide[1].position) == ("ok", None, None)
    assert (narrow[1].status, narrow[1].quotes, narrow[1].position) == ("ok", [], None)
    assert (crossed[1].status, crossed[1].quotes, crossed[1].position, crossed[1].note) == (
        "ok",
        None,
        "short",
        "crossed",
    )


async def test_a_strategy_with_both_functions_runs_on_tick_for_a_tick_and_decide_for_a_candle(env) -> None:  # type: ignore[no-untyped-def]
    _, client = env
    on_tick = await ask(client, tick_request([(1, 6, None)]))
    candle = m.EvalRequest(
        exchange="sim",
        symbol="BTC/USD",
        tf="1m",
        candle_time=LAST,
        jobs=[m.EvalJob(assignment_id=1, strategy_id=6, version=1, owner_id=1)],
    )
    decided = await ask(client, m.encode(candle))
    assert on_tick[1].quotes == [m.Quote(side="buy", price=99.0, amount=1.0)] and on_tick[1].note is None
    assert decided[1].quotes is None and (decided[1].position, decided[1].note) == ("neutral", "decide")


async def test_candle_time_zero_follows_the_newest_candle_on_the_bus(env) -> None:  # type: ignore[no-untyped-def]
    _, client = env
    first = await ask(client, tick_request([(1, 1, None)]))
    assert first[1].logs[0].split("\t")[1] == str(LAST)
    newer = m.Candle(
        exchange="sim",
        symbol="BTC/USD",
        tf="1m",
        time=LAST + 60_000,
        open=100.0,
        high=130.0,
        low=99.0,
        close=123.0,
        volume=1.0,
    )
    await client.publish(subjects.core_candle("sim", "BTC/USD", "1m"), m.encode(newer))
    for _ in range(100):
        out = await ask(client, tick_request([(1, 1, None)]))
        if out[1].logs[0].split("\t")[1] != str(LAST):
            break
        await asyncio.sleep(0.05)
    assert out[1].logs == [f"500\t{LAST + 60_000}\t123.0\t0"]
    # an open candle is not a closed one: the window stays where it is
    forming = m.Candle(
        exchange="sim",
        symbol="BTC/USD",
        tf="1m",
        time=LAST + 120_000,
        open=1.0,
        high=1.0,
        low=1.0,
        close=1.0,
        volume=1.0,
        closed=False,
    )
    await client.publish(subjects.core_candle("sim", "BTC/USD", "1m"), m.encode(forming))
    await client.flush()
    await asyncio.sleep(0.2)
    out = await ask(client, tick_request([(1, 1, None)]))
    assert out[1].logs == [f"500\t{LAST + 60_000}\t123.0\t0"]


async def test_a_tick_request_naming_a_candle_sees_the_window_ending_there(env) -> None:  # type: ignore[no-untyped-def]
    _, client = env
    there = T0 + 300 * 60_000
    out = await ask(client, tick_request([(1, 1, None)], candle_time=there))
    assert out[1].status == "ok" and out[1].logs == [f"301\t{there}\t{101.0 + 300 % 2}\t0"]
    missing = await ask(client, tick_request([(1, 1, None)], candle_time=LAST + 10 * 60_000))
    assert missing[1].status == "error" and "no candle at" in missing[1].error


async def test_the_newest_stored_candle_is_used_only_once_its_period_has_ended(env) -> None:  # type: ignore[no-untyped-def]
    worker, client = env
    last5 = T0 + 119 * 300_000
    # the venue's time says the last 5m bucket is still open: the window ends at the one before
    out = await ask(client, tick_request([(1, 1, None)], tf="5m", time=last5 + 60_000))
    assert out[1].status == "ok" and out[1].logs == [f"119\t{last5 - 300_000}\t218.0\t0"]
    fresh = await WindowCache(worker.sf).latest("sim", "BTC/USD", "5m", 500)
    assert fresh.last_time == last5, "without a time, the newest stored candle"
    done = await WindowCache(worker.sf).latest("sim", "BTC/USD", "5m", 50, now=last5 + 300_000)
    assert done.last_time == last5 and len(done) == 50


async def test_a_market_without_candles_fails_each_job_with_a_reason(env) -> None:  # type: ignore[no-untyped-def]
    _, client = env
    out = await ask(client, tick_request([(1, 1, None), (2, 3, None)], symbol="ETH/USD"))
    assert {o.status for o in out.values()} == {"error"}
    assert all("no closed candle of ETH/USD 1m" in (o.error or "") for o in out.values())


async def test_a_worker_runs_a_strategy_on_a_tick_only_for_its_owner(env) -> None:  # type: ignore[no-untyped-def]
    _, client = env
    theirs = await ask(client, tick_request([(1, 1, None), (2, 3, None)], owner=2))
    nobody = await ask(client, tick_request([(3, 1, None)], owner=None))
    mixed = await ask(client, tick_request([(4, THEIRS, None), (5, 1, None)], owner=2))
    for out in (theirs, nobody):
        assert {o.status for o in out.values()} == {"error"}
        assert all(
            "does not belong" in (o.error or "") and o.logs == [] and o.quotes is None for o in out.values()
        )
    assert sorted(theirs) == [1, 2]
    assert mixed[4].status == "ok" and mixed[4].quotes is not None and len(mixed[4].quotes) == 2
    assert mixed[5].status == "error" and "does not belong" in mixed[5].error and mixed[5].logs == []


async def test_a_strategy_without_on_tick_fails_alone(env) -> None:  # type: ignore[no-untyped-def]
    _, client = env
    out = await ask(client, tick_request([(1, 2, None), (2, 1, None)]))
    assert out[1].status == "error" and "'s2'" in out[1].error
    assert "defines no function on_tick(t, c, params)" in out[1].error and out[1].quotes is None
    assert out[2].status == "ok" and out[2].quotes


async def test_an_endless_on_tick_is_stopped_and_the_next_tick_works(env) -> None:  # type: ignore[no-untyped-def]
    worker, client = env
    out = await ask(client, tick_request([(1, 4, None), (2, 1, None)], bid=-1.0))
    assert out[1].status == "error" and "instruction limit reached" in out[1].error and "'s4'" in out[1].error
    assert out[2].status == "ok"
    again = await ask(client, tick_request([(1, 4, None)], bid=99.0, ask=100.0))
    assert again[1].status == "ok" and again[1].quotes == [m.Quote(side="sell", price=100.0, amount=1.0)]
    assert worker.executor.restarts == 0, "the hook stopped it: no kill"


async def test_a_stall_in_c_is_killed_and_the_rest_of_the_tick_batch_keeps_its_tick() -> None:
    window = CandleWindow.from_rows(
        [(60_000 * (i + 1), 1.0, 2.0, 0.5, 1.5, 1.0) for i in range(100)], "sim:X:1m"
    )
    tick = m.Tick(exchange="sim", symbol="X", bid=10.0, ask=12.0)
    ex = Executor(Limits(time_ms=100, memory_mb=64))
    await ex.start()
    try:
        jobs = [
            Job(1, 1, 1, "quoter", {}, 50, tick, m.TickState(position=1.0)),
            Job(2, 5, 1, "stall", tick=tick),
            Job(3, 1, 1, "quoter", {"size": 3}, 50, tick, m.TickState(position=0.5, cash=5.0)),
            Job(4, 2, 1, "decider"),  # a candle evaluation in the same batch
        ]
        out = await ex.evaluate(
            window, window.last_time, jobs, {(1, 1): QUOTER, (5, 1): STALLS_IN_C, (2, 1): DECIDES}
        )
    finally:
        await ex.close()
    assert [(o.assignment_id, o.status) for o in out] == [(1, "ok"), (2, "error"), (3, "ok"), (4, "ok")]
    assert "stopped from outside the Lua state" in out[1].error and "'stall'" in out[1].error
    assert out[0].quotes == [("buy", 9.0, 0.5), ("sell", 11.0, 0.25)]
    assert out[2].quotes == [("buy", 9.5, 3.0), ("sell", 11.5, 0.25)], "run again in the new child, same tick"
    assert out[2].logs == ["50\t6000000\t1.5\t0"]
    assert (out[3].position, out[3].quotes) == ("long", None)
    assert ex.restarts == 1
