"""The backtest engine: the same sandbox, window semantics and fill rule as live trading, over history."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tradewind.backtest.fills import buy_all, sell_all
from tradewind.backtest.metrics import max_drawdown_pct, sharpe, win_rate
from tradewind.eval.sandbox import Limits, StrategyError, StrategyRuntime
from tradewind.eval.ta import ArrayStore


@dataclass
class Trade:
    entry_time: int
    entry_price: float
    qty: float
    exit_time: int | None = None
    exit_price: float | None = None
    pnl: float | None = None
    cost: float = 0.0  # cash spent, fee included

    def as_dict(self) -> dict[str, Any]:
        return {"entry_time": iso(self.entry_time), "entry_price": self.entry_price,
                "exit_time": iso(self.exit_time) if self.exit_time is not None else None,
                "exit_price": self.exit_price, "qty": self.qty, "pnl": self.pnl}  # fmt: skip


@dataclass
class Result:
    trades: list[Trade]
    equity: np.ndarray
    times: np.ndarray
    cash: float
    candles: int
    duration_s: float
    bar_minutes: float
    error: str | None = None
    error_time: int | None = None
    metrics: dict[str, float] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        final = float(self.equity[-1]) if len(self.equity) else self.cash
        closed = [t.pnl for t in self.trades if t.pnl is not None]
        return {
            "trades": [t.as_dict() for t in self.trades],
            "final_equity": final,
            "return_pct": (final / self.cash - 1) * 100 if self.cash else 0.0,
            "max_drawdown_pct": max_drawdown_pct(self.equity),
            "sharpe": sharpe(self.equity, self.bar_minutes),
            "win_rate": win_rate(closed),  # type: ignore[arg-type]
            "candles": self.candles,
            "duration_s": round(self.duration_s, 4),
            "error": self.error,
        }

    def curve(self, points: int = 1000) -> list[list[float]]:
        """The equity curve as [time ms, equity], thinned to about ``points`` points."""
        if not len(self.equity):
            return []
        step = max(1, len(self.equity) // points)
        idx = list(range(0, len(self.equity), step))
        if idx[-1] != len(self.equity) - 1:
            idx.append(len(self.equity) - 1)
        return [[int(self.times[i]), round(float(self.equity[i]), 6)] for i in idx]


def rt_partial(rt: StrategyRuntime) -> list[str]:
    """Positions decided in the chunk that failed, before the failing candle (none are kept)."""
    return []


def iso(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def run(
    code: str, arrays: dict[str, np.ndarray], *, params: dict[str, Any] | None = None, cash: float = 10_000.0,
    fee: float = 0.001, slippage: float = 0.0, lookback: int = 500, name: str = "strategy", key: str = "backtest",
    limits: Limits | None = None, progress: Callable[[int, int], None] | None = None,
) -> Result:  # fmt: skip
    """Run ``code`` over the candles (oldest first). A strategy error stops the run and is reported."""
    started = time.perf_counter()
    times = arrays["time"]
    n = len(times)
    bar_minutes = float(np.median(np.diff(times[: min(n, 1000)])) / 60_000) if n > 1 else 1.0
    equity = np.empty(n)
    trades: list[Trade] = []
    opens, closes = arrays["open"], arrays["close"]
    free, qty = cash, 0.0
    pending: str | None = None
    store = ArrayStore()
    error = error_time = None
    try:
        rt = StrategyRuntime(code, name=name, params=params or {}, limits=limits or Limits(time_ms=5000), indicators=store)
    except StrategyError as exc:
        return Result([], np.empty(0), times[:0], cash, 0, time.perf_counter() - started, bar_minutes, str(exc), None)
    # Decisions first, in chunks (the strategy never sees fills, so they do not depend on them) ...
    positions: list[str] = []
    chunk = max(1000, n // 100)
    for start in range(0, n, chunk):
        try:
            positions += rt.decide_series(arrays, lookback, start, min(n, start + chunk))
        except StrategyError as exc:
            error, error_time = str(exc), exc.candle_time
            positions += rt_partial(rt)
            break
        if progress is not None:
            progress(min(n, start + chunk), n)
    # ... then the fill model: a decision at candle i's close fills at candle i+1's open.
    done = len(positions) if error is None else max(0, (int(np.searchsorted(times, error_time)) if error_time else 0) + 1)
    done = min(done, n)
    for i in range(done):
        if pending is not None:
            if pending == "long" and qty == 0.0:
                qty, price, _ = buy_all(free, float(opens[i]), fee, slippage)
                trades.append(Trade(int(times[i]), price, qty, cost=free))
                free = 0.0
            elif pending == "short" and qty > 0.0:
                received, price, _ = sell_all(qty, float(opens[i]), fee, slippage)
                t = trades[-1]
                t.exit_time, t.exit_price, t.pnl = int(times[i]), price, received - t.cost
                free, qty = received, 0.0
            pending = None
        if i < len(positions) and positions[i] != "neutral" and i < n - 1:
            pending = positions[i]
        equity[i] = free + qty * float(closes[i])
    rt.close()
    if progress is not None:
        progress(n, n)
    return Result(trades, equity[:done], times[:done], cash, done, time.perf_counter() - started, bar_minutes, error, error_time)
