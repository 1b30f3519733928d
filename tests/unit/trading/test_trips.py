"""Round trips from fills (``tradewind.trading.trips``): the one rule a backtest's trades and a live account's
trades view share; daily profit, the equity curve and the headline numbers."""

from __future__ import annotations

from decimal import Decimal as D

import numpy as np
import pytest

from tradewind.backtest import engine
from tradewind.backtest.metrics import PROFIT_FACTOR_CAP, average_duration_s, buy_and_hold, profit_factor
from tradewind.trading.trips import Closes, TradeFill, Trips, daily_profit, equity_curve, round_trips, summary

H = 3_600_000


def fill(hour: float, side: str, amount: str, price: str, fee: str = "0", **kw) -> TradeFill:  # type: ignore[no-untyped-def]
    return TradeFill(int(hour * H), side, D(amount), D(price), D(fee), kw.pop("symbol", "BTC/USD"), **kw)


def test_a_buy_and_a_sell_make_one_trip_with_its_fees_pnl_and_duration() -> None:
    (t,), realized, unmatched = round_trips(
        [fill(0, "buy", "2", "100", "0.2"), fill(3, "sell", "2", "110", "0.22", reason="take_profit")]
    )
    assert (t.entry_time, t.exit_time, t.duration_ms, t.exit_reason) == (0, 3 * H, 3 * H, "take_profit")
    assert (t.entry_price, t.exit_price, t.qty, t.fees, t.cost) == (
        100.0,
        110.0,
        2.0,
        pytest.approx(0.42),
        200.2,
    )
    assert t.pnl == pytest.approx(219.78 - 200.2) and t.pnl_pct == pytest.approx(
        (219.78 - 200.2) / 200.2 * 100
    )
    assert realized == [(3 * H, D("219.78") - D("200.2"))] and unmatched == 0


def test_partial_entries_and_exits_average_their_prices_and_close_when_flat() -> None:
    fills = [
        fill(0, "buy", "1", "100"),
        fill(1, "buy", "3", "80"),
        fill(2, "sell", "2", "90"),
        fill(4, "sell", "2", "95", reason="stop_loss"),
        fill(5, "buy", "1", "90"),
    ]
    (first, second), realized, _ = round_trips(fills)
    assert (first.qty, first.entry_price, first.exit_price, first.exit_time) == (4.0, 85.0, 92.5, 4 * H)
    assert first.pnl == pytest.approx(370 - 340) and first.exit_reason == "stop_loss"
    # each sell meets the average cost (85 a coin): day profit adds up to the trip's
    assert [r for _, r in realized] == [D(180 - 170), D(190 - 170)]
    assert (second.exit_time, second.pnl, second.closed) == (None, None, False)


def test_each_assignment_is_its_own_position_and_a_sell_with_nothing_held_is_left_out() -> None:
    fills = [
        fill(0, "sell", "1", "100", assignment_id=1),
        fill(1, "buy", "1", "100", assignment_id=1),
        fill(1, "buy", "5", "10", assignment_id=2, symbol="ETH/USD"),
        fill(2, "sell", "1", "120", assignment_id=1),
        fill(3, "sell", "6", "11", assignment_id=2, symbol="ETH/USD"),
    ]
    trips, _, unmatched = round_trips(fills)
    assert [(t.assignment_id, t.symbol, t.pnl) for t in trips] == [(1, "BTC/USD", 20.0), (2, "ETH/USD", 5.0)]
    assert unmatched == 2  # the first sell, and the coin sold beyond the five bought


def test_a_reset_ends_an_open_trip_without_a_pnl() -> None:
    trips, _, _ = round_trips(
        [fill(0, "buy", "1", "100"), fill(5, "buy", "1", "90"), fill(6, "sell", "1", "95")],
        resets=[int(2 * H)],
    )
    assert [(t.entry_price, t.exit_reason, t.pnl) for t in trips] == [
        (100.0, "reset", None),
        (90.0, None, 5.0),
    ]
    s = summary(trips)
    assert (s["trades"], s["open"], s["pnl"]) == (1, 0, 5.0)


def test_a_backtest_trip_open_at_the_end_is_valued_at_its_last_close() -> None:
    book = Trips()
    book.fill(0, "buy", D("2"), D("100"), D("0.2"))
    book.value_open(10, 90.0)
    (t,) = book.trips
    assert (t.exit_time, t.exit_price, t.exit_reason, t.pnl, t.closed) == (
        10,
        90.0,
        "end",
        180 - 200.2,
        False,
    )


