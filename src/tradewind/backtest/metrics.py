"""Backtest metrics from an equity curve and a list of trades (also the headline numbers of a live
account's round trips, ``tradewind.trading.trips``)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Protocol

import numpy as np

MINUTES_PER_YEAR = 525_600


def max_drawdown_pct(equity: np.ndarray) -> float:
    """The largest fall from a running peak, in percent of that peak (a positive number)."""
    if len(equity) == 0:
        return 0.0
    peaks = np.maximum.accumulate(equity)
    drawdowns = (peaks - equity) / np.where(peaks > 0, peaks, 1.0)
    return float(drawdowns.max() * 100)


def sharpe(equity: np.ndarray, bar_minutes: float) -> float:
    """Annualised Sharpe ratio of per-bar returns (risk-free rate 0); 0 when returns do not vary."""
    if len(equity) < 3:
        return 0.0
    returns = np.diff(equity) / equity[:-1]
    sd = returns.std(ddof=1)
    if not math.isfinite(sd) or sd == 0:
        return 0.0
    return float(returns.mean() / sd * math.sqrt(MINUTES_PER_YEAR / bar_minutes))


def win_rate(pnls: list[float]) -> float:
    """Share of closed trades that made money, in percent (0 with no closed trade)."""
    if not pnls:
        return 0.0
    return 100.0 * sum(1 for p in pnls if p > 0) / len(pnls)


def sortino(equity: np.ndarray, bar_minutes: float) -> float:
    """Annualised Sortino ratio: the mean per-bar return over the downside deviation (the root mean square
    of the returns below 0, over all bars; target 0); 0 when no return is negative or there are too few."""
    if len(equity) < 3:
        return 0.0
    returns = np.diff(equity) / equity[:-1]
    downside = math.sqrt(float(np.mean(np.minimum(returns, 0.0) ** 2)))
    if not math.isfinite(downside) or downside == 0:
        return 0.0
    return float(returns.mean() / downside * math.sqrt(MINUTES_PER_YEAR / bar_minutes))


PROFIT_FACTOR_CAP = 100.0


def profit_factor(pnls: list[float]) -> float:
    """Gross profit over gross loss of the closed trades; 0 with no closed trade or no profit, and
    PROFIT_FACTOR_CAP when there is profit and no loss (or the ratio is larger)."""
    gains = sum(p for p in pnls if p > 0)
    losses = -sum(p for p in pnls if p < 0)
    if gains <= 0:
        return 0.0
    if losses <= 0:
        return PROFIT_FACTOR_CAP
    return min(PROFIT_FACTOR_CAP, gains / losses)


class _Timed(Protocol):
    entry_time: int
    exit_time: int | None


def average_duration_s(trades: Sequence[_Timed]) -> float:
    """The mean time from entry to exit of the trades that have an exit, in seconds (0 with none)."""
    spans = [t.exit_time - t.entry_time for t in trades if t.exit_time is not None]
    return sum(spans) / len(spans) / 1000 if spans else 0.0


def buy_and_hold(
    opens: np.ndarray, closes: np.ndarray, cash: float, fee: float, slippage: float = 0.0, first: int = 0
) -> np.ndarray:
    """The equity at each close of buying with all ``cash`` at candle ``first``'s open (slippage and the
    taker fee paid as a market entry pays them) and holding to the end; ``cash`` before ``first``."""
    n = len(closes)
    out = np.full(n, float(cash))
    if first >= n or not opens[first] > 0:
        return out
    qty = cash / (opens[first] * (1 + slippage) * (1 + fee))
    out[first:] = qty * closes[first:]
    return out
