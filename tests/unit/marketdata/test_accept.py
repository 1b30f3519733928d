"""The one door into the candle store: the row check, de-duplication, stale and open rows, derivation."""

from __future__ import annotations

from pathlib import Path

import pytest

from tradewind.domain import DERIVED_TIMEFRAMES
from tradewind.marketdata import resample_rows
from tradewind.marketdata.accept import accept_rows, check, store_live
from tradewind.marketdata.candles import BOUNDS, NOT_NUMBER, OPEN, PRICE, STALE, TIME, VOLUME
from tradewind.storage import candles as store
from tradewind.storage.db import make_engine, make_session_factory
from tradewind.storage.migrate import upgrade_async

M = 60_000
T0 = 1_700_006_400_000  # 2023-11-15 00:00 UTC: the start of a day


def row(t: int, close: float = 10.0, **kw: float) -> tuple:
    r = {"open": 10.0, "high": max(11.0, close), "low": min(9.0, close), "close": close, "volume": 1.0}
    r.update(kw)
    return (t, r["open"], r["high"], r["low"], r["close"], r["volume"])


def minutes(start: int, n: int) -> list[tuple]:
    return [row(start + i * M, close=10.0 + i % 7) for i in range(n)]


@pytest.fixture
async def sf(tmp_path: Path):  # type: ignore[no-untyped-def]
    url = f"sqlite+aiosqlite:///{tmp_path / 'md.db'}"
    await upgrade_async(url)
    engine = make_engine(url)
    factory = make_session_factory(engine)
    async with factory() as s:
        market = await store.get_or_create_market(s, "sim", "BTC/USD")
        await s.commit()
        assert market.id == 1
    yield factory
    await engine.dispose()


async def accept(sf, tf: str, rows, **kw):  # type: ignore[no-untyped-def]
    async with sf() as s:
        report = await accept_rows(s, 1, tf, rows, **kw)
        await s.commit()
    return report


async def stored(sf, tf: str) -> list[tuple]:  # type: ignore[no-untyped-def]
    async with sf() as s:
        return await store.candle_range(s, 1, tf)


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        (row(T0, open=0.0), PRICE),
        (row(T0, close=float("nan")), PRICE),
        (row(T0, high=float("inf")), PRICE),
        (row(T0, low=-1.0), PRICE),
        (row(T0, high=9.5), BOUNDS),
        (row(T0, low=10.5), BOUNDS),
        (row(T0, volume=-1.0), VOLUME),
        (row(T0, volume=float("nan")), VOLUME),
        (row(T0 + 1), TIME),
        (row(0), TIME),
        (row(-M), TIME),
        ((float(T0), 10.0, 11.0, 9.0, 10.0, 1.0), TIME),
        ((T0, "10", 11.0, 9.0, 10.0, 1.0), NOT_NUMBER),
        ((T0, 10.0, 11.0, 9.0, 10.0, None), NOT_NUMBER),
    ],
)
def test_each_rejection_reason(bad: tuple, reason: str) -> None:
    good, report = check([bad, row(T0 + M)])
    assert good == [row(T0 + M)]
    assert report.rejected == {reason: 1} and report.rejected_total == 1
    assert str(1) in report.rejections() and reason in report.rejections()


def test_stale_and_not_yet_closed_rows_are_dropped() -> None:
    rows = minutes(T0, 5)
    good, report = check(rows, after=T0 + M, now=T0 + 4 * M + 30_000)
    assert [r[0] for r in good] == [T0 + 2 * M, T0 + 3 * M]
    assert report.rejected == {STALE: 2, OPEN: 1}


def test_time_must_be_a_multiple_of_the_rows_timeframe() -> None:
    good, report = check([row(T0 + 5 * M), row(T0 + 60 * M)], "1h")
    assert [r[0] for r in good] == [T0 + 60 * M]
    assert list(report.rejected) == ["time must be a positive multiple of 1h in epoch ms"]


