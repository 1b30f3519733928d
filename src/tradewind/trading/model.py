"""The trading model: how a decision becomes orders, and how orders fill on candles. Pure and synchronous.

Core (live and paper intents), the paper engine (fills) and the backtest engine (intents and fills) all
call these functions; none of them keeps rules of its own. Money is ``Decimal`` everywhere: a candle's
float prices become ``Decimal(repr(x))``, so the paper engine and a backtest compute the same cents.

The rules (docs/backtesting.md gives them to users):

- A decision taken at a candle's close acts at the next candle. A market entry or a signal exit fills at
  the next open (slippage against the trade; taker fee).
- A limit buy fills at ``min(open, limit)`` on the first candle whose low is at or below the limit (maker
  fee, no slippage); unfilled after ``expire`` candles it is cancelled.
- A long position's stop (``entry × (1 - stop_loss)``; the trailing level ``high × (1 - trailing_stop)``;
  whichever is higher) triggers on the first candle whose low reaches it and fills at ``min(open, stop)``
  (a gap through the stop fills at the open; taker fee, slippage). The take-profit
  (``entry × (1 + take_profit)``) triggers when the high reaches it and fills at ``max(open, target)``
  (maker fee). When both are inside one candle the stop is taken (pessimistic).
- The trailing level is raised from each closed candle's high and applies from the next candle; the
  high starts at the entry fill price.
- Protective exits are active from the entry fill on, including the rest of the entry candle (after a
  limit entry's fill an exit there fills at its level: the candle's open came before the entry).
- An order that cancels others first (a quote's replacement, a signal exit, a moved stop) is not placed
  when one of them filled, fully or partly, before it was cancelled (``refused_after_cancels``): it was
  decided for a position that has changed since.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from decimal import ROUND_DOWN, Decimal
from typing import Any, Literal

ZERO = Decimal(0)
ONE = Decimal(1)
QTY = Decimal("0.00000001")  # amounts are whole multiples of 1e-8 of the base asset
# Buys are sized a little under the capital so that the fee and a move to the fill price fit.
BUY_HEADROOM = Decimal("1.0025")
BPS = Decimal("0.0001")

ExitReason = Literal["signal", "stop_loss", "take_profit", "trailing_stop", "end"]
OrderType = Literal["market", "limit", "stop", "take_profit", "trailing_stop"]
EXIT_REASONS: tuple[str, ...] = ("signal", "stop_loss", "take_profit", "trailing_stop", "end")
ORDER_TYPES: tuple[str, ...] = ("market", "limit", "stop", "take_profit", "trailing_stop")
#: The order type that carries out each protective exit.
EXIT_ORDER_TYPE: dict[str, str] = {
    "stop_loss": "stop",
    "take_profit": "take_profit",
    "trailing_stop": "trailing_stop",
}


def dec(x: float | int | str | Decimal) -> Decimal:
    """A price or a fraction as Decimal, exactly as Python prints the float (``repr``)."""
    if isinstance(x, Decimal):
        return x
    return Decimal(repr(float(x))) if isinstance(x, float) else Decimal(x)


@dataclass(frozen=True)
class Bar:
    """A candle, in Decimal."""

    time: int
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal

    @classmethod
    def of(cls, time: int, o: float, h: float, lo: float, c: float) -> Bar:
        return cls(int(time), dec(o), dec(h), dec(lo), dec(c))


@dataclass(frozen=True)
class Costs:
    """Fees (fractions of the traded value) and slippage (basis points, against the trade, on market and
    stop fills only: a limit or take-profit order fills at its price or better)."""

    taker_fee: Decimal = Decimal("0.001")
    maker_fee: Decimal = Decimal("0.001")
    slippage_bps: Decimal = ZERO

    def fee_rate(self, order_type: str) -> Decimal:
        return self.maker_fee if order_type in ("limit", "take_profit") else self.taker_fee

    def price(self, order_type: str, side: str, price: Decimal) -> Decimal:
        """The price a fill of this order type gets, slippage included."""
        if order_type in ("limit", "take_profit") or not self.slippage_bps:
            return price
        move = self.slippage_bps * BPS
        return price * (ONE + move) if side == "buy" else price * (ONE - move)


# -- decisions --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Exits:
    """Protective exits as fractions: ``stop_loss`` and ``take_profit`` of the entry fill price,
    ``trailing_stop`` of the highest high since entry. None: not set."""

    stop_loss: Decimal | None = None
    take_profit: Decimal | None = None
    trailing_stop: Decimal | None = None

    def __bool__(self) -> bool:
        return self.stop_loss is not None or self.take_profit is not None or self.trailing_stop is not None

    def update(self, newer: Exits) -> Exits:
        """These exits with the ones ``newer`` sets replacing them (a strategy moves its stop)."""
        return Exits(
            newer.stop_loss if newer.stop_loss is not None else self.stop_loss,
            newer.take_profit if newer.take_profit is not None else self.take_profit,
            newer.trailing_stop if newer.trailing_stop is not None else self.trailing_stop,
        )

    @classmethod
    def of(cls, stop_loss: float | None, take_profit: float | None, trailing_stop: float | None) -> Exits:
        return cls(
            None if stop_loss is None else dec(stop_loss),
            None if take_profit is None else dec(take_profit),
            None if trailing_stop is None else dec(trailing_stop),
        )

    def as_strings(self) -> dict[str, str | None]:
        """The stored form (JSON): each fraction as a decimal string, or None."""
        return {
            k: None if v is None else format(v, "f")
            for k, v in (
                ("stop_loss", self.stop_loss),
                ("take_profit", self.take_profit),
                ("trailing_stop", self.trailing_stop),
            )
        }

    @classmethod
    def from_strings(cls, d: dict[str, Any] | None) -> Exits:
        """The exits of a stored form (``as_strings``, or a mapping holding the same keys among others)."""
        if not d:
            return NO_EXITS
        sl, tp, ts = d.get("stop_loss"), d.get("take_profit"), d.get("trailing_stop")
        if sl is None and tp is None and ts is None:
            return NO_EXITS
        return cls(*(None if v is None else Decimal(str(v)) for v in (sl, tp, ts)))


NO_EXITS = Exits()


@dataclass(frozen=True)
class Decision:
    """What a strategy decided on a candle's close (validated by the sandbox)."""

    position: str  # long | short | neutral
    size: float = 1.0
    exits: Exits = NO_EXITS
    limit: Decimal | None = None
    expire: int = 1