def test_daily_profit_is_realized_per_utc_day_with_fees_and_fills() -> None:
    fills = [
        fill(23, "buy", "1", "100", "1"),
        fill(25, "sell", "1", "110", "1"),
        fill(26, "buy", "1", "100", "1"),
    ]
    _, realized, _ = round_trips(fills)
    assert daily_profit(realized, fills) == [
        {"day": "1970-01-01", "pnl": "0", "fees": "1", "fills": 1},
        {"day": "1970-01-02", "pnl": "8", "fees": "2", "fills": 2},
    ]


def test_the_equity_curve_values_what_is_held_at_the_candles_or_a_newer_fill() -> None:
    fills = [fill(1, "buy", "2", "100", "0.2"), fill(5, "sell", "2", "120")]
    closes = {"BTC/USD": Closes([0, H, 2 * H, 3 * H], [100.0, 105.0, 110.0, 90.0], H)}
    curve = equity_curve(fills, D("1000"), [0, H, 2 * H, 3 * H, 4 * H], closes)
    assert [t for t, _ in curve] == [0, H, 2 * H, 3 * H, 4 * H, 5 * H]
    cash = 1000 - 200.2
    # before the buy: cash; while held: the close (the candle of 3h closed before 4h, the buy at 1h is older)
    assert [v for _, v in curve] == pytest.approx(
        [1000, cash + 210, cash + 220, cash + 180, cash + 180, cash + 240]
    )


def test_headline_numbers_of_trips() -> None:
    trips, _, _ = round_trips(
        [
            fill(0, "buy", "1", "100", "1"),
            fill(2, "sell", "1", "110", "1"),
            fill(3, "buy", "1", "100"),
            fill(4, "sell", "1", "95"),
            fill(5, "buy", "1", "1"),
        ]
    )
    s = summary(trips)
    assert (s["trades"], s["open"], s["wins"], s["win_rate"]) == (2, 1, 1, 50.0)
    assert (s["pnl"], s["fees"], s["profit_factor"], s["avg_duration_s"]) == (
        3.0,
        2.0,
        pytest.approx(8 / 5),
        5400,
    )


def test_profit_factor_average_duration_and_buy_and_hold() -> None:
    assert profit_factor([10, -5, 5]) == 3.0 and profit_factor([]) == 0 and profit_factor([-1]) == 0
    assert profit_factor([1, 2]) == PROFIT_FACTOR_CAP
    trips, _, _ = round_trips([fill(0, "buy", "1", "1"), fill(1, "sell", "1", "1"), fill(2, "buy", "1", "1")])
    assert average_duration_s(trips) == 3600 and average_duration_s([]) == 0
    opens, closes = np.array([10.0, 10.0, 20.0]), np.array([10.0, 12.0, 25.0])
    hold = buy_and_hold(opens, closes, 1000, 0.01, 0.0, first=1)
    assert hold[0] == 1000 and hold[1:] == pytest.approx([1000 / 10.1 * 12, 1000 / 10.1 * 25])
    assert list(buy_and_hold(opens, closes, 1000, 0.01, first=3)) == [1000] * 3  # nothing to buy at


def test_a_backtests_trades_report_fees_pnl_pct_duration_and_the_new_metrics() -> None:
    n = 40
    close = np.where(np.arange(n) % 10 < 5, 100.0, 110.0)
    arrays = {
        "time": 60_000 * np.arange(1, n + 1, dtype=np.int64),
        "open": close,
        "high": close + 1,
        "low": close - 1,
        "close": close,
        "volume": np.ones(n),
    }
    code = 'function decide(c) if c.close[#c.close] < 105 then return "long" end return "short" end'
    r = engine.run(code, arrays, cash=1000, fee=0.002)
    s = r.summary()
    closed = [t for t in r.trades if t.closed]
    assert len(closed) == 4 and all(t.exit_reason == "signal" for t in closed)
    first = s["trades"][0]
    t = r.trades[0]
    assert first["fees"] == pytest.approx(t.qty * (100 + 110) * 0.002) and first["duration_s"] == 300
    assert first["pnl_pct"] == pytest.approx(t.pnl / t.cost * 100)
    assert s["fees_paid"] == pytest.approx(sum(x.fees for x in r.trades))
    assert s["avg_trade_duration_s"] == 300
    assert s["profit_factor"] == profit_factor([x.pnl for x in r.trades])
    # buying at the second candle's open (the first a decision can trade) and holding to the last close
    assert s["buy_and_hold_return_pct"] == pytest.approx((1000 / (100 * 1.002) * 110 / 1000 - 1) * 100)
    hold = r.hold_curve(10)
    assert [p[0] for p in hold] == [p[0] for p in r.curve(10)] and hold[0][1] == 1000
