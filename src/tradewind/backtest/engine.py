"""The backtest engine: the same sandbox, window semantics and fill rule as live trading, over history.

The strategy never sees its fills, so the run has two passes: the decisions of every candle (the loop
runs inside Lua, see ``StrategyRuntime.decide_series``), and the fill model over them, which touches
only the candles where a trade happens. On a long history the two run side by side (``decided.Stream``:
the strategy in a thread of its own, Lua running without the GIL), the fill taking each chunk of
decisions as it needs it.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import partial
from typing import Any

import numpy as np

from tradewind.backtest.decided import LONG, SHORT, Decided, Extras, Failed, Forked, Stream
from tradewind.backtest.metrics import (
    average_duration_s,
    buy_and_hold,
    max_drawdown_pct,
    profit_factor,
    sharpe,
    sortino,
    win_rate,
)
from tradewind.sandbox.runtime import Limits, Plots, StrategyError, StrategyRuntime, Unverified
from tradewind.sandbox.ta import ArrayStore
from tradewind.trading import model
from tradewind.trading.trips import RoundTrip, Trips

log = logging.getLogger(__name__)
DEFAULT_LIMITS = Limits(time_ms=5000)
STREAM_FROM = 20_000  # candles from which the strategy decides in a thread alongside the fill
PLOT_CANDLES = 5000  # the last candles of a run whose plot series a report keeps (the most its chart shows)

# A trade of the run: a round trip (``tradewind.trading.trips``: the same rule as a live account's trades);
# exit_reason signal | stop_loss | take_profit | trailing_stop, or end (still open at the last candle).
Trade = RoundTrip


@dataclass
class Result:
    """A finished (or failed) run: trades, the equity at every candle's close, and the error if any; the
    strategy's plot series (of its last candles), and buying and holding beside it."""

    trades: list[Trade]
    equity: np.ndarray
    times: np.ndarray
    cash: float
    candles: int
    duration_s: float
    bar_minutes: float
    error: str | None = None
    error_time: int | None = None
    plots: Plots | None = None
    hold: np.ndarray | None = None  # the equity of buying at the first traded candle and holding

    @property
    def final_equity(self) -> float:
        return float(self.equity[-1]) if len(self.equity) else self.cash

    def summary(self) -> dict[str, Any]:
        """The `--json` document: trades, final_equity, return_pct, max_drawdown_pct, sharpe, win_rate,
        profit_factor, avg_trade_duration_s, fees_paid, buy_and_hold_return_pct, candles, duration_s, error."""
        return {"trades": self._trade_rows(), **self._figures()}

    def _trade_rows(self) -> list[dict[str, Any]]:
        """The trades as the summary lists them."""
        # the times of every trade formatted at once (a year of minutes may hold tens of thousands)
        entries = isos([t.entry_time for t in self.trades])
        exits = isos([t.exit_time for t in self.trades if t.exit_time is not None])[::-1]
        return [
            {
                "entry_time": entered,
                "entry_price": t.entry_price,
                "entry_type": t.entry_type,
                "exit_time": exits.pop() if t.exit_time is not None else None,
                "exit_price": t.exit_price,
                "exit_reason": t.exit_reason,
                "qty": t.qty,
                "pnl": t.pnl,
                "pnl_pct": t.pnl_pct,
                "fees": t.fees,
                "duration_s": None if t.exit_time is None else (t.exit_time - t.entry_time) // 1000,
            }
            for t, entered in zip(self.trades, entries, strict=True)
        ]

    def _figures(self) -> dict[str, Any]:
        """The summary but its trades."""
        final = self.final_equity
        closed = [t.pnl for t in self.trades if t.pnl is not None]
        hold = float(self.hold[-1]) if self.hold is not None and len(self.hold) else None
        return {
            "final_equity": final,
            "return_pct": (final / self.cash - 1) * 100 if self.cash else 0.0,
            "max_drawdown_pct": max_drawdown_pct(self.equity),
            "sharpe": sharpe(self.equity, self.bar_minutes),
            "win_rate": win_rate(closed),
            "profit_factor": profit_factor(closed),
            # trades closed before the end (one still open at the last candle has not ended)
            "avg_trade_duration_s": average_duration_s([t for t in self.trades if t.closed]),
            "fees_paid": sum(t.fees for t in self.trades),
            "buy_and_hold_return_pct": (hold / self.cash - 1) * 100
            if hold is not None and self.cash
            else None,
            "candles": self.candles,
            "duration_s": round(self.duration_s, 4),
            "error": self.error,
        }

    def metrics(self, trades: bool = False) -> dict[str, Any]:
        """The summary as workers report it, with the Sortino ratio; without ``trades``, their count
        (``trade_count``) instead of the list."""
        # (without them, the trades are counted, not formatted: an optimisation's stages of a year of minutes
        # hold thousands)
        summary = self.summary() if trades else self._figures()
        summary["sortino"] = sortino(self.equity, self.bar_minutes)
        if not trades:
            summary["trade_count"] = len(self.trades)
        return summary

    def curve(self, points: int = 1000) -> list[list[float]]:
        """The equity curve as [time ms, equity, drawdown %], thinned to about ``points`` points."""
        return curve(self.equity, self.times, points)

    def hold_curve(self, points: int = 1000) -> list[list[float]]:
        """Buying and holding, as [time ms, equity] at the times of ``curve(points)``."""
        if self.hold is None or not len(self.hold):
            return []
        return [
            [t, round(float(self.hold[i]), 6)]
            for t, i in zip(*_thinned(self.times, len(self.hold), points), strict=True)
        ]

    def plot_series(self) -> dict[str, list[list[float]]]:
        """The strategy's plot series over the candles it kept them for (``PLOT_CANDLES``, the last ones), as
        [time ms, value] per series name; candles without a value are left out."""
        p = self.plots
        if p is None:
            return {}
        times = self.times[p.start :]  # the run's candles (cut at a failing one)
        out: dict[str, list[list[float]]] = {}
        for name, values in p.values.items():
            v = values[: len(times)]
            keep = np.flatnonzero(~np.isnan(v))
            if len(keep):
                out[name] = [[int(times[i]), float(v[i])] for i in keep.tolist()]
        return out


