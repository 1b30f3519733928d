"""The history store from the command line: `data import` writes it, `data list` shows it, `backtest --market
EXCHANGE:SYMBOL` and `--data FILE.parquet` read it, and a file it cannot read is an error, not a traceback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.shared_data import SHARED_DATA as DATA

EXE = str(Path(sys.executable).parent / "tradewind")
SMA = """
function decide(c, params)
  local fast, slow = ta.sma(c.close, 5), ta.sma(c.close, 20)
  local f, s = fast[#fast], slow[#slow]
  if f ~= f or s ~= s then return "neutral" end
  if f > s then return "long" end
  return "short"
end
"""
CSV = DATA / "XRP-ETH-5m.csv"
pytestmark = pytest.mark.skipif(not CSV.exists(), reason="the shared candles are not here")


def tw(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRADEWIND_")}
    env["TRADEWIND_DATA_DIR"] = str(home)
    return subprocess.run([EXE, *args], capture_output=True, text=True, env=env, timeout=120)


@pytest.mark.timeout(120)
def test_import_writes_the_history_store_that_a_backtest_reads_like_the_file(tmp_path: Path) -> None:
    home = tmp_path / "home"
    out = tw(
        home, "data", "import", str(CSV), "--exchange", "binance", "--symbol", "XRP/ETH", "--timeframe", "5m"
    )
    assert out.returncode == 0, out.stderr
    assert "history store: 706 new candles" in out.stdout
    folder = home / "history" / "binance" / "XRP-ETH" / "5m"
    assert sorted(p.name for p in folder.iterdir()) == ["2019-10.parquet"]
    listed = tw(home, "data", "list")
    assert listed.returncode == 0, listed.stderr
    history = listed.stdout.split("history store")[1]
    assert "binance:XRP/ETH" in history and "706" in history and "2019-10-11T00:00:00Z" in history

    strat = tmp_path / "sma.lua"
    strat.write_text(SMA)
    stored = tw(home, "backtest", str(strat), "--market", "binance:XRP/ETH", "--timeframe", "5m", "--json")
    from_csv = tw(home, "backtest", str(strat), "--data", str(CSV), "--json")
    parquet = tw(home, "backtest", str(strat), "--data", str(folder / "2019-10.parquet"), "--json")
    for run in (stored, from_csv, parquet):
        assert run.returncode == 0, run.stderr
    a, b, c = (json.loads(r.stdout) for r in (stored, from_csv, parquet))
    assert a["candles"] == b["candles"] == c["candles"] == 706
    assert (
        a["trades"] == b["trades"] == c["trades"]
        and a["final_equity"] == b["final_equity"] == c["final_equity"]
    )


@pytest.mark.timeout(120)
def test_an_empty_range_or_a_file_it_cannot_read_is_an_error_that_says_so(tmp_path: Path) -> None:
    home = tmp_path / "home"
    out = tw(
        home, "data", "import", str(CSV), "--exchange", "binance", "--symbol", "XRP/ETH", "--timeframe", "5m"
    )
    assert out.returncode == 0, out.stderr
    strat = tmp_path / "sma.lua"
    strat.write_text(SMA)
    none = tw(
        home,
        "backtest",
        str(strat),
        "--market",
        "binance:XRP/ETH",
        "--timeframe",
        "5m",
        "--from",
        "2020-01-01",
        "--json",
    )
    assert none.returncode == 1 and "holds no 5m candles of binance:XRP/ETH in that range" in none.stderr
    month = home / "history" / "binance" / "XRP-ETH" / "5m" / "2019-10.parquet"
    month.write_bytes(month.read_bytes()[:200])  # cut short
    stored = tw(home, "backtest", str(strat), "--market", "binance:XRP/ETH", "--timeframe", "5m", "--json")
    assert stored.returncode == 1 and "Traceback" not in stored.stderr
    assert str(month) in stored.stderr and "not a readable candle file" in stored.stderr
    given = tw(home, "backtest", str(strat), "--data", str(month), "--json")
    assert given.returncode == 1 and "Traceback" not in given.stderr
    assert "2019-10.parquet: not a Parquet file" in given.stderr
