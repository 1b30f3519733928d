"""Backtests of quoting strategies (``backtest.quotes``): on hand-made candles whose fills can be worked
out by hand, on hand-made ticks stored in SQLite, and through ``tradewind backtest`` on the market maker
of docs/strategies.md."""

from __future__ import annotations

import json
import os
import re
from decimal import ROUND_DOWN, Decimal
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from tests.shared_data import SHARED_DATA
from tradewind.backtest import quotes
from tradewind.storage import candles as store
from tradewind.storage.db import make_engine, make_session_factory
from tradewind.storage.migrate import upgrade_async
from tradewind.storage.models import TickRow

MIN = 60_000
T0 = 1_700_000_040_000 - 1_700_000_040_000 % MIN  # a whole minute
DOCS = Path(__file__).resolve().parents[3] / "docs" / "strategies.md"

# A buy 1 under the close and, while holding, a sell of all of it 1 over: fills easy to follow by hand.
BAND = """
function on_tick(t, c, params)
  local close = c.close[#c.close]
  local q = {{side = "buy", price = close - 1, amount = params.amount or 1}}
  if t.position > 0 then q[2] = {side = "sell", price = close + 1, amount = t.position} end
  return {quotes = q}
end
"""


def candles(*bars: tuple[float, float, float, float]) -> dict[str, np.ndarray]:
    """Arrays of 1m candles (open, high, low, close), the first opening at T0."""
    a = np.asarray(bars, dtype=np.float64)
    return {
        "time": T0 + MIN * np.arange(len(bars), dtype=np.int64),
        "open": a[:, 0],
        "high": a[:, 1],
        "low": a[:, 2],
        "close": a[:, 3],
        "volume": np.ones(len(bars)),
    }


def flat(price: float = 100.0) -> tuple[float, float, float, float]:
    return (price, price, price, price)


def fills(r: quotes.QuoteResult) -> list[tuple[str, float, float, int]]:
    return [(f.side, float(f.price), float(f.amount), f.time) for f in r.fills]


# -- on candles ----------------------------------------------------------------------------------------
def test_a_buy_fills_below_its_price_not_at_it_and_a_sell_above_it() -> None:
    data = candles(
        flat(),  # 0: buy 99 placed at the close
        (100, 100, 99, 100),  # 1: the low touches 99: no fill
        (100, 100, 98.5, 100),  # 2: the low goes under 99: bought 1 at 99; then buy 99 and sell 101
        (100, 101, 99.5, 100),  # 3: the high touches 101: no fill
        (100, 101.5, 99.5, 100),  # 4: sold 1 at 101
    )
    r = quotes.run_candles(BAND, data, cash=10_000, fee=0.001)
    assert r.error is None
    assert fills(r) == [("buy", 99.0, 1.0, T0 + 2 * MIN), ("sell", 101.0, 1.0, T0 + 4 * MIN)]
    buy_cost = Decimal("99") * Decimal("1.001")  # the maker fee (--maker-fee defaults to --fee)
    assert r.fills[0].fee == Decimal("0.099") and r.fills[1].fee == Decimal("0.101")
    assert r.realized_pnl == Decimal("101") - Decimal("0.101") - buy_cost == Decimal("1.800")
    assert r.fees == Decimal("0.200") and r.inventory == 0
    s = r.summary()
    # placed: the buy at candle 0, again at 2 (the first one filled), the sell at 2; unchanged sides rest on
    assert s["quotes_placed_by_side"] == {"buy": 2, "sell": 1} and s["fills"] == {"buy": 1, "sell": 1}
    assert s["fill_rate_pct"] == pytest.approx(200 / 3)
    assert s["evaluations"] == 4 and s["candles"] == 5  # the last close decides nothing that could act
    assert s["final_equity"] == pytest.approx(10_001.8)
    assert r.equity.tolist() == pytest.approx(
        [10_000, 10_000, 10_000 - 99.099 + 100, 10_000 - 99.099 + 100, 10_001.8]
    )
    assert s["max_drawdown_pct"] == 0.0
    assert s["mode"] == "candles" and s["label"] == quotes.LABELS["candles"]


def test_both_sides_fill_in_one_candle_whose_range_crosses_both() -> None:
    data = candles(flat(), (100, 100, 98, 100), (100, 102, 98, 100), flat())
    r = quotes.run_candles(BAND, data, fee=0.0)
    assert fills(r) == [
        ("buy", 99.0, 1.0, T0 + MIN),
        ("buy", 99.0, 1.0, T0 + 2 * MIN),  # both sides in candle 2, the buy booked first
        ("sell", 101.0, 1.0, T0 + 2 * MIN),
    ]
    assert r.inventory == 1 and r.realized_pnl == 2  # average cost 99
    assert r.final_equity == pytest.approx(10_000 - 99 - 99 + 101 + 100)


