"""`tradewind backtest` of quoting strategies (on_tick) as a user runs it: a process, on candles from a file
(the approximation) and on the ticks stored for a market; and a strategy with decide as before."""

from __future__ import annotations

import asyncio
import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.shared_data import SHARED_DATA as DATA
from tradewind.backtest.importers import load

EXE = str(Path(sys.executable).parent / "tradewind")
DOCS = Path(__file__).resolve().parents[3] / "docs" / "strategies.md"
LABEL = "mode: candles (approximation: a quote fills when a candle's range crosses it)"
MIN = 60_000
T0 = 1_704_067_200_000  # 2024-01-01T00:00:00Z


def tw(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRADEWIND_")}
    env["TRADEWIND_DATA_DIR"] = str(tmp_path / "home")
    env["COLUMNS"] = "100"
    return subprocess.run([EXE, *args], capture_output=True, text=True, env=env, timeout=240)


def market_maker(tmp_path: Path) -> Path:
    """The example strategy of docs/strategies.md's market-making section, as it is written there."""
    section = DOCS.read_text().split("## Market making: `on_tick` and quotes", 1)[1].split("\n## ", 1)[0]
    found = re.search(r"```lua\n(.*?)```", section, re.S)
    assert found, "the market-making section has a Lua example"
    path = tmp_path / "mm.lua"
    path.write_text(found.group(1))
    return path


@pytest.mark.skipif(not (DATA / "ETH-BTC-5m.csv").exists(), reason="the shared candles are not here")
def test_the_documented_market_maker_on_a_candle_file_prints_the_labelled_report(tmp_path: Path) -> None:
    mm = market_maker(tmp_path)
    args = [
        "backtest",
        str(mm),
        "--data",
        str(DATA / "ETH-BTC-5m.csv"),
        "--cash",
        "100",
        "--param",
        "size=1",
        "--param",
        "max_inventory=5",
        "--param",
        "reserve=10",
    ]
    out = tw(tmp_path, *args)
    assert out.returncode == 0, out.stderr
    assert LABEL in out.stdout
    for label in (
        "quotes placed",
        "fills",
        "fill rate",
        "final inventory",
        "realized P&L",
        "fees",
        "final equity",
        "max drawdown",
        "last fills (UTC)",
    ):
        assert label in out.stdout

    js = tw(tmp_path, *args, "--json", "--fee", "0", "--spread-bps", "10")
    assert js.returncode == 0, js.stderr
    s = json.loads(js.stdout)
    assert s["mode"] == "candles" and LABEL.endswith(s["label"]) and s["candles"] == 5760
    quote_fills = [f for f in s["trades"] if f["kind"] == "quote"]
    assert len(quote_fills) == s["fills"]["buy"] + s["fills"]["sell"] > 0 and s["fees"] == 0
    assert s["fill_rate_pct"] == pytest.approx(100 * len(quote_fills) / s["quotes_placed"])
    # no fee: the equity is the cash, less the buys, plus the sales, plus what is held at the last close
    candles = load(DATA / "ETH-BTC-5m.csv").arrays()
    bought = sum(f["amount"] for f in quote_fills if f["side"] == "buy")
    sold = sum(f["amount"] for f in quote_fills if f["side"] == "sell")
    flow = sum(f["amount"] * f["price"] * (1 if f["side"] == "sell" else -1) for f in quote_fills)
    assert s["final_inventory"] == pytest.approx(bought - sold, abs=1e-9)
    assert s["final_equity"] == pytest.approx(100 + flow + s["final_inventory"] * candles["close"][-1])
    assert s["equity"][0][0] == candles["time"][0] and s["equity"][-1][0] == candles["time"][-1]


def store(tmp_path: Path, bars: int, ticks: list[tuple[int, float, float, float]]) -> None:
    """A data folder whose database holds sim:BTC/USD with 1m candles from T0 and these ticks."""
    from tradewind.storage import candles
    from tradewind.storage.db import make_engine, make_session_factory
    from tradewind.storage.migrate import upgrade_async
    from tradewind.storage.models import TickRow

    home = tmp_path / "home"
    home.mkdir()
    url = f"sqlite+aiosqlite:///{home / 'tradewind.db'}"

    async def go() -> None:
        await upgrade_async(url)
        eng = make_engine(url)
        try:
            async with make_session_factory(eng)() as s:
                market = await candles.get_or_create_market(s, "sim", "BTC/USD")
                rows = [(T0 + MIN * i, 100.0, 100.05, 99.95, 100.0, 1.0) for i in range(bars)]
                await candles.insert_candles(s, market.id, "1m", rows)
                s.add_all(
                    TickRow(market_id=market.id, time=t, bid=b, ask=a, bid_size=1.0, ask_size=1.0, last=x)
                    for t, b, a, x in ticks
                )
                await s.commit()
        finally:
            await eng.dispose()

    asyncio.run(go())


def test_the_documented_market_maker_on_stored_ticks(tmp_path: Path) -> None:
    # an hour of ticks, one a second, swinging 0.2 % around 100 with trades a little outside the book
    ticks = []
    for k in range(3600):
        mid = 100 + 0.2 * math.sin(k / 60)
        last = mid + 0.15 * math.sin(k / 7)
        ticks.append((T0 + 15 * MIN + 1000 * k, round(mid - 0.01, 4), round(mid + 0.01, 4), round(last, 4)))
    store(tmp_path, 90, ticks)
    mm = market_maker(tmp_path)
    common = [
        "backtest",
        str(mm),
        "--market",
        "sim:BTC/USD",
        "--ticks",
        "--param",
        "size=1",
        "--param",
        "max_inventory=3",
    ]
    out = tw(tmp_path, *common)
    assert out.returncode == 0, out.stderr
    assert "mode: ticks" in out.stdout and "3,600 ticks" in out.stdout and "approximation" not in out.stdout

    js = tw(tmp_path, *common, "--json", "--min-interval-ms", "5000", "--max-position", "2")
    assert js.returncode == 0, js.stderr
    s = json.loads(js.stdout)
    assert s["mode"] == "ticks" and s["label"] == "ticks" and s["ticks"] == 3600
    assert 0 < s["evaluations"] <= 720  # at most one every 5 s
    assert s["fills"]["buy"] > 0 and s["fills"]["sell"] > 0 and 0 <= s["final_inventory"] <= 2
    assert s["trades"][0]["time"] >= "2024-01-01T00:15:00Z"

    by_id = [x if x != "sim:BTC/USD" else "1" for x in common]  # the market by its id: the same run
    again = tw(tmp_path, *by_id, "--json", "--min-interval-ms", "5000", "--max-position", "2")
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["trades"] == s["trades"]

    missing = tw(tmp_path, "backtest", str(mm), "--market", "sim:ETH/USD", "--ticks")
    assert missing.returncode != 0 and "no market sim:ETH/USD is stored" in missing.stderr
    no_data = tw(tmp_path, "backtest", str(mm), "--data", str(mm), "--ticks")
    assert no_data.returncode != 0 and "give --market" in no_data.stderr


def test_the_trigger_chooses_between_decide_and_on_tick_and_errors_are_reported(tmp_path: Path) -> None:
    csv = tmp_path / "c.csv"
    lines = ["time,open,high,low,close,volume"]
    lines += [f"{T0 + MIN * i},{100 + i % 3},{101 + i % 3},{99 + i % 3},{100 + i % 3},1" for i in range(200)]
    csv.write_text("\n".join(lines) + "\n")
    both = tmp_path / "both.lua"
    both.write_text("""
function decide(c) return "long" end
function on_tick(t) return {quotes = {{side = "buy", price = t.bid - 0.5, amount = 1}}} end
""")
    decided = tw(tmp_path, "backtest", str(both), "--data", str(csv), "--json")
    assert decided.returncode == 0, decided.stderr
    assert "mode" not in json.loads(decided.stdout) and len(json.loads(decided.stdout)["trades"]) == 1

    quoted = tw(tmp_path, "backtest", str(both), "--data", str(csv), "--json", "--trigger", "tick")
    assert quoted.returncode == 0, quoted.stderr
    s = json.loads(quoted.stdout)
    assert s["mode"] == "candles" and s["fills"]["buy"] > 0

    failing = tmp_path / "failing.lua"
    failing.write_text('function on_tick(t, c) if #c.close == 50 then error("lost the book") end end\n')
    out = tw(tmp_path, "backtest", str(failing), "--data", str(csv))
    assert out.returncode == 1 and "The strategy failed" in out.stderr and "lost the book" in out.stderr
    assert "Traceback" not in out.stderr
    out = tw(tmp_path, "backtest", str(failing), "--data", str(csv), "--json")
    assert out.returncode == 1 and "lost the book" in json.loads(out.stdout)["error"]

    only_decide = tmp_path / "sma.lua"
    only_decide.write_text('function decide(c) return "neutral" end\n')
    out = tw(tmp_path, "backtest", str(only_decide), "--data", str(csv), "--trigger", "tick")
    assert out.returncode == 1 and "no function on_tick" in out.stderr
    sweep = tw(tmp_path, "backtest", str(failing), "--data", str(csv), "--sweep", "k=1,2")
    assert sweep.returncode == 2 and "not a quoting strategy" in sweep.stderr