_PLAIN = {p: Decision(p) for p in ("long", "short", "neutral")}  # the usual decisions, made once


def decision(
    position: str | None,
    size: float | None = None,
    stop_loss: float | None = None,
    take_profit: float | None = None,
    trailing_stop: float | None = None,
    limit: float | None = None,
    expire: int | None = None,
) -> Decision:
    """A decision from what the sandbox returns (None: not set; no position: neutral), live or in a
    backtest. A plain string decision is the same shared object each time (the hot path)."""
    if (
        stop_loss is None
        and take_profit is None
        and trailing_stop is None
        and limit is None
        and (size is None or size == 1.0)
    ):
        return _PLAIN.get(position or "neutral") or Decision(position or "neutral")
    return Decision(
        position or "neutral",
        1.0 if size is None else float(size),
        Exits.of(stop_loss, take_profit, trailing_stop),
        None if limit is None else dec(limit),
        1 if expire is None else int(expire),
    )


@dataclass(frozen=True)
class Slot:
    """An assignment's trading state in its market, as the model sees it."""

    qty: Decimal = ZERO  # base held
    entry_open: bool = False  # a limit entry is resting
    exits: Exits = NO_EXITS  # the protection of the position held (or of the entry resting)


@dataclass(frozen=True)
class Intent:
    """What a decision asks for at the next candle.

    - ``enter``: buy; ``limit`` None = at the market, else a limit buy good for ``expire`` candles;
      ``exits`` protect the position from its fill on.
    - ``exit``: sell the whole position at the market (reason ``signal``).
    - ``cancel_entry``: take down the resting limit entry.
    - ``protect``: the open position's protection becomes ``exits``.
    """

    kind: Literal["enter", "exit", "cancel_entry", "protect"]
    size: float = 1.0
    limit: Decimal | None = None
    expire: int = 1
    exits: Exits = NO_EXITS


