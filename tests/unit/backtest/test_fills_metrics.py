"""The engine's fill pass on hand-made decisions (the trading model's rules in full: tests/unit/trading),
and the metrics."""

from __future__ import annotations

from decimal import ROUND_DOWN, Decimal

import numpy as np
import pytest

from tradewind.backtest import engine
from tradewind.backtest.metrics import max_drawdown_pct, sharpe, win_rate


def _qty(cash: str, close: str) -> float:
    """The model's sizing: floor_1e-8(cash / (the decision candle's close × 1.0025))."""
    q = Decimal(cash) / (Decimal(close) * Decimal("1.0025"))
    return float(q.quantize(Decimal("0.00000001"), rounding=ROUND_DOWN))


def _codes(text: str) -> np.ndarray:
    return np.frombuffer(text.encode(), dtype=np.uint8)


def test_decisions_fill_at_the_next_open_and_the_last_one_does_not_fill() -> None:
    opens = np.array([10.0, 11, 12, 13, 14, 15])
    closes = np.array([11.0, 12, 13, 14, 15, 15.5])
    times = np.arange(6) * 60_000
    #                 candle: 0    1    2    3    4    5
    trades, equity = engine.fill(_codes("lnsnnl"), opens, closes, times, 1000.0, 0.0)
    assert [(t.entry_time, t.exit_time) for t in trades] == [(60_000, 180_000)]
    t = trades[0]
    qty = _qty("1000", "11")  # sized at candle 0's close, bought at candle 1's open
    assert (t.qty, t.entry_price, t.exit_price, t.exit_reason) == (qty, 11.0, 13.0, "signal")
    assert t.pnl == pytest.approx(qty * 13 - qty * 11)
    assert equity[0] == 1000.0
    assert equity[1] == pytest.approx(1000 - qty * 11 + qty * 12)  # valued at candle 1's close
    assert equity[-1] == pytest.approx(1000 + qty * 2)  # the long on the last candle never filled


def test_an_open_position_is_valued_at_the_last_close_and_long_while_long_does_nothing() -> None:
    opens = np.array([10.0, 20, 30, 40])
    closes = np.array([20.0, 30, 40, 45])
    trades, equity = engine.fill(_codes("llll"), opens, closes, np.arange(4), 100.0, 0.001)
    (t,) = trades
    qty = _qty("100", "20")
    cost = qty * 20 * 1.001
    assert (t.exit_time, t.exit_price, t.exit_reason) == (3, 45.0, "end")  # no fee at the end
    assert t.pnl == pytest.approx(qty * 45 - cost) and t.cost == pytest.approx(cost)
    assert equity[-1] == pytest.approx(100 - cost + qty * 45)


def test_short_while_flat_and_neutral_do_nothing() -> None:
    trades, equity = engine.fill(_codes("snsn"), np.ones(4), np.ones(4), np.arange(4), 100.0, 0.001)
    assert trades == [] and equity.tolist() == [100.0] * 4


def test_capital_compounds_and_the_cash_left_by_the_sizing_stays_in_the_equity() -> None:
    opens = np.array([10.0, 10, 20, 20, 10, 10])
    trades, equity = engine.fill(_codes("lsls"), opens, opens, np.arange(6), 1000.0, 0.0)
    a, b = trades
    qa = _qty("1000", "10")
    cash = 1000 - qa * 10 + qa * 20
    assert a.pnl == pytest.approx(qa * 10)
    assert b.qty == _qty(repr(cash), "20")  # the second buy is sized on what the first made
    assert equity[-1] == pytest.approx(cash - b.qty * 20 + b.qty * 10)


def test_max_drawdown_is_the_largest_fall_from_a_peak() -> None:
    assert max_drawdown_pct(np.array([100.0, 120, 90, 130, 117])) == pytest.approx(25.0)
    assert max_drawdown_pct(np.array([1.0, 2, 3])) == 0.0


def test_sharpe_is_annualised_and_zero_without_variation() -> None:
    assert sharpe(np.array([100.0, 100, 100, 100]), 1.0) == 0.0
    eq = np.array([100.0, 101, 100.5, 102, 101.5])
    r = np.diff(eq) / eq[:-1]
    assert sharpe(eq, 60.0) == pytest.approx(r.mean() / r.std(ddof=1) * np.sqrt(525_600 / 60))


def test_win_rate_counts_closed_trades_that_made_money() -> None:
    assert win_rate([1.0, -1.0, 2.0, 0.0]) == 50.0
    assert win_rate([]) == 0.0