def test_the_book_is_the_close_plus_and_minus_half_the_spread_and_a_taking_quote_is_refused() -> None:
    at_bid = 'function on_tick(t) return {quotes = {{side = "buy", price = t.bid, amount = 1}}} end'
    data = candles(flat(), (100, 100, 99.49, 100))
    r = quotes.run_candles(at_bid, data, spread_bps=100, fee=0.0)  # bid 99.5, ask 100.5
    assert fills(r) == [("buy", 99.5, 1.0, T0 + MIN)]

    taking = """function on_tick(t)
      return {quotes = {{side = "buy", price = t.ask, amount = 1}, {side = "sell", price = t.bid, amount = 1}}}
    end"""
    r = quotes.run_candles(taking, candles(flat(), (100, 110, 90, 100), flat()), spread_bps=100)
    s = r.summary()
    assert r.fills == [] and s["quotes_refused"] == 4 and s["quotes_placed"] == 0  # two closes, two sides


def test_buys_are_cut_to_the_inventory_limit() -> None:
    falling = candles(flat(), (100, 100, 98, 100), (100, 100, 98, 100), (100, 100, 98, 100), flat())
    r = quotes.run_candles(BAND.replace("close + 1", "close + 50"), falling, max_position=1.5, fee=0.0)
    assert [f[2] for f in fills(r)] == [1.0, 0.5]  # then at 1.5 held the buy is dropped
    assert r.inventory == Decimal("1.5") and r.summary()["quotes_placed_by_side"]["buy"] == 2


def test_buys_are_cut_to_what_the_cash_pays_fee_included() -> None:
    falling = candles(flat(), (100, 100, 98, 100), (100, 100, 98, 100), (100, 100, 98, 100), flat())
    r = quotes.run_candles(BAND.replace("close + 1", "close + 50"), falling, cash=150, fee=0.001)
    left = Decimal(150) - Decimal("99.099")
    second = (left / Decimal("99.099")).quantize(Decimal("1e-8"), rounding=ROUND_DOWN)
    assert [f.amount for f in r.fills] == [1, second]
    assert second == Decimal("0.51363787")  # 50.901 / 99.099 = 0.5136378772..., floored
    assert r.fills[1].price * r.fills[1].amount + r.fills[1].fee <= left  # never more than the cash
    assert len(r.fills) == 2  # then the cash left buys less than 1e-8: no quote


def test_a_position_returned_takes_the_quotes_down_and_trades_at_the_next_open() -> None:
    code = """function on_tick(t, c)
      local n = #c.close
      if n == 1 then return {quotes = {{side = "buy", price = 90, amount = 1}}} end
      if n == 2 then return "long" end
      if n == 4 then return "short" end
    end"""
    data = candles(flat(), (100, 100, 80, 100), (110, 110, 110, 110), flat(), (120, 120, 120, 120))
    r = quotes.run_candles(code, data, cash=1000, fee=0.0)
    # the buy at 90 filled in candle 1; "long" while holding does nothing; "short" sells at candle 4's open
    assert [(f.side, float(f.price), f.kind) for f in r.fills] == [
        ("buy", 90.0, "quote"),
        ("sell", 120.0, "market"),
    ]
    assert r.realized_pnl == 30 and r.summary()["market_orders"] == 1


def test_a_strategy_error_stops_the_run_at_its_candle_and_keeps_what_came_before() -> None:
    code = BAND.replace("local close", 'if #c.close == 3 then error("no book today") end\n  local close')
    data = candles(flat(), (100, 100, 98, 100), flat(), flat(), flat())
    r = quotes.run_candles(code, data, name="mm")
    assert r.error is not None and "strategy 'mm'" in r.error and "no book today" in r.error
    assert r.error_time == T0 + 2 * MIN and len(r.equity) == 3 and len(r.fills) == 1
    assert r.summary()["error_time"] == quotes.iso(T0 + 2 * MIN)

    broken = quotes.run_candles("function on_tick(t) return {quotes = {{side = 'buy'}}} end", data)
    assert broken.error and "quote 1 needs a price" in broken.error and broken.fills == []
    syntax = quotes.run_candles("function on_tick(", data)
    assert syntax.error and "syntax error" in syntax.error and syntax.summary()["final_equity"] == 10_000


