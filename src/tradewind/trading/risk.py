"""Sizing a buy within an account's money and its risk limits: pure, one rule for every caller.

An account's limits hold for the account as a whole, not per order or per assignment:

- ``max_order_notional``: no single buy is worth more than this (quote currency, at the candle's close);
- ``max_position``: the base asset that all of the account's assignments hold in one market, plus the buys
  still on their way, is never worth more than this (at the candle's close);
- ``daily_loss_limit``: once the account's realized loss since 00:00 UTC reaches this, it buys nothing
  more that day (core also pauses its assignments).

Sells are never limited: closing a position must always be possible.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal

from tradewind.trading import model

QTY = model.QTY
ZERO = Decimal(0)
BUY_HEADROOM = model.BUY_HEADROOM  # buys are sized by the trading model's rule (model.quantity)
MIN_NOTIONAL = Decimal("1")


@dataclass(frozen=True)
class Limits:
    max_order_notional: Decimal | None = None
    max_position: Decimal | None = None
    daily_loss_limit: Decimal | None = None


@dataclass
class AccountBook:
    """What one account may still spend while a candle's buys are sized; ``size_buy`` updates it, so the
    second assignment of an account sees what the first one took."""

    limits: Limits
    free: Decimal | None  # free quote currency on the exchange; None: the exchange did not answer
    held: dict[str, Decimal] = field(
        default_factory=dict
    )  # symbol -> base held by its assignments + buys in flight
    loss_today: Decimal = ZERO  # realized loss since midnight UTC (positive: a loss)


class Sized:
    """A sized buy: ``amount`` of the base asset, or ``reason`` why none (then ``amount`` is 0); ``note``
    says why it is smaller than asked, if it is."""

    __slots__ = ("amount", "reason", "note")

    def __init__(self, amount: Decimal, reason: str | None = None, note: str | None = None) -> None:
        self.amount, self.reason, self.note = amount, reason, note


def start_of_day(now: dt.datetime) -> dt.datetime:
    """Where ``daily_loss_limit``'s day begins: midnight UTC of ``now``."""
    return now.astimezone(dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def loss_limit_reached(limits: Limits, loss_today: Decimal) -> bool:
    return limits.daily_loss_limit is not None and loss_today >= limits.daily_loss_limit


def size_buy(book: AccountBook, symbol: str, allocation: Decimal, size: float, price: Decimal) -> Sized:
    """How much of ``symbol`` an assignment with ``allocation`` (quote) may buy at ``price`` for a decision
    of ``size`` (0-1 of the allocation), and take it from ``book``."""
    limits = book.limits
    quote_asset = symbol.split("/")[-1]
    if loss_limit_reached(limits, book.loss_today):
        return Sized(
            ZERO,
            f"daily loss limit reached: lost {book.loss_today:.2f} today (limit {limits.daily_loss_limit})",
        )
    if price <= 0:
        return Sized(ZERO, "no price to size the order with")
    quote = model.entry_quote(allocation, size)
    asked = quote
    capped = None
    if limits.max_order_notional is not None and quote > limits.max_order_notional:
        quote, capped = limits.max_order_notional, f"max_order_notional {limits.max_order_notional}"
    held = book.held.get(symbol, ZERO)
    if limits.max_position is not None:
        room = limits.max_position - held * price
        if room < MIN_NOTIONAL:
            return Sized(
                ZERO,
                f"max_position reached: the account holds {held * price:.2f} {quote_asset} of "
                f"{symbol} (limit {limits.max_position})",
            )
        if quote > room:
            quote, capped = room, f"max_position {limits.max_position} (the account holds {held * price:.2f})"
    if book.free is None:
        return Sized(ZERO, "balance check failed: the exchange did not answer")
    if quote > book.free:
        quote, capped = book.free, f"the account's free balance ({book.free:.2f} {quote_asset})"
    amount = model.quantity(quote, price)
    if amount * price < MIN_NOTIONAL:
        if capped is None or capped.startswith("the account's free"):
            return Sized(
                ZERO, f"insufficient {quote_asset} balance for this allocation ({book.free:.2f} free)"
            )
        return Sized(ZERO, f"the order would be worth less than {MIN_NOTIONAL} {quote_asset} under {capped}")
    book.free -= amount * price * BUY_HEADROOM
    book.held[symbol] = held + amount
    note = f"smaller than asked ({asked:.2f} {quote_asset}): capped by {capped}" if capped else None
    return Sized(amount, note=note)
