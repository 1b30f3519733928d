"""Bad candles are refused on the way into the store: by core's live ingest and by the exchange service's
backfill (both through ``tradewind.marketdata``; download and import are tested with their commands)."""

from __future__ import annotations

import logging
import time
from types import SimpleNamespace

from sqlalchemy import select

from tradewind.bus import messages as m
from tradewind.bus import subjects
from tradewind.core.service import CoreService
from tradewind.exchanges.service import ExchangeService
from tradewind.secrets import SecretBox
from tradewind.storage.models import CandleRow

from .test_pipeline import KEY, wait_for

M = 60_000


def candle(t: int, **kw: float) -> m.Candle:
    close = kw.get("close", 10.5)
    values = {"open": 10.0, "high": max(11.0, close), "low": 9.0, "close": close, "volume": 2.0, **kw}
    return m.Candle(exchange="sim", symbol="BTC/USD", tf="1m", time=t, **values)  # type: ignore[arg-type]


async def stored(sf, tf: str = "1m") -> list[int]:  # type: ignore[no-untyped-def]
    async with sf() as s:
        return list(
            (
                await s.execute(select(CandleRow.time).where(CandleRow.tf == tf).order_by(CandleRow.time))
            ).scalars()
        )


async def test_core_refuses_a_bad_live_candle_and_stores_the_good_ones(settings, sf, nc) -> None:  # type: ignore[no-untyped-def]
    core = CoreService(settings, nc, nc.jetstream(), sf)
    await core.start()
    try:
        t0 = 1_700_006_400_000  # a day's first minute
        js = nc.jetstream()
        subject = subjects.md_candle("sim", "BTC/USD", "1m")
        for c in (candle(t0), candle(t0 + M, high=9.5), candle(t0 + 2 * M, volume=-1), candle(t0 + 3 * M)):
            await js.publish(subject, m.encode(c))

        async def done() -> bool:
            return core.processed >= 2

        await wait_for(done)
        assert await stored(sf) == [t0, t0 + 3 * M]  # the two bad minutes were dropped, not stored
    finally:
        await core.stop()


class HistoryOnly:
    """An adapter that only answers ``fetch_history``: one page with bad candles among good ones."""

    def __init__(self, page: list[m.Candle]) -> None:
        self.capabilities = SimpleNamespace(name="sim", symbols=["BTC/USD"], paper=True)
        self.page = page

    async def fetch_history(
        self, symbol: str, tf: str, since: int, until: int | None = None
    ) -> list[m.Candle]:
        return [c for c in self.page if c.time >= since]


async def test_backfill_refuses_bad_candles_and_logs_why(settings, sf, nc, caplog) -> None:  # type: ignore[no-untyped-def]
    now = int(time.time() * 1000)
    t0 = now - now % 86_400_000 - 86_400_000  # yesterday's first minute
    page = [candle(t0 + i * M, close=10.0 + i % 3) for i in range(10)]
    page[4] = candle(t0 + 4 * M, close=float("nan"))
    page[7] = candle(t0 + 7 * M + 1)
    settings = settings.model_copy(update={"history_days": 2})
    service = ExchangeService(settings, HistoryOnly(page), nc, nc.jetstream(), sf, SecretBox([KEY]))  # type: ignore[arg-type]
    with caplog.at_level(logging.WARNING, logger="tradewind.exchanges.service"):
        await service.backfill()
    times = await stored(sf)
    assert times == [c.time for i, c in enumerate(page) if i not in (4, 7)]
    assert (
        "2 rejected" in caplog.text and "finite and positive" in caplog.text and "whole minute" in caplog.text
    )
    assert await stored(sf, "5m") == [t0, t0 + 5 * M]  # derived from the good minutes only
