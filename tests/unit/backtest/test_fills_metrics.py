"""The fill model (float and Decimal), the engine's fill pass on hand-made decisions, and the metrics."""

from __future__ import annotations

from decimal import Decimal

import numpy as np
import pytest

from tradewind.backtest import engine
from tradewind.backtest.fills import action, buy_all, sell_all
from tradewind.backtest.metrics import max_drawdown_pct, sharpe, win_rate


def test_buy_all_spends_all_the_cash_fee_included() -> None:
    qty, price, fee = buy_all(10_000.0, 100.0, 0.001)
    assert qty == pytest.approx(10_000 / (100 * 1.001), rel=1e-15)
    assert qty * price + fee == pytest.approx(10_000.0, rel=1e-12)


def test_the_fill_functions_keep_decimals_decimal() -> None:
    qty, price, fee = buy_all(Decimal("10000"), Decimal("100"), Decimal("0.001"))
    assert isinstance(qty, Decimal) and qty == Decimal("10000") / (Decimal("100") * Decimal("1.001"))
    cash, price, paid = sell_all(qty, Decimal("110"), Decimal("0.001"), Decimal("0.01"))
    assert (
        price == Decimal("108.90") and paid == qty * price * Decimal("0.001") and cash == qty * price - paid
    )


def test_slippage_moves_the_price_against_the_trade() -> None:
    assert buy_all(1000.0, 100.0, 0.0, 0.01)[1] == pytest.approx(101.0)
    assert sell_all(1.0, 100.0, 0.0, 0.01)[1] == pytest.approx(99.0)


def test_action_is_a_target_position() -> None:
    assert action("long", holding=False) == "buy"
    assert action("long", holding=True) is None
    assert action("short", holding=True) == "sell"
    assert action("short", holding=False) is None
    assert action("neutral", holding=True) is None


def _codes(text: str) -> np.ndarray:
    return np.frombuffer(text.encode(), dtype=np.uint8)


def test_decisions_fill_at_the_next_open_and_the_last_one_does_not_fill() -> None:
    opens = np.array([10.0, 11, 12, 13, 14, 15])
    closes = opens + 0.5
    times = np.arange(6) * 60_000
    #                 candle: 0    1    2    3    4    5
    trades, equity = engine.fill(_codes("lnsnnl"), opens, closes, times, 1000.0, 0.0)
    assert [(t.entry_time, t.exit_time) for t in trades] == [(60_000, 180_000)]
    t = trades[0]
    assert (
        t.qty == pytest.approx(1000 / 11)
        and t.exit_price == 13.0
        and t.pnl == pytest.approx(1000 / 11 * 13 - 1000)
    )
    assert equity[0] == 1000.0
    assert equity[1] == pytest.approx(1000 / 11 * 11.5)  # bought at candle 1's open, valued at its close
    assert equity[-1] == pytest.approx(1000 / 11 * 13)  # the long on the last candle never filled


def test_an_open_position_is_valued_at_the_last_close_and_long_while_long_does_nothing() -> None:
    opens = np.array([10.0, 20, 30, 40])
    closes = np.array([10.0, 21, 31, 45])
    trades, equity = engine.fill(_codes("llll"), opens, closes, np.arange(4), 100.0, 0.001)
    assert len(trades) == 1 and trades[0].exit_time is None and trades[0].pnl is None
    assert equity[-1] == pytest.approx(100 / (20 * 1.001) * 45)


def test_short_while_flat_and_neutral_do_nothing() -> None:
    trades, equity = engine.fill(_codes("snsn"), np.ones(4), np.ones(4), np.arange(4), 100.0, 0.001)
    assert trades == [] and equity.tolist() == [100.0] * 4


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
