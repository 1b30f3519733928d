"""The objectives an optimisation adds to the backtest metrics: Sortino and profit factor."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tradewind.backtest.metrics import PROFIT_FACTOR_CAP, profit_factor, sortino


def test_sortino_divides_the_mean_return_by_the_downside_deviation() -> None:
    equity = np.array([100.0, 110.0, 99.0, 108.9])  # returns +10 %, -10 %, +10 %
    returns = np.array([0.1, -0.1, 0.1])
    downside = math.sqrt((0.1**2) / 3)
    assert sortino(equity, 1440.0) == pytest.approx(returns.mean() / downside * math.sqrt(365), rel=1e-9)


def test_sortino_is_zero_without_a_loss_or_without_data() -> None:
    assert sortino(np.array([1.0, 2.0, 3.0, 4.0]), 1.0) == 0.0
    assert sortino(np.array([1.0, 0.5]), 1.0) == 0.0


def test_profit_factor_is_gross_profit_over_gross_loss_capped() -> None:
    assert profit_factor([30.0, -10.0, 20.0, -15.0]) == pytest.approx(2.0)
    assert profit_factor([]) == 0.0
    assert profit_factor([-5.0]) == 0.0
    assert profit_factor([5.0]) == PROFIT_FACTOR_CAP
    assert profit_factor([1e9, -1.0]) == PROFIT_FACTOR_CAP