def curve(equity: np.ndarray, times: np.ndarray, points: int = 1000) -> list[list[float]]:
    """An equity series as [time ms, equity, drawdown %], thinned to about ``points`` points (the last
    one always kept)."""
    if not len(equity):
        return []
    peaks = np.maximum.accumulate(equity)
    dd = (peaks - equity) / np.where(peaks > 0, peaks, 1.0) * 100
    return [
        [t, round(float(equity[i]), 6), round(float(dd[i]), 4)]
        for t, i in zip(*_thinned(times, len(equity), points), strict=True)
    ]


def _thinned(times: np.ndarray, n: int, points: int) -> tuple[list[int], list[int]]:
    """The times (ms) and indices of about ``points`` of ``n`` values, evenly spaced, the last one kept."""
    step = max(1, n // points)
    idx = list(range(0, n, step))
    if idx[-1] != n - 1:
        idx.append(n - 1)
    return [int(times[i]) for i in idx], idx


def iso(ms: int) -> str:
    """Epoch milliseconds as ISO 8601 UTC (``2024-01-01T00:00:00Z``)."""
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def isos(ms: list[int]) -> list[str]:
    """``iso`` of many times at once (numpy formats them: a tenth of the time)."""
    if not ms:
        return []
    secs = np.asarray(ms, dtype="datetime64[ms]").astype("datetime64[s]")
    return [f"{t}Z" for t in np.datetime_as_string(secs).tolist()]


def run(
    code: str,
    arrays: dict[str, np.ndarray],
    *,
    params: dict[str, Any] | None = None,
    cash: float = 10_000.0,
    fee: float = 0.001,
    slippage: float = 0.0,
    lookback: int = 500,
    name: str = "strategy",
    maker_fee: float | None = None,
    trade_from: int | None = None,
    limits: Limits | None = None,
    progress: Callable[[int, int], None] | None = None,
    plot_candles: int = 0,
    unhooked_first: bool = False,
) -> Result:
    """Run ``code`` over the candles (arrays time, open, high, low, close, volume; oldest first).

    A strategy error stops the run: the result holds the message, the candle's time, and the trades
    and equity up to that candle. With ``plot_candles``, the strategy's plot series of the last that many
    candles are kept (``Result.plot_series``; sweeps and optimisations keep none).

    ``limits.hooked`` False: the strategy runs without Lua's count hook, and the run raises ``Unverified``
    where it could not be proved to be the hooked run (a long run decides in a forked child, ``Forked``, which
    is killed when stuck; a short one in this thread, stopped by nothing: the caller's watchdog must).
    ``unhooked_first``: a long run (``STREAM_FROM`` candles) is tried that way first, and hooked when it
    raises ``Unverified``: the hooked run's result in every case, at about two thirds of its time when the
    proof holds. POSIX only (fork): elsewhere it runs hooked."""
    go = partial(
        _run,
        code,
        arrays,
        params=params,
        cash=cash,
        fee=fee,
        slippage=slippage,
        lookback=lookback,
        name=name,
        maker_fee=maker_fee,
        trade_from=trade_from,
        progress=progress,
        plot_candles=plot_candles,
    )
    limits = limits or DEFAULT_LIMITS
    if unhooked_first and limits.hooked and len(arrays["time"]) >= STREAM_FROM and hasattr(os, "fork"):
        try:
            return go(limits=replace(limits, hooked=False))
        except Unverified as exc:
            log.debug("backtest: %s; running it hooked", exc)
    return go(limits=limits)


def _run(
    code: str,
    arrays: dict[str, np.ndarray],
    *,
    params: dict[str, Any] | None,
    cash: float,
    fee: float,
    slippage: float,
    lookback: int,
    name: str,
    maker_fee: float | None,
    trade_from: int | None,
    limits: Limits,
    progress: Callable[[int, int], None] | None,
    plot_candles: int,
) -> Result:
    started = time.perf_counter()
    times = arrays["time"]
    n = len(times)
    bar_minutes = _bar_minutes(times)
    try:
        rt = StrategyRuntime(code, name=name, params=params or {}, limits=limits, indicators=ArrayStore())
    except StrategyError as exc:
        return _not_loaded(exc, times, cash, started, bar_minutes)
    # decisions before trade_from (epoch ms) are not traded: they only warm the strategy up
    first = 0 if trade_from is None else int(np.searchsorted(times, trade_from))
    error = error_time = None
    decided = Decided(n, first)
    plots = Plots(n, max(first, n - plot_candles)) if plot_candles > 0 else None
    tf = int(bar_minutes * 60_000)
    try:
        if n >= STREAM_FROM:
            try:
                decider = Stream if limits.hooked else Forked
                with decider(rt, arrays, lookback, progress, plots) as stream:
                    decided.source = stream.take
                    trades, equity = _fill(decided, arrays, n, cash, fee, slippage, maker_fee, tf)
                    while decided.more():  # (the fill may end before the last decision: it cannot act)
                        pass
            except Failed as failed:
                error, error_time = str(failed.error), failed.error.candle_time
                decided.add(failed.letters, failed.extras)
        else:
            parts: list[str] = []
            extras: Extras = {}
            error, error_time = _decide(rt, arrays, lookback, 0, n, parts, extras, plots, progress)
            decided.add(np.frombuffer("".join(parts).encode(), dtype=np.uint8), extras)
    finally:
        rt.close()
    # With an error, the run ends at the failing candle (which has no decision), and is filled again.
    done = n if error is None else min(n, decided.known + 1)
    if error is not None or n < STREAM_FROM:
        return _settle(
            decided,
            arrays,
            done,
            first,
            bar_minutes,
            cash,
            fee,
            slippage,
            maker_fee,
            started,
            error,
            error_time,
            plots,
        )
    return _result(
        trades,
        equity,
        arrays,
        done,
        first,
        bar_minutes,
        cash,
        fee,
        slippage,
        started,
        error,
        error_time,
        plots,
    )


def _not_loaded(
    exc: StrategyError, times: np.ndarray, cash: float, started: float, bar_minutes: float
) -> Result:
    """The run of a strategy that did not load: no candle, its error."""
    return Result(
        [], np.empty(0), times[:0], cash, 0, time.perf_counter() - started, bar_minutes, str(exc), None
    )


def _decide(
    rt: StrategyRuntime,
    arrays: dict[str, np.ndarray],
    lookback: int,
    start: int,
    stop: int,
    parts: list[str],
    extras: Extras,
    plots: Plots | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[str | None, int | None]:
    """The decisions of candles ``start`` to ``stop`` - 1 into ``parts`` and ``extras``, in chunks (each one
    call into Lua, then a progress report); a strategy error ends them: its message and candle time."""
    chunk = max(2000, stop // 50)
    try:
        for first in range(start, stop, chunk):
            rt.decide_series(arrays, lookback, first, min(stop, first + chunk), parts, extras, plots)
            if progress is not None:
                progress(min(stop, first + chunk), stop)
    except StrategyError as exc:
        return str(exc), exc.candle_time
    return None, None


def _settle(
    decided: Decided,
    arrays: dict[str, np.ndarray],
    done: int,
    first: int,
    bar_minutes: float,
    cash: float,
    fee: float,
    slippage: float,
    maker_fee: float | None,
    started: float,
    error: str | None = None,
    error_time: int | None = None,
    plots: Plots | None = None,
) -> Result:
    """The run of the first ``done`` candles filled over the decisions known (those of a longer run cut);
    ``bar_minutes``: the run's, from its own candles."""
    if done < decided.n:
        cut = Decided(done, first)
        cut.add(decided.codes[: min(done, decided.known)], decided.extras)
        decided = cut
    tf = int(bar_minutes * 60_000)
    trades, equity = _fill(
        decided, {k: v[:done] for k, v in arrays.items()}, done, cash, fee, slippage, maker_fee, tf
    )
    return _result(
        trades,
        equity,
        arrays,
        done,
        first,
        bar_minutes,
        cash,
        fee,
        slippage,
        started,
        error,
        error_time,
        plots,
    )


def _result(
    trades: list[Trade],
    equity: np.ndarray,
    arrays: dict[str, np.ndarray],
    done: int,
    first: int,
    bar_minutes: float,
    cash: float,
    fee: float,
    slippage: float,
    started: float,
    error: str | None,
    error_time: int | None,
    plots: Plots | None,
) -> Result:
    # buying at the first candle a decision can trade on (decided at its close, filled at the next open)
    hold = buy_and_hold(arrays["open"][:done], arrays["close"][:done], cash, fee, slippage, first + 1)
    return Result(
        trades,
        equity,
        arrays["time"][:done],
        cash,
        done,
        time.perf_counter() - started,
        bar_minutes,
        error,
        error_time,
        plots,
        hold,
    )


def _bar_minutes(times: np.ndarray) -> float:
    n = len(times)
    return float(np.median(np.diff(times[: min(n, 1000)])) / 60_000) if n > 1 else 1.0


def run_staged(
    code: str,
    arrays: dict[str, np.ndarray],
    stages: list[int],
    go_on: Callable[[int, Result], bool],
    *,
    params: dict[str, Any] | None = None,
    cash: float = 10_000.0,
    fee: float = 0.001,
    slippage: float = 0.0,
    lookback: int = 500,
    name: str = "strategy",
    maker_fee: float | None = None,
    limits: Limits | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> list[Result]:
    """The runs of the first ``stages[0]``, ``stages[1]``, ... candles (ascending), each the same as
    ``run`` over that prefix, for the price of one run: one strategy decides once, candle after candle, and
    one fill pass goes on from each stage's end to the next's (``Filling``). After each stage
    ``go_on(upto, result)`` says whether to go on (an optimisation trial's pruning); a strategy error ends
    the stages after its stage (told to ``go_on`` too).

    A prefix's run is the longer run's up to there: a decision reads only its window and the candles before
    it (indicators over the whole history are causal: their value at a candle is computed from the candles
    up to it alone), and the fill of a prefix reads no candle past its end and closes nothing there (an open
    trip is valued at its last close, as ``run``'s end does, and goes on open). ``progress(done, upto)`` is
    told after each chunk of decisions (see ``_decide``)."""
    started = time.perf_counter()
    times = arrays["time"]
    try:
        rt = StrategyRuntime(
            code, name=name, params=params or {}, limits=limits or DEFAULT_LIMITS, indicators=ArrayStore()
        )
    except StrategyError as exc:
        failed = _not_loaded(exc, times, cash, started, _bar_minutes(times))
        go_on(0, failed)
        return [failed]
    results: list[Result] = []
    decided = Decided(min(max(stages, default=0), len(times)))
    filling: Filling | None = None
    try:
        for upto in stages:
            upto = min(upto, len(times))
            parts: list[str] = []
            extras: Extras = {}
            error, error_time = _decide(
                rt, arrays, lookback, decided.known, upto, parts, extras, None, progress
            )
            decided.add(np.frombuffer("".join(parts).encode(), dtype=np.uint8), extras)
            done = upto if error is None else min(upto, decided.known + 1)
            # the bar of a run of this prefix: from its own candles, as ``run`` would measure it
            bar_minutes = _bar_minutes(times[:upto])
            tf = int(bar_minutes * 60_000)
            if filling is None or filling.tf_ms != tf or done < filling.n:
                # (a prefix too short to measure the bar as the longer ones do: the fill starts again)
                filling = Filling(decided, arrays, cash, fee, slippage, maker_fee, tf)
            trades, equity = filling.to(done)
            result = _result(
                trades,
                equity,
                arrays,
                done,
                0,
                bar_minutes,
                cash,
                fee,
                slippage,
                started,
                error,
                error_time,
                None,
            )
            results.append(result)
            if not go_on(upto, result) or error is not None:  # (told of a failed stage too)
                break
    finally:
        rt.close()
    return results


_NUDGE = 1e-9  # the float pre-filter looks a hair wider than the exact rule, which then decides


def decisions(code: int, extra: tuple[Any, ...] | None) -> model.Decision:
    """A decision of the letters and extras ``decide_series`` gives, as the trading model takes it."""
    position = "long" if code == LONG else "short" if code == SHORT else "neutral"
    return model.decision(position, *extra) if extra is not None else model.decision(position)


def fill(
    codes: np.ndarray,
    opens: np.ndarray,
    closes: np.ndarray,
    times: np.ndarray,
    cash: float,
    fee: float,
    slippage: float = 0.0,
    *,
    extras: Extras | None = None,
    highs: np.ndarray | None = None,
    lows: np.ndarray | None = None,
    maker_fee: float | None = None,
    tf_ms: int | None = None,
) -> tuple[list[Trade], np.ndarray]:
    """The trading model (``tradewind.trading.model``) over a run's decisions (``codes[i]``: the letter
    decided at candle i's close; ``extras[i]``: its size, exits and limit when it returned a table): the
    trades, and the equity at every candle's close (cash + position × close).

    The loop visits only the candles where something can happen: a decision that acts, and, while a
    position is protected or a limit entry rests, the first candle that can reach its prices (found with
    numpy, then judged by the model's exact rule)."""
    n = len(opens)
    if tf_ms is None:
        tf_ms = int(np.median(np.diff(times[: min(n, 1000)]))) if n > 1 else 60_000
    decided = Decided(n)
    decided.add(np.asarray(codes, dtype=np.uint8), extras or {})
    arrays = {
        "time": times,
        "open": opens,
        "close": closes,
        "high": opens if highs is None else highs,
        "low": opens if lows is None else lows,
    }
    return _fill(decided, arrays, n, cash, fee, slippage, maker_fee, tf_ms)


def _fill(
    src: Decided,
    arrays: dict[str, np.ndarray],
    n: int,
    cash: float,
    fee: float,
    slippage: float,
    maker_fee: float | None,
    tf_ms: int,
) -> tuple[list[Trade], np.ndarray]:
    """``fill`` over decisions that may still be arriving (``Decided.more``)."""
    return Filling(src, arrays, cash, fee, slippage, maker_fee, tf_ms).to(n)


class Filling:
    """The fill pass of one run, carried from prefix to prefix: ``to(n)`` gives the trades and equity of the
    run of the first ``n`` candles, and a later ``to(m)`` (m >= n) goes on from where it stopped, giving those
    of the first ``m`` — the same as a pass from candle 0 (``engine.run_staged``: a trial's stages).

    What it carries (cash, position, guard, exits, resting order, round trips, the equity noted so far, the
    candle reached) is what the pass holds at candle n - 1 of any longer run: the pass never looks past the
    prefix's last candle (a decision there cannot act; an order resting or a guard set at the cut waits for
    candles it does not see yet), and at a prefix's end nothing is closed: the open trip is valued at the
    last close (exit reason "end") in the copy the result keeps, and goes on open. ``tf_ms``, the length of
    a candle, must be the one every prefix measures (a resting order's expiry is computed with it)."""

    def __init__(
        self,
        src: Decided,
        arrays: dict[str, np.ndarray],
        cash: float,
        fee: float,
        slippage: float,
        maker_fee: float | None,
        tf_ms: int,
    ) -> None:
        self.src, self.arrays, self.tf_ms = src, arrays, tf_ms
        self.costs = model.Costs(
            model.dec(fee), model.dec(fee if maker_fee is None else maker_fee), model.dec(slippage) * 10_000
        )
        self.trips = Trips()
        self.segments: list[tuple[int, float, float]] = []  # (first candle, cash, position) from there on
        self.free = model.dec(cash)
        self.qty = model.ZERO
        self.guard: model.Guard | None = None
        self.exits = model.NO_EXITS
        self.resting: model.Resting | None = None
        self.entry_price = model.ZERO
        self.entry_at = 0  # the entry candle of the position held
        self.i = 0  # the candle whose close decides next
        self.done = 0  # equity is written for candles < done
        self.n = 0  # the candles filled so far

    def to(self, n: int) -> tuple[list[Trade], np.ndarray]:
        """The trades and the equity at every candle's close of the run of the first ``n`` candles (at least
        as many as the last call's)."""
        if n < self.n:
            raise ValueError(f"the fill is at candle {self.n}: it cannot go back to {n}")
        src, tf_ms, costs, trips, segments = self.src, self.tf_ms, self.costs, self.trips, self.segments
        times, opens, highs, lows, closes = (self.arrays[k] for k in ("time", "open", "high", "low", "close"))
        longs, shorts, marks, next_of = src.longs, src.shorts, src.marks, src.next_of
        codes, extras, has_extra = src.codes, src.extras, src.has_extra
        free, qty, guard, exits, resting = self.free, self.qty, self.guard, self.exits, self.resting
        entry_price, entry_at, i, done = self.entry_price, self.entry_at, self.i, self.done

        def next_buy(i: int) -> int:
            """The first long decision from candle i on that may buy something with the cash ``free``: a
            plain market entry buys ``floor_1e-8(free / (close × 1.0025))``, nothing when that is under 1e-8
            (an account that lost nearly everything). The float pre-filter skips only the closes certainly
            too high for that, a hair on the safe side (a long with extras always stops it); the model judges
            the candle it stops at."""
            k = next_of(longs, i)
            if k >= n:
                return n
            most = float(free) / (float(model.BUY_HEADROOM) * float(model.QTY) * (1 - _NUDGE))
            if closes[k] <= most or has_extra[k]:
                return k
            j, step = k + 1, 256
            while True:
                stop = min(src.known, n - 1, j + step)
                if j < stop:
                    hit = np.flatnonzero(
                        (codes[j:stop] == LONG) & ((closes[j:stop] <= most) | has_extra[j:stop])
                    )
                    if len(hit):
                        return j + int(hit[0])
                    j, step = stop, step * 4
                elif j >= n - 1 or not src.more():
                    return n

        def bar(j: int) -> model.Bar:
            return model.Bar.of(int(times[j]), opens[j], highs[j], lows[j], closes[j])

        def book(f: model.Fill, at: int) -> None:
            nonlocal free, qty, entry_price, entry_at
            free += f.cash
            if f.side == "buy":
                qty += f.amount
                entry_price, entry_at = f.price, at
            else:
                qty -= f.amount
            trips.fill(f.time, f.side, f.amount, f.price, f.fee, order_type=f.order_type, reason=f.reason)

        def value_through(j: int) -> None:
            """Equity for candles done..j (inclusive) at the current cash and position: noted as a segment,
            the curve is computed at the end."""
            nonlocal done
            if j >= done:
                segments.append((done, float(free), float(qty)))
                done = j + 1

        def raise_high(a: int, b: int) -> None:
            """Candles a..b closed with the position open and nothing triggered: the trailing high rises."""
            nonlocal guard
            if guard is not None and b >= a:
                guard = guard.raised(model.dec(float(np.max(highs[a : b + 1]))))

        def match(j: int) -> None:
            nonlocal guard, resting, exits
            r = model.on_bar(bar(j), qty, guard, resting, costs, tf_ms)
            for f in r.fills:
                book(f, j)
            if resting is not None and r.resting is None and r.fills and r.fills[0].side == "buy":  # entered
                exits = resting.exits
            guard, resting = r.guard, r.resting
            if qty <= 0:
                guard, exits = None, model.NO_EXITS

        # Invariant: candle i is matched; the decision at its close is the next thing to consider. Nothing
        # past candle n - 1 is read: a decision there cannot act, and a touch is looked for up to it only.
        while i < n - 1:
            holding = qty > 0
            if guard is None and resting is None:
                # nothing rests: jump to the next decision that can act (an entry, or an exit or new exits)
                if holding:
                    nxt = next_of(shorts, i)
                    nxt = next_of(marks, i, nxt)  # (the first of the two: a mark only matters before nxt)
                else:
                    nxt = next_buy(i)
                if nxt >= n - 1:
                    break  # (i stays: the candles up to n - 1 change nothing, a longer run jumps from here)
                i = nxt
            else:
                # decisions before k do nothing; the candles up to k may fill or trigger something
                k = next_of(shorts, i, n - 1)
                k = next_of(marks, i, k)
                j = (
                    _first_touch(i + 1, k + 1, guard, resting, highs, lows, closes, times, tf_ms)
                    if k > i
                    else None
                )
                if j is not None:
                    raise_high(i + 1, j - 1)
                    value_through(j - 1)
                    match(j)
                    value_through(j)
                    i = j
                    continue
                raise_high(i + 1, k)
                value_through(k)
                i = k
                if i >= n - 1:
                    break
            # The decision at candle i's close acts on candle i + 1.
            d = decisions(int(codes[i]), extras.get(i))
            nxt = i + 1
            value_through(i)
            for it in model.intents(model.Slot(qty, resting is not None, exits), d):
                if it.kind == "cancel_entry":
                    resting = None
                elif it.kind == "exit":
                    book(
                        model.fill(
                            "sell",
                            qty,
                            model.dec(opens[nxt]),
                            "market",
                            costs,
                            reason="signal",
                            time=int(times[nxt]),
                        ),
                        nxt,
                    )
                    guard, exits = None, model.NO_EXITS
                elif it.kind == "protect":
                    exits = it.exits
                    if resting is not None:
                        resting = model.Resting(resting.amount, resting.limit, resting.expires, exits)
                    elif qty > 0:
                        # the highest high since entry: the guard's, or (no guard kept it) the candles' since
                        high = (
                            guard.high
                            if guard is not None
                            else model.dec(float(np.max(highs[entry_at : i + 1])))
                        )
                        guard = model.Guard.at_entry(entry_price, exits, high)
                elif it.limit is not None:  # enter with a limit order
                    amount = model.entry_quantity(free, it.size, it.limit)
                    if amount > 0 and free >= amount * it.limit * (1 + costs.maker_fee):
                        expires = model.expiry(int(times[i]), tf_ms, it.expire)
                        resting = model.Resting(amount, it.limit, expires, it.exits)
                else:  # enter at the market
                    amount = model.entry_quantity(free, it.size, model.dec(closes[i]))
                    f = model.fill(
                        "buy", amount, model.dec(opens[nxt]), "market", costs, time=int(times[nxt])
                    )
                    if amount > 0 and model.affordable(free, f):
                        book(f, nxt)
                        exits = it.exits
                        guard = model.Guard.at_entry(f.price, exits) if exits else None
            if guard is not None or resting is not None:
                match(nxt)  # the candle the decision acted on (an entry's own candle counts)
            value_through(nxt)
            i = nxt
        value_through(n - 1)
        self.free, self.qty, self.guard, self.exits, self.resting = free, qty, guard, exits, resting
        self.entry_price, self.entry_at, self.i, self.done, self.n = entry_price, entry_at, i, done, n
        return self._trades(n), self._equity(n)

    def _equity(self, n: int) -> np.ndarray:
        """The equity at the close of candles 0..n-1, from the segments noted."""
        segments = self.segments
        if not segments or not n:
            return np.empty(0)
        starts = np.array([seg[0] for seg in segments] + [n])
        lengths = np.diff(starts)
        cash_at = np.repeat(np.array([seg[1] for seg in segments]), lengths)
        held_at = np.repeat(np.array([seg[2] for seg in segments]), lengths)
        return cash_at + held_at * self.arrays["close"][:n]

    def _trades(self, n: int) -> list[Trade]:
        """The round trips so far, the open one valued at candle n - 1's close (a copy: it goes on open; its
        exit fields are all set again when it closes or at the next prefix's end)."""
        trips = self.trips
        if not n:
            return list(trips.trips)
        trips.value_open(int(self.arrays["time"][n - 1]), float(self.arrays["close"][n - 1]))
        out = list(trips.trips)
        if trips.open is not None:
            out[-1] = replace(out[-1])
        return out


def _first_touch(
    start: int,
    end: int,
    guard: model.Guard | None,
    resting: model.Resting | None,
    highs: np.ndarray,
    lows: np.ndarray,
    closes: np.ndarray,
    times: np.ndarray,
    tf_ms: int,
) -> int | None:
    """The first candle in [start, end) where a resting limit entry can fill or expire, or the guard's
    stop, trailing level or target can be reached; None if none. A pre-filter in floats, a hair wide:
    the model's exact rule judges the candle it finds."""
    if start >= end:
        return None
    lo, hi = lows[start:end], highs[start:end]
    hits = np.zeros(end - start, dtype=bool)
    if resting is not None:
        hits |= lo <= float(resting.limit) * (1 + _NUDGE)
        hits |= times[start:end] + tf_ms >= resting.expires
    if guard is not None:
        if guard.stop is not None:
            hits |= lo <= float(guard.stop) * (1 + _NUDGE)
        if guard.target is not None:
            hits |= hi >= float(guard.target) * (1 - _NUDGE)
        if guard.trail is not None:
            # the trailing level on each candle: from the highest high of the candles closed before it
            prior = np.maximum.accumulate(np.concatenate(([float(guard.high)], hi[:-1])))
            hits |= lo <= prior * (1 - float(guard.trail)) * (1 + _NUDGE)
    found = np.flatnonzero(hits)
    return start + int(found[0]) if len(found) else None