def intents(slot: Slot, d: Decision) -> list[Intent]:
    """The rule from decision to orders. ``long`` from flat enters (at the market or at ``limit``);
    ``short`` while holding exits at the market and takes a resting entry down; exits set while a
    position is held replace the ones it has (a limit entry keeps the exits it was placed with until it
    fills: the venue holds them with it). Anything else does nothing:
    ``long`` while holding, ``short`` or ``neutral`` while flat, a second entry while one rests."""
    out: list[Intent] = []
    holding = slot.qty > 0
    if d.position == "long":
        if not holding and not slot.entry_open:
            return [Intent("enter", max(0.0, min(1.0, d.size)), d.limit, max(1, d.expire), d.exits)]
    elif d.position == "short":
        if slot.entry_open:
            out.append(Intent("cancel_entry"))
        if holding:
            return [*out, Intent("exit")]
        return out
    if d.exits and holding:
        merged = slot.exits.update(d.exits)
        if merged != slot.exits:
            out.append(Intent("protect", exits=merged))
    return out


# -- sizing and fills ---------------------------------------------------------------------------------------
def quantity(quote: Decimal, price: Decimal) -> Decimal:
    """The amount of base a buy of ``quote`` at about ``price`` is sized to (fee and a small move fit)."""
    if price <= 0 or quote <= 0:
        return ZERO
    return (quote / (price * BUY_HEADROOM)).quantize(QTY, rounding=ROUND_DOWN)


def capital(allocation: Decimal, realized_pnl: Decimal) -> Decimal:
    """What an assignment trades with: its allocation and what it has made or lost (its trades compound,
    as a backtest's do)."""
    return max(ZERO, allocation + realized_pnl)


def entry_quote(capital_: Decimal, size: float) -> Decimal:
    """What an entry of ``size`` (0-1, clamped) of the capital spends, in quote currency."""
    return capital_ * dec(max(0.0, min(1.0, size)))


def entry_quantity(capital_: Decimal, size: float, reference: Decimal) -> Decimal:
    """The size of an entry: ``size`` of the capital at the reference price (the decision candle's close
    for a market entry, the limit price for a limit entry)."""
    return quantity(entry_quote(capital_, size), reference)


@dataclass(frozen=True)
class Fill:
    """A fill: ``value`` = amount × price, ``fee`` on it; a buy costs value + fee, a sell brings
    value - fee."""

    side: str
    amount: Decimal
    price: Decimal
    fee: Decimal
    order_type: str
    reason: str | None = None  # an exit's reason
    time: int = 0

    @property
    def value(self) -> Decimal:
        return self.amount * self.price

    @property
    def cash(self) -> Decimal:
        """The change in quote currency."""
        return -(self.value + self.fee) if self.side == "buy" else self.value - self.fee


def fill(
    side: str,
    amount: Decimal,
    price: Decimal,
    order_type: str,
    costs: Costs,
    *,
    reason: str | None = None,
    time: int = 0,
) -> Fill:
    """A fill of ``amount`` at ``price`` (before slippage) for an order of ``order_type``."""
    p = costs.price(order_type, side, price)
    return Fill(side, amount, p, amount * p * costs.fee_rate(order_type), order_type, reason, time)


def affordable(free: Decimal, f: Fill) -> bool:
    return f.side != "buy" or free >= f.value + f.fee


def limit_buy_price(limit: Decimal, bar: Bar) -> Decimal | None:
    """The price a resting limit buy fills at on ``bar``, or None."""
    if bar.low <= limit:
        return min(bar.open, limit)
    return None


def expiry(decision_time: int, tf_ms: int, expire: int) -> int:
    """When a limit entry decided on the candle opening at ``decision_time`` stops being good: the close of
    its ``expire``-th candle (epoch ms). A candle opening at or after it can no longer fill it."""
    return decision_time + tf_ms * (max(1, expire) + 1)