def test_on_tick_gets_the_window_ending_at_its_candle_and_the_account() -> None:
    code = """function on_tick(t, c, params)
      -- the window ends at the candle just closed: buy 1 under its close, sized by what it holds
      assert(t.time == c.time[#c.time] + 60000, "t.time is the close")
      assert(#c.close <= 2, "the lookback")
      if t.position == 0 then return {quotes = {{side = "buy", price = c.close[#c.close] - 1, amount = 2}}} end
      assert(#t.quotes == 0 and t.cash < 10000 - 2 * 99, "cash less the inventory's cost")
      return {quotes = {}}
    end"""
    data = candles(flat(), (100, 100, 98, 100), flat(105), (105, 105, 103, 105))
    r = quotes.run_candles(code, data, lookback=2)
    assert r.error is None and fills(r) == [("buy", 99.0, 2.0, T0 + MIN)]


def test_a_day_of_minutes_runs_well_under_a_second() -> None:
    rng = np.random.default_rng(7)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 5e-4, 1440)))
    data = candles(*[(c, c * 1.0005, c * 0.9995, c) for c in close])
    r = quotes.run_candles(
        documented_market_maker(), data, params={"size": 1, "max_inventory": 3, "reserve": 0}
    )
    assert r.error is None and r.summary()["fills"]["buy"] > 0
    assert r.duration_s < 1.5


# -- on stored ticks ------------------------------------------------------------------------------------
@pytest.fixture
async def sf(tmp_path: Path):  # type: ignore[no-untyped-def]
    url = f"sqlite+aiosqlite:///{tmp_path / 't.db'}"
    await upgrade_async(url)
    engine = make_engine(url)
    yield make_session_factory(engine)
    await engine.dispose()


async def stored(
    sf, bars: list[tuple[float, float, float, float]], ticks: list[tuple[int, float, float, float]]
):  # type: ignore[no-untyped-def]
    """Candles from T0 and ticks (ms after T0, bid, ask, last) stored for sim:BTC/USD, read back as the
    CLI reads them."""
    async with sf() as s:
        market = await store.get_or_create_market(s, "sim", "BTC/USD")
        await store.insert_candles(s, market.id, "1m", [(T0 + MIN * i, *b, 1.0) for i, b in enumerate(bars)])
        s.add_all(
            TickRow(market_id=market.id, time=T0 + dt, bid=b, ask=a, bid_size=1.0, ask_size=2.0, last=last)
            for dt, b, a, last in ticks
        )
        await s.commit()
        got = await quotes.stored_ticks(s, market.id)
        assert (await quotes.stored_ticks(s, market.id, T0 + 10**9))["time"].size == 0
        return store.to_arrays(await store.candle_range(s, market.id, "1m")), got


async def test_ticks_a_quote_fills_on_a_later_tick_whose_last_trades_through_it(sf) -> None:  # type: ignore[no-untyped-def]
    at_book = """function on_tick(t)
      local q = {{side = "buy", price = t.bid, amount = 1}}
      if t.position > 0 then q[2] = {side = "sell", price = t.ask, amount = t.position} end
      return {quotes = q}
    end"""
    c, ticks = await stored(
        sf,
        [flat(), flat()],
        [
            (
                60_000,
                99,
                101,
                98,
            ),  # the first tick after candle 0 closed: buy 99 placed (its own last does not count)
            (61_000, 99, 101, 99),  # a trade at 99: no fill
            (62_000, 99, 101, 98.9),  # through it: bought 1 at 99; unchanged book: not evaluated
            (63_000, 99.5, 101, 100),  # the book moved: buy 99.5, sell 101 placed
            (64_000, 99.5, 101, 101),  # at the sell's price: no fill
            (65_000, 99.5, 101.5, 101.2),  # through the sell: sold 1 at 101
        ],
    )
    r = quotes.run_ticks(at_book, c, ticks, fee=0.0)
    assert r.error is None
    assert fills(r) == [("buy", 99.0, 1.0, T0 + 62_000), ("sell", 101.0, 1.0, T0 + 65_000)]
    s = r.summary()
    assert s["mode"] == "ticks" and s["label"] == "ticks" and s["ticks"] == 6
    assert s["evaluations"] == 3  # ticks 0, 3 and 5: the others kept the book of the last evaluation
    assert s["quotes_placed_by_side"] == {"buy": 2, "sell": 1}  # at tick 5 the resting buy is unchanged
    assert s["realized_pnl"] == 2.0 and s["final_inventory"] == 0.0
    assert r.equity[-1] == pytest.approx(10_002)


