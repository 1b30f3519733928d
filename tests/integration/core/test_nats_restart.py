"""NATS restarted under a running pipeline: every component reconnects and no minute is lost."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

from sqlalchemy import select

from tradewind.bus.connection import connect, ensure_md_stream
from tradewind.bus.embedded import EmbeddedNats
from tradewind.core.service import CoreService
from tradewind.exchanges.service import ExchangeService
from tradewind.exchanges.sim import SimAdapter
from tradewind.secrets import SecretBox
from tradewind.storage.models import CandleRow, Evaluation

from .conftest import make_assignment
from .test_pipeline import KEY, FlipWorker, wait_for


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def test_pipeline_carries_on_after_nats_restarts(tmp_path: Path, settings, sf) -> None:  # type: ignore[no-untyped-def]
    port = free_port()
    server = EmbeddedNats(tmp_path / "natsr", port=port)
    url = await server.start()
    nc = await connect(url, "test")
    await ensure_md_stream(nc.jetstream())
    settings = settings.model_copy(update={"sim_speed": 600})
    a = await make_assignment(sf)
    worker = FlipWorker(nc)
    await worker.start()
    core = CoreService(settings, nc, nc.jetstream(), sf)
    exchange = ExchangeService(settings, SimAdapter(settings, sf), nc, nc.jetstream(), sf, SecretBox([KEY]))
    await core.start()
    await exchange.start()
    try:

        async def evaluations(n: int):  # type: ignore[no-untyped-def]
            async def check() -> bool:
                async with sf() as s:
                    return len((await s.execute(select(Evaluation.id))).all()) >= n

            return check

        await wait_for(await evaluations(3))
        await server.stop()
        await asyncio.sleep(1.0)
        server = EmbeddedNats(tmp_path / "natsr", port=port)
        await server.start()
        async with sf() as s:
            before = len((await s.execute(select(Evaluation.id))).all())
        await wait_for(await evaluations(before + 5), timeout=30)
        await exchange.stop()
        await asyncio.sleep(1.0)
        async with sf() as s:
            times = list(
                (
                    await s.execute(
                        select(CandleRow.time).where(CandleRow.tf == "1m").order_by(CandleRow.time)
                    )
                ).scalars()
            )
            evaluated = set(
                (
                    await s.execute(select(Evaluation.candle_time).where(Evaluation.assignment_id == a.id))
                ).scalars()
            )
        assert all(b - a_ == 60_000 for a_, b in zip(times, times[1:], strict=False)), "a minute is missing"
        assert set(times[1:]) <= evaluated | {times[-1]}
    finally:
        await core.stop()
        await exchange.stop()
        await nc.close()
        await server.stop()
