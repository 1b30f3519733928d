"""The data and backtest commands as a user runs them: whole processes on a data folder of their own."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.shared_data import SHARED_DATA as DATA
from tradewind.backtest.importers import load, parse_time

EXE = str(Path(sys.executable).parent / "tradewind")
SMA = """
function decide(c, params)
  local fast, slow = ta.sma(c.close, params.fast), ta.sma(c.close, params.slow)
  local f, s = fast[#fast], slow[#slow]
  if f ~= f or s ~= s then return "neutral" end
  if f > s then return "long" end
  return "short"
end
"""

pytestmark = pytest.mark.skipif(
    not (DATA / "XRP-ETH-5m.csv").exists(), reason="the shared candles are not here"
)


def tw(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRADEWIND_")}
    env["TRADEWIND_DATA_DIR"] = str(tmp_path / "home")
    return subprocess.run([EXE, *args], capture_output=True, text=True, env=env, timeout=240)


@pytest.mark.timeout(300)
def test_import_list_and_backtest_a_stored_market_like_the_file(tmp_path: Path) -> None:
    csv = DATA / "XRP-ETH-5m.csv"
    out = tw(
        tmp_path,
        "data",
        "import",
        str(csv),
        "--exchange",
        "binance",
        "--symbol",
        "xrp/eth",
        "--timeframe",
        "5m",
    )
    assert out.returncode == 0, out.stderr
    assert "imported 706 candles (csv) from 2019-10-11T00:00:00Z" in out.stdout
    assert "6 gap(s)" in out.stdout
    again = tw(
        tmp_path,
        "data",
        "import",
        str(csv),
        "--exchange",
        "binance",
        "--symbol",
        "XRP/ETH",
        "--timeframe",
        "5m",
    )
    assert again.returncode == 0, again.stderr  # importing twice keeps one copy
    listed = tw(tmp_path, "data", "list")
    assert listed.returncode == 0, listed.stderr
    line = next(x for x in listed.stdout.splitlines() if "XRP/ETH" in x)
    assert "binance" in line and "706" in line and "2019-10-11T00:00:00Z" in line
    market = line.split()[0]

    strat = tmp_path / "sma.lua"
    strat.write_text(SMA)
    common = ["--param", "fast=5", "--param", "slow=20", "--json"]
    from_db = tw(tmp_path, "backtest", str(strat), "--market", market, "--timeframe", "5m", *common)
    from_file = tw(tmp_path, "backtest", str(strat), "--data", str(csv), *common)
    assert from_db.returncode == 0 and from_file.returncode == 0, from_db.stderr + from_file.stderr
    a, b = json.loads(from_db.stdout), json.loads(from_file.stdout)
    assert a["candles"] == 706 and a["trades"] == b["trades"] and a["final_equity"] == b["final_equity"]
    window = tw(tmp_path, "backtest", str(strat), "--market", market, "--timeframe", "5m", "--from", "2019-10-12",
                "--to", "2019-10-12T12:00:00Z", *common)  # fmt: skip
    times = load(csv).time
    t0, t1 = parse_time("2019-10-12"), parse_time("2019-10-12T12:00:00Z")
    assert json.loads(window.stdout)["candles"] == int(((times >= t0) & (times < t1)).sum()) > 100

    swept = tw(tmp_path, "backtest", str(strat), "--market", market, "--timeframe", "5m", "--sweep", "fast=4..5",
               "--sweep", "slow=20,30", "--workers", "2", "--json")  # fmt: skip
    assert swept.returncode == 0, swept.stderr
    point = next(r for r in json.loads(swept.stdout)["results"] if r["params"] == {"fast": 5, "slow": 20})
    assert point["final_equity"] == a["final_equity"] and point["trade_count"] == len(a["trades"])

    readable = tw(
        tmp_path, "backtest", str(strat), "--data", str(csv), "--param", "fast=5", "--param", "slow=20"
    )
    assert (
        readable.returncode == 0 and "final equity" in readable.stdout and "max drawdown" in readable.stdout
    )


@pytest.mark.timeout(300)
def test_a_sweep_ranks_its_grid_over_local_workers(tmp_path: Path) -> None:
    strat = tmp_path / "sma.lua"
    strat.write_text(SMA)
    out = tw(tmp_path, "backtest", str(strat), "--data", str(DATA / "XRP-ETH-5m.csv"), "--sweep", "fast=3..6",
             "--sweep", "slow=20..40:10", "--workers", "2", "--json")  # fmt: skip
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert doc["points"] == 12 and len(doc["results"]) == 12
    equities = [r["final_equity"] for r in doc["results"]]
    assert equities == sorted(equities, reverse=True)
    assert {(r["params"]["fast"], r["params"]["slow"]) for r in doc["results"]} == {
        (f, s) for f in range(3, 7) for s in (20, 30, 40)
    }
    assert sum(doc["workers"].values()) == 12


def test_a_failing_strategy_exits_non_zero_with_the_candle_time(tmp_path: Path) -> None:
    strat = tmp_path / "bad.lua"
    strat.write_text('function decide(c) if #c.close > 100 then error("boom") end return "long" end')
    out = tw(tmp_path, "backtest", str(strat), "--data", str(DATA / "XRP-ETH-5m.csv"), "--json")
    assert out.returncode == 1
    doc = json.loads(out.stdout)
    assert "boom" in doc["error"] and "2019-10-11 08:20 UTC" in doc["error"] and doc["candles"] == 101
    assert doc["trades"][0]["entry_time"] == "2019-10-11T00:05:00Z" and doc["trades"][0]["exit_time"] is None
