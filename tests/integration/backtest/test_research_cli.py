"""`tradewind walkforward` and `tradewind check` run as a user runs them: a process, a candle file, --json."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

T0 = 1_700_000_400_000
SIDE = """
params = {side = {choices = {"long", "flat"}, default = "flat"}}
function decide(c, params) if params.side == "long" then return "long" end return "short" end
"""
EMA = """function decide(c) local e = ta.ema(c.close, 20)
  if c.close[#c.close] > e[#e] then return "long" end return "short" end"""


def tradewind(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tradewind.cli", *args], capture_output=True, text=True, timeout=60
    )


def write_regime(path: Path, n: int = 1000) -> Path:
    lines, prev = ["time,open,high,low,close,volume"], 100.0
    for i in range(n):
        close = prev * (1.002 if i < n // 2 else 0.998) * (1 + 0.001 * ((i % 7) - 3))
        lines.append(f"{T0 + i * 60_000},{prev},{max(prev, close)},{min(prev, close)},{close},1")
        prev = close
    path.write_text("\n".join(lines) + "\n")
    return path


def test_walkforward_command_reports_windows_and_efficiency(tmp_path: Path) -> None:
    data = write_regime(tmp_path / "regime.csv")
    (tmp_path / "side.lua").write_text(SIDE)
    out = tradewind(
        "walkforward",
        str(tmp_path / "side.lua"),
        "--data",
        str(data),
        "--train",
        "300m",
        "--test",
        "100m",
        "--trials",
        "6",
        "--objective",
        "return",
        "--seed",
        "1",
        "--fee",
        "0",
        "--no-prune",
        "--json",
    )
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert doc["mode"] == "rolling" and len(doc["windows"]) == 7
    assert doc["windows"][0]["params"] == {"side": "long"} and doc["windows"][-1]["params"] == {
        "side": "flat"
    }
    assert doc["windows"][0]["test"]["from"] == doc["windows"][0]["train"]["to"]
    assert {"oos_equity", "is_equity", "wfe", "oos_annualised_pct", "is_annualised_pct"} <= set(doc)
    split = tradewind(
        "walkforward",
        str(tmp_path / "side.lua"),
        "--data",
        str(data),
        "--split",
        "0.7",
        "--trials",
        "4",
        "--json",
    )
    assert split.returncode == 0, split.stderr
    assert json.loads(split.stdout)["windows"][0]["test"]["candles"] == 300
    bad = tradewind(
        "walkforward", str(tmp_path / "side.lua"), "--data", str(data), "--train", "3000m", "--test", "100m"
    )
    assert bad.returncode != 0 and "shorter than one train window" in bad.stderr


def write_wavy(path: Path, n: int = 400) -> Path:
    lines, prev = ["time,open,high,low,close,volume"], 100.0
    for i in range(n):
        close = 100 * math.exp(0.03 * math.sin(i * 0.7) + 0.05 * math.sin(i * 0.11))
        lines.append(f"{T0 + i * 60_000},{prev},{max(prev, close)},{min(prev, close)},{close},1")
        prev = close
    path.write_text("\n".join(lines) + "\n")
    return path


def test_check_command_flags_a_recursive_ema_and_runs_monte_carlo(tmp_path: Path) -> None:
    data = write_wavy(tmp_path / "wavy.csv")
    (tmp_path / "ema.lua").write_text(EMA)
    out = tradewind(
        "check",
        str(tmp_path / "ema.lua"),
        "--data",
        str(data),
        "--lookback",
        "40",
        "--points",
        "5",
        "--runs",
        "200",
        "--seed",
        "3",
        "--json",
    )
    assert out.returncode == 1, out.stderr  # a decision changed with the lookback
    doc = json.loads(out.stdout)
    assert not doc["recursive"]["passed"] and doc["lookahead"]["passed"]
    mc = doc["montecarlo"]
    assert mc["runs"] == 200 and mc["trades"] > 0
    assert mc["bootstrap"]["max_drawdown_pct"]["p5"] <= mc["bootstrap"]["max_drawdown_pct"]["p95"]
    text = tradewind(
        "check",
        str(tmp_path / "ema.lua"),
        "--data",
        str(data),
        "--lookback",
        "40",
        "--only",
        "lookahead",
        "--points",
        "3",
    )
    assert text.returncode == 0 and "passed" in text.stdout
