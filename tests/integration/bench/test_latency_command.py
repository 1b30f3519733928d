"""`tradewind bench latency` end to end: the embedded platform, a small load, the JSON it prints."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.mark.e2e
def test_bench_latency_measures_every_order_of_a_small_load(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRADEWIND_")}  # embedded, whatever the shell says
    env["TRADEWIND_DATA_DIR"] = str(tmp_path)
    out = subprocess.run(
        [sys.executable, "-m", "tradewind.cli", "bench", "latency", "--assignments", "4", "--candles", "3",
         "--candle-interval", "0.5", "--json", "--plot", str(tmp_path / "plot.png")],
        capture_output=True, text=True, timeout=240, env=env,
    )  # fmt: skip
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
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert out.returncode == 2 and "comma-separated list of whole numbers" in out.stderr
    assert "Traceback" not in out.stderr
