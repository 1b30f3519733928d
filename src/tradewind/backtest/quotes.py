"""Backtests of quoting strategies (``on_tick``): the quotes a strategy keeps, filled over history.

Two modes, one account:

- **candles** (an approximation: candles carry no book): ``on_tick`` runs at each candle's close on a
  book made from the close (``bid = close × (1 − s/2)``, ``ask = close × (1 + s/2)``, ``s`` the
  assumed spread); the quotes it leaves rest during the next candle and fill when the candle's range
  goes through them. Both sides can fill in one candle.
- **ticks**: ``on_tick`` runs on the stored ticks (the last of each second), at most once per
  ``min_interval_ms`` and only when the bid or the ask moved, as core evaluates live; a resting quote
  fills when a later tick's last trade goes through it.

Every rule of a quote's life is the trading model's (``model.quote_takes``, ``model.clip_quotes``,
``model.quote_crossed``, ``model.quote_fill``, ``model.quote_cash``), the ones core and the paper
exchange call live; this module only decides *when* to ask them. The account is booked at average
cost, as core books an assignment (its entry cost, fees included, and the P&L a sale realizes).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, cast

import numpy as np

from tradewind.backtest.engine import DEFAULT_LIMITS, curve, iso
from tradewind.backtest.metrics import max_drawdown_pct
from tradewind.bus import messages as m
from tradewind.sandbox.runtime import Decision, Limits, StrategyError, StrategyRuntime
from tradewind.sandbox.ta import ArrayStore
from tradewind.sandbox.window import CandleWindow
from tradewind.trading import model

CANDLES, TICKS = "candles", "ticks"
LABELS = {
    CANDLES: "candles (approximation: a quote fills when a candle's range crosses it)",
    TICKS: "ticks",
}
DEFAULT_SPREAD_BPS = 2.0
DEFAULT_MIN_INTERVAL_MS = 1000
TICK_COLUMNS = ("time", "bid", "ask", "bid_size", "ask_size", "last")


def quoting(code: str, name: str, trigger: str | None = None, limits: Limits | None = None) -> bool:
    """Whether a backtest of ``code`` runs ``on_tick`` (trigger ``tick``) rather than ``decide`` (trigger
    ``candle``); without a trigger, when the strategy defines on_tick and no decide. A strategy that does
    not load is left to the run that reports it (False without a trigger)."""
    if trigger is not None:
        return trigger == "tick"
    try:
        rt = StrategyRuntime(code, name=name, limits=limits or DEFAULT_LIMITS, run_init=False)
    except StrategyError:
        return False
    try:
        return rt.has_on_tick and not rt.has_decide
    finally:
        rt.close()


@dataclass(frozen=True)
class QuoteFill:
    """A fill of the run: a quote's (``kind`` quote) or a market order's, when on_tick took a position."""

    time: int
    side: str
    price: Decimal
    amount: Decimal
    fee: Decimal
    kind: str  # quote | market
    pnl: Decimal | None = None  # what a sale realized (average cost, fees included)

    def as_dict(self) -> dict[str, Any]:
        return {
            "time": iso(self.time),
            "side": self.side,
            "price": float(self.price),
            "amount": float(self.amount),
            "fee": float(self.fee),
            "kind": self.kind,
            "pnl": None if self.pnl is None else float(self.pnl),
        }


@dataclass
class QuoteResult:
    """A finished (or failed) quoting backtest: the fills, the counts, and the equity at every step (a
    candle's close, or a tick)."""

    mode: str
    cash: float
    fills: list[QuoteFill]
    placed: dict[str, int]
    refused: int
    evaluations: int
    steps: int  # candles or ticks run
    equity: np.ndarray
    times: np.ndarray
    inventory: Decimal
    realized_pnl: Decimal
    fees: Decimal
    duration_s: float
    error: str | None = None
    error_time: int | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def final_equity(self) -> float:
        return float(self.equity[-1]) if len(self.equity) else self.cash

    def summary(self, points: int = 1000) -> dict[str, Any]:
        """The ``--json`` document."""
        final = self.final_equity
        by_side = {
            side: sum(1 for f in self.fills if f.kind == "quote" and f.side == side)
            for side in model.QUOTE_SIDES
        }
        placed = sum(self.placed.values())
        return {
            "mode": self.mode,
            "label": LABELS[self.mode],
            "quotes_placed": placed,
            "quotes_placed_by_side": dict(self.placed),
            "quotes_refused": self.refused,
            "fills": by_side,
            "fill_rate_pct": 100.0 * sum(by_side.values()) / placed if placed else 0.0,
            "market_orders": sum(1 for f in self.fills if f.kind == "market"),
            "final_inventory": float(self.inventory),
            "realized_pnl": float(self.realized_pnl),
            "fees": float(self.fees),
            "final_equity": final,
            "return_pct": (final / self.cash - 1) * 100 if self.cash else 0.0,
            "max_drawdown_pct": max_drawdown_pct(self.equity),
            "evaluations": self.evaluations,
            "candles" if self.mode == CANDLES else "ticks": self.steps,
            "duration_s": round(self.duration_s, 4),
            "trades": [f.as_dict() for f in self.fills],
            "equity": curve(self.equity, self.times, points),
            "notes": self.notes,
            "error": self.error,
            "error_time": iso(self.error_time) if self.error_time is not None else None,
        }


class Account:
    """One quoting assignment over history: cash, inventory at average cost, realized P&L, its resting
    quotes, and a market order a position decision left for the next step."""

    def __init__(self, cash: float, costs: model.Costs, max_position: Decimal | None) -> None:
        self.allocation = model.dec(cash)
        self.costs = costs
        self.max_position = max_position
        self.free = self.allocation  # the cash held: allocation + realized P&L - entry cost
        self.qty = model.ZERO
        self.entry_cost = model.ZERO
        self.realized = model.ZERO
        self.fees = model.ZERO
        self.resting: dict[str, model.Quote] = {}
        self.pending: tuple[str, Decimal] | None = None  # a market order: side, amount
        self.fills: list[QuoteFill] = []
        self.placed = dict.fromkeys(model.QUOTE_SIDES, 0)
        self.refused = 0
        self.notes: list[str] = []
        self.free_f, self.qty_f = float(self.free), 0.0  # the same in floats, for the equity series

    def cash(self) -> Decimal:
        """What buys may still spend (``t.cash``)."""
        return model.quote_cash(model.capital(self.allocation, self.realized), self.entry_cost)

    def state(self) -> m.TickState:
        return m.TickState(
            position=float(self.qty),
            cash=float(self.cash()),
            quotes=[
                m.Quote(side=cast("m.Side", q.side), price=float(q.price), amount=float(q.amount))
                for q in self.resting.values()  # model.QUOTE_SIDES: "buy" or "sell"
            ],
        )

    def book(self, f: model.Fill, kind: str) -> None:
        """Move the cash, the inventory and its cost; a sale realizes its share of the cost (as core does)."""
        pnl = None
        if f.side == "buy":
            self.qty += f.amount
            self.entry_cost += f.value + f.fee
        else:
            share = min(model.ONE, f.amount / self.qty) if self.qty > 0 else model.ONE
            cost = self.entry_cost * share
            pnl = f.value - f.fee - cost
            self.realized += pnl
            self.entry_cost -= cost
            self.qty = max(model.ZERO, self.qty - f.amount)
        self.free += f.cash
        self.fees += f.fee
        self.free_f, self.qty_f = float(self.free), float(self.qty)
        self.fills.append(QuoteFill(f.time, f.side, f.price, f.amount, f.fee, kind, pnl))

    def match(self, low: Decimal, high: Decimal, when: int) -> None:
        """The resting quotes the market went through between ``low`` and ``high`` fill (the buy first)."""
        for side in model.QUOTE_SIDES:
            q = self.resting.get(side)
            if q is not None and model.quote_crossed(side, q.price, low, high):
                del self.resting[side]
                self.book(model.quote_fill(q, self.costs, time=when), "quote")

    def execute(self, price: Decimal, when: int) -> None:
        """The market order a position decision left, at ``price`` (taker fee, slippage)."""
        if self.pending is None:
            return
        side, amount = self.pending
        self.pending = None
        f = model.fill(
            side, amount, price, "market", self.costs, reason="signal" if side == "sell" else None, time=when
        )
        if side == "buy" and not model.affordable(self.free, f):
            self.note(
                f"{iso(when)}: a market buy of {amount} at {price} was not made: the cash does not pay it"
            )
            return
        self.book(f, "market")

    def apply(self, d: Decision, bid: Decimal, ask: Decimal, reference: Decimal, when: int) -> None:
        """What on_tick returned: quotes to rest (the post-only check and the limits first), nothing (the
        quotes stay), or a position (the quotes come down; a market order for the next step)."""
        if d.quotes is not None:
            asked = [model.Quote(side, model.dec(p), model.dec(a)) for side, p, a in d.quotes]
            taking = [q for q in asked if model.quote_takes(q.side, q.price, bid, ask)]
            self.refused += len(taking)
            kept = model.clip_quotes(
                [q for q in asked if q not in taking], self.qty, self.cash(), self.costs, self.max_position
            )
            wanted = {q.side: q for q in kept}
            for side, q in wanted.items():
                have = self.resting.get(side)
                if have is not None and (have.price, have.amount) == (q.price, q.amount):
                    wanted[side] = have  # unchanged: left alone, not placed again
                else:
                    self.placed[side] += 1
            self.resting = wanted
            return
        if d.position is None:
            return
        self.resting = {}
        if (
            d.stop_loss is not None
            or d.take_profit is not None
            or d.trailing_stop is not None
            or d.limit is not None
        ):
            self.note(
                f"{iso(when)}: on_tick returned exits or a limit entry with its position: this backtest "
                "takes positions at the market only, without exits"
            )
        for it in model.intents(model.Slot(self.qty), model.decision(d.position, d.size)):
            if it.kind == "exit":
                self.pending = ("sell", self.qty)
            elif it.kind == "enter":
                amount = model.entry_quantity(self.cash(), it.size, reference)
                if amount > 0:
                    self.pending = ("buy", amount)

    def note(self, text: str) -> None:
        if len(self.notes) < 20:
            self.notes.append(text)


def _account(
    cash: float, fee: float, maker_fee: float | None, slippage: float, max_position: float | None
) -> Account:
    """A run's account: its cash, costs (``maker_fee`` None: the taker ``fee``) and inventory cap."""
    costs = model.Costs(
        model.dec(fee), model.dec(fee if maker_fee is None else maker_fee), model.dec(slippage) * 10_000
    )
    return Account(cash, costs, None if max_position is None else model.dec(max_position))


def _runtime(code: str, name: str, params: dict[str, Any] | None, limits: Limits | None) -> StrategyRuntime:
    return StrategyRuntime(
        code, name=name, params=params or {}, limits=limits or DEFAULT_LIMITS, indicators=ArrayStore()
    )


def _tf_ms(times: np.ndarray) -> int:
    n = len(times)
    return int(np.median(np.diff(times[: min(n, 1000)]))) if n > 1 else 60_000


def _result(
    mode: str,
    cash: float,
    acct: Account | None,
    evaluations: int,
    steps: int,
    equity: np.ndarray,
    times: np.ndarray,
    started: float,
    error: str | None = None,
    error_time: int | None = None,
) -> QuoteResult:
    if acct is None:
        acct = Account(cash, model.Costs(), None)
    return QuoteResult(
        mode,
        cash,
        acct.fills,
        acct.placed,
        acct.refused,
        evaluations,
        steps,
        equity,
        times,
        acct.qty,
        acct.realized,
        acct.fees,
        time.perf_counter() - started,
        error,
        error_time,
        acct.notes,
    )


def run_candles(
    code: str,
    arrays: dict[str, np.ndarray],
    *,
    params: dict[str, Any] | None = None,
    cash: float = 10_000.0,
    fee: float = 0.001,
    maker_fee: float | None = None,
    slippage: float = 0.0,
    lookback: int = 500,
    name: str = "strategy",
    spread_bps: float = DEFAULT_SPREAD_BPS,
    max_position: float | None = None,
    limits: Limits | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> QuoteResult:
    """Run ``on_tick`` at the close of every candle (arrays time, open, high, low, close, volume; oldest
    first) on a book of ``spread_bps`` around the close; the quotes rest during the next candle and fill
    when its range goes through them. A strategy error stops the run at that candle (kept in the result)."""
    started = time.perf_counter()
    times = arrays["time"]
    n = len(times)
    try:
        rt = _runtime(code, name, params, limits)
    except StrategyError as exc:
        return _result(CANDLES, cash, None, 0, 0, np.empty(0), times[:0], started, str(exc))
    tf_ms = _tf_ms(times)
    acct = _account(cash, fee, maker_fee, slippage, max_position)
    half = spread_bps / 10_000 / 2
    opens, highs, lows, closes = arrays["open"], arrays["high"], arrays["low"], arrays["close"]
    equity = np.empty(n)
    key = f"backtest:{name}:{tf_ms}"
    error = error_time = None
    done = n
    try:
        for i in range(n):
            if progress is not None and i % 2000 == 0:
                progress(i, n)
            if i:
                if acct.pending is not None:
                    acct.execute(model.dec(opens[i]), int(times[i]))
                if acct.resting:
                    acct.match(model.dec(lows[i]), model.dec(highs[i]), int(times[i]))
            close = float(closes[i])
            equity[i] = acct.free_f + acct.qty_f * close
            if i == n - 1:
                break  # what the last candle's close decides has no candle to act on
            bid, ask = close * (1 - half), close * (1 + half)
            tick = m.Tick(
                exchange="backtest", symbol=name, bid=bid, ask=ask, last=close, time=int(times[i]) + tf_ms
            )
            window = CandleWindow.view(arrays, i, lookback, key)
            try:
                d = rt.on_tick(window, tick, acct.state(), candle_time=int(times[i]))
            except StrategyError as exc:
                error, error_time, done = str(exc), int(times[i]), i + 1
                break
            acct.apply(d, model.dec(bid), model.dec(ask), model.dec(close), int(times[i]) + tf_ms)
    finally:
        rt.close()
    evaluations = min(done, n - 1) if error is None else done
    return _result(
        CANDLES, cash, acct, evaluations, done, equity[:done], times[:done], started, error, error_time
    )


def run_ticks(
    code: str,
    candles: dict[str, np.ndarray],
    ticks: dict[str, np.ndarray],
    *,
    params: dict[str, Any] | None = None,
    cash: float = 10_000.0,
    fee: float = 0.001,
    maker_fee: float | None = None,
    slippage: float = 0.0,
    lookback: int = 500,
    name: str = "strategy",
    min_interval_ms: int = DEFAULT_MIN_INTERVAL_MS,
    max_position: float | None = None,
    tf_ms: int | None = None,
    limits: Limits | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> QuoteResult:
    """Run ``on_tick`` on stored ticks (``ticks``: arrays time, bid, ask, bid_size, ask_size, last, oldest
    first), at most once per ``min_interval_ms`` and only when the bid or the ask changed, each time on the
    window of ``candles`` ending at the last candle closed before the tick. A resting quote fills on a later
    tick whose last trade goes through it; a market order (a position decision) fills at the next tick's
    last. Ticks before the first closed candle are not evaluated (there is no window yet)."""
    started = time.perf_counter()
    tt = ticks["time"]
    n = len(tt)
    try:
        rt = _runtime(code, name, params, limits)
    except StrategyError as exc:
        return _result(TICKS, cash, None, 0, 0, np.empty(0), tt[:0], started, str(exc))
    ctimes = candles["time"]
    tf_ms = tf_ms or _tf_ms(ctimes)
    closed_at = (ctimes + tf_ms).tolist()  # a candle is closed at its open time + the timeframe
    acct = _account(cash, fee, maker_fee, slippage, max_position)
    bids, asks, bid_sizes, ask_sizes = (ticks[k].tolist() for k in ("bid", "ask", "bid_size", "ask_size"))
    lasts = ticks["last"].tolist()
    times = tt.tolist()
    equity = np.empty(n)
    key = f"backtest:{name}:{tf_ms}"
    window: CandleWindow | None = None
    window_end = -1
    j = -1  # the last candle closed before the current tick
    due = None  # the earliest time of the next evaluation
    last_book: tuple[float, float] | None = None
    evaluations = 0
    error = error_time = None
    done = n
    try:
        for k in range(n):
            if progress is not None and k % 10_000 == 0:
                progress(k, n)
            now, bid, ask = times[k], bids[k], asks[k]
            last = lasts[k] or (bid + ask) / 2
            if acct.pending is not None:
                acct.execute(model.dec(last), now)
            if acct.resting:
                price = model.dec(last)
                acct.match(price, price, now)
            equity[k] = acct.free_f + acct.qty_f * last
            if (due is not None and now < due) or (bid, ask) == last_book:
                continue
            while j + 1 < len(closed_at) and closed_at[j + 1] <= now:
                j += 1
            if j < 0:
                continue
            if window is None or j != window_end:
                window, window_end = CandleWindow.view(candles, j, lookback, key), j
            tick = m.Tick(
                exchange="backtest",
                symbol=name,
                bid=bid,
                ask=ask,
                bid_size=bid_sizes[k],
                ask_size=ask_sizes[k],
                last=lasts[k],
                time=now,
            )
            evaluations += 1
            try:
                d = rt.on_tick(window, tick, acct.state())
            except StrategyError as exc:
                error, error_time, done = str(exc), now, k + 1
                break
            due, last_book = now + min_interval_ms, (bid, ask)
            acct.apply(d, model.dec(bid), model.dec(ask), model.dec(last), now)
    finally:
        rt.close()
    return _result(TICKS, cash, acct, evaluations, done, equity[:done], tt[:done], started, error, error_time)


def run(
    code: str,
    candles: dict[str, np.ndarray],
    ticks: dict[str, np.ndarray] | None,
    *,
    spread_bps: float = DEFAULT_SPREAD_BPS,
    min_interval_ms: int = DEFAULT_MIN_INTERVAL_MS,
    tf_ms: int | None = None,
    **kw: Any,
) -> QuoteResult:
    """A quoting backtest on ``ticks`` when there are any (``run_ticks``), else on the closes of ``candles``
    (``run_candles``); ``kw`` are what both take (params, costs, lookback, name, max_position, progress)."""
    if ticks is None:
        return run_candles(code, candles, spread_bps=spread_bps, **kw)
    return run_ticks(code, candles, ticks, min_interval_ms=min_interval_ms, tf_ms=tf_ms, **kw)


async def stored_ticks(
    session: Any, market_id: int, start: int | None = None, end: int | None = None
) -> dict[str, np.ndarray]:
    """A market's stored ticks with ``time`` in [start, end), oldest first, as arrays (``TICK_COLUMNS``)."""
    from sqlalchemy import select

    from tradewind.storage.models import TickRow

    q = select(
        TickRow.time, TickRow.bid, TickRow.ask, TickRow.bid_size, TickRow.ask_size, TickRow.last
    ).where(TickRow.market_id == market_id)
    if start is not None:
        q = q.where(TickRow.time >= start)
    if end is not None:
        q = q.where(TickRow.time < end)
    rows = (await session.execute(q.order_by(TickRow.time))).all()
    if not rows:
        return {"time": np.empty(0, dtype=np.int64), **{k: np.empty(0) for k in TICK_COLUMNS[1:]}}
    a = np.asarray(rows, dtype=np.float64)
    out = {"time": np.asarray([r[0] for r in rows], dtype=np.int64)}
    out.update({k: np.ascontiguousarray(a[:, i]) for i, k in enumerate(TICK_COLUMNS) if i})
    return out


async def stored_tick_data(
    session: Any, market_id: int, tf: str, start: int | None, end: int | None, lookback: int
) -> tuple[dict[str, np.ndarray] | None, dict[str, np.ndarray]]:
    """What a run on stored ticks reads: the market's ticks in [start, end) (``stored_ticks``), and its ``tf``
    candles from ``lookback`` candles before the first tick to the last, for on_tick's window (None when no
    candle is stored there, or no tick)."""
    from tradewind.domain import tf_ms
    from tradewind.storage import candles as store

    ticks = await stored_ticks(session, market_id, start, end)
    if not len(ticks["time"]):
        return None, ticks
    first, last = int(ticks["time"][0]), int(ticks["time"][-1])
    rows = await store.candle_range(session, market_id, tf, first - lookback * tf_ms(tf), last + 1)
    return (store.to_arrays(rows) if rows else None), ticks
