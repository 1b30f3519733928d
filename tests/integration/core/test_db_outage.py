"""The database away for a few seconds under a running pipeline: core keeps the candles and finishes them
when it is back; no minute, evaluation or order is lost or doubled. PostgreSQL only (a network database
can be away; SQLite cannot), reached through a proxy the test cuts."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import select

from tests.proxy import CuttableProxy
from tradewind.core.service import CoreService
from tradewind.exchanges.service import ExchangeService
from tradewind.exchanges.sim import SimAdapter
from tradewind.secrets import SecretBox
from tradewind.storage.db import make_engine, make_session_factory
from tradewind.storage.models import CandleRow, Evaluation, Order

from .conftest import make_assignment
from .test_pipeline import KEY, FlipWorker, wait_for


async def test_core_finishes_every_candle_after_the_database_comes_back(settings, sf, nc, db_url) -> None:  # type: ignore[no-untyped-def]
    if not db_url.startswith("postgresql"):
        pytest.skip("a network database is needed to take it away")
    proxy = CuttableProxy()
    port = await proxy.start()
    engine = make_engine(db_url.replace("127.0.0.1:5432", f"127.0.0.1:{port}"), pool_timeout=5)
    core_sf = make_session_factory(engine)  # core talks to the database through the proxy; the rest directly
    a = await make_assignment(sf)
    settings = settings.model_copy(update={"sim_speed": 600})  # a candle every 0.1 s
    worker = FlipWorker(nc)
    await worker.start()
    exchange = ExchangeService(settings, SimAdapter(settings, sf), nc, nc.jetstream(), sf, SecretBox([KEY]))
    core = CoreService(settings, nc, nc.jetstream(), core_sf)
    await core.start()
    await exchange.start()
    try:

        async def evaluated(n: int) -> bool:
            async with sf() as s:
                return len((await s.execute(select(Evaluation.id))).all()) >= n

        await wait_for(lambda: evaluated(3))
        proxy.cut()
        await asyncio.sleep(3)  # ~30 candles arrive while core cannot write
        async with sf() as s:
            during = len((await s.execute(select(Evaluation.id))).all())
        proxy.up = True
        await wait_for(lambda: evaluated(during + 40), timeout=60)
        await exchange.stop()
        await asyncio.sleep(1.0)  # the last candles published are processed
        await core.stop()
        async with sf() as s:
            times = list(
                (
                    await s.execute(
                        select(CandleRow.time).where(CandleRow.tf == "1m").order_by(CandleRow.time)
                    )
                ).scalars()
            )
            evals = list(
                (
                    await s.execute(select(Evaluation.candle_time).where(Evaluation.assignment_id == a.id))
                ).scalars()
            )
            cids = list((await s.execute(select(Order.client_order_id))).scalars())
        assert len(times) > during + 30
        assert all(y - x == 60_000 for x, y in zip(times, times[1:], strict=False)), "a minute is missing"
        assert len(evals) == len(set(evals)), "a candle was evaluated twice"
        assert set(times[1:-1]) <= set(evals), "a candle was never evaluated"
        assert len(cids) == len(set(cids)) and len(cids) > 10
    finally:
        await core.stop()
        await exchange.stop()
        await proxy.close()
        await engine.dispose()
