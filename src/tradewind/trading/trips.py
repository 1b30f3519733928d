"""Round trips: the trades a sequence of fills makes, built here and nowhere else, for a backtest's report
(``backtest.engine``) and for the trades of a live or paper account (``GET /api/trades``).

A round trip opens with a buy when nothing is held and closes when sells bring the amount held back to
zero; buys while holding add to it, and each sell meets the buys at their average cost (fees included). Its
P&L is what the sells brought (their value less fees) less what the buys cost (value plus fees). Money is
Decimal while it is summed; a trip's fields are floats, as a backtest's report has always had them.

From the same fills: the realized P&L of each UTC day (each sell's share), and an equity curve (cash and
holdings valued at candle closes).
"""

from __future__ import annotations

import bisect
import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, NamedTuple

from tradewind.backtest.metrics import average_duration_s, profit_factor, win_rate

ZERO = Decimal(0)
DAY_MS = 86_400_000


class TradeFill(NamedTuple):
    """One fill as the round trips read it: epoch ms, buy or sell, amount (base), price, fee (quote)."""

    time: int
    side: str
    amount: Decimal
    price: Decimal
    fee: Decimal
    symbol: str = ""
    order_type: str = "market"
    reason: str | None = None  # why a sell exited: signal | stop_loss | take_profit | trailing_stop | manual
    assignment_id: int | None = None


@dataclass(slots=True)
class RoundTrip:
    """An entry and the exit that brought the position back to zero. ``exit_time`` None: still open;
    ``exit_reason`` "end": still open at the end of a backtest, valued at its last close."""

    entry_time: int
    entry_price: float
    qty: float
    exit_time: int | None = None
    exit_price: float | None = None
    pnl: float | None = None
    cost: float = 0.0  # cash spent, fees included
    entry_type: str = "market"  # market | limit | quote
    exit_reason: str | None = None
    fees: float = 0.0  # of the entry and the exit
    symbol: str = ""
    assignment_id: int | None = None

    @property
    def closed(self) -> bool:
        return self.exit_time is not None and self.exit_reason != "end"

    @property
    def pnl_pct(self) -> float | None:
        """P&L in percent of what the entry cost."""
        return None if self.pnl is None or not self.cost else self.pnl / self.cost * 100

    @property
    def duration_ms(self) -> int | None:
        return None if self.exit_time is None else self.exit_time - self.entry_time

    def as_dict(self) -> dict[str, Any]:
        """As a backtest's report lists it (times in ISO 8601 UTC)."""
        return {
            "entry_time": _iso(self.entry_time),
            "entry_price": self.entry_price,
            "entry_type": self.entry_type,
            "exit_time": _iso(self.exit_time) if self.exit_time is not None else None,
            "exit_price": self.exit_price,
            "exit_reason": self.exit_reason,
            "qty": self.qty,
            "pnl": self.pnl,
            "pnl_pct": self.pnl_pct,
            "fees": self.fees,
        }


