"""Monte Carlo of a backtest's trade sequence: how much of its drawdown and final equity was the order of luck.

Each trade becomes a return on the capital it traded with: ``pnl / (cash + the pnl of the trades before it)``
(trades compound, one position at a time; a position open at the end counts at its value there). A run draws a
sequence of those returns and compounds it from the starting cash, an equity point per trade:

- **bootstrap**: as many trades as the backtest had, drawn with replacement (other mixes of the same trades);
- **shuffle**: the same trades in another order. The final equity is then that of the backtest in every run
  (a product does not depend on order); the drawdown is what changes.

The drawdown of a run is the largest fall from a running peak of its trade-by-trade equity (the start
included), in percent: it does not see the dips inside a trade, so it is at most the backtest's candle-level
figure for the same order. Percentiles are numpy's (linear interpolation).
"""

from __future__ import annotations

from typing import Any

import numpy as np

MODES = ("bootstrap", "shuffle")
PERCENTILES = (5, 50, 95)


def trade_returns(pnls: list[float], cash: float) -> np.ndarray:
    """Each trade's return on the capital before it (trades in the order they were made)."""
    capital = cash + np.concatenate(([0.0], np.cumsum(pnls)[:-1])) if pnls else np.empty(0)
    return np.asarray(pnls, dtype=float) / capital if pnls else np.empty(0)


def paths(returns: np.ndarray, cash: float, runs: int, mode: str, rng: np.random.Generator) -> np.ndarray:
    """``runs`` equity paths (runs × (trades + 1), the start first) of the resampled returns."""
    m = len(returns)
    if mode == "bootstrap":
        drawn = returns[rng.integers(0, m, size=(runs, m))]
    elif mode == "shuffle":
        drawn = rng.permuted(np.tile(returns, (runs, 1)), axis=1)
    else:
        raise ValueError(f"unknown mode {mode!r}; use {' or '.join(MODES)}")
    growth = np.cumprod(1.0 + drawn, axis=1)
    return cash * np.concatenate((np.ones((runs, 1)), growth), axis=1)


def max_drawdowns(equity: np.ndarray) -> np.ndarray:
    """Each path's largest fall from its running peak, in percent."""
    peaks = np.maximum.accumulate(equity, axis=1)
    falls: np.ndarray = ((peaks - equity) / peaks).max(axis=1)
    return falls * 100


def simulate(
    pnls: list[float],
    cash: float,
    *,
    runs: int = 1000,
    seed: int | None = None,
    modes: tuple[str, ...] = MODES,
) -> dict[str, Any]:
    """The distribution of max drawdown and final equity over ``runs`` resamplings of the trades, per mode: the
    5th, 50th and 95th percentiles, and the backtest's own trade-level figures."""
    if runs < 1:
        raise ValueError("runs must be at least 1")
    returns = trade_returns(pnls, cash)
    actual = cash * np.concatenate(([1.0], np.cumprod(1.0 + returns)))[None, :]
    out: dict[str, Any] = {
        "trades": len(pnls),
        "runs": runs,
        "seed": seed,
        "cash": cash,
        "actual": {"final_equity": float(actual[0, -1]), "max_drawdown_pct": float(max_drawdowns(actual)[0])},
    }
    rng = np.random.default_rng(seed)
    for mode in modes:
        if not len(returns):
            out[mode] = None
            continue
        eq = paths(returns, cash, runs, mode, rng)
        dd, final = max_drawdowns(eq), eq[:, -1]
        out[mode] = {
            "max_drawdown_pct": {f"p{p}": float(np.percentile(dd, p)) for p in PERCENTILES},
            "final_equity": {f"p{p}": float(np.percentile(final, p)) for p in PERCENTILES},
            "loss_probability": float(np.mean(final < cash)),
        }
    return out