# -- protection ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Guard:
    """A position's protection as a venue holds it: the stop price, the take-profit price, the trailing
    distance (a fraction) and the highest high it trails from (the entry fill price, then the high of each
    candle closed since). Made from a strategy's fractions by ``at_entry``."""

    stop: Decimal | None = None
    target: Decimal | None = None
    trail: Decimal | None = None
    high: Decimal = ZERO

    @classmethod
    def at_entry(cls, entry: Decimal, exits: Exits, high: Decimal | None = None) -> Guard:
        """The guard of a position entered at ``entry`` (its high: ``high`` if it has run already)."""
        sl, tp = exits.stop_loss, exits.take_profit
        return cls(
            None if sl is None else entry * (ONE - sl),
            None if tp is None else entry * (ONE + tp),
            exits.trailing_stop,
            max(entry, high) if high is not None else entry,
        )

    def __bool__(self) -> bool:
        return self.stop is not None or self.target is not None or self.trail is not None

    @property
    def trail_price(self) -> Decimal | None:
        return None if self.trail is None else self.high * (ONE - self.trail)

    def level(self) -> tuple[Decimal, str] | None:
        """The level that sells the position on the way down and its reason: the higher of the stop and
        the trailing level (the stop wins a tie)."""
        stop, trail = self.stop, self.trail_price
        if trail is None:
            return None if stop is None else (stop, "stop_loss")
        if stop is not None and stop >= trail:
            return stop, "stop_loss"
        return trail, "trailing_stop"

    def check(self, bar: Bar) -> tuple[Decimal, str] | None:
        """Whether ``bar`` takes the position out: (price before costs, reason), or None. The stop first."""
        s = self.level()
        if s is not None and bar.low <= s[0]:
            return min(bar.open, s[0]), s[1]
        if self.target is not None and bar.high >= self.target:
            return max(bar.open, self.target), "take_profit"
        return None

    def closed(self, bar: Bar) -> Guard:
        """The guard after ``bar`` closed with the position still open: the trailing high raised."""
        return self.raised(bar.high)

    def raised(self, high: Decimal) -> Guard:
        """The guard once the price has been as high as ``high`` (candles closed, the position open)."""
        return self if high <= self.high else replace(self, high=high)


def exit_fill(guard: Guard, bar: Bar, amount: Decimal, costs: Costs) -> Fill | None:
    """The protective exit ``bar`` triggers for a position of ``amount``, or None."""
    hit = guard.check(bar)
    if hit is None:
        return None
    price, reason = hit
    return fill("sell", amount, price, EXIT_ORDER_TYPE[reason], costs, reason=reason, time=bar.time)


@dataclass(frozen=True)
class Resting:
    """A limit entry waiting for its price: ``amount`` at ``limit``, good until ``expires`` (epoch ms,
    see ``expiry``), with the exits that protect its fill."""

    amount: Decimal
    limit: Decimal
    expires: int
    exits: Exits = NO_EXITS


@dataclass(frozen=True)
class BarResult:
    """What one candle did to a position: the fills (entry, exit, in that order), the guard the position
    goes on with (None: flat), the entry still resting (None: filled, expired, or none), and whether the
    entry expired on this candle."""

    fills: tuple[Fill, ...]
    guard: Guard | None
    resting: Resting | None
    expired: bool = False


def on_bar(
    bar: Bar, qty: Decimal, guard: Guard | None, resting: Resting | None, costs: Costs, tf_ms: int
) -> BarResult:
    """One candle of matching for one position (after the market orders decided on the previous close
    filled at its open): the resting limit entry may fill, then the protection may take the position out
    (in the entry's own candle too), then the trailing high is raised from the candle's high.

    ``qty`` is the position held before the candle (with ``guard`` its protection, None when it has
    none); a limit entry that fills adds to it."""
    fills: list[Fill] = []
    expired = False
    rest = bar  # the part of the candle the position is held in
    if resting is not None and bar.time >= resting.expires:
        resting, expired = None, True
    if resting is not None:
        price = limit_buy_price(resting.limit, bar)
        if price is not None:
            f = fill("buy", resting.amount, price, "limit", costs, time=bar.time)
            fills.append(f)
            qty += resting.amount
            guard = Guard.at_entry(f.price, resting.exits) if resting.exits else None
            resting = None
            # the position exists from the fill on: an exit in the rest of this candle fills at its own
            # level, never at the open (a price of the candle before the entry)
            rest = replace(bar, open=price)
        elif bar.time + tf_ms >= resting.expires:
            resting, expired = None, True
    if guard is not None and qty > 0:
        out = exit_fill(guard, rest, qty, costs)
        if out is not None:
            return BarResult((*fills, out), None, resting, expired)
        guard = guard.closed(bar)
    return BarResult(tuple(fills), guard, resting, expired)


def protective_orders(guard: Guard) -> list[tuple[str, Decimal | None, Decimal | None, Decimal | None]]:
    """The orders that hold a guard on a venue: (type, price, stop_price, trail). A take-profit and a
    stop make one ``take_profit`` order with a stop leg (one cancels the other); the trailing stop is an
    order of its own (its price: the high it trails from)."""
    out: list[tuple[str, Decimal | None, Decimal | None, Decimal | None]] = []
    if guard.target is not None:
        out.append(("take_profit", guard.target, guard.stop, None))
    elif guard.stop is not None:
        out.append(("stop", None, guard.stop, None))
    if guard.trail is not None:
        out.append(("trailing_stop", guard.high, guard.trail_price, guard.trail))
    return out


