"""`tradewind data download` run as a process against the local Binance server: stores, then resumes."""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import subprocess
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tradewind.marketdata import resample_rows

from .conftest import load_rows
from .fake_binance import FakeBinance

TRADEWIND = str(Path(sys.executable).parent / "tradewind")
ROWS = load_rows("ETH-BTC-5m.csv")
HOUR = 3_600_000


def ms(day: str) -> int:
    return int(datetime.fromisoformat(day).replace(tzinfo=UTC).timestamp() * 1000)


@pytest.fixture
async def binance() -> AsyncIterator[FakeBinance]:
    server = FakeBinance(ROWS)
    await server.start()
    yield server
    await server.stop()


async def download(binance: FakeBinance, data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRADEWIND_")}
    env.update(TRADEWIND_DATA_DIR=str(data_dir), TRADEWIND_CCXT_URLS=json.dumps({"binance": binance.url}))
    cmd = [
        TRADEWIND,
        "data",
        "download",
        "--exchange",
        "binance",
        "--symbol",
        "ETH/BTC",
        "--timeframe",
        "1h",
        *args,
    ]
    # The fake server runs on this event loop: run the process without blocking it.
    proc = await asyncio.create_subprocess_exec(*cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    return subprocess.CompletedProcess(cmd, proc.returncode or 0, out.decode(), err.decode())


def stored(data_dir: Path) -> list[tuple]:
    with sqlite3.connect(data_dir / "tradewind.db") as db:
        return db.execute(
            "SELECT c.time, c.open, c.high, c.low, c.close, c.volume FROM candles c JOIN markets m ON m.id = c.market_id"
            " WHERE m.exchange = 'binance' AND m.symbol = 'ETH/BTC' AND c.tf = '1h' ORDER BY c.time"
        ).fetchall()


def expected(start: int, end: int) -> list[tuple]:
    rounded = [(r[0], *(round(x, 8) for x in r[1:])) for r in ROWS]
    return [r for r in resample_rows(rounded, "1h") if start <= r[0] < end]


async def test_download_stores_the_range_then_resumes_after_the_last_candle(binance, tmp_path) -> None:
    first = await download(binance, tmp_path, "--since", "2018-01-11", "--until", "2018-01-15")
    assert first.returncode == 0, first.stderr
    assert "96 candles of binance ETH/BTC 1h downloaded; stored up to 2018-01-14 23:00 UTC" in first.stdout
    rows = stored(tmp_path)
    want = expected(ms("2018-01-11"), ms("2018-01-15"))
    assert len(rows) == 96 and [r[0] for r in rows] == [r[0] for r in want]
    assert all(got == pytest.approx(w, rel=1e-9) for got, w in zip(rows, want, strict=True))

    binance.requests.clear()
    second = await download(binance, tmp_path, "--since", "2018-01-11", "--until", "2018-01-20")
    assert second.returncode == 0, second.stderr
    klines = [q for _, path, q in binance.requests if path == "klines"]
    assert int(klines[0]["startTime"]) == ms("2018-01-15")  # resumed after the last stored candle
    rows = stored(tmp_path)
    assert [r[0] for r in rows] == list(
        range(ms("2018-01-11"), ms("2018-01-20"), HOUR)
    )  # no hole, no duplicate
    assert "120 candles" in second.stdout


def test_download_from_an_unknown_exchange_fails_with_a_clear_message(tmp_path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRADEWIND_")}
    env.update(TRADEWIND_DATA_DIR=str(tmp_path))
    result = subprocess.run(
        [
            TRADEWIND,
            "data",
            "download",
            "--exchange",
            "nowhere",
            "--symbol",
            "ETH/BTC",
            "--since",
            "2018-01-11",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1 and "no adapter for exchange 'nowhere'" in result.stderr


async def test_download_refuses_a_bad_candle_and_says_why(tmp_path) -> None:
    bad_at = ms("2018-01-12") + 3 * HOUR
    rows = [(t, o, h, 0.0 if t == bad_at else lo, c, v) for t, o, h, lo, c, v in ROWS]  # a zero low
    server = FakeBinance(rows)
    await server.start()
    try:
        result = await download(server, tmp_path, "--since", "2018-01-11", "--until", "2018-01-13")
    finally:
        await server.stop()
    assert result.returncode == 0, result.stderr
    assert "1 invalid candle(s) rejected: 1 prices must be finite and positive" in result.stdout
    assert "47 candles of binance ETH/BTC 1h downloaded" in result.stdout
    times = [r[0] for r in stored(tmp_path)]
    assert len(times) == 47 and bad_at not in times