async def test_bad_rows_are_counted_and_not_stored(sf) -> None:  # type: ignore[no-untyped-def]
    report = await accept(sf, "1m", [row(T0), row(T0 + M, high=1.0), row(T0 + 2 * M, volume=-3.0)])
    assert report.stored == 1 and report.rejected == {BOUNDS: 1, VOLUME: 1}
    assert [r[0] for r in await stored(sf, "1m")] == [T0]


async def test_duplicates_are_not_stored_again_and_the_stored_candle_wins(sf) -> None:  # type: ignore[no-untyped-def]
    first = await accept(sf, "1m", [row(T0), row(T0 + M)])
    assert first.stored == 2 and first.duplicates == 0
    changed = row(T0 + M, close=10.5)
    again = await accept(sf, "1m", [row(T0), changed, row(T0 + 2 * M), row(T0 + 2 * M, close=10.2)])
    # T0 stored identically, T0+1m stored but different, T0+2m repeated in the batch (the first wins)
    assert again.stored == 1 and again.duplicates == 3 and again.conflicts == 2
    assert await stored(sf, "1m") == [row(T0), row(T0 + M), row(T0 + 2 * M)]


async def test_derived_timeframes_complete_buckets_and_the_partial_last_one(sf) -> None:  # type: ignore[no-untyped-def]
    rows = minutes(T0, 17)  # 3 whole 5m buckets and 2 minutes of the 4th; one whole 15m bucket
    report = await accept(sf, "1m", rows)
    assert report.stored == 17
    assert await stored(sf, "5m") == resample_rows(rows, "5m")
    assert len(await stored(sf, "5m")) == 4  # the partial bucket is stored too ...
    assert await stored(sf, "15m") == resample_rows(rows, "15m")
    for tf in DERIVED_TIMEFRAMES:
        assert await stored(sf, tf) == resample_rows(rows, tf)

    # ... and completed, whole, by the next batch, which continues buckets of the first
    more = minutes(T0 + 17 * M, 3) + minutes(T0 + 20 * M, 43)
    more = [row(t, close=20.0) for t, *_ in more]
    report = await accept(sf, "1m", more)
    everything = rows + more
    for tf in DERIVED_TIMEFRAMES:
        assert await stored(sf, tf) == resample_rows(everything, tf), tf
    assert await stored(sf, "5m") == resample_rows(everything, "5m")
    assert report.derived["5m"] == 10  # the 4th bucket rebuilt and 9 new ones (the last partial)


async def test_a_duplicate_only_batch_derives_nothing(sf) -> None:  # type: ignore[no-untyped-def]
    rows = minutes(T0, 10)
    await accept(sf, "1m", rows)
    report = await accept(sf, "1m", rows)
    assert report.stored == 0 and report.duplicates == 10 and not report.derived


async def test_rows_of_another_timeframe_are_stored_as_they_are_and_derive_nothing(sf) -> None:  # type: ignore[no-untyped-def]
    hours = [row(T0 + h * 60 * M, close=10.0 + h) for h in range(3)]
    report = await accept(sf, "1h", [*hours, row(T0 + 30 * M)])
    assert report.stored == 3 and report.rejected_total == 1 and not report.derived
    assert await stored(sf, "1h") == hours
    assert await stored(sf, "4h") == [] and await stored(sf, "1m") == []


async def test_store_live_inserts_the_minute_and_upserts_what_it_closed(sf) -> None:  # type: ignore[no-untyped-def]
    async with sf() as s:
        await store_live(s, 1, row(T0 + 4 * M), [("5m", row(T0, close=10.0))])
        await store_live(s, 1, row(T0 + 4 * M, close=12.0), [("5m", row(T0, close=12.0))])
        await s.commit()
    assert await stored(sf, "1m") == [row(T0 + 4 * M)]  # a redelivered minute is not stored twice
    assert await stored(sf, "5m") == [row(T0, close=12.0)]  # a re-closed bucket is corrected
