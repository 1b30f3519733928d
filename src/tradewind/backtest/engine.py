"""The backtest engine: the same sandbox, window semantics and fill rule as live trading, over history.

The strategy never sees its fills, so the run has two passes: the decisions of every candle first
(the loop runs inside Lua, see ``StrategyRuntime.decide_series``), then the fill model over them,
which touches only the candles where a trade happens.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from tradewind.backtest.fills import buy_all, sell_all
from tradewind.backtest.metrics import max_drawdown_pct, sharpe, win_rate
from tradewind.eval.sandbox import Limits, StrategyError, StrategyRuntime
from tradewind.eval.ta import ArrayStore

LONG, SHORT = ord("l"), ord("s")
DEFAULT_LIMITS = Limits(time_ms=5000)


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
    """A finished (or failed) run: trades, the equity at every candle's close, and the error if any."""

    trades: list[Trade]
    equity: np.ndarray
    times: np.ndarray
    cash: float
    candles: int
    duration_s: float
    bar_minutes: float
    error: str | None = None
    error_time: int | None = None

    @property
    def final_equity(self) -> float:
        return float(self.equity[-1]) if len(self.equity) else self.cash

    def summary(self) -> dict[str, Any]:
        """The `--json` document: trades, final_equity, return_pct, max_drawdown_pct, sharpe, win_rate,
        candles, duration_s, error."""
        final = self.final_equity
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
        """The equity curve as [time ms, equity, drawdown %], thinned to about ``points`` points."""
        if not len(self.equity):
            return []
        peaks = np.maximum.accumulate(self.equity)
        dd = (peaks - self.equity) / np.where(peaks > 0, peaks, 1.0) * 100
        step = max(1, len(self.equity) // points)
        idx = list(range(0, len(self.equity), step))
        if idx[-1] != len(self.equity) - 1:
            idx.append(len(self.equity) - 1)
        return [[int(self.times[i]), round(float(self.equity[i]), 6), round(float(dd[i]), 4)] for i in idx]


def iso(ms: int) -> str:
    """Epoch milliseconds as ISO 8601 UTC (``2024-01-01T00:00:00Z``)."""
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def run(
    code: str, arrays: dict[str, np.ndarray], *, params: dict[str, Any] | None = None, cash: float = 10_000.0,
    fee: float = 0.001, slippage: float = 0.0, lookback: int = 500, name: str = "strategy",
    limits: Limits | None = None, progress: Callable[[int, int], None] | None = None,
) -> Result:  # fmt: skip
    """Run ``code`` over the candles (arrays time, open, high, low, close, volume; oldest first).

    A strategy error stops the run: the result holds the message, the candle's time, and the trades
    and equity up to that candle."""
    started = time.perf_counter()
    times = arrays["time"]
    n = len(times)
    bar_minutes = float(np.median(np.diff(times[: min(n, 1000)])) / 60_000) if n > 1 else 1.0
    try:
        rt = StrategyRuntime(
            code, name=name, params=params or {}, limits=limits or DEFAULT_LIMITS, indicators=ArrayStore()
        )
    except StrategyError as exc:
        return Result(
            [], np.empty(0), times[:0], cash, 0, time.perf_counter() - started, bar_minutes, str(exc), None
        )
    parts: list[str] = []
    error = error_time = None
    chunk = max(2000, n // 50)  # progress reports; each chunk is one call into Lua
    try:
        for start in range(0, n, chunk):
            rt.decide_series(arrays, lookback, start, min(n, start + chunk), parts)
            if progress is not None:
                progress(min(n, start + chunk), n)
    except StrategyError as exc:
        error, error_time = str(exc), exc.candle_time
    finally:
        rt.close()
    codes = np.frombuffer("".join(parts).encode(), dtype=np.uint8)
    # With an error, the run ends at the failing candle (which has no decision).
    done = n if error is None else min(n, len(codes) + 1)
    trades, equity = fill(
        codes, arrays["open"][:done], arrays["close"][:done], times[:done], cash, fee, slippage
    )
    return Result(
        trades,
        equity,
        times[:done],
        cash,
        done,
        time.perf_counter() - started,
        bar_minutes,
        error,
        error_time,
    )


def fill(codes: np.ndarray, opens: np.ndarray, closes: np.ndarray, times: np.ndarray, cash: float, fee: float,
         slippage: float = 0.0) -> tuple[list[Trade], np.ndarray]:  # fmt: skip
    """The fill model over a run's decisions (``codes[i]``: the letter decided at candle i's close):
    the trades, and the equity at every candle's close (cash + position × close)."""
    n = len(opens)
    usable = codes[: max(0, n - 1)]  # a decision on the last candle has no next open to fill at
    longs, shorts = np.flatnonzero(usable == LONG), np.flatnonzero(usable == SHORT)
    trades: list[Trade] = []
    equity = np.empty(n)
    free, seg = float(cash), 0
    while True:
        k = int(np.searchsorted(longs, seg))
        if k == len(longs):
            break
        entry = int(longs[k]) + 1  # flat, a long decision: buy at the next open
        qty, price, _ = buy_all(free, float(opens[entry]), fee, slippage)
        trade = Trade(int(times[entry]), price, qty, cost=free)
        trades.append(trade)
        equity[seg:entry] = free
        k = int(np.searchsorted(shorts, entry))  # the decision at the entry candle's close counts
        if k == len(shorts):
            equity[entry:] = qty * closes[entry:]
            return trades, equity
        exit_ = int(shorts[k]) + 1
        received, price, _ = sell_all(qty, float(opens[exit_]), fee, slippage)
        trade.exit_time, trade.exit_price, trade.pnl = int(times[exit_]), price, received - free
        equity[entry:exit_] = qty * closes[entry:exit_]
        free, seg = received, exit_
    equity[seg:] = free
    return trades, equity