def _iso(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(slots=True)
class _Open:
    trip: RoundTrip
    held: Decimal = ZERO
    cost_held: Decimal = ZERO  # of what is still held
    cost: Decimal = ZERO  # of every buy of the trip
    bought: Decimal = ZERO
    bought_value: Decimal = ZERO
    buys: int = 0
    proceeds: Decimal = ZERO  # sells: value less fees
    sold: Decimal = ZERO
    sold_value: Decimal = ZERO
    sells: int = 0
    fees: Decimal = ZERO


@dataclass
class Trips:
    """Round trips of one position (one assignment, or one symbol of an account), fed fills in time order.
    ``realized``: (time, P&L) of each sell; ``unmatched``: sells met with nothing held (fills from before
    the first one read, or holdings tradewind did not buy), left out."""

    trips: list[RoundTrip] = field(default_factory=list)
    realized: list[tuple[int, Decimal]] = field(default_factory=list)
    unmatched: int = 0
    _open: _Open | None = None

    @property
    def open(self) -> RoundTrip | None:
        return self._open.trip if self._open is not None else None

    @property
    def held(self) -> Decimal:
        return self._open.held if self._open is not None else ZERO

    def fill(
        self,
        time: int,
        side: str,
        amount: Decimal,
        price: Decimal,
        fee: Decimal,
        *,
        order_type: str = "market",
        reason: str | None = None,
        symbol: str = "",
        assignment_id: int | None = None,
    ) -> None:
        if amount <= 0:
            return
        value = amount * price
        o = self._open
        if side == "buy":
            if o is None:
                trip = RoundTrip(
                    time,
                    float(price),
                    float(amount),
                    entry_type=order_type,
                    symbol=symbol,
                    assignment_id=assignment_id,
                )
                o = self._open = _Open(trip)
                self.trips.append(trip)
            o.held += amount
            o.cost_held += value + fee
            o.cost += value + fee
            o.bought += amount
            o.bought_value += value
            o.buys += 1
            o.fees += fee
            t = o.trip
            t.qty, t.cost, t.fees = float(o.bought), float(o.cost), float(o.fees)
            if o.buys > 1:  # the average entry price (one buy: its own price, as it was)
                t.entry_price = float(o.bought_value / o.bought)
            return
        if o is None:
            self.unmatched += 1
            return
        if amount > o.held:  # more than was bought here: the rest was held before (left out)
            self.unmatched += 1
            amount = o.held
        value = amount * price
        share = o.cost_held if amount >= o.held else o.cost_held * amount / o.held
        self.realized.append((time, value - fee - share))
        o.held -= amount
        o.cost_held -= share
        o.proceeds += value - fee
        o.sold += amount
        o.sold_value += value
        o.sells += 1
        o.fees += fee
        t = o.trip
        t.fees = float(o.fees)
        if o.held <= 0:
            t.exit_time, t.exit_reason = time, reason
            t.exit_price = float(price) if o.sells == 1 else float(o.sold_value / o.sold)
            t.pnl = float(o.proceeds) - float(o.cost)
            self._open = None

    def value_open(self, time: int, price: float) -> None:
        """A backtest's end: the trip still open is valued at ``price`` (exit reason "end"); it stays open."""
        o = self._open
        if o is None:
            return
        t = o.trip
        t.exit_time, t.exit_price, t.exit_reason = time, price, "end"
        t.pnl = float(o.held) * price - float(o.cost)

    def cut(self, time: int) -> None:
        """What was held is gone (a paper account's reset): the open trip ends here, exit reason "reset",
        without an exit price or a P&L."""
        o = self._open
        if o is not None:
            o.trip.exit_time, o.trip.exit_reason = time, "reset"
            self._open = None


def round_trips(
    fills: Iterable[TradeFill], resets: Sequence[int] = ()
) -> tuple[list[RoundTrip], list[tuple[int, Decimal]], int]:
    """The round trips of fills (any order), one position per assignment (or per symbol when a fill has no
    assignment), oldest entry first; the realized P&L of each sell (time order); and the sells left out.
    ``resets``: times (epoch ms) a paper account was put back to its starting cash: a trip open then ends."""
    books: dict[tuple[Any, ...], Trips] = {}
    cuts = sorted(resets)
    for f in sorted(fills, key=lambda f: f.time):
        while cuts and cuts[0] <= f.time:
            for held in books.values():
                held.cut(cuts[0])
            cuts.pop(0)
        key = ("a", f.assignment_id, f.symbol) if f.assignment_id is not None else ("s", f.symbol)
        book = books.get(key)
        if book is None:
            book = books[key] = Trips()
        book.fill(
            f.time,
            f.side,
            f.amount,
            f.price,
            f.fee,
            order_type=f.order_type,
            reason=f.reason,
            symbol=f.symbol,
            assignment_id=f.assignment_id,
        )
    trips = sorted((t for b in books.values() for t in b.trips), key=lambda t: t.entry_time)
    realized = sorted((r for b in books.values() for r in b.realized), key=lambda r: r[0])
    return trips, realized, sum(b.unmatched for b in books.values())


def day_of(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).strftime("%Y-%m-%d")


def daily_profit(
    realized: Iterable[tuple[int, Decimal]], fills: Iterable[TradeFill] = ()
) -> list[dict[str, Any]]:
    """Realized P&L per UTC day (each sell's, at its average cost), oldest first, with the fees paid and the
    fills made that day: ``{day, pnl, fees, fills}``; money as decimal strings."""
    days: dict[str, list[Any]] = {}
    for ms, pnl in realized:
        days.setdefault(day_of(ms), [ZERO, ZERO, 0])[0] += pnl
    for f in fills:
        row = days.setdefault(day_of(f.time), [ZERO, ZERO, 0])
        row[1] += f.fee
        row[2] += 1
    return [
        {"day": d, "pnl": _money(p), "fees": _money(fee), "fills": n}
        for d, (p, fee, n) in sorted(days.items())
    ]


def _money(x: Decimal) -> str:
    return format(x.quantize(Decimal("0.00000001")).normalize() if x else ZERO, "f")


class Closes(NamedTuple):
    """A market's candle closes, oldest first, by open time (epoch ms), and the candles' length."""

    times: Sequence[int]
    closes: Sequence[float]
    tf_ms: int = 0

    def at(self, ms: int) -> tuple[int, float] | None:
        """The time and close of the last candle that opened at or before ``ms``; None before the first."""
        i = bisect.bisect_right(self.times, ms) - 1
        return (self.times[i], self.closes[i]) if i >= 0 else None


def equity_curve(
    fills: Sequence[TradeFill], start: Decimal, grid: Sequence[int], closes: Mapping[str, Closes]
) -> list[list[float]]:
    """``start`` in cash, and the fills (time order) from there: the equity at each time of ``grid`` and at
    each fill, as [time ms, equity]: cash plus what is held, valued at the market's close at that time, or
    at its last fill's price where that is newer (the candle closed before it: none stored since)."""
    times = sorted(set(grid) | {f.time for f in fills})
    cash = start
    held: dict[str, Decimal] = {}
    last_price: dict[str, tuple[int, float]] = {}
    out: list[list[float]] = []
    k = 0
    for t in times:
        while k < len(fills) and fills[k].time <= t:
            f = fills[k]
            value = f.amount * f.price
            if f.side == "buy":
                cash -= value + f.fee
                held[f.symbol] = held.get(f.symbol, ZERO) + f.amount
            else:
                cash += value - f.fee
                held[f.symbol] = held.get(f.symbol, ZERO) - f.amount
            last_price[f.symbol] = (f.time, float(f.price))
            k += 1
        equity = float(cash)
        for symbol, qty in held.items():
            if qty:
                c = closes.get(symbol)
                candle = c.at(t) if c is not None else None
                filled_at, filled_price = last_price[symbol]
                price = filled_price
                if c is not None and candle is not None and candle[0] + c.tf_ms >= filled_at:
                    price = candle[1]  # the candle closed after the last fill: newer
                equity += float(qty) * price
        out.append([t, round(equity, 8)])
    return out


def summary(trips: Sequence[RoundTrip]) -> dict[str, Any]:
    """Headline numbers of the closed round trips: count, wins, win rate %, P&L, fees (of every trip),
    profit factor and average duration (seconds)."""
    closed = [t for t in trips if t.closed and t.pnl is not None]
    pnls = [t.pnl for t in closed if t.pnl is not None]
    return {
        "trades": len(closed),
        "open": sum(1 for t in trips if t.exit_time is None),
        "wins": sum(1 for p in pnls if p > 0),
        "win_rate": win_rate(pnls),
        "pnl": sum(pnls),
        "fees": sum(t.fees for t in trips),
        "profit_factor": profit_factor(pnls),
        "avg_duration_s": average_duration_s(closed),
    }
