"""A running core prunes by itself: an old evaluation that led to no order goes, a recent one stays."""

from __future__ import annotations

import asyncio
import datetime as dt

from sqlalchemy import select

from tests.integration.core.conftest import make_assignment
from tradewind.core.service import CoreService
from tradewind.storage.models import Evaluation
from tradewind.storage.types import utcnow


async def test_the_leading_core_prunes_old_evaluations(settings, nc, sf) -> None:  # type: ignore[no-untyped-def]
    a = await make_assignment(sf)
    old = utcnow() - dt.timedelta(days=3)
    async with sf() as s:
        s.add(
            Evaluation(
                assignment_id=a.id, candle_time=1_000 * 60_000, status="ok", position="long", created_at=old
            )
        )
        s.add(Evaluation(assignment_id=a.id, candle_time=2_000 * 60_000, status="ok", position="long"))
        await s.commit()
    core = CoreService(
        settings.model_copy(update={"keep_evaluations_days": 1, "prune_every_s": 1}), nc, nc.jetstream(), sf
    )
    await core.start()
    try:
        for _ in range(100):
            async with sf() as s:
                left = list((await s.execute(select(Evaluation.candle_time))).scalars())
            if len(left) == 1:
                break
            await asyncio.sleep(0.1)
    finally:
        await core.stop()
    assert left == [2_000 * 60_000]
