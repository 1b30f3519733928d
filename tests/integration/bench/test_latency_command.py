"""`tradewind bench latency` end to end: the embedded platform, a small load, the JSON it prints."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tradewind.bus import subjects
from tradewind.bus.connection import connect, ensure_md_stream
from tradewind.bus.embedded import EmbeddedNats


@pytest.mark.e2e
def test_bench_latency_measures_every_order_of_a_small_load(tmp_path: Path) -> None:
    env = {
        k: v for k, v in os.environ.items() if not k.startswith("TRADEWIND_")
    }  # embedded, whatever the shell says
    env["TRADEWIND_DATA_DIR"] = str(tmp_path)
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "tradewind.cli",
            "bench",
            "latency",
            "--assignments",
            "4",
            "--candles",
            "3",
            "--candle-interval",
            "0.5",
            "--json",
            "--plot",
            str(tmp_path / "plot.png"),
        ],
        capture_output=True,
        text=True,
        timeout=240,
        env=env,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    (result,) = json.loads(out.stdout)["results"]
    assert result["assignments"] == 4 and result["candles"] == 3
    assert result["orders"] == 4 * 3  # the strategy flips every candle: one order per assignment and candle
    assert 0 < result["p50_ms"] <= result["p99_ms"] <= result["max_ms"] < 5000
    assert result["evaluations_per_s"] > 0
    assert (tmp_path / "plot.png").stat().st_size > 10_000


def test_a_load_that_is_not_a_number_is_a_clear_error() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "tradewind.cli", "bench", "latency", "--assignments", "ten"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 2 and "comma-separated list of whole numbers" in out.stderr
    assert "Traceback" not in out.stderr


@pytest.mark.e2e
async def test_against_a_nats_server_of_its_own_it_leaves_nothing_and_one_in_use_is_refused(
    tmp_path: Path,
) -> None:
    server = EmbeddedNats(tmp_path / "nats")
    url = await server.start()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRADEWIND_")}
    env.update(TRADEWIND_DATA_DIR=str(tmp_path), TRADEWIND_NATS_URL=url)

    def bench() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [
                sys.executable,
                "-m",
                "tradewind.cli",
                "bench",
                "latency",
                "--assignments",
                "2",
                "--candles",
                "2",
                "--candle-interval",
                "0.5",
                "--json",
            ],
            capture_output=True,
            text=True,
            timeout=240,
            env=env,
        )

    nc = await connect(url, "test")
    try:
        out = await asyncio.to_thread(bench)
        assert out.returncode == 0, out.stderr[-2000:]
        assert json.loads(out.stdout)["results"][0]["orders"] == 2 * 2
        names = [s.config.name for s in await nc.jetstream().streams_info()]
        assert names == [], f"the bench left {names} behind"
        # A server whose market-data stream is in use (a platform runs on it): refused, nothing touched.
        js = nc.jetstream()
        await ensure_md_stream(js)
        await js.publish(subjects.md_candle("sim", "BTC/USD", "1m"), b"a real platform's candle")
        out = await asyncio.to_thread(bench)
        assert (
            out.returncode == 1
            and "already holds 1 candle on the market-data stream" in out.stderr
            and "Traceback" not in out.stderr
        )
        assert (await js.stream_info(subjects.MD_STREAM)).state.messages == 1
    finally:
        await nc.close()
        await server.stop()
