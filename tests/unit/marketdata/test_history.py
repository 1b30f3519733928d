"""The history store (Parquet): round trip, appends and duplicates, derived timeframes as the database makes
them, the span it holds whole, and clear errors for a file it cannot read."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tradewind.domain import DERIVED_TIMEFRAMES
from tradewind.marketdata.accept import accept_rows
from tradewind.marketdata.history import HistoryError, HistoryStore
from tradewind.storage import candles as store
from tradewind.storage.db import make_engine, make_session_factory
from tradewind.storage.migrate import upgrade_async

M = 60_000
T0 = 1_706_745_600_000  # 2024-02-01 00:00 UTC


def minutes(n: int, start: int = T0, seed: int = 5) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.001, n)))
    open_ = np.concatenate([[100.0], close[:-1]])
    return {
        "time": start + M * np.arange(n, dtype=np.int64),
        "open": open_,
        "high": np.maximum(open_, close) * 1.001,
        "low": np.minimum(open_, close) * 0.999,
        "close": close,
        "volume": rng.uniform(0, 5, n),
    }


def rows(a: dict[str, np.ndarray]) -> list[tuple]:
    return list(
        zip(
            a["time"].tolist(),
            *(a[c].tolist() for c in ("open", "high", "low", "close", "volume")),
            strict=True,
        )
    )


def same(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> None:
    assert set(a) == set(b)
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)


def test_candles_read_back_as_written_one_file_per_month(tmp_path: Path) -> None:
    h = HistoryStore(tmp_path)
    a = minutes(90_000)  # February, March and some of April 2024
    written = h.write("binance", "BTC/USDT", "1m", a)
    assert (written.stored, written.duplicates, written.conflicts) == (90_000, 0, 0)
    files = sorted(p.name for p in (tmp_path / "binance" / "BTC-USDT" / "1m").iterdir())
    assert files == ["2024-02.parquet", "2024-03.parquet", "2024-04.parquet"]
    back = h.read("binance", "BTC/USDT")
    assert back is not None and back["time"].dtype == np.int64 and back["close"].dtype == np.float64
    same(back, a)
    start, end = int(a["time"][41_000]), int(a["time"][60_000])  # across a month's end
    same(h.read("binance", "BTC/USDT", "1m", start, end), {k: v[41_000:60_000] for k, v in a.items()})  # type: ignore[arg-type]
    assert h.read("binance", "ETH/USDT") is None and not h.has("binance", "ETH/USDT", "1m")
    assert h.summary() == [("binance", "BTC/USDT", "1m", 90_000, int(a["time"][0]), int(a["time"][-1]))]


def test_an_append_keeps_the_stored_candle_of_a_time_and_counts_what_differs(tmp_path: Path) -> None:
    h = HistoryStore(tmp_path)
    a = minutes(3000)
    h.write("sim", "BTC/USD", "1m", {k: v[:2000] for k, v in a.items()})
    later = {k: v[1500:].copy() for k, v in a.items()}
    later["close"][:10] *= 1.01  # ten of the 500 minutes stored already differ: the stored ones stay
    later["high"][:10] *= 1.01
    written = h.write("sim", "BTC/USD", "1m", rows(later) + rows(later)[:3])  # rows, some twice
    assert (written.stored, written.duplicates, written.conflicts) == (1000, 503, 10)
    same(h.read("sim", "BTC/USD"), a)  # type: ignore[arg-type]
    again = h.write("sim", "BTC/USD", "1m", a)
    assert (again.stored, again.duplicates, again.conflicts) == (0, 3000, 0)


def test_a_rows_timeframe_is_stored_under_it_and_read_as_it_is(tmp_path: Path) -> None:
    h = HistoryStore(tmp_path)
    a = minutes(500)
    five = {k: v[::5] for k, v in a.items()}
    five["time"] = T0 + 5 * M * np.arange(100, dtype=np.int64)
    h.write("binance", "ETH/BTC", "5m", five)
    same(h.read("binance", "ETH/BTC", "5m"), five)  # type: ignore[arg-type]
    assert h.read("binance", "ETH/BTC", "1m") is None and h.read("binance", "ETH/BTC", "1h") is None


@pytest.fixture
async def sf(tmp_path: Path):  # type: ignore[no-untyped-def]
    url = f"sqlite+aiosqlite:///{tmp_path / 'h.db'}"
    await upgrade_async(url)
    engine = make_engine(url)
    factory = make_session_factory(engine)
    async with factory() as s:
        await store.get_or_create_market(s, "binance", "BTC/USDT")
        await s.commit()
    yield factory
    await engine.dispose()


async def test_derived_timeframes_equal_the_databases(sf, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    # two days and a bit, with gaps, written through the door in two batches that share buckets
    a = minutes(3 * 1440 + 77, start=T0 + 17 * M)
    keep = np.ones(len(a["time"]), dtype=bool)
    keep[100:160] = False  # a gap of an hour
    keep[2000:2003] = False
    a = {k: v[keep] for k, v in a.items()}
    h = HistoryStore(tmp_path / "history").market("binance", "BTC/USDT")
    cut = 2500
    async with sf() as s:
        for part in (slice(0, cut), slice(cut - 30, None)):
            report = await accept_rows(s, 1, "1m", rows({k: v[part] for k, v in a.items()}), history=h)
            await s.commit()
    assert report.history == len(a["time"]) - cut
    for tf in ("1m", *DERIVED_TIMEFRAMES):
        async with sf() as s:
            expected = store.to_arrays(await store.candle_range(s, 1, tf))
        got = h.read(tf)
        assert got is not None and len(got["time"]) == len(expected["time"]) > 0, tf
        for k in ("time", "open", "high", "low", "close"):
            np.testing.assert_array_equal(got[k], expected[k], err_msg=f"{tf} {k}")
        # (the database sums a bucket's volumes with Python's sum, numpy in its own order)
        np.testing.assert_allclose(got["volume"], expected["volume"], rtol=1e-12, err_msg=tf)
    # a range: the buckets that open in it
    start, end = T0 + 3600_000 + 7 * M, T0 + 30 * 3600_000
    async with sf() as s:
        part = store.to_arrays(await store.candle_range(s, 1, "1h", start, end))
    np.testing.assert_array_equal(h.read("1h", start, end)["close"], part["close"])  # type: ignore[index]


def test_whole_leaves_out_the_buckets_the_minutes_only_begin(tmp_path: Path) -> None:
    h = HistoryStore(tmp_path)
    a = minutes(200, start=T0 + 7 * M)  # minutes 7 .. 206 of the day
    h.write("sim", "BTC/USD", "1m", a)
    assert h.whole("sim", "BTC/USD", "1m") == (T0 + 7 * M, T0 + 207 * M)
    assert h.whole("sim", "BTC/USD", "1h") == (T0 + 60 * M, T0 + 180 * M)  # hours 1 and 2 only
    assert h.span("sim", "BTC/USD", "1h") == (T0, T0 + 180 * M)  # read gives the partial ones too
    assert h.whole("sim", "BTC/USD", "1d") is None


def test_a_file_it_cannot_read_is_named_with_what_to_do(tmp_path: Path) -> None:
    h = HistoryStore(tmp_path)
    h.write("sim", "BTC/USD", "1m", minutes(100))
    bad = tmp_path / "sim" / "BTC-USD" / "1m" / "2024-02.parquet"
    bad.write_bytes(b"PAR1 this is not parquet")
    with pytest.raises(HistoryError) as info:
        h.read("sim", "BTC/USD")
    assert str(bad) in str(info.value) and "tradewind data download" in str(info.value)
    with pytest.raises(HistoryError):
        h.summary()
    # a month file without the columns of the store
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"time": [T0], "close": [1.0]}), bad)
    with pytest.raises(HistoryError, match="not a readable candle file"):
        h.read("sim", "BTC/USD")