def guard_of(orders: list[tuple[str, Decimal | None, Decimal | None, Decimal | None]]) -> Guard:
    """The guard a venue's protective orders hold (the inverse of ``protective_orders``)."""
    stop = target = trail = None
    high = ZERO
    for kind, price, stop_price, trail_ in orders:
        if kind == "take_profit":
            target, stop = price, stop_price if stop_price is not None else stop
        elif kind == "stop":
            stop = stop_price
        elif kind == "trailing_stop":
            trail, high = trail_, price if price is not None else ZERO
    return Guard(stop, target, trail, high)


# -- orders that cancel others first -------------------------------------------------------------------------
def refused_after_cancels(cancelled: Iterable[tuple[str, str, Decimal]]) -> str | None:
    """Why an order that names others in ``cancels`` must not be placed, or None: it may. ``cancelled``:
    how each of them ended, as (client id, status, amount filled). One that filled, fully or partly, before
    its cancel took it down means the order was decided for a position that has changed (a replaced quote's
    fill moved the inventory, a stop sold what a signal exit or a moved stop was for): it is refused, and
    the next decision is taken with the position as it is. One cancelled unfilled, or unknown, lets it go."""
    for cid, status, filled in cancelled:
        if status == "filled" or filled > 0:
            how = "filled" if status == "filled" else f"partly filled ({filled})"
            return f"not placed: the order it replaces ({cid}) was {how} meanwhile"
    return None


# -- quotes (market making) ---------------------------------------------------------------------------------
# A quoting strategy keeps at most one post-only limit order per side. The rules, for the paper engine (on
# the simulator's trades), core (before a quote is sent) and the backtest (on stored ticks, or on candles
# as an approximation) alike:
#
# - A quote is post-only: one that would take liquidity when placed (a buy at or above the ask, a sell at
#   or below the bid) is refused by the venue, never filled as a taker.
# - A resting quote fills, whole, at its own price with the maker fee and no slippage, when the market
#   trades through it: a buy when a trade prints below its price, a sell when one prints above. A trade at
#   exactly its price may have filled orders queued ahead of it and is not counted (pessimistic). On a
#   candle: a buy fills when the low is below its price, a sell when the high is above.
# - The inventory limit: a buy quote is cut to ``max_position`` minus the position (and to what the cash
#   pays for, the maker fee included); a sell quote to the position held (spot: no short selling).
QUOTE_SIDES: tuple[str, ...] = ("buy", "sell")


@dataclass(frozen=True)
class Quote:
    side: str  # buy | sell
    price: Decimal
    amount: Decimal


def quote_takes(side: str, price: Decimal, bid: Decimal, ask: Decimal) -> bool:
    """Whether a post-only quote would take liquidity when placed (the venue refuses it)."""
    return price >= ask if side == "buy" else price <= bid


def quote_crossed(side: str, price: Decimal, low: Decimal, high: Decimal) -> bool:
    """Whether the market traded through a resting quote: trades (or a candle) from ``low`` to ``high``."""
    return low < price if side == "buy" else high > price


def quote_fill(q: Quote, costs: Costs, time: int = 0) -> Fill:
    """A quote's fill: whole, at its price, the maker fee."""
    return fill(q.side, q.amount, q.price, "limit", costs, time=time)


def clip_quotes(
    quotes: list[Quote], position: Decimal, cash: Decimal, costs: Costs, max_position: Decimal | None = None
) -> list[Quote]:
    """The quotes as they may be sent: each amount cut to the inventory limit and to what the cash pays for
    (floored to 1e-8); a quote cut to nothing is dropped."""
    out = []
    for q in quotes:
        amount = q.amount
        if q.side == "buy":
            if max_position is not None:
                amount = min(amount, max_position - position)
            if q.price > 0:
                amount = min(amount, cash / (q.price * (ONE + costs.maker_fee)))
        else:
            amount = min(amount, position)
        amount = amount.quantize(QTY, rounding=ROUND_DOWN) if amount > 0 else ZERO
        if amount > 0:
            out.append(q if amount == q.amount else Quote(q.side, q.price, amount))
    return out


def quote_cash(capital_: Decimal, entry_cost: Decimal) -> Decimal:
    """What a quoting assignment may still spend on buys: its capital less what its inventory cost."""
    return max(ZERO, capital_ - entry_cost)