async def test_ticks_respect_the_min_interval_and_see_the_last_closed_candle(sf) -> None:  # type: ignore[no-untyped-def]
    code = """function on_tick(t, c)
      -- a buy priced by the window's length and last close: the fills say which window it saw
      return {quotes = {{side = "buy", price = c.close[#c.close] - #c.close, amount = 1}}}
    end"""
    c, ticks = await stored(
        sf,
        [flat(), flat(110), flat(120)],
        [
            (30_000, 99, 101, 100),  # candle 0 has not closed: not evaluated
            (60_000, 99, 101, 100),  # window = candle 0: buy 100 - 1
            (61_000, 99.1, 101, 98.9),  # bought at 99; within the 5 s interval: not evaluated
            (120_000, 109, 111, 110),  # window = candles 0 and 1: buy 110 - 2
            (130_000, 109, 111, 107),  # bought at 108; the same book: not evaluated
            (179_999, 109.2, 111, 110),  # candle 2 closes at 180,000, not yet: buy 108 again
            (180_500, 119, 121, 107.9),  # bought at 108; within the interval: not evaluated
            (185_000, 119.1, 121, 120),  # window = candles 0 to 2: buy 120 - 3
            (186_000, 119.1, 121, 116),  # bought at 117
        ],
    )
    r = quotes.run_ticks(code, c, ticks, min_interval_ms=5000, fee=0.0)
    assert fills(r) == [
        ("buy", 99.0, 1.0, T0 + 61_000),
        ("buy", 108.0, 1.0, T0 + 130_000),
        ("buy", 108.0, 1.0, T0 + 180_500),
        ("buy", 117.0, 1.0, T0 + 186_000),
    ]
    assert r.evaluations == 4 and r.summary()["quotes_placed"] == 4 and r.inventory == 4
    # at most once a second, the tick at 61,000 is evaluated too (not the one at 180,500, 501 ms after one)
    r = quotes.run_ticks(code, c, ticks, min_interval_ms=1000, fee=0.0)
    assert r.evaluations == 5


async def test_ticks_refuse_a_quote_that_would_take_against_that_ticks_book(sf) -> None:  # type: ignore[no-untyped-def]
    code = 'function on_tick(t) return {quotes = {{side = "buy", price = 100.5, amount = 1}}} end'
    c, ticks = await stored(
        sf, [flat()], [(60_000, 100, 100.5, 100), (61_000, 100, 101, 100), (62_000, 100, 101, 99)]
    )
    r = quotes.run_ticks(code, c, ticks, fee=0.0)
    # at ask 100.5 it would take: refused; at ask 101 it rests and the trade at 99 fills it
    assert r.summary()["quotes_refused"] == 1 and fills(r) == [("buy", 100.5, 1.0, T0 + 62_000)]


# -- the CLI -----------------------------------------------------------------------------------------------
def documented_market_maker() -> str:
    section = DOCS.read_text().split("## Market making: `on_tick` and quotes", 1)[1].split("\n## ", 1)[0]
    found = re.search(r"```lua\n(.*?)```", section, re.S)
    assert found, "the market-making section has a Lua example"
    return found.group(1)


@pytest.mark.skipif(not (SHARED_DATA / "ETH-BTC-5m.csv").exists(), reason="the shared candles are not here")
def test_cli_runs_the_documented_market_maker_on_candles_and_labels_the_approximation(tmp_path: Path) -> None:
    from tradewind.cli import main

    strategy = tmp_path / "mm.lua"
    strategy.write_text(documented_market_maker())
    args = [
        "backtest",
        str(strategy),
        "--data",
        str(SHARED_DATA / "ETH-BTC-5m.csv"),
        "--cash",
        "100",
        "--param",
        "size=1",
        "--param",
        "max_inventory=5",
        "--param",
        "reserve=10",
    ]
    # the shell's settings stay out
    runner = CliRunner(env={k: None for k in os.environ if k.startswith("TRADEWIND_")})
    out = runner.invoke(main, args)
    assert out.exit_code == 0, out.output
    assert "mode: candles (approximation: a quote fills when a candle's range crosses it)" in out.output
    assert "quotes placed" in out.output and "fill rate" in out.output and "last fills" in out.output

    out = runner.invoke(main, [*args, "--json", "--spread-bps", "4", "--max-position", "2"])
    assert out.exit_code == 0, out.output
    s = json.loads(out.output)
    assert s["mode"] == "candles" and s["label"].startswith("candles (approximation")
    assert s["candles"] == 5760 and s["error"] is None
    assert s["fills"]["buy"] > 0 and s["fills"]["sell"] > 0 and 0 < s["fill_rate_pct"] <= 100
    assert (
        s["final_inventory"] <= 2
        and len(s["equity"]) > 100
        and s["equity"][-1][1] == pytest.approx(s["final_equity"])
    )
